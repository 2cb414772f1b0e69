"""The alert-like stage on hand-made curves (applecider_data.alertlike)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from applecider_data.alertlike import (
    AlertLikeConfig,
    alert_like_rows,
    alert_like_table,
    event_window,
    thin_cadence,
)


def _rows(mjd, flux, band="ztfg", source="light-curve/test-data", err=1.0, detection=True) -> pd.DataFrame:
    return pd.DataFrame({"object_id": "x", "mjd": np.asarray(mjd, float), "band": band, "flux_ujy": np.asarray(flux, float),
                         "flux_err_ujy": err, "is_detection": detection, "source": source})


def test_window_starts_at_the_first_detection_of_the_event():
    config = AlertLikeConfig()
    # a stray detection a year before, then an event: 40 d rise (points every 5 d) to the peak at 60440
    mjd = np.array([60000.0, *np.arange(60400.0, 60441.0, 5.0), 60500.0, 60560.0])
    flux = np.array([20.0, *np.linspace(30, 300, 9), 100.0, 40.0])
    start, end = event_window(mjd, flux, config)
    assert (start, end) == (60400.0 - 30.0, 60400.0 + 100.0)  # the stray point is > max_gap_days before
    kept = alert_like_rows(_rows(mjd, flux), config)
    assert kept["mjd"].min() == 60400.0 and kept["mjd"].max() == 60500.0


def test_thinning_per_band_keeps_a_point_every_min_gap():
    mjd = np.array([0.0, 1.0, 2.0, 2.6, 3.0, 5.2, 0.5])  # kept: 0, 2.6, 5.2 (g) and 0.5 (r)
    band = np.array(["ztfg"] * 6 + ["ztfr"])
    np.testing.assert_array_equal(thin_cadence(mjd, band, 2.5), [True, False, False, True, False, True, True])


def test_upper_limits_other_bands_and_archival_host_flux():
    config = AlertLikeConfig()
    table = pd.concat([_rows([10.0, 13.0], [50.0, 60.0]), _rows([11.0], [5.0], detection=False, err=np.nan),
                       _rows([12.0], [70.0], band="ztfi")])
    assert alert_like_rows(table, config)["mjd"].tolist() == [10.0, 13.0]
    # archival total flux: a host of 1000 µJy (scatter 2) for years and a flare of +300 over 20 d
    rng = np.random.default_rng(0)
    baseline_mjd = np.arange(58000.0, 60000.0, 10.0)
    flare_mjd = np.arange(60500.0, 60520.0, 3.0)
    mjd = np.concatenate([baseline_mjd, flare_mjd])
    flux = np.concatenate([1000 + 2 * rng.standard_normal(len(baseline_mjd)), 1000 + np.full(len(flare_mjd), 300.0)])
    out = alert_like_rows(_rows(mjd, flux, source="dlangis/TDECat", err=0.5), config)
    assert out["mjd"].min() >= 60500.0 and len(out) == len(flare_mjd)
    np.testing.assert_allclose(out["flux_ujy"], 300.0, atol=10.0)  # difference flux, host removed
    # an old flare outside the survey: the host alone never rises 5σ above itself
    old = alert_like_rows(_rows(baseline_mjd, flux[: len(baseline_mjd)], source="dlangis/TDECat", err=0.5), config)
    assert len(old) <= 1
    both, counts = alert_like_table(pd.concat([_rows([1.0], [5.0]).assign(object_id="a"),
                                               _rows([1.0], [5.0], detection=False).assign(object_id="b")]), config)
    assert set(both["object_id"]) == {"a"} and counts["objects_without_alert_like_points"] == 1
