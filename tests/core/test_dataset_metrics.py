import json

import numpy as np
import pandas as pd
import pytest
import torch

from applecider_core.dataset import DatasetError, open_dataset
from applecider_core.ema import EMA
from applecider_core.losses import FocalLoss, class_balanced_weights
from applecider_core.metrics import (
    classification_report,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from applecider_core.plots import plot_confusion_matrix, plot_roc_pr, plot_training_curves
from applecider_core.records import METADATA_FEATURES


def write_tiny_dataset(root):
    """Two objects, both modalities for the first: the format documented in applecider_core.dataset."""
    root.mkdir(parents=True)
    pd.DataFrame({
        "object_id": ["ZTF1", "ZTF2"], "label": ["SN Ia", "TDE"], "redshift": [0.05, np.nan],
        "split": ["train", "test"], "has_alerts": [True, True], "has_light_curve": [True, True],
        "has_spectrum": [True, False],
    }).to_parquet(root / "objects.parquet")  # fmt: skip
    alerts = pd.DataFrame({
        "object_id": ["ZTF1", "ZTF2"], "candid": [11, 22], "mjd": [59000.0, 59001.0], "band": ["ztfg", "ztfr"],
        "ra_deg": [10.0, 20.0], "dec_deg": [-5.0, 5.0], "cutout_index": [0, -1],
    })  # fmt: skip
    for i, name in enumerate(METADATA_FEATURES):
        alerts[name] = np.array([i, np.nan], dtype=np.float32)
    alerts.to_parquet(root / "alerts.parquet")
    np.save(root / "cutouts.npy", np.arange(3 * 63 * 63, dtype=np.float32).reshape(1, 3, 63, 63))
    pd.DataFrame({
        "object_id": ["ZTF1", "ZTF1", "ZTF2"], "mjd": [59001.0, 59000.0, 59001.0], "band": ["ztfr", "ztfg", "ztfr"],
        "flux_ujy": [10.0, 20.0, 5.0], "flux_err_ujy": [1.0, 2.0, np.nan], "is_detection": [True, True, False],
        "source": ["alerts"] * 3,
    }).to_parquet(root / "light_curves.parquet")  # fmt: skip
    pd.DataFrame({
        "spectrum_id": ["s1"], "object_id": ["ZTF1"], "redshift": [0.05], "mjd": [59002.0], "label": ["SN Ia"],
        "flux_unit": ["erg/s/cm^2/Angstrom"], "instrument": ["SEDM"], "source": ["test"],
        "wavelength_aa": [[4000.0, 5000.0, 6000.0]], "flux": [[1.0, 2.0, 3.0]],
    }).to_parquet(root / "spectra.parquet")  # fmt: skip
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "counts": {}}))
    return root


def test_dataset_reader_views(tmp_path):
    ds = open_dataset(write_tiny_dataset(tmp_path / "ds"))
    assert ds.split_ids("train") == ["ZTF1"] and ds.common_object_ids() == ["ZTF1"]
    lc = ds.light_curve("ZTF1")
    np.testing.assert_array_equal(lc.mjd, [59000.0, 59001.0])  # time-ordered
    assert list(lc.band) == ["ztfg", "ztfr"]
    alerts = ds.alerts()
    assert alerts.metadata.shape == (2, len(METADATA_FEATURES)) and np.isnan(alerts.metadata[1]).all()
    assert alerts.cutouts(0).shape == (3, 63, 63) and alerts.cutouts(1) is None
    assert list(ds.alerts("test").frame["label"]) == ["TDE"]
    [spectrum] = ds.spectra("train")
    assert spectrum.spectrum_id == "s1" and spectrum.label == "SN Ia" and len(spectrum) == 3
    assert spectrum.source == "test"
    assert ds.spectra("test") == []
    with pytest.raises(ValueError, match="split must be"):
        ds.alerts("validation")


def test_dataset_errors_are_specific(tmp_path):
    with pytest.raises(DatasetError, match="no manifest"):
        open_dataset(tmp_path)
    root = write_tiny_dataset(tmp_path / "ds")
    (root / "spectra.parquet").unlink()
    with pytest.raises(DatasetError, match=r"spectra\.parquet"):
        open_dataset(root)


def test_classification_report_hand_values():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = np.array([0, 1, 1, 2])
    report = classification_report(probs, labels, ["a", "b", "c"], top_k=2)
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["top2_accuracy"] == pytest.approx(1.0)
    assert report["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
    # F1: a: p=1/2 r=1 → 2/3; b: p=1 r=1/2 → 2/3; c: 1
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert report["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert report["per_class"]["c"]["roc_auc"] == pytest.approx(1.0)
    # Brier: Σ over samples of squared error / 4
    expected_brier = (0.01 + 0.01 + 0 + 0.04 + 0.09 + 0.01 + 0.36 + 0.49 + 0.01 + 0.01 + 0.04 + 0.09) / 4
    assert report["brier"] == pytest.approx(expected_brier)


def test_ece_and_temperature_scaling():
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([[0.9, 0.1]]), np.array([1])) == pytest.approx(0.9)
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 4)) * 2
    labels = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    fitted = fit_temperature(true_logits * 3.0, labels)  # overconfident by a factor 3
    assert fitted == pytest.approx(3.0, rel=0.1)


def test_focal_loss_reduces_to_cross_entropy_and_down_weights_easy_examples():
    logits = torch.randn(8, 3)
    targets = torch.randint(0, 3, (8,))
    ce = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1)
    torch.testing.assert_close(FocalLoss(gamma=0.0, label_smoothing=0.1)(logits, targets), ce)
    easy = torch.tensor([[5.0, 0.0]])
    assert FocalLoss(gamma=2.0)(easy, torch.tensor([0])) < FocalLoss(gamma=0.0)(easy, torch.tensor([0])) / 100
    weighted = FocalLoss(gamma=0.0, alpha=[2.0, 1.0])(easy, torch.tensor([0]))
    torch.testing.assert_close(weighted, 2 * torch.nn.functional.cross_entropy(easy, torch.tensor([0])))


def test_class_balanced_weights_effective_number():
    weights = class_balanced_weights([100, 10, 0], beta=0.99)
    raw = np.array([(1 - 0.99) / (1 - 0.99**100), (1 - 0.99) / (1 - 0.99**10)])
    np.testing.assert_allclose(weights[:2], raw / raw.sum() * 2, rtol=1e-6)
    assert weights[2] == 0.0 and weights[1] > weights[0]


def test_ema_tracks_and_restores():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    before = ema.shadow["weight"].clone()
    ema.update(model)  # warm-up decay min(0.5, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.shadow["weight"], before * d + (1 - d))
    with ema.apply_to(model):
        torch.testing.assert_close(model.weight, ema.shadow["weight"])
    assert torch.all(model.weight == 1.0)


def test_plots_are_written(tmp_path):
    probs = softmax(np.random.default_rng(0).normal(size=(20, 3)))
    labels = np.arange(20) % 3
    for path in (
        plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["a", "b"], tmp_path / "cm.png"),
        plot_roc_pr(probs, labels, ["a", "b", "c"], tmp_path / "roc.png"),
        plot_training_curves([{"epoch": 0, "train_loss": 1.0, "macro_f1": 0.2}], tmp_path / "curves.png"),
    ):
        assert path.stat().st_size > 1000
