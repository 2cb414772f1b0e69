"""Paper I Appendix A baseline: spectra rendered as images (raw + LOESS channels) → ConvNeXt (pretrained=False)."""

from __future__ import annotations

import numpy as np
import torch

from applecider_core.records import Spectrum
from applecider_images import SpectrumConvNeXt, SpectrumConvNeXtConfig
from applecider_spectra.spectrum_images import SpectrumRenderer


def test_rendered_spectrum_channels():
    wave = np.linspace(3500, 9500, 3000)
    rng = np.random.default_rng(0)
    flux = 1 + 0.5 * np.sin(wave / 400) + 0.3 * rng.standard_normal(wave.size)
    image = SpectrumRenderer(size=48)(Spectrum(object_id="a", wavelength_aa=wave, flux=flux, spectrum_id="a"))
    assert image.shape == (3, 48, 48) and image.dtype == np.float32
    assert 0 <= image.min() < 0.5 and image.max() == 1.0  # a dark curve on a white background
    assert np.median(image) == 1.0
    ink = (image < 0.5).sum(axis=(1, 2))
    assert ink[0] > ink[2]  # the noisy raw curve covers more pixels than the LOESS-0.1 one


def test_spectrum_convnext_forward_gradients_and_save_load(tmp_path):
    model = SpectrumConvNeXt(SpectrumConvNeXtConfig.from_preset("tiny"))
    images = torch.rand(2, 3, 32, 32)
    out = model(images, labels=torch.tensor([0, 1]))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval().save_pretrained(tmp_path / "m")
    loaded = SpectrumConvNeXt.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(model(images).logits, loaded(images).logits)


def test_inverted_input_is_one_minus_the_image():
    inverted = SpectrumConvNeXt(SpectrumConvNeXtConfig.from_preset("tiny")).eval()
    plain = SpectrumConvNeXt(SpectrumConvNeXtConfig.from_preset("tiny", invert_input=False)).eval()
    plain.load_state_dict(inverted.state_dict())
    images = torch.rand(2, 3, 32, 32)
    assert torch.allclose(inverted(images).logits, plain(1 - images).logits)
    assert not torch.allclose(inverted(images).logits, plain(images).logits)
