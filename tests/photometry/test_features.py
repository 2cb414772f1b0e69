"""Event features: merging, golden values on a real alert history, edge cases, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applecider_core.records import LightCurve
from applecider_photometry.augment import AugmentConfig, alert_history_view, augment_light_curve
from applecider_photometry.features import (
    FLUX_FLOOR_UJY,
    FeatureConfig,
    FeatureStats,
    NoDetectionsError,
    build_events,
    build_many,
    delta_t_origin,
    from_preprocessor,
    history_restart_days,
    merge_band,
    merge_events,
    preprocessor_dict,
)
from applecider_photometry.modeling import collate_events

AVRO_FILE = "alerts/avro/skyportal+kowalski__1127107111615015007.avro"  # ZTF19abzrhgq, 15 prv + candidate


def make_lc(mjd, band, flux, err, det=None, object_id="obj") -> LightCurve:
    det = np.ones(len(mjd), dtype=bool) if det is None else det
    return LightCurve(object_id, mjd, band, flux, err, det)


def test_merge_three_points_same_night_inverse_variance():
    # σ = 1, 2, 1 → w = 1, 1/4, 1; Σw = 2.25
    mjd, flux, err, n = merge_band(np.array([100.0, 100.1, 100.3]), np.array([10.0, 12.0, 11.0]), np.array([1.0, 2.0, 1.0]))
    assert n.tolist() == [3]
    assert flux[0] == pytest.approx((10 + 12 / 4 + 11) / 2.25)  # 10.6667, not the 1/σ-weighted 10.8
    assert err[0] == pytest.approx(1 / np.sqrt(2.25))  # 0.6667, smaller than every input error
    assert mjd[0] == pytest.approx((100.0 + 100.1 / 4 + 100.3) / 2.25)


def test_merge_window_is_anchored_at_first_point():
    # 0.0, 0.4 (≤0.5 from anchor 0.0) merge; 0.8 is 0.8 from the anchor → new window even though 0.4 from 0.4.
    _, _, _, n = merge_band(np.array([0.0, 0.4, 0.8, 1.2]), np.ones(4), np.ones(4))
    assert n.tolist() == [2, 2]


def test_merge_is_per_band():
    lc = make_lc([1.0, 1.1, 1.2], ["ztfg", "ztfr", "ztfg"], [10.0, 20.0, 10.0], [1.0, 1.0, 1.0])
    points = merge_events(lc)
    assert points.band_index.tolist() == [0, 1]
    assert points.n_merged.tolist() == [2, 1]


def _alert_light_curve(shared_data) -> LightCurve:
    fastavro = pytest.importorskip("fastavro")
    with open(shared_data / AVRO_FILE, "rb") as handle:
        record = next(iter(fastavro.reader(handle)))
    rows = [*record["prv_candidates"], record["candidate"]]
    detected = np.array([r["magpsf"] is not None for r in rows])
    mag = np.array([r["magpsf"] if r["magpsf"] is not None else r["diffmaglim"] for r in rows])
    sigma_mag = np.array([r["sigmapsf"] if r["sigmapsf"] is not None else np.nan for r in rows])
    flux = 10 ** (-0.4 * (mag - 23.9))  # µJy
    band = np.array(["ztfg", "ztfr", "ztfi"])[np.array([r["fid"] for r in rows]) - 1]
    mjd = np.array([r["jd"] for r in rows]) - 2400000.5
    return LightCurve(record["objectId"], mjd, band, flux, sigma_mag * flux * np.log(10) / 2.5, detected)


def test_golden_features_real_alert_history(shared_data):
    lc = _alert_light_curve(shared_data)
    assert lc.num_detections == 12 and len(lc) == 16
    seq = build_events(lc)
    # 12 detections, the two r points of MJD 58860.17/58860.21 merge → 11 events.
    assert seq.features.shape == (11, 7)
    first = seq.features[0]  # r, magpsf 18.7036 ± 0.206357, a single point
    assert first[2] == pytest.approx(-0.4 * (18.7036 - 23.9), abs=1e-4)  # 2.07856
    assert first[3] == pytest.approx(0.206357 / 2.5, abs=1e-5)  # σ_logf = σ_m / 2.5 for a single point
    # Merged r pair, checked by hand: f = 10^(-0.4(m-23.9)), w = 1/σ_f².
    f = 10 ** (-0.4 * (np.array([18.7502, 18.7975]) - 23.9))
    s = np.array([0.102735, 0.184938]) * f * np.log(10) / 2.5
    w = 1 / s**2
    merged_f, merged_s = (w * f).sum() / w.sum(), 1 / np.sqrt(w.sum())
    assert seq.features[1, 2] == pytest.approx(np.log10(merged_f), abs=1e-4)
    assert seq.features[1, 3] == pytest.approx(merged_s / (merged_f * np.log(10)), abs=1e-5)
    merged_t = (w * np.array([58860.1680903, 58860.2083565])).sum() / w.sum()
    assert seq.times_days[1] == pytest.approx(merged_t - 58854.1693519, abs=1e-4)
    golden = np.array([
        [0.0, 0.0, 2.07856, 0.08254, 0, 1, 0],
        [1.94718, 1.94718, 2.05523, 0.03593, 0, 1, 0],
        [2.08504, 0.71099, 1.98908, 0.05869, 0, 1, 0],
        [2.30044, 1.07625, 1.79004, 0.05755, 1, 0, 0],
        [2.64040, 1.61747, 1.88848, 0.04749, 1, 0, 0],
        [2.64345, 0.04188, 1.95880, 0.04241, 0, 1, 0],
        [2.94920, 1.79659, 1.94616, 0.05563, 0, 1, 0],
        [3.09090, 1.36257, 1.78284, 0.04391, 1, 0, 0],
        [3.09225, 0.02932, 1.86404, 0.04752, 0, 1, 0],
        [3.21893, 1.37998, 2.10636, 0.06775, 0, 1, 0],
        [3.32998, 1.37024, 1.89173, 0.06069, 0, 1, 0],
    ])  # fmt: skip
    np.testing.assert_allclose(seq.features, golden, atol=2e-5)
    assert np.log1p(seq.times_days[-1]) == pytest.approx(golden[-1, 0], abs=1e-5)


def test_all_upper_limits_raise_no_detections():
    lc = make_lc([1.0, 2.0], ["ztfg", "ztfr"], [5.0, 6.0], [np.nan, np.nan], det=np.array([False, False]), object_id="ZTFx")
    with pytest.raises(NoDetectionsError, match="ZTFx: no detections"):
        build_events(lc)
    events, errors = build_many([lc, make_lc([1.0], ["ztfg"], [5.0], [1.0])])
    assert len(events) == 1 and errors == [("ZTFx", "no detections (2 rows, 0 detections)")]


def test_single_point_and_negative_flux_floor():
    seq = build_events(make_lc([5.0], ["ztfi"], [-3.0], [2.0]))
    assert seq.features.shape == (1, 7)
    assert seq.features[0, :2].tolist() == [0.0, 0.0]
    assert seq.features[0, 2] == pytest.approx(np.log10(FLUX_FLOOR_UJY))
    assert seq.features[0, 3] == pytest.approx(2.0 / (FLUX_FLOOR_UJY * np.log(10)))
    assert seq.features[0, 4:].tolist() == [0.0, 0.0, 1.0]


def test_duplicated_epochs_keep_most_precise():
    lc = make_lc([1.0, 1.0, 3.0], ["ztfg", "ztfg", "ztfg"], [10.0, 11.0, 9.0], [2.0, 1.0, 1.0])
    seq = build_events(lc)
    assert len(seq) == 2
    assert seq.features[0, 2] == pytest.approx(np.log10(11.0))  # the σ=1 copy, not an average
    assert seq.features[0, 3] == pytest.approx(1.0 / (11.0 * np.log(10)))


def test_horizon_and_max_events_keep_earliest():
    mjd = np.arange(10) * 2.0
    lc = make_lc(mjd, ["ztfg"] * 10, np.full(10, 10.0), np.ones(10))
    assert len(build_events(lc, FeatureConfig(horizon_days=5.0))) == 3  # Δt = 0, 2, 4
    seq = build_events(lc, FeatureConfig(horizon_days=None, max_events=4))
    assert seq.times_days.tolist() == [0.0, 2.0, 4.0, 6.0]


def test_stats_normalise_and_roundtrip():
    seqs, _ = build_many([make_lc(np.arange(5.0), ["ztfg", "ztfr"] * 2 + ["ztfg"], np.arange(1.0, 6.0), np.ones(5))])
    stats = FeatureStats.fit(seqs)
    normed = stats.normalise(seqs[0].features)
    np.testing.assert_allclose(normed[:, :4].mean(0), 0, atol=1e-6)
    np.testing.assert_array_equal(normed[:, 4:], seqs[0].features[:, 4:])
    config, stats2 = from_preprocessor(preprocessor_dict(FeatureConfig(horizon_days=30.0), stats))
    assert config.horizon_days == 30.0
    np.testing.assert_array_equal(stats2.mean, stats.mean)


light_curves = st.integers(1, 25).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0, 200, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.sampled_from(["ztfg", "ztfr", "ztfi"]), min_size=n, max_size=n),
        st.lists(st.floats(-50, 1e4, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.floats(0.01, 100, allow_nan=False), min_size=n, max_size=n),
        st.randoms(use_true_random=False),
    )
)


@settings(max_examples=60, deadline=None)
@given(light_curves)
def test_properties_order_independent_finite_mask(data):
    mjd, band, flux, err, rnd = data
    lc = make_lc(mjd, band, flux, err)
    order = list(range(len(mjd)))
    rnd.shuffle(order)
    seq = build_events(lc)
    shuffled = build_events(lc.select(np.array(order)))
    np.testing.assert_allclose(seq.features, shuffled.features, rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(seq.features)) and np.all(seq.times_days >= 0)
    assert np.all(np.diff(seq.times_days) >= 0)
    assert np.all(seq.features[:, 4:].sum(1) == 1)
    other = build_events(make_lc([0.0], ["ztfg"], [1.0], [1.0]))
    batch = collate_events([{"events": seq.features, "times": seq.times_days},
                            {"events": other.features, "times": other.times_days}])
    assert batch["mask"].sum(1).tolist() == [len(seq), 1]


def test_augmentation_preserves_order_and_first_point():
    rng = np.random.default_rng(0)
    lc = make_lc(np.arange(20.0), ["ztfg", "ztfr"] * 10, np.full(20, 100.0), np.full(20, 5.0))
    out = augment_light_curve(lc, AugmentConfig(dropout_p=0.3, jitter_scale=0.2), rng)
    assert out.mjd[0] == lc.mjd[0] and np.all(np.diff(out.mjd) >= 0) and 1 <= len(out) < 20
    assert np.abs(out.flux_ujy - 100.0).max() < 100  # resampled around f with σ = 5 µJy (Student-t)
    assert not np.allclose(out.flux_ujy, 100.0)


def test_alert_history_view_is_one_packet_of_the_curve():
    # detections every 10 d from day 0 to 120, first detection known at day -5 (jdstarthist before the curve)
    lc = make_lc(np.arange(0.0, 121.0, 10.0), ["ztfg"] * 13, np.full(13, 100.0), np.full(13, 5.0))
    lc.first_detection_mjd = -5.0
    epochs = set()
    for seed in range(200):
        view = alert_history_view(lc, 100.0, np.random.default_rng(seed), window_days=30.0)
        epoch = view.mjd.max()
        epochs.add(epoch)
        # the alert's own detection and those of the 30 d before it: days epoch-30 … epoch, every 10 d
        assert view.mjd.tolist() == [d for d in np.arange(0.0, 121.0, 10.0) if epoch - 30 <= d <= epoch]
        assert view.first_detection_mjd == -5.0  # Δt still counts from the object's first detection
    assert epochs == {0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0}  # alert epochs ≤ 100 d after it
    unknown = make_lc(np.array([3.0, 4.0, 50.0]), ["ztfg", "ztfr", "ztfg"], np.full(3, 9.0), np.ones(3))
    view = alert_history_view(unknown, 10.0, np.random.default_rng(0))
    assert view.first_detection_mjd == 3.0 and view.mjd.max() <= 4.0  # unknown: the curve's first detection
    late = make_lc(np.array([200.0]), ["ztfg"], [9.0], [1.0])
    late.first_detection_mjd = 0.0
    assert len(alert_history_view(late, 100.0, np.random.default_rng(0))) == 1  # nothing eligible: as it was


@pytest.mark.slow
def test_all_public_light_curves_give_finite_events(shared_data):
    import pandas as pd

    from applecider_core.records import mag_to_flux_ujy

    table = pd.read_parquet(shared_data / "lightcurves/ztf_lightcurves.parquet")
    table = table[table["source"] != "dlangis/TDECat"]
    curves = []
    for name, g in table.groupby("object"):
        flux, err = mag_to_flux_ujy(g["mag"].to_numpy(), g["magerr"].to_numpy())
        curves.append(LightCurve(name, g["mjd"].to_numpy(), g["band"].to_numpy(), flux, err, g["is_detection"].to_numpy()))
    events, errors = build_many(curves, FeatureConfig(horizon_days=100.0))
    assert len(events) + len(errors) == len(curves) and len(events) > 1900
    assert all(np.isfinite(e.features).all() and 1 <= len(e) <= 257 and e.times_days.max() <= 100 for e in events)
    stats = FeatureStats.fit(events)
    assert np.all(np.isfinite(stats.mean)) and np.all(stats.std > 0)


def test_dt_is_measured_from_the_first_detection_known():
    """An alert whose 30-day history no longer reaches the first detection: Δt counts from jdstarthist."""
    lc = LightCurve("x", [60040.0, 60042.0], ["ztfg", "ztfr"], [100.0, 120.0], [5.0, 5.0], [True, True],
                    first_detection_mjd=60000.0)
    seq = build_events(lc, FeatureConfig(horizon_days=None))
    np.testing.assert_allclose(seq.times_days, [40.0, 42.0])
    np.testing.assert_allclose(seq.features[:, 0], np.log1p([40.0, 42.0]), rtol=1e-6)
    np.testing.assert_allclose(seq.features[:, 1], np.log1p([0.0, 2.0]), rtol=1e-6)
    with pytest.raises(NoDetectionsError, match="no detection within 30 d of the first detection"):
        build_events(lc, FeatureConfig(horizon_days=30.0))  # the horizon counts from the first detection too
    assert build_events(lc.select(np.array([True, True])), FeatureConfig(horizon_days=None)).times_days[0] == 40.0
    unknown = LightCurve("y", [60040.0, 60042.0], ["ztfg", "ztfr"], [100.0, 120.0], [5.0, 5.0], [True, True])
    np.testing.assert_allclose(build_events(unknown, FeatureConfig(horizon_days=None)).times_days, [0.0, 2.0])


def test_a_first_detection_of_an_earlier_episode_restarts_dt_at_the_curve():
    """jdstarthist 762 d before the curve (an old variable source or an artefact): Δt counts from the curve's
    first event, so the 100-d model still reads it, and history_restart_days reports the gap; 100 d exactly
    is still the same episode."""
    days = [60762.0, 60764.5]
    lc = LightCurve("x", days, ["ztfg", "ztfr"], [100.0, 120.0], [5.0, 5.0], [True, True], first_detection_mjd=60000.0)
    seq = build_events(lc, FeatureConfig(horizon_days=100.0))
    np.testing.assert_allclose(seq.times_days, [0.0, 2.5])
    assert history_restart_days(lc, FeatureConfig()) == pytest.approx(762.0)
    same = LightCurve("y", days, ["ztfg", "ztfr"], [100.0, 120.0], [5.0, 5.0], [True, True], first_detection_mjd=60662.0)
    np.testing.assert_allclose(build_events(same, FeatureConfig(horizon_days=None)).times_days, [100.0, 102.5])
    assert history_restart_days(same, FeatureConfig()) is None
    assert delta_t_origin(60762.0, 60661.0) == 60762.0 and delta_t_origin(60762.0, 60662.0) == 60662.0
    assert delta_t_origin(60762.0, float("nan")) == 60762.0 and delta_t_origin(60762.0, 60800.0) == 60762.0
