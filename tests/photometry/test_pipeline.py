"""Entry points on the tiny shared dataset: pretrain → fine-tune (full and gradual) → horizon sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from applecider_core.cli import main as cider
from applecider_core.taxonomy import TaxonomyError
from applecider_photometry import PhotometryClassifier
from applecider_photometry.data import LabelledCurve, oversample, restrict_classes
from applecider_photometry.pretraining import MaskedEventModel
from applecider_photometry.runconfig import FinetuneSection
from applecider_photometry.train import (
    class_weights,
    encoder_blocks,
    gradual_unfreezing,
    oversampled_with_weights,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
TINY = ["data.min_class_objects=2", "model.preset=tiny", "train.batch_size=8", "train.ema_decay=null", "train.log_every_steps=1"]


def _common(dataset: Path, out: Path) -> list[str]:
    return ["--set", f"data.path={dataset}", "--set", f"train.output_dir={out}", *[a for s in TINY for a in ("--set", s)]]


@pytest.fixture(scope="module")
def pretrained_dir(tiny_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "run"
    args = ["--config", str(REPO / "configs/photometry_pretrain.yaml"), *_common(tiny_dataset, out),
            "--set", "train.epochs=2", "--set", "data.horizon_days=100"]
    assert cider(["pretrain", "photometry", *args]) == 0
    return out / "model"


def test_pretrain_writes_encoder_and_history(pretrained_dir):
    model = MaskedEventModel.from_pretrained(pretrained_dir)
    assert "feature_stats" in model.preprocessor
    history = json.loads((pretrained_dir.parent / "history.json").read_text())
    assert len(history) == 2 and all(np.isfinite(h["reconstruction_loss"]) for h in history)
    assert all(h["n_masked"] > 0 for h in history)


def test_finetune_from_pretrained_and_evaluate(tiny_dataset, pretrained_dir, tmp_path):
    out = tmp_path / "ft"
    args = ["--config", str(REPO / "configs/photometry.yaml"), *_common(tiny_dataset, out),
            "--set", "train.epochs=2", "--set", f"model.init_from={pretrained_dir}",
            "--set", "data.class_names=[SN Ia, SN II, TDE]"]
    assert cider(["train", "photometry", *args]) == 0
    model = PhotometryClassifier.from_pretrained(out / "model")
    assert model.config.class_names == ("SN Ia", "SN II", "TDE")
    assert model.config.class_weights is not None and model.preprocessor["temperature"] > 0
    pre = MaskedEventModel.from_pretrained(pretrained_dir)
    assert model.preprocessor["feature_stats"] == pre.preprocessor["feature_stats"]  # normalisation reused
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["init_from"] == str(pretrained_dir)
    eval_dir = tmp_path / "eval"
    assert cider(["evaluate", "photometry", "--model", str(out / "model"), "--dataset", str(tiny_dataset),
                  "--horizons", "1", "10", "100", "--output-dir", str(eval_dir)]) == 0
    table = json.loads((eval_dir / "horizon_sweep.json").read_text())
    assert [r["horizon_days"] for r in table["rows"]] == [1.0, 10.0, 100.0]
    assert all(0 <= r["macro_auprc"] <= 1 and "top2" in r and set(r["recall"]) <= {"SN Ia", "SN II", "TDE"}
               for r in table["rows"])
    assert (eval_dir / "horizon_sweep.png").stat().st_size > 0


def test_gradual_strategy_python_module(tiny_dataset, tmp_path):
    from applecider_photometry.train import main

    out = tmp_path / "gradual"
    args = ["--config", str(REPO / "configs/photometry.yaml"), *_common(tiny_dataset, out),
            "--set", "train.max_steps=6", "--set", "finetune.strategy=gradual", "--set", "finetune.head_only_epochs=1",
            "--set", "data.class_names=[SN Ia, SN II, TDE]", "--set", "finetune.temperature_scaling=false",
            "--set", "model.overrides={arch: informer}"]
    assert main(args) == 0
    model = PhotometryClassifier.from_pretrained(out / "model")
    assert model.config.arch == "informer"
    assert (out / "checkpoints").is_dir()


def test_gradual_unfreezing_hook():
    from applecider_photometry import PhotometryConfig

    model = PhotometryClassifier(PhotometryConfig.from_preset("tiny", n_layers=2))
    hook = gradual_unfreezing(FinetuneSection(strategy="gradual", head_only_epochs=2, unfreeze_every_epochs=1))
    blocks = encoder_blocks(model)
    assert len(blocks) == 3  # top layer, bottom layer, embeddings
    trainable = []
    for epoch in range(6):
        hook(epoch, model)
        trainable.append([all(p.requires_grad for p in b) for b in blocks])
        assert all(p.requires_grad for p in model.head.parameters())
    assert trainable == [[False] * 3, [False] * 3, [True, False, False], [True, True, False], [True] * 3, [True] * 3]


def test_class_weights_and_oversampling():
    w = class_weights([0] * 100 + [1] * 25, 3, "inv_sqrt")
    assert w[2] == 0 and w[0] / w[1] == pytest.approx(0.5) and sum(w) == pytest.approx(2)
    assert class_weights([0, 1], 2, "none") is None
    from applecider_core.records import LightCurve

    lc = LightCurve("x", [0.0], ["ztfg"], [1.0], [0.1], [True])
    curves = [LabelledCurve(lc, 0)] * 10 + [LabelledCurve(lc, 1)] * 6 + [LabelledCurve(lc, 2)] * 2
    out = oversample(curves, 2)
    assert sum(c.label == 2 for c in out) == 8  # median of the other classes (10, 6) = 8
    assert sum(c.augment for c in out) == 6 and not any(c.augment for c in out[:18])


def test_focal_alpha_counts_the_oversampled_copies():
    from applecider_core.records import LightCurve

    lc = LightCurve("x", [0.0], ["ztfg"], [1.0], [0.1], [True])
    curves = [LabelledCurve(lc, 0)] * 16 + [LabelledCurve(lc, 1)] * 4
    ft = FinetuneSection(oversample_class="TDE", oversample_target=16, class_weighting="inv_sqrt")
    out, alpha = oversampled_with_weights(curves, ft, ("SN Ia", "TDE"))
    assert sum(c.label == 1 for c in out) == 16
    assert alpha == pytest.approx((1.0, 1.0))  # balanced after oversampling: no second compensation


def test_only_covered_classes_get_an_output(tiny_dataset, tmp_path):
    out = tmp_path / "cov"
    args = ["--config", str(REPO / "configs/photometry.yaml"), *_common(tiny_dataset, out), "--set", "train.max_steps=1",
            "--set", "data.class_names=[SN Ia, SN Ic, SN II, TDE]", "--set", "finetune.temperature_scaling=false"]
    assert cider(["train", "photometry", *args]) == 0
    assert PhotometryClassifier.from_pretrained(out / "model").config.class_names == ("SN Ia", "SN II", "TDE")
    from applecider_photometry.train import main

    with pytest.raises(TaxonomyError, match="fewer than two classes"):
        main([*args, "--set", "data.min_class_objects=1000"])
    curves = [LabelledCurve(None, 0), LabelledCurve(None, 1), LabelledCurve(None, 3)]  # type: ignore[arg-type]
    assert [c.label for c in restrict_classes(curves, ("a", "b", "c", "d"), ("b", "d"))] == [0, 1]


def test_finetune_resumes_from_checkpoint(tiny_dataset, tmp_path):
    from applecider_photometry.train import main

    out = tmp_path / "resume"
    args = ["--config", str(REPO / "configs/photometry.yaml"), *_common(tiny_dataset, out),
            "--set", "data.class_names=[SN Ia, SN II, TDE]", "--set", "finetune.temperature_scaling=false"]
    assert main([*args, "--set", "train.max_steps=2"]) == 0
    first = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert main([*args, "--set", "train.max_steps=5"]) == 0
    second = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert first[-1] == "step_00000002" and second[-1] == "step_00000005"
    state = json.loads((out / "checkpoints" / second[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 5 and len(state["history"]) >= 2  # the first run's epoch is kept
    PhotometryClassifier.from_pretrained(out / "model")


def test_same_seed_same_model(tiny_dataset, tmp_path):
    """The initial weights come from the seed (the model is built after seeding), so two runs agree exactly."""
    from safetensors.torch import load_file

    def run(name: str, seed: int) -> dict:
        out = tmp_path / name
        assert cider(["train", "photometry", "--config", str(REPO / "configs/photometry.yaml"), *_common(tiny_dataset, out),
                      "--set", "train.max_steps=1", "--set", f"train.seed={seed}",
                      "--set", "finetune.temperature_scaling=false"]) == 0
        return load_file(out / "model" / "model.safetensors")

    torch.manual_seed(123)  # whatever the global generator held before must not matter
    first = run("a", 0)
    torch.rand(1000)
    second, other = run("b", 0), run("c", 1)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
