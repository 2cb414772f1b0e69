"""Rubin (LSST) packets: wire format, schema sources, unit and band conventions, forced photometry, cutouts,
and robustness on the real packets of the bundle (alerts_lsst/) and damaged copies of them."""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path

import fastavro
import numpy as np
import pytest

from applecider_core.records import LSST_BANDS, LSST_METADATA_FEATURES, flux_ujy_to_mag
from applecider_data import (
    AlertParseError,
    PacketError,
    WireSchemas,
    decode_wire_message,
    iter_packets,
    packet_survey,
    packet_to_alert,
    wire_header,
)
from applecider_data import wire as wire_module
from applecider_data.cutouts import _astropy_hdus, _fits_bytes, decode_stamp_hdus

V9_FILE = "169298432598474793_169298432598474793.avro"  # psfFlux 3028.187 nJy, band i, 30×30 stamps


def _lsst(shared_data: Path) -> Path:
    return shared_data / "alerts_lsst"


def _v9(shared_data: Path) -> tuple[dict, dict]:
    with open(_lsst(shared_data) / "fink_v9_0_avro" / V9_FILE, "rb") as stream:
        reader = fastavro.reader(stream)
        return next(iter(reader)), reader.writer_schema


def _frame(schema_id: int, body: bytes) -> bytes:
    return bytes([0]) + schema_id.to_bytes(4, "big") + body


def _wire(packet: dict, schema: dict, schema_id: int = 900) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), packet)
    return _frame(schema_id, body.getvalue())


# ---- wire format ---------------------------------------------------------------------------------------------
def test_wire_header_id_short_message_and_magic():
    assert wire_header(b"\x00\x00\x00\x03\x84rest") == 900
    assert wire_header(_frame(1101, b"")) == 1101
    with pytest.raises(AlertParseError, match="shorter than the 5-byte header"):
        wire_header(b"\x00\x00\x03")
    with pytest.raises(AlertParseError, match="magic byte is 79"):
        wire_header(b"Obj\x01\x00\x00")
    assert wire_module.lsst_schema_name(900) == "lsst.v9_0" and wire_module.lsst_schema_name(1101) == "lsst.v11_1"


def test_unknown_schema_id_names_the_id_and_how_to_supply_it(tmp_path, monkeypatch):
    monkeypatch.setattr(wire_module, "_lsst_package_root", lambda: None)  # as without the lsst extra
    schemas = WireSchemas([tmp_path])
    with pytest.raises(AlertParseError, match=r"unknown schema id 1234 .*--schema-dir.*applecider-data\[lsst\]"):
        decode_wire_message(_frame(1234, b"\x02"), schemas)
    with pytest.raises(AlertParseError, match="unknown schema id 7; known: \\[900\\]"):
        decode_wire_message(_frame(7, b""), {900: {"type": "record", "name": "x", "fields": []}})


@pytest.mark.slow
def test_wire_round_trip_with_schema_directory_and_registry(shared_data, tmp_path, recorded_server, monkeypatch):
    """A real v9 packet framed with the writer schema its Fink file embeds (data, not the GPL schema files)."""
    monkeypatch.setattr(wire_module, "_lsst_package_root", lambda: None)
    packet, schema = _v9(shared_data)
    message = _wire(packet, schema)
    (tmp_path / "900.avsc").write_text(json.dumps(schema))
    decoded = decode_wire_message(message, WireSchemas([tmp_path]))
    assert decoded["diaSourceId"] == packet["diaSourceId"] and decoded["cutoutScience"] == packet["cutoutScience"]
    with pytest.raises(AlertParseError, match="bytes left after decoding"):
        decode_wire_message(message + b"\x00\x00", WireSchemas([tmp_path]))
    with pytest.raises(AlertParseError, match="does not decode with schema id 900"):
        decode_wire_message(message[: len(message) // 2], WireSchemas([tmp_path]))
    url, _ = recorded_server({"GET /schemas/ids/900": [{"status": 200, "body": json.dumps({"schema": json.dumps(schema)})}]})
    registry = WireSchemas(registry_url=url)
    for _ in range(3):
        assert decode_wire_message(message, registry)["diaSourceId"] == packet["diaSourceId"]
    assert registry.registry_fetches == 1  # cached after the first message
    with pytest.raises(AlertParseError, match="unknown schema id 901"):
        decode_wire_message(_frame(901, b""), registry)


@pytest.mark.slow
def test_simulated_wire_packet_with_the_optional_lsst_package(shared_data):
    if wire_module._lsst_package_root() is None:
        pytest.skip("the optional lsst-alert-packet extra is not installed")
    path = _lsst(shared_data) / "wire_simulated" / "7912941781254298.avro"
    alert = packet_to_alert(decode_wire_message(path.read_bytes(), WireSchemas()))
    assert alert.survey == "lsst" and alert.schema_version == "lsst.v9_0" and alert.band == "lsstr"


# ---- conversion conventions ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_njy_to_ujy_and_ab_magnitudes_golden(shared_data):
    packet, _ = _v9(shared_data)
    alert = packet_to_alert(packet)
    assert alert.survey == "lsst" and packet_survey(packet) == "lsst"
    assert alert.light_curve.flux_ujy[0] == pytest.approx(3028.18701171875 / 1000)
    assert alert.light_curve.flux_err_ujy[0] == pytest.approx(572.7883911132812 / 1000)
    # m = 31.4 - 2.5 log10(f / nJy): 3028.187 nJy = 22.6970 mag, the same as 23.9 - 2.5 log10(f / µJy)
    assert flux_ujy_to_mag(alert.light_curve.flux_ujy)[0] == pytest.approx(31.4 - 2.5 * math.log10(3028.18701171875))
    assert flux_ujy_to_mag(alert.light_curve.flux_ujy)[0] == pytest.approx(22.6970, abs=1e-4)
    for flux_njy, mag in ((3630.78, 22.5), (1.0, 31.4), (10**((31.4 - 20.0) / 2.5), 20.0)):
        fake = copy.deepcopy(packet)
        fake["diaSource"]["psfFlux"] = flux_njy
        assert flux_ujy_to_mag(packet_to_alert(fake, with_cutouts=False).light_curve.flux_ujy)[0] == pytest.approx(mag, abs=1e-4)
    assert alert.mjd == packet["diaSource"]["midpointMjdTai"]
    metadata = alert.metadata_dict()
    assert len(metadata) == len(LSST_METADATA_FEATURES) and metadata["reliability"] == pytest.approx(0.50487, abs=1e-5)
    assert metadata["i_psfFluxMean_ujy"] == pytest.approx(3.028187, abs=1e-5) and math.isnan(metadata["g_psfFluxMean_ujy"])


@pytest.mark.slow
def test_band_mapping_and_unknown_bands(shared_data):
    packet, _ = _v9(shared_data)
    for letter, band in zip("ugrizy", LSST_BANDS):
        fake = copy.deepcopy(packet)
        fake["diaSource"]["band"] = letter
        alert = packet_to_alert(fake, with_cutouts=False)
        assert alert.band == band and alert.light_curve.band.tolist() == [band]
    fake = copy.deepcopy(packet)
    fake["diaSource"]["band"] = "w"
    with pytest.raises(AlertParseError, match=r"diaSource\.band"):
        packet_to_alert(fake)
    fake = copy.deepcopy(packet)
    fake["prvDiaSources"] = [dict(packet["diaSource"], band="w", diaSourceId=5, midpointMjdTai=60900.0)]
    alert = packet_to_alert(fake, with_cutouts=False)
    assert len(alert.light_curve) == 1 and "unusable (dropped)" in alert.problems[0]


@pytest.mark.slow
def test_forced_photometry_is_kept_and_flagged(shared_data):
    from applecider_photometry import FeatureConfig, build_events

    packet, _ = _v9(shared_data)
    source = packet["diaSource"]
    forced = [{"diaForcedSourceId": 11 + k, "diaObjectId": source["diaObjectId"], "midpointMjdTai": 60900.0 + k,
               "band": "g", "psfFlux": -150.0 + 100 * k, "psfFluxErr": 80.0} for k in range(3)]
    prv = [dict(source, diaSourceId=7, midpointMjdTai=60920.0, psfFlux=2500.0, band="r")]
    packet = dict(packet, prvDiaForcedSources=forced, prvDiaSources=prv)
    lc = packet_to_alert(packet, with_cutouts=False).light_curve
    assert len(lc) == 5 and lc.is_forced.sum() == 3
    assert not lc.is_detection[lc.is_forced].any() and lc.is_detection[~lc.is_forced].all()
    np.testing.assert_allclose(lc.flux_ujy[lc.is_forced], [-0.15, -0.05, 0.05])
    np.testing.assert_allclose(lc.flux_err_ujy[lc.is_forced], 0.08)
    assert packet_to_alert(packet, with_cutouts=False).metadata_dict()["n_forced"] == 3
    assert packet_to_alert(packet, with_cutouts=False).metadata_dict()["age_days"] == pytest.approx(
        source["midpointMjdTai"] - 60920.0)
    config = FeatureConfig(bands=LSST_BANDS)
    assert build_events(lc, config).features.shape == (2, 4 + 6)  # forced points are not detections


@pytest.mark.slow
def test_cutouts_shapes_units_and_fast_reader(shared_data):
    packet, _ = _v9(shared_data)
    cutouts = packet_to_alert(packet).cutouts
    assert cutouts.shape == (30, 30) and cutouts.unit == "nJy" and cutouts.pixel_scale_arcsec == 0.2
    assert cutouts.science.dtype == np.float32 and set(cutouts.variance) == set(cutouts.psf) == {"science", "template", "difference"}
    assert all(v.shape == (30, 30) and (v[np.isfinite(v)] >= 0).all() for v in cutouts.variance.values())
    assert all(p.ndim == 2 and p.shape[0] == p.shape[1] for p in cutouts.psf.values())
    for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
        fast, unit = decode_stamp_hdus(packet[name], 3)
        slow, slow_unit = _astropy_hdus(_fits_bytes(packet[name]), 3)
        assert unit == slow_unit == "nJy"
        for a, b in zip(fast, slow):
            np.testing.assert_array_equal(a, b)


# ---- robustness ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_shared_rubin_packet_gives_an_alert_or_a_clear_error(shared_data, monkeypatch):
    monkeypatch.setattr(wire_module, "_lsst_package_root", lambda: None)
    items = list(iter_packets(_lsst(shared_data)))
    assert len(items) == 126
    errors = [i for i in items if isinstance(i, PacketError)]
    assert len(errors) == 1 and "unknown schema id 900" in errors[0].reason  # the wire packet without a schema
    alerts = [packet_to_alert(p) for p in items if not isinstance(p, PacketError)]
    assert {a.survey for a in alerts} == {"lsst"}
    assert {a.schema_version for a in alerts} == {"lsst.v9_0", "lsst.v10_0"}
    assert sum(a.cutouts is not None for a in alerts) == 125
    assert max(len(a.light_curve) for a in alerts) == 23  # the v10 row with 22 previous diaSources


@pytest.mark.slow
def test_damaged_copies_become_errors_and_the_rest_goes_on(shared_data, tmp_path):
    data = (_lsst(shared_data) / "fink_v9_0_avro" / V9_FILE).read_bytes()
    packet, schema = _v9(shared_data)
    wire = _wire(packet, schema)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "900.avsc").write_text(json.dumps(schema))
    damaged = {
        "a_truncated.avro": data[: len(data) // 2],
        "b_header_only.avro": data[:200],
        "c_flipped.avro": data[:3000] + bytes(b ^ 0xFF for b in data[3000:3400]) + data[3400:],
        "d_not_avro.avro": b"SIMPLE  = T" + b"\x00" * 100,
        "e_empty.avro": b"",
        "f_huge_map_count.avro": b"Obj\x01" + b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + b"\x00" * 16,
        "g_wire_truncated.avro": wire[:5000],
        "h_wire_short.avro": b"\x00\x00\x00",
        "i_good.avro": data,
        "j_good_wire.avro": wire,
    }
    for name, blob in damaged.items():
        (tmp_path / name).write_bytes(blob)
    items = list(iter_packets(sorted(tmp_path.glob("*.avro")), WireSchemas([tmp_path / "schemas"])))
    good = [i for i in items if not isinstance(i, PacketError)]
    bad = [i for i in items if isinstance(i, PacketError)]
    assert {Path(e.source).name for e in bad} >= {"a_truncated.avro", "b_header_only.avro", "d_not_avro.avro",
                                                   "e_empty.avro", "f_huge_map_count.avro", "g_wire_truncated.avro",
                                                   "h_wire_short.avro"}
    assert "not an Avro container" in next(e.reason for e in bad if e.source.endswith("d_not_avro.avro"))
    assert len(good) >= 2 and all(packet_to_alert(p).survey == "lsst" for p in good[-2:])


@pytest.mark.slow
def test_the_real_wire_file_is_not_read_as_a_container(shared_data, monkeypatch):
    """The bundle's wire packet once made fastavro allocate a huge map (MemoryError): now one error item."""
    monkeypatch.setattr(wire_module, "_lsst_package_root", lambda: None)
    items = list(iter_packets(_lsst(shared_data) / "wire_simulated"))
    assert len(items) == 1 and isinstance(items[0], PacketError) and "schema id 900" in items[0].reason
