"""Evaluation inputs at a horizon: light curve cut, last alert before it, spectrum closest to the first detection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from applecider_core.dataset import open_dataset
from applecider_core.records import METADATA_FEATURES
from applecider_fusion.horizon import Timelines

T0 = 59000.0  # first detection of object A (its light curve); B's comes from an alert's age_days


@pytest.fixture
def dataset(tmp_path):
    """Two val objects: A (light curve from T0, alerts at T0+2 and T0+12, spectra at T0-1 (no), T0+5, T0+40)
    and B (one alert at T0+20 with age_days 4, no light curve, one spectrum without epoch)."""
    pd.DataFrame({"object_id": ["A", "B"], "label": ["SN Ia", "SN II"], "redshift": [0.05, 0.05],
                  "split": ["val", "val"], "has_alerts": [True, True], "has_light_curve": [True, False],
                  "has_spectrum": [True, True]}).to_parquet(tmp_path / "objects.parquet")
    mjd = T0 + np.arange(0, 40, 2.0)
    pd.DataFrame({"object_id": "A", "mjd": np.r_[T0 - 3, mjd], "band": "ztfg", "flux_ujy": 50.0,
                  "flux_err_ujy": np.r_[np.nan, np.full(len(mjd), 5.0)], "is_detection": np.r_[False, [True] * len(mjd)],
                  "source": "test"}).to_parquet(tmp_path / "light_curves.parquet")
    alerts = pd.DataFrame({"object_id": ["A", "A", "B"], "candid": [1, 2, 3], "mjd": [T0 + 12, T0 + 2, T0 + 20],
                           "band": "ztfr", "ra_deg": 10.0, "dec_deg": 20.0, "cutout_index": -1})
    for name in METADATA_FEATURES:
        alerts[name] = np.float32(np.nan)
    alerts["age_days"] = np.float32([12.0, 2.0, 4.0])
    alerts.to_parquet(tmp_path / "alerts.parquet")
    spectra = [("A", "a-early", T0 - 1), ("A", "a5", T0 + 5), ("A", "a40", T0 + 40), ("B", "b", np.nan)]
    pd.DataFrame([{"spectrum_id": sid, "object_id": o, "redshift": 0.05, "mjd": m, "label": None,
                   "flux_unit": "", "instrument": "", "source": "test", "wavelength_aa": np.linspace(4000, 8000, 50),
                   "flux": np.ones(50)} for o, sid, m in spectra]).to_parquet(tmp_path / "spectra.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 1}))
    return open_dataset(tmp_path)


def test_first_detection_from_light_curve_and_from_alert_age(dataset):
    timelines = Timelines(dataset, "val")
    assert timelines.first_detection_mjd("A") == T0  # the upper limit at T0-3 is not a detection
    assert timelines.first_detection_mjd("B") == T0 + 16  # alert at T0+20, 4 days after its first detection


def test_per_object_inputs_at_horizons(dataset):
    timelines = Timelines(dataset, "val")
    (a3, b3) = timelines.per_object(["A", "B"], 3.0, spectra_before=False)
    assert a3.light_curve.mjd.max() == T0 + 2 and (~a3.light_curve.is_detection).sum() == 1  # limit kept
    assert a3.alert.candid == 2 and a3.age_days == 3.0
    assert a3.spectrum.spectrum_id == "a-early"  # closest to the first detection, taken or not before the cut
    assert b3.light_curve is None and b3.alert is None and b3.spectrum.spectrum_id == "b"
    (a30, b30) = timelines.per_object(["A", "B"], 30.0, spectra_before=False)
    assert a30.alert.candid == 1 and a30.light_curve.mjd.max() == T0 + 30 and b30.alert.candid == 3
    (a3_before,) = timelines.per_object(["A"], 3.0, spectra_before=True)
    assert a3_before.spectrum.spectrum_id == "a-early"
    (b_before,) = timelines.per_object(["B"], 30.0, spectra_before=True)
    assert b_before.spectrum is None  # a spectrum without an epoch cannot be placed before the cut


def test_per_alert_cases_are_cut_at_each_alert(dataset):
    timelines = Timelines(dataset, "val")
    cases = timelines.per_alert(["A", "B"], 10.0, spectra_before=True)
    assert [(c.object_id, c.alert.candid) for c in cases] == [("A", 2), ("B", 3)]  # A's alert at T0+12 is late
    case, b = cases
    assert case.light_curve.mjd.max() == T0 + 2 and case.age_days == 2.0
    assert case.spectrum.spectrum_id == "a-early"
    assert b.age_days == 4.0 and b.spectrum is None
    everything = timelines.per_alert(["A", "B"], 100.0, spectra_before=False)
    assert [c.alert.candid for c in everything] == [2, 1, 3]
