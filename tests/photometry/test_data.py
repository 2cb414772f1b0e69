"""EventDataset: same tensors as the direct feature path, augmentation on raw records, split loading."""

from __future__ import annotations

import numpy as np
import torch

from applecider_core.dataset import open_dataset
from applecider_core.records import LightCurve
from applecider_core.taxonomy import FINE
from applecider_photometry.augment import AugmentConfig
from applecider_photometry.data import EventDataset, LabelledCurve, fit_stats, load_split
from applecider_photometry.features import FeatureConfig, build_events


def _lc(seed: int = 0) -> LightCurve:
    rng = np.random.default_rng(seed)
    mjd = 59000 + np.sort(rng.uniform(0, 60, 25))
    return LightCurve("o", mjd, rng.choice(["ztfg", "ztfr"], 25), rng.uniform(50, 500, 25), rng.uniform(2, 10, 25),
                      np.ones(25, bool))


def test_dataset_item_equals_direct_features():
    config = FeatureConfig(horizon_days=30.0)
    curves = [LabelledCurve(_lc(0), 2), LabelledCurve(_lc(1), 0)]
    stats = fit_stats(curves, config)
    ds = EventDataset(curves, config, stats)
    seq = build_events(curves[0].light_curve, config)
    np.testing.assert_array_equal(ds[0]["events"], stats.normalise(seq.features))
    np.testing.assert_array_equal(ds[0]["times"], seq.times_days)
    assert ds[0]["labels"] == 2 and ds[0]["times"].max() <= 30.0
    assert len(ds.with_horizon(5.0)[0]["events"]) < len(ds[0]["events"])


def test_augmented_copies_change_each_draw_originals_do_not():
    config = FeatureConfig()
    curves = [LabelledCurve(_lc(0), 0), LabelledCurve(_lc(0), 0, augment=True)]
    ds = EventDataset(curves, config, fit_stats(curves, config), AugmentConfig())
    torch.manual_seed(0)
    a, b = ds[1], ds[1]
    assert not (a["events"].shape == b["events"].shape and np.array_equal(a["events"], b["events"]))
    np.testing.assert_array_equal(ds[0]["events"], ds[0]["events"])
    torch.manual_seed(0)
    np.testing.assert_array_equal(ds[1]["events"], a["events"])  # reproducible from the (epoch) seed


def test_alert_views_redraw_each_access_and_keep_the_first_detection():
    config = FeatureConfig()
    curves = [LabelledCurve(_lc(0), 1)]
    ds = EventDataset(curves, config, fit_stats(curves, config))
    original = ds[0]["events"].copy()
    views = ds.with_alert_views(10.0)
    torch.manual_seed(0)
    draws = [views[0] for _ in range(20)]
    assert all(d["labels"] == 1 for d in draws)
    assert len({(len(d["times"]), float(d["times"][-1])) for d in draws}) > 1  # another alert epoch per access
    for d in draws:  # Δt from the curve's first detection, and at most 10 d of history before the alert
        assert d["times"][-1] - d["times"][0] <= 10.0 + 0.5 and d["times"][0] >= 0.0
    assert any(d["times"][0] > 5.0 for d in draws)  # late alerts start well after the first detection
    np.testing.assert_array_equal(ds[0]["events"], original)  # the original dataset is unchanged by its views
    torch.manual_seed(0)
    np.testing.assert_array_equal(views[0]["events"], draws[0]["events"])  # reproducible from the (epoch) seed


def test_load_split_skips_upper_limits_and_unlabelled(tiny_dataset):
    dataset = open_dataset(tiny_dataset)
    labelled = load_split(dataset, "train", FINE, ("SN Ia", "SN II", "TDE"), ("ztfg", "ztfr", "ztfi"))
    ids = {c.light_curve.object_id for c in labelled}
    assert "ZTFlimits" not in ids and "ZTFunlabelled" not in ids
    assert {c.label for c in labelled} == {0, 1, 2}
    everything = load_split(dataset, "train", None, None, ("ztfg", "ztfr"), labelled_only=False)
    assert "ZTFunlabelled" in {c.light_curve.object_id for c in everything}
