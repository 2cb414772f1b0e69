"""Tiny-model tests of the [CLS]-Transformer and the Informer baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from applecider_core.pretrained import PretrainedError
from applecider_core.taxonomy import FINE_CLASSES
from applecider_photometry import PhotometryClassifier, PhotometryConfig, collate_events, fast_inference

torch.set_num_threads(1)
ARCHS = [
    {"arch": "cls_transformer"},
    {"arch": "cls_transformer", "norm_first": True},
    {"arch": "informer"},
    {"arch": "informer", "informer_distil": True, "n_layers": 2},
]


def random_items(lengths, seed=0, labels=True):
    rng = np.random.default_rng(seed)
    items = []
    for n in lengths:
        events = rng.normal(size=(n, 7)).astype(np.float32)
        events[:, 4:] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
        times = np.sort(rng.uniform(0, 50, n)).astype(np.float32)
        times[0] = 0
        item = {"events": events, "times": times}
        if labels:
            item["labels"] = int(rng.integers(0, len(FINE_CLASSES)))
        items.append(item)
    return items


@pytest.mark.parametrize("overrides", ARCHS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_shapes_gradients_and_no_nan(overrides):
    torch.manual_seed(0)
    model = PhotometryClassifier(PhotometryConfig.from_preset("tiny", **overrides))
    batch = collate_events(random_items([5, 40, 1]))
    out = model(**batch)
    assert out.logits.shape == (3, 10) and out.embedding.shape == (3, 16)
    assert torch.isfinite(out.logits).all() and out.loss.ndim == 0
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without finite gradients: {missing}"
    assert model.config.class_names == FINE_CLASSES


@pytest.mark.parametrize("overrides", [ARCHS[0], ARCHS[1], ARCHS[2], {"fused_fast_path": True}],
                         ids=["post", "pre", "informer", "post-fused"])
def test_batch_of_one_equals_padded_batch(overrides):
    torch.manual_seed(0)
    model = PhotometryClassifier(PhotometryConfig.from_preset("tiny", **overrides)).eval()
    items = random_items([7, 30, 3], labels=False)
    with torch.inference_mode():
        padded = model(**collate_events(items)).logits
        for i, item in enumerate(items):
            alone = model(**collate_events([item])).logits  # no padding at all
            torch.testing.assert_close(alone[0], padded[i], atol=1e-5, rtol=1e-4)
    # the same also with autograd on (fast path off) — the training-time path — and with fast_inference
    torch.testing.assert_close(model(**collate_events(items)).logits.detach(), padded, atol=1e-5, rtol=1e-4)
    with fast_inference():
        torch.testing.assert_close(model(**collate_events(items[:1])).logits[0], padded[0], atol=1e-5, rtol=1e-4)
    assert torch.backends.mha.get_fastpath_enabled()  # restored


@pytest.mark.parametrize("distil", [False, True])
def test_informer_output_does_not_depend_on_the_batch(distil):
    """ProbSparse sampling from each sequence's own length: long sequences (u < n) alone, padded, reordered."""
    torch.manual_seed(0)
    model = PhotometryClassifier(PhotometryConfig.from_preset("tiny", arch="informer", informer_distil=distil,
                                                              n_layers=2)).eval()
    items = random_items([45, 120, 70], labels=False)
    with torch.inference_mode():
        padded = model(**collate_events(items)).logits
        reordered = model(**collate_events(items[::-1])).logits.flip(0)
        for i, item in enumerate(items):
            torch.testing.assert_close(model(**collate_events([item])).logits[0], padded[i], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(reordered, padded, atol=1e-5, rtol=1e-4)


def test_fused_fast_path_gives_the_same_outputs():
    torch.manual_seed(0)
    default = PhotometryClassifier(PhotometryConfig.from_preset("tiny")).eval()
    fused = PhotometryClassifier(PhotometryConfig.from_preset("tiny", fused_fast_path=True)).eval()
    fused.load_state_dict(default.state_dict())
    batch = collate_events(random_items([3, 12, 7], labels=False))
    with torch.inference_mode():
        torch.testing.assert_close(default(**batch).logits, fused(**batch).logits, atol=1e-5, rtol=1e-4)


def test_padding_values_do_not_matter():
    torch.manual_seed(0)
    model = PhotometryClassifier(PhotometryConfig.from_preset("tiny")).eval()
    batch = collate_events(random_items([4, 9], labels=False))
    garbage = {k: v.clone() for k, v in batch.items()}
    garbage["events"][0, 4:] = 1e3
    garbage["times"][0, 4:] = 1e4
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, model(**garbage).logits)


def test_save_load_identity_and_mismatch(tmp_path):
    torch.manual_seed(0)
    config = PhotometryConfig.from_preset("tiny", class_names=("SN Ia", "TDE"), class_weights=(0.5, 1.5))
    model = PhotometryClassifier(config).eval()
    batch = collate_events(random_items([6, 2], labels=False))
    model.save_pretrained(tmp_path / "m", preprocessor={"temperature": 1.3})
    loaded = PhotometryClassifier.from_pretrained(tmp_path / "m")
    assert loaded.preprocessor == {"temperature": 1.3} and loaded.config == config
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits)
    PhotometryClassifier(PhotometryConfig.from_preset("tiny", d_model=32)).save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "m" / "config.json").read_text())
    with pytest.raises(PretrainedError, match="does not match"):
        PhotometryClassifier.from_pretrained(tmp_path / "other")


def test_paper_preset_size():
    model = PhotometryClassifier(PhotometryConfig.from_preset("paper"))
    n = sum(p.numel() for p in model.parameters())
    assert 0.75e6 < n < 0.85e6  # ≈ 0.8 M as in the reference
    assert model.config.d_model == 128 and model.config.n_layers == 4 and model.config.max_events == 257


def test_collate_truncates_to_max_events():
    batch = collate_events(random_items([300, 10]), max_events=257)
    assert batch["events"].shape == (2, 257, 7) and batch["mask"].sum(1).tolist() == [257, 10]
    assert batch["labels"].dtype == torch.long


def test_invalid_config():
    with pytest.raises(ValueError, match="arch"):
        PhotometryConfig(arch="lstm")
    with pytest.raises(ValueError, match="divisible"):
        PhotometryConfig(d_model=30, n_heads=8)
