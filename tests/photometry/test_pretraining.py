"""Masked-event pretraining: masking, targets before masking, weighted-sum loss, weight transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from applecider_photometry import PhotometryClassifier, PhotometryConfig, collate_events
from applecider_photometry.pretraining import MaskedEventConfig, MaskedEventModel, sample_event_mask

torch.set_num_threads(1)


def batch_of(lengths, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for n in lengths:
        events = rng.normal(size=(n, 7)).astype(np.float32)
        events[:, 4:] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
        items.append({"events": events, "times": np.sort(rng.uniform(0, 50, n)).astype(np.float32), "labels": 0})
    return collate_events(items)


def test_band_stratified_mask_counts():
    bands = torch.tensor([[0] * 10 + [1] * 10 + [2] * 10, [0] * 20 + [1] * 10])
    valid = torch.ones(2, 30, dtype=torch.bool)
    valid[1, 25:] = False
    masked = sample_event_mask(bands, valid, 0.3, torch.Generator().manual_seed(0))
    assert masked.sum(1).tolist() == [9, 8]  # round(0.3 n)
    assert [int(masked[0, bands[0] == b].sum()) for b in range(3)] == [3, 3, 3]
    assert not masked[1, 25:].any()  # never a padded position
    assert [int(masked[1, :25][bands[1, :25] == b].sum()) for b in range(2)] == [4, 4]
    single = sample_event_mask(torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1, dtype=torch.bool), 0.3)
    assert single.tolist() == [[True]]


def test_targets_are_the_unmasked_values():
    torch.manual_seed(0)
    config = MaskedEventConfig.from_preset("tiny", lambda_flux=1.0, lambda_band=0.0, lambda_dt=0.0)
    model = MaskedEventModel(config).eval()
    batch = batch_of([12, 8])
    original = batch["events"].clone()
    masked = torch.zeros_like(batch["mask"])
    masked[0, [2, 5]] = True
    masked[1, 1] = True
    # Make the flux head output exactly 0 everywhere: the loss is then the mean of the true squared fluxes.
    torch.nn.init.zeros_(model.flux_head.weight)
    torch.nn.init.zeros_(model.flux_head.bias)
    out = model(**batch, masked=masked)
    expected = (original[0, [2, 5], 2] ** 2).sum() + original[1, 1, 2] ** 2
    assert out.loss.item() == pytest.approx(expected.item() / 3, rel=1e-5)
    assert out.loss.item() > 0  # with targets read after zeroing (the reference bug) this would be 0
    torch.testing.assert_close(batch["events"], original)  # the input is not modified in place
    assert out.logits[:, 3].tolist() == [2.0, 1.0]  # n_masked per sample


def test_loss_is_weighted_sum():
    torch.manual_seed(0)
    batch = batch_of([10, 6])
    masked = sample_event_mask(batch["events"][..., 4:].argmax(-1), batch["mask"], 0.3, torch.Generator().manual_seed(1))
    parts = []
    for weights in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (5, 3, 5)):
        torch.manual_seed(0)
        config = MaskedEventConfig.from_preset("tiny", lambda_flux=weights[0], lambda_band=weights[1], lambda_dt=weights[2])
        parts.append(MaskedEventModel(config).eval()(**batch, masked=masked).loss.item())
    assert parts[3] == pytest.approx(5 * parts[0] + 3 * parts[1] + 5 * parts[2], rel=1e-5)


def test_masked_inputs_hide_flux_band_and_gap():
    torch.manual_seed(0)
    model = MaskedEventModel(MaskedEventConfig.from_preset("tiny")).eval()
    batch = batch_of([6])
    masked = torch.zeros_like(batch["mask"])
    masked[0, 3] = True
    changed = batch["events"].clone()
    changed[0, 3, 1:] = torch.tensor([9.0, 9.0, 9.0, 1.0, 0.0, 0.0])  # anything in the hidden channels
    with torch.no_grad():
        out1 = model(**{**batch, "labels": None}, masked=masked)
        out2 = model(**{**batch, "events": changed, "labels": None}, masked=masked)
    # predictions do not depend on the hidden values (no leak), only the targets (hence the losses) do
    for key in ("flux", "band_logits", "dt"):
        torch.testing.assert_close(out1.extras[key], out2.extras[key])
    assert out1.loss is None and not torch.equal(out1.logits, out2.logits)


def test_pretrained_encoder_transfers_to_classifier(tmp_path):
    torch.manual_seed(0)
    pretrain = MaskedEventModel(MaskedEventConfig.from_preset("tiny"))
    with torch.no_grad():
        for p in pretrain.parameters():
            p.add_(torch.randn_like(p))
    pretrain.save_pretrained(tmp_path / "pre")
    loaded = MaskedEventModel.from_pretrained(tmp_path / "pre")
    classifier = PhotometryClassifier(PhotometryConfig.from_preset("tiny", class_names=("SN Ia", "TDE")))
    classifier.load_encoder(loaded.state_dict())
    for name, value in pretrain.encoder.state_dict().items():
        torch.testing.assert_close(classifier.encoder.state_dict()[name], value)
    with pytest.raises(RuntimeError):
        PhotometryClassifier(PhotometryConfig.from_preset("tiny", d_model=32, n_heads=2)).load_encoder(loaded.state_dict())


def test_two_band_curves_pretrain_and_transfer_to_a_two_band_classifier():
    """The alert-like curves have ZTF g/r only: 6 event channels, a 2-way band head, band targets from 4:6."""
    torch.manual_seed(0)
    two_bands = {"bands": ("ztfg", "ztfr"), "n_features": 6}
    config = MaskedEventConfig.from_preset("tiny", lambda_flux=0.0, lambda_band=1.0, lambda_dt=0.0)
    config.encoder = PhotometryConfig.from_preset("tiny", **two_bands)
    model = MaskedEventModel(config).eval()
    batch = batch_of([8, 5])
    batch["events"] = torch.cat([batch["events"][..., :4], torch.zeros_like(batch["events"][..., :2])], -1)
    batch["events"][0, np.arange(8), 4 + np.arange(8) % 2] = 1.0  # g, r, g, r, …
    batch["events"][1, :5, 5] = 1.0  # all r
    masked = torch.zeros_like(batch["mask"])
    masked[0, [1, 2]] = True
    masked[1, 0] = True
    torch.nn.init.zeros_(model.band_head.weight)
    with torch.no_grad():
        model.band_head.bias.copy_(torch.tensor([0.0, np.log(3.0)]))  # p(r) = 3/4
        out = model(**batch, masked=masked)
    assert out.extras["band_logits"].shape == (2, 8, 2)
    # masked bands r, g, r: cross-entropy −log(3/4), −log(1/4), −log(3/4), averaged over the 3 masked events
    assert out.loss.item() == pytest.approx((2 * -np.log(0.75) - np.log(0.25)) / 3, rel=1e-5)
    classifier = PhotometryClassifier(PhotometryConfig.from_preset("tiny", class_names=("SN I", "SN II"), **two_bands))
    classifier.load_encoder(model.state_dict())
    torch.testing.assert_close(classifier.encoder.state_dict(), model.encoder.state_dict())


def test_distilling_informer_rejected_for_pretraining():
    with pytest.raises(ValueError, match="distil"):
        MaskedEventConfig.from_preset("tiny", encoder={"arch": "informer", "informer_distil": True, **PhotometryConfig.PRESETS["tiny"]})


def test_masked_gap_is_not_readable_from_the_neighbours_times():
    """Moving a masked event in time (its Δt, δt and the next event's δt change, as in a real curve) changes
    its δt target but none of the model's inputs, hence none of its predictions."""
    torch.manual_seed(0)
    model = MaskedEventModel(MaskedEventConfig.from_preset("tiny")).eval()
    batch = batch_of([7])
    masked = torch.zeros_like(batch["mask"])
    masked[0, 2:4] = True  # two masked events in a row
    moved = {k: v.clone() for k, v in batch.items()}
    moved["times"][0, 2] = (batch["times"][0, 1] + batch["times"][0, 2]) / 2  # earlier, still between neighbours
    moved["events"][0, 2, 0] = float(np.log1p(moved["times"][0, 2]))
    moved["events"][0, 2, 1] = float(np.log1p(moved["times"][0, 2] - moved["times"][0, 1]))
    moved["events"][0, 3, 1] = float(np.log1p(moved["times"][0, 3] - moved["times"][0, 2]))
    with torch.no_grad():
        out1 = model(**{**batch, "labels": None}, masked=masked)
        out2 = model(**{**moved, "labels": None}, masked=masked)
    for key in ("flux", "band_logits", "dt"):
        torch.testing.assert_close(out1.extras[key], out2.extras[key])
    assert out1.logits[0, 2] != out2.logits[0, 2]  # the δt squared errors (targets) differ
