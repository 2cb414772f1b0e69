"""Deep ensemble of photometry classifiers: mean probability, save/load, training, runner and ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from applecider_core.cli import main as cider
from applecider_core.pretrained import PretrainedError
from applecider_photometry import (
    PhotometryClassifier,
    PhotometryConfig,
    PhotometryEnsemble,
    PhotometryEnsembleConfig,
    collate_events,
    load_photometry_model,
)

from .test_modeling import random_items
from .test_pipeline import REPO, _common

torch.set_num_threads(1)


def _ensemble(size: int = 3) -> PhotometryEnsemble:
    torch.manual_seed(0)
    member = PhotometryConfig.from_preset("tiny", class_names=("SN Ia", "SN II", "TDE"), class_weights=(1.0, 1.0, 1.0))
    return PhotometryEnsemble(PhotometryEnsembleConfig(member, size))


def test_logits_are_the_log_of_the_members_mean_probability_and_loss_their_mean():
    model = _ensemble().eval()
    batch = collate_events(random_items([5, 3, 8], labels=False))
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        out = model(**batch, labels=labels)
        members = [member(**batch, labels=labels) for member in model.members]
    mean = torch.stack([m.logits.softmax(-1) for m in members]).mean(0)
    torch.testing.assert_close(out.logits.softmax(-1), mean)
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(3))  # already log-probabilities
    torch.testing.assert_close(out.loss, torch.stack([m.loss for m in members]).mean())
    assert out.embedding.shape == (3, 16)
    first, second = (dict(m.named_parameters())["head.weight"] for m in model.members[:2])
    assert not torch.equal(first, second)  # members start from different weights


def test_every_member_parameter_gets_a_gradient_and_config_describes_the_member():
    model = _ensemble(2).train()
    batch = collate_events(random_items([4, 6], labels=False))
    model(**batch, labels=torch.tensor([0, 1])).loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    config = model.config
    assert config.class_names == ("SN Ia", "SN II", "TDE") and config.num_classes == 3
    assert config.n_features == 7 and config.survey == "ztf" and config.max_events == 257
    with pytest.raises(ValueError, match="size >= 2"):
        PhotometryEnsembleConfig(config.member, 1)


def test_save_load_identity_and_the_loader_picks_the_class(tmp_path):
    model = _ensemble().eval()
    model.save_pretrained(tmp_path / "ens", preprocessor={"temperature": 1.2})
    batch = collate_events(random_items([6, 2], labels=False))
    loaded = load_photometry_model(tmp_path / "ens")
    assert isinstance(loaded, PhotometryEnsemble) and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits)
    PhotometryClassifier(PhotometryConfig.from_preset("tiny")).save_pretrained(tmp_path / "single")
    assert isinstance(load_photometry_model(tmp_path / "single"), PhotometryClassifier)
    with pytest.raises(PretrainedError, match="no config.json"):
        load_photometry_model(tmp_path / "absent")


def test_cider_train_photometry_ensemble_runs_through_the_runner_and_onnx(tiny_dataset, tmp_path):
    out = tmp_path / "ens"
    args = ["--config", str(REPO / "configs/photometry.yaml"), *_common(tiny_dataset, out), "--set", "train.max_steps=3",
            "--set", "data.class_names=[SN Ia, SN II, TDE]", "--set", "model.ensemble_size=2"]
    assert cider(["train", "photometry", *args]) == 0
    model = load_photometry_model(out / "model")
    assert isinstance(model, PhotometryEnsemble) and len(model.members) == 2
    assert model.preprocessor["temperature"] > 0
    from applecider_fusion.runners import PhotometryRunner

    from applecider_core.dataset import open_dataset

    curves = [open_dataset(tiny_dataset).light_curve(o) for o in open_dataset(tiny_dataset).light_curve_ids("train")[:4]]
    torch_logits, errors = PhotometryRunner.load(out / "model").predict(curves)
    ok = [e is None for e in errors]
    assert any(ok) and np.isfinite(torch_logits[ok]).all()
    from applecider_fusion.export import main as export_main

    onnx_dir = tmp_path / "onnx"
    models = tmp_path / "models"
    models.mkdir()
    (models / "photometry").symlink_to(out / "model")
    assert export_main(["--models", str(models), "--out", str(onnx_dir)]) == 0
    onnx_logits, _ = PhotometryRunner.load(onnx_dir / "photometry", engine="onnxruntime").predict(curves)
    np.testing.assert_allclose(onnx_logits[ok], torch_logits[ok], atol=1e-4)


def test_gradual_unfreezing_of_an_ensemble_is_a_one_line_error(tiny_dataset, tmp_path, capsys):
    args = ["--config", str(REPO / "configs/photometry.yaml"), *_common(tiny_dataset, tmp_path / "g"),
            "--set", "finetune.strategy=gradual", "--set", "model.ensemble_size=2"]
    assert cider(["train", "photometry", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert "gradual" in error and "ensemble_size 2" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "g").exists()  # nothing ran

