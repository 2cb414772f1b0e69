"""Readers: Avro files/folders/tarballs/parquet stream packets; damaged inputs become PacketErrors."""

from __future__ import annotations

import collections
import gzip
import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from applecider_data import (
    AlertParseError,
    PacketError,
    iter_avro_bytes,
    iter_packets,
    iter_packets_with_source,
    packet_to_alert,
    synthetic,
)


def test_avro_folder_round_trip(synthetic_avro_dir, synthetic_packets):
    packets = list(iter_packets(synthetic_avro_dir))
    assert sorted(p["candid"] for p in packets) == sorted(p["candid"] for p in synthetic_packets)
    by_candid = {p["candid"]: p for p in synthetic_packets}
    for packet in packets:
        original = by_candid[packet["candid"]]
        assert packet["candidate"]["magpsf"] == pytest.approx(original["candidate"]["magpsf"])
        assert packet["cutoutScience"]["stampData"] == original["cutoutScience"]["stampData"]


def test_synthetic_is_deterministic(tmp_path):
    a = synthetic.write_avro(tmp_path / "a.avro", synthetic.make_packets(2, seed=11))
    b = synthetic.write_avro(tmp_path / "b.avro", synthetic.make_packets(2, seed=11))
    assert a.read_bytes() == b.read_bytes()


def test_truncated_avro_names_file_and_rest_continue(tmp_path, synthetic_packets):
    good = synthetic.write_avro(tmp_path / "a_good.avro", synthetic_packets[:2])
    bad = synthetic.write_avro(tmp_path / "b_bad.avro", synthetic_packets[2:5])
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated in the middle of the data block
    junk = tmp_path / "c_junk.avro"
    junk.write_bytes(b"this is not avro at all")
    synthetic.write_avro(tmp_path / "d_good.avro", synthetic_packets[5:])
    items = list(iter_packets_with_source([tmp_path]))
    errors = [p for _s, _i, p in items if isinstance(p, PacketError)]
    packets = [p for _s, _i, p in items if not isinstance(p, PacketError)]
    assert {e.source for e in errors} == {str(bad), str(junk)}
    reasons = {e.source: e.reason for e in errors}
    assert "corrupt or truncated Avro" in reasons[str(bad)]
    assert "not an Avro container" in reasons[str(junk)]  # told by its first bytes, not its name
    assert str(bad) in str(errors[0])
    from_good = [p for s, _i, p in items if s.endswith("_good.avro")]
    assert len(from_good) == 3 and all(isinstance(p, dict) for p in from_good)  # the rest went through
    assert len(packets) - len(from_good) < 3  # records of the bad file before the cut, if any
    assert good.exists()


def test_tarball_streams_members(tmp_path, synthetic_packets):
    tar_path = tmp_path / "ztf_public_20200101.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for packet in synthetic_packets[:3]:
            buffer = io.BytesIO()
            synthetic.write_avro(tmp_path / "tmp.avro", [packet])
            data = (tmp_path / "tmp.avro").read_bytes()
            buffer.write(data)
            info = tarfile.TarInfo(f"{packet['candid']}.avro")
            info.size = len(data)
            buffer.seek(0)
            tar.addfile(info, buffer)
        info = tarfile.TarInfo("broken.avro")
        info.size = 10
        tar.addfile(info, io.BytesIO(b"0123456789"))
    items = list(iter_packets_with_source(tar_path))
    assert sum(not isinstance(p, PacketError) for _s, _i, p in items) == 3
    errors = [p for _s, _i, p in items if isinstance(p, PacketError)]
    assert len(errors) == 1 and errors[0].item == "broken.avro" and errors[0].source == str(tar_path)


def test_truncated_tarball_reports(tmp_path, synthetic_packets):
    tar_path = tmp_path / "night.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for packet in synthetic_packets[:4]:
            path = synthetic.write_avro(tmp_path / f"{packet['candid']}.avro", [packet])
            tar.add(path, arcname=path.name)
    tar_path.write_bytes(tar_path.read_bytes()[:-4000])
    items = list(iter_packets(tar_path))
    assert isinstance(items[-1], PacketError) and "tarball" in items[-1].reason
    assert all(isinstance(p, dict) for p in items[:-1])


def test_alert_parquet_rows(tmp_path, synthetic_packets):
    rows = []
    for packet in synthetic_packets[:3]:
        rows.append({"objectId": packet["objectId"], "candid": packet["candid"], "schemavsn": "4.01",
                     "candidate": json.dumps(packet["candidate"]), "prv_candidates": json.dumps(packet["prv_candidates"]),
                     "cutoutScience": packet["cutoutScience"]["stampData"], "cutoutTemplate": None,
                     "cutoutDifference": packet["cutoutDifference"]["stampData"], "cutout_format": "gzip-fits"})
    rows[1]["candidate"] = "{not json"
    rows[2]["cutoutDifference"] = gzip.compress(b"\xff\xd8\xff JPEG")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "alerts.parquet", row_group_size=2)
    items = list(iter_packets(tmp_path / "alerts.parquet"))
    assert isinstance(items[1], PacketError) and "invalid JSON" in items[1].reason
    first = packet_to_alert(items[0])
    assert first.cutouts is None and "cutoutTemplate: missing" in first.problems
    third = packet_to_alert(items[2])
    assert third.cutouts is None and any("not a FITS stamp (JPEG" in p for p in third.problems)


def test_missing_path_and_unknown_type(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    items = list(iter_packets([tmp_path / "nope.avro", tmp_path / "notes.txt"]))
    assert [type(i) for i in items] == [PacketError, PacketError]


@pytest.mark.slow
def test_every_real_alert_parsed_or_reported(shared_data):
    """Every alert of the parquet table and every file in alerts/avro/ is parsed or reported with a reason."""
    counts = collections.Counter()
    files_seen = set()
    paths = [shared_data / "alerts" / "ztf_public_alerts.parquet", shared_data / "alerts" / "avro"]
    for source, _item, packet in iter_packets_with_source(paths):
        files_seen.add(source)
        if isinstance(packet, PacketError):
            assert packet.reason
            counts["error"] += 1
            continue
        try:
            alert = packet_to_alert(packet)
        except AlertParseError as err:
            assert err.field and err.reason
            counts["fatal"] += 1
            continue
        counts["ok"] += 1
        counts["cutouts"] += alert.cutouts is not None
        if alert.cutouts is None:
            assert any(p.startswith("cutout") for p in alert.problems)
    n_avro = len(list((shared_data / "alerts" / "avro").glob("*.avro")))
    assert len(files_seen) == n_avro + 1
    assert counts["ok"] + counts["fatal"] + counts["error"] == 2095 + n_avro
    assert counts["ok"] >= 2095  # all real alerts parse; stamp problems are per-alert problems


def test_truncated_avro_counts_the_records_decoded_before_the_failure(tmp_path, synthetic_packets):
    import fastavro

    path = tmp_path / "blocks.avro"
    with path.open("wb") as f:  # sync_interval 1: every record in its own block, so a cut loses only the last
        fastavro.writer(f, synthetic.alert_schema(), synthetic_packets[:3], codec="null", sync_interval=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    items = list(iter_packets_with_source([path]))
    decoded = [p for _s, _i, p in items if not isinstance(p, PacketError)]
    errors = [p for _s, _i, p in items if isinstance(p, PacketError)]
    assert len(decoded) == 2 and len(errors) == 1
    assert "after 2 record(s)" in errors[0].reason


def _container(packets: list[dict], codec: str = "null", sync_interval: int = 16000) -> bytes:
    import fastavro

    buffer = io.BytesIO()
    fastavro.writer(buffer, synthetic.alert_schema(), packets, codec=codec, sync_interval=sync_interval)
    return buffer.getvalue()


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_in_memory_containers_parse_their_schema_once_and_match_fastavro(monkeypatch, synthetic_packets, codec):
    import fastavro

    from applecider_data import readers

    messages = [_container(synthetic_packets[:1], codec), _container(synthetic_packets[1:4], codec, sync_interval=1)]
    expected = [list(fastavro.reader(io.BytesIO(m))) for m in messages]
    parses = []
    real_parse = fastavro.parse_schema
    monkeypatch.setattr(readers, "_writer_schemas", collections.OrderedDict())
    monkeypatch.setattr(fastavro, "parse_schema", lambda *a, **k: parses.append(1) or real_parse(*a, **k))
    got = [[p for _s, _i, p in iter_avro_bytes(m, "kafka")] for m in messages * 3]
    assert got == expected * 3  # 1 + 3 records (the second message one block per record), each read 3 times
    assert len(parses) == 1  # one writer schema, parsed on the first message only
    assert [i for _s, i, _p in iter_avro_bytes(messages[1], "kafka")] == ["#0", "#1", "#2"]


def test_real_alert_files_read_cached_equal_fastavro(shared_data):
    import fastavro

    from applecider_data.readers import read_container_cached

    for path in sorted((shared_data / "alerts" / "avro").glob("*.avro")):
        data = path.read_bytes()
        assert read_container_cached(data) == list(fastavro.reader(io.BytesIO(data))), path.name


def test_damaged_in_memory_container_still_names_the_records_before_the_cut(synthetic_packets):
    data = _container(synthetic_packets[:3], sync_interval=1)
    items = [p for _s, _i, p in iter_avro_bytes(data[:-200], "kafka", "ztf[0]@7")]
    assert [isinstance(p, PacketError) for p in items] == [False, False, True]
    assert "ztf[0]@7 after 2 record(s)" in items[-1].reason
    wrong_sync = data[:-16] + bytes(16)  # the last block is whole, its sync marker overwritten: as fastavro
    items = [p for _s, _i, p in iter_avro_bytes(wrong_sync, "kafka")]
    assert [isinstance(p, PacketError) for p in items] == [False, False, False, True]
    assert "after 3 record(s)" in items[-1].reason and "sync marker" in items[-1].reason
