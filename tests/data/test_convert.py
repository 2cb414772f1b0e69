"""Packet → records: golden values on a hand-checked real alert, conventions, property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applecider_core.records import METADATA_FEATURES, flux_ujy_to_mag, mag_to_flux_ujy
from applecider_data import AlertParseError, iter_packets, packet_to_alert
from applecider_data.convert import (
    deduplicate_points,
    light_curve_from_points,
    merge_light_curves,
    point_from_candidate,
)

GOLDEN_FILE = "alerts/avro/skyportal+kowalski__2475433850015010009.avro"


@pytest.mark.slow
def test_golden_real_alert(shared_data):
    """ZTF17aadcvhq, candid 2475433850015010009 (skyportal/kowalski test alert), checked by hand."""
    packet = next(iter_packets(shared_data / GOLDEN_FILE))
    alert = packet_to_alert(packet)
    assert alert.object_id == "ZTF17aadcvhq" and alert.candid == 2475433850015010009
    # jd 2460229.9338542 - 2400000.5 = 60229.4338542 ; fid 1 -> ztfg
    assert alert.mjd == pytest.approx(60229.4338542, abs=1e-7)
    assert alert.band == "ztfg"
    assert (alert.ra_deg, alert.dec_deg) == pytest.approx((46.9973747, 9.3679347))
    meta = alert.metadata_dict()
    assert meta["magpsf"] == pytest.approx(17.855722, abs=1e-5)
    assert meta["sgscore1"] == pytest.approx(0.980286, abs=1e-6)
    assert meta["distpsnr2"] == pytest.approx(10.642642, abs=1e-5)
    # nnondet = ncovhist - ndethist = 1448 - 258 = 1190
    assert meta["ncovhist"] == 1448 and meta["ndethist"] == 258 and meta["nnondet"] == 1190
    # first detection of the object: jdstarthist 2458043.8823727 (2017), long before the packet's 30-day history
    # (whose first detection is prv jd 2460207.9553125); age = 2460229.9338542 - 2458043.8823727 = 2186.0514815 d
    assert meta["age_days"] == pytest.approx(2186.0514815, abs=1e-3)
    lc = alert.light_curve
    assert lc.first_detection_mjd == pytest.approx(2458043.8823727 - 2400000.5)
    # 20 prv_candidates (4 detections, 16 upper limits) + candidate = 21 rows, none duplicated
    assert len(lc) == 21 and lc.num_detections == 5
    assert np.all(np.diff(lc.mjd) >= 0)
    # candidate: isdiffpos 'f' -> negative flux; 23.9 - 17.8557224 = 6.0442776; *0.4 = 2.4177110;
    # 10**2.4177110 = 261.644 uJy; err = 0.0688278 * 261.644 * ln(10)/2.5 = 16.586 uJy
    last = np.flatnonzero(lc.candid == 2475433850015010009)[0]
    assert lc.flux_ujy[last] == pytest.approx(-261.644, abs=0.01)
    assert lc.flux_err_ujy[last] == pytest.approx(16.586, abs=0.01)
    # first upper limit: diffmaglim 20.5861 (fid 2): 10**(0.4 * (23.9 - 20.5861)) = 10**1.32556 = 21.162 uJy
    assert not lc.is_detection[0] and lc.band[0] == "ztfr"
    assert lc.flux_ujy[0] == pytest.approx(21.162, abs=0.01) and math.isnan(lc.flux_err_ujy[0])
    assert alert.cutouts is not None and alert.cutouts.science.shape == (63, 63)
    assert alert.cutouts.science.dtype == np.float32 and alert.problems == []


def test_synthetic_packet_converts(synthetic_packets):
    packet = synthetic_packets[0]
    alert = packet_to_alert(packet)
    assert alert.metadata.shape == (len(METADATA_FEATURES),) and alert.metadata.dtype == np.float32
    assert alert.cutouts.stack().shape == (3, 63, 63)
    assert alert.light_curve.candid[-1] >= 0 and len(alert.light_curve) == len(packet["prv_candidates"]) + 1
    # first detection -> age_days; candidate flux from magpsf
    flux, _ = mag_to_flux_ujy(packet["candidate"]["magpsf"])
    assert alert.light_curve.flux_ujy[alert.light_curve.candid == packet["candid"]][0] == pytest.approx(flux)


def test_first_detection_from_jdstarthist_or_the_history(synthetic_packets):
    packet = {**synthetic_packets[0], "candidate": dict(synthetic_packets[0]["candidate"])}
    jd = packet["candidate"]["jd"]
    history_first = min(p["jd"] for p in [*packet["prv_candidates"], packet["candidate"]] if p.get("magpsf") is not None)
    packet["candidate"]["jdstarthist"] = history_first - 50.0  # ZTF saw it 50 d before this history starts
    alert = packet_to_alert(packet)
    assert alert.metadata_dict()["age_days"] == pytest.approx(jd - history_first + 50.0, abs=1e-3)
    assert alert.light_curve.first_detection_mjd == pytest.approx(history_first - 50.0 - 2400000.5)
    packet["candidate"]["jdstarthist"] = None  # missing: the longest history known
    alert = packet_to_alert(packet)
    assert alert.metadata_dict()["age_days"] == pytest.approx(jd - history_first, abs=1e-3)
    later = light_curve_from_points("ZTFx", [(59005.0, "ztfr", 12.0, 1.5, True, 43, False)], first_detection_mjd=58990.0)
    earlier = light_curve_from_points("ZTFx", [(59000.0, "ztfg", 10.0, 1.0, True, 42, False)], first_detection_mjd=58950.0)
    assert merge_light_curves(later, earlier).first_detection_mjd == 58950.0  # streaming keeps the earliest


def test_history_rows_of_two_filters_at_one_jd_are_dropped(synthetic_packets):
    """A fink-broker test packet sets every prv_candidates jd to one value; one exposure has one filter, so rows
    of g and r at one jd are not real times. They are dropped with a note; a repeat in one filter is kept."""
    packet = synthetic_packets[0]
    candidate = packet["candidate"]
    collapsed = [{**p, "jd": candidate["jd"] - 5.0} for p in packet["prv_candidates"]]
    assert {p["fid"] for p in collapsed} == {1, 2}, "the fixture's history must hold both filters"
    alert = packet_to_alert({**packet, "prv_candidates": collapsed}, with_cutouts=False)
    assert len(alert.light_curve) == 1 and alert.light_curve.candid[0] == packet["candid"]
    assert any(f"{len(collapsed)} history rows of different filters share jd" in p for p in alert.problems)
    same_filter = [{**p, "jd": candidate["jd"] - 5.0, "fid": 1} for p in packet["prv_candidates"][:2]]
    alert = packet_to_alert({**packet, "prv_candidates": same_filter}, with_cutouts=False)
    assert not any("share jd" in p for p in alert.problems) and len(alert.light_curve) >= 2
    assert not any("share jd" in p for p in packet_to_alert(packet, with_cutouts=False).problems)


def test_missing_values_are_nan_not_sentinels(synthetic_packets):
    packet = dict(synthetic_packets[1])
    packet["candidate"] = {**packet["candidate"], "sgscore2": -999.0, "distpsnr2": -999.0, "scorr": None}
    meta = packet_to_alert(packet, with_cutouts=False).metadata_dict()
    assert math.isnan(meta["sgscore2"]) and math.isnan(meta["distpsnr2"]) and math.isnan(meta["scorr"])
    assert meta["sgscore1"] == pytest.approx(0.05)


@pytest.mark.parametrize(("field", "value", "expected_field"), [
    ("objectId", None, "objectId"), ("candidate", None, "candidate"), ("candid", "x", "candid"),
])
def test_fatal_problems_raise_alert_parse_error(synthetic_packets, field, value, expected_field):
    packet = {**synthetic_packets[0], field: value}
    with pytest.raises(AlertParseError) as info:
        packet_to_alert(packet)
    assert info.value.field == expected_field


def test_bad_fid_and_missing_jd(synthetic_packets):
    for key, value, field in (("fid", 7, "candidate.fid"), ("jd", None, "candidate.jd")):
        packet = {**synthetic_packets[0], "candidate": {**synthetic_packets[0]["candidate"], key: value}}
        with pytest.raises(AlertParseError, match=field):
            packet_to_alert(packet)


def test_isdiffpos_sign_and_upper_limit():
    base = {"jd": 2459000.5, "fid": 2, "magpsf": 23.9, "sigmapsf": 0.1, "candid": 5}
    assert point_from_candidate({**base, "isdiffpos": "t"})[2] == pytest.approx(1.0)
    assert point_from_candidate({**base, "isdiffpos": "1"})[2] == pytest.approx(1.0)
    assert point_from_candidate({**base, "isdiffpos": "f"})[2] == pytest.approx(-1.0)
    assert point_from_candidate({**base, "isdiffpos": "0"})[2] == pytest.approx(-1.0)
    limit = point_from_candidate({"jd": 2459000.5, "fid": 3, "magpsf": None, "diffmaglim": 21.4})
    assert limit[1] == "ztfi" and limit[4] is False and math.isnan(limit[3])
    assert limit[2] == pytest.approx(10 ** (0.4 * (23.9 - 21.4)))  # 10**1.0 = 10 uJy
    assert point_from_candidate({"jd": 2459000.5, "fid": 1, "diffmaglim": -1006.9}) is None  # sentinel


def test_deduplicate_on_candid_then_epoch():
    det = (59000.0, "ztfg", 10.0, 1.0, True, 42, False)
    limit_same_epoch = (59000.0, "ztfg", 5.0, math.nan, False, -1, False)
    limit = (59001.0, "ztfr", 5.0, math.nan, False, -1, False)
    rows = deduplicate_points([det, limit, det, limit_same_epoch, limit])
    assert rows == [det, limit]


def test_merge_light_curves_of_successive_packets():
    det = (59000.0, "ztfg", 10.0, 1.0, True, 42, False)
    limit = (59001.0, "ztfr", 5.0, math.nan, False, -1, False)
    later = (59005.0, "ztfr", 12.0, 1.5, True, 43, False)
    first = light_curve_from_points("ZTFx", [det, limit])
    second = light_curve_from_points("ZTFx", [det, limit, later])  # the next packet repeats the history
    merged = merge_light_curves(first, second)
    assert merged.object_id == "ZTFx"
    assert list(zip(merged.mjd, merged.band, merged.candid)) == [(59000.0, "ztfg", 42), (59001.0, "ztfr", -1),
                                                                  (59005.0, "ztfr", 43)]
    np.testing.assert_array_equal(merge_light_curves(second, first).flux_ujy, merged.flux_ujy)


point_strategy = st.tuples(
    st.floats(58000, 61000, allow_nan=False), st.sampled_from([1, 2, 3]),
    st.one_of(st.none(), st.floats(12, 23, allow_nan=False)), st.floats(0.01, 0.5), st.sampled_from(["t", "f", "1", "0"]),
    st.floats(18, 22), st.one_of(st.none(), st.integers(1, 10**6)),
)


def _candidate(p):
    jd, fid, mag, sig, diffpos, lim, candid = p
    return {"jd": jd + 2400000.5, "fid": fid, "magpsf": mag, "sigmapsf": sig, "isdiffpos": diffpos,
            "diffmaglim": lim, "candid": candid if mag is not None else None}


@settings(max_examples=60, deadline=None)
@given(st.lists(point_strategy, min_size=1, max_size=25), st.randoms())
def test_light_curve_order_independent_and_finite(points, random):
    cands = [_candidate(p) for p in points]
    rows = [point_from_candidate(c) for c in cands]
    shuffled = rows[:]
    random.shuffle(shuffled)
    a = light_curve_from_points("ZTFx", rows)
    b = light_curve_from_points("ZTFx", shuffled + rows[:3])  # shuffled, with repeats
    for name in ("mjd", "band", "is_detection", "candid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.flux_ujy, b.flux_ujy)
    assert np.all(np.isfinite(a.flux_ujy)) and np.all(np.isfinite(a.mjd))
    assert np.all(np.isfinite(a.flux_err_ujy[a.is_detection])) and np.all(np.isnan(a.flux_err_ujy[~a.is_detection]))
    assert np.all(np.diff(a.mjd) >= 0)


@settings(max_examples=100, deadline=None)
@given(st.floats(5, 30, allow_nan=False), st.floats(0.001, 1.0))
def test_mag_flux_round_trip(mag, err):
    flux, flux_err = mag_to_flux_ujy(mag, err)
    assert np.isfinite(flux) and flux > 0 and np.isfinite(flux_err)
    assert flux_ujy_to_mag(flux) == pytest.approx(mag, abs=1e-9)
    assert flux_err / flux == pytest.approx(err * math.log(10) / 2.5)
    row = point_from_candidate({"jd": 2459000.5, "fid": 1, "magpsf": mag, "sigmapsf": err, "isdiffpos": "t"})
    assert flux_ujy_to_mag(row[2]) == pytest.approx(mag, abs=1e-9)
