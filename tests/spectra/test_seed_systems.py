"""SNIascore and CCSNscore: SEDM resampling, continuum normalisation, light-curve inputs, MC dropout, operating
points, save/load, the hierarchical decision, and training/evaluation through `cider train/evaluate spectra`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from applecider_core.records import LightCurve, Spectrum
from applecider_spectra import (
    CCSNscoreClassifier,
    CCSNscoreConfig,
    CCSNscoreSystem,
    SNIascore,
    SNIascoreConfig,
)
from applecider_spectra.ccsnscore_inputs import (
    averaged_spectra,
    ccsn_spectrum_input,
    dmdt_histogram,
    light_curve_inputs,
)
from applecider_spectra.evaluate import main as evaluate_main
from applecider_spectra.preprocessing import SpectrumError
from applecider_spectra.sedm import (
    SEDMGridConfig,
    degrade_to_sedm,
    loess,
    rebin_mean,
    sniascore_input,
    sniascore_normalise,
)
from applecider_spectra.seed_systems import (
    AMBIGUOUS,
    SNIascoreSystem,
    hierarchical_type,
    layer_decision,
    select_operating_point,
)
from applecider_spectra.train import main as train_main
from applecider_spectra.train_seed import SNIascoreRun, balanced_rounds, redshift_augmented

from .conftest import synthetic_spectrum


def _spectrum(wavelength, flux, z=0.05, label="SN Ia", sid="s") -> Spectrum:
    return Spectrum(object_id=sid, wavelength_aa=np.asarray(wavelength, float), flux=np.asarray(flux, float),
                    spectrum_id=sid, redshift=z, label=label)


# ---- SEDM grid and resampling ---------------------------------------------------------------------------
def test_sedm_grid_matches_the_paper():
    grid = SEDMGridConfig()
    assert grid.num_bins == 209 and grid.edges_aa[0] == 3800.0 and grid.edges_aa[-1] == pytest.approx(9150.4)
    assert grid.centres_aa[:2] == pytest.approx([3812.8, 3838.4])


def test_rebinning_against_hand_computed_values():
    w = np.array([1.0, 2, 3, 4, 5, 6])
    # linear flux 2λ + 1: the bin mean is the value at the bin centre; the last bin leaves the range → NaN
    assert np.allclose(rebin_mean(w, 2 * w + 1, np.array([1.0, 2.5, 4.0, 6.5]))[:2], [4.5, 7.5])
    assert np.isnan(rebin_mean(w, 2 * w + 1, np.array([1.0, 2.5, 4.0, 6.5]))[2])
    # piecewise-linear through λ²: ∫_1.5^3.5 = 1.625 + 6.5 + 5.375 = 13.5 over a 2 Å bin
    assert rebin_mean(w, w**2, np.array([1.5, 3.5]))[0] == pytest.approx(6.75)
    # no convolution: a linear spectrum lands on the SEDM bin centres exactly
    grid = SEDMGridConfig(resolution=0.0)
    wave = np.linspace(3700, 9300, 900)
    binned = degrade_to_sedm(_spectrum(wave, 1 + 1e-4 * wave), grid)
    assert np.allclose(binned, 1 + 1e-4 * grid.centres_aa)


def test_gaussian_convolution_reaches_r_100():
    wave = np.linspace(3600, 9400, 12000)
    flux = 1 + np.exp(-0.5 * ((wave - 6000) / 1.0) ** 2)  # a line far narrower than λ/100
    binned = degrade_to_sedm(_spectrum(wave, flux), SEDMGridConfig()) - 1
    centres = SEDMGridConfig().centres_aa
    above = centres[binned > binned.max() / 2]
    fwhm = above[-1] - above[0] + 25.6  # bins above half maximum, ± half a bin at each side
    assert 6000 / 100 * 0.6 < fwhm < 6000 / 100 * 1.6
    area = np.sqrt(2 * np.pi)  # flux is conserved by the convolution and the bin means
    assert binned.sum() * 25.6 == pytest.approx(area, rel=0.05)


def test_spectrum_outside_the_sedm_range_is_a_clear_error():
    uv = _spectrum(np.linspace(1200, 3000, 300), np.ones(300) + np.linspace(0, 1, 300), sid="uv")
    with pytest.raises(SpectrumError, match="spectrum covers 1200–3000 Å, 0 of 209 SEDM bins"):
        sniascore_input(uv)
    system = SNIascoreSystem(SNIascore(SNIascoreConfig.from_preset("tiny")))
    good = _spectrum(*synthetic_spectrum(np.random.default_rng(0), "SN Ia", 0.05))
    results = system.predict([uv, good])
    assert isinstance(results[0], str) and "SEDM bins" in results[0]
    assert set(results[1]) == {"score", "score_error", "is_ia_confident", "redshift", "redshift_error"}


# ---- continuum normalisation ----------------------------------------------------------------------------
def test_continuum_normalisation_golden_values():
    flat = np.full(209, 2.0)
    flat[100] = 6.0  # one emission spike: median 2, robust continuum 1 → 6/2/1 − 1 = 2
    out = sniascore_normalise(flat)
    assert out[100] == pytest.approx(2.0, abs=1e-6) and np.abs(np.delete(out, 100)).max() < 1e-6
    x = np.arange(209.0)
    assert np.abs(sniascore_normalise(1 + 0.01 * x + 1e-4 * x**2)).max() < 1e-6  # a quadratic is all continuum
    dip = 1 + 0.002 * x - 0.3 * np.exp(-0.5 * ((x - 60) / 2) ** 2)
    assert sniascore_normalise(dip)[60] < -0.2  # absorption negative
    partial = np.where(x < 50, np.nan, 1 + 0.01 * x)
    assert (sniascore_normalise(partial)[:50] == 0).all()  # uncovered bins sit at the continuum level
    assert loess(np.arange(10.0), 0.5, 1, 0) == pytest.approx(np.arange(10.0))


def test_bins_with_a_near_zero_continuum_are_uncovered_not_amplified():
    x = np.arange(209.0)
    line = 2.0 * (1 - x / 150)  # falls through zero at bin 150 (a faint, noisy red end of a public spectrum)
    flux = line + 0.05 * np.sin(x)  # a small wiggle: noise around the continuum
    median = np.median(flux)
    continuum = loess(flux / median, 0.3, 2, 4)
    faint = continuum <= 0.05
    assert faint.sum() > 40 and (x[faint] > 140).all()  # the bins around and past the zero crossing
    old = sniascore_normalise(flux, SEDMGridConfig(min_continuum=0.0))
    assert np.abs(old).max() > 10  # without the floor: noise ÷ continuum ≈ 0 blows up
    out = sniascore_normalise(flux)
    assert (out[faint] == 0).all() and np.abs(out).max() < 2
    assert out[~faint] == pytest.approx((flux / median / continuum - 1)[~faint], abs=1e-5)  # elsewhere unchanged
    assert out[20] == pytest.approx(flux[20] / median / continuum[20] - 1, abs=1e-6)
    with pytest.raises(Exception, match="min_continuum"):
        SEDMGridConfig(min_continuum=1.5)


# ---- CCSNscore inputs -----------------------------------------------------------------------------------
def test_dmdt_histogram_on_hand_built_points():
    hist = dmdt_histogram(np.array([0.0, 1.0, 3.0]), np.array([20.0, 20.125, 20.5]))
    assert hist.shape == (24, 24) and hist.sum() == pytest.approx(1.0)
    # pairs (δt, δm): (1, 0.125) → (row 14, col 6); (3, 0.5) → (17, 8); (2, 0.375) → (16, 7)
    assert {(r, c) for r, c in zip(*np.nonzero(hist))} == {(14, 6), (17, 8), (16, 7)}
    assert np.allclose(hist[hist > 0], 1 / 3)


def test_gp_interpolated_light_curve_on_a_hand_built_decline():
    days = np.arange(0.0, 61.0, 5.0)
    mag = 18.0 + 0.02 * days  # 0.02 mag/day decline in r, no g
    flux = 10 ** (-0.4 * (mag - 23.9))
    light_curve = LightCurve("obj", 59000 + days, np.full(days.size, "ztfr"), flux, flux / 50, np.ones(days.size, bool))
    inputs = light_curve_inputs(light_curve, CCSNscoreConfig())
    curve = inputs["lightcurve"]
    assert curve.shape == (2, 200, 2) and inputs["dmdt"].shape == (2, 24, 24)
    assert not curve[0].any() and not inputs["dmdt"][0].any()  # no g detections → zeros
    assert curve[1, 0, 0] == pytest.approx(1.0, abs=0.02) and not curve[1, 61:].any()  # peak-normalised, padded
    interpolated_mag = 18.0 - 2.5 * np.log10(curve[1, :61, 0] / curve[1, 0, 0])
    assert np.allclose(interpolated_mag, 18.0 + 0.02 * np.arange(61), atol=0.03)
    assert (curve[1, :61, 1] > 0).all()
    assert inputs["dmdt"][1].sum() == pytest.approx(1.0)
    none = light_curve_inputs(None, CCSNscoreConfig())
    assert not none["lightcurve"].any() and not none["dmdt"].any()


def test_ccsn_spectrum_input_and_averaged_augmentation():
    config = CCSNscoreConfig()
    out = ccsn_spectrum_input(_spectrum(*synthetic_spectrum(np.random.default_rng(1), "SN II", 0.03)), config)
    assert out.shape == (256,) and np.abs(out).max() == pytest.approx(1.0) and np.isfinite(out).all()
    with pytest.raises(SpectrumError, match="redshift"):
        ccsn_spectrum_input(_spectrum(np.linspace(3700, 9300, 500), np.ones(500), z=np.nan), config)
    rng = np.random.default_rng(0)
    spectra = rng.uniform(0.1, 1.0, (6, 256)).astype(np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    extra = np.arange(6.0)
    mixed, new_labels, (picked,) = averaged_spectra(spectra, labels, {1: 5}, rng, [extra])
    assert mixed.shape == (5, 256) and (new_labels == 1).all() and set(picked.tolist()) <= {3.0, 4.0, 5.0}
    assert np.abs(mixed).max(axis=1) == pytest.approx(np.ones(5))


def test_redshift_augmentation_equalises_bins():
    rng = np.random.default_rng(0)
    spectra = [_spectrum(*synthetic_spectrum(rng, "SN Ia", z), z=z, sid=f"s{i}") for i, z in enumerate((0.004, 0.007))]
    run = SNIascoreRun(redshift_bin_width=0.001, redshift_max=0.01, redshift_per_bin=3)
    x, z = redshift_augmented(spectra, SEDMGridConfig(), run, rng)
    assert x.shape == (30, 209) and np.isfinite(x).all()  # 3 spectra in each of the 10 bins
    centres = np.arange(0.0005, 0.01, 0.001)
    assert (np.abs(z.reshape(10, 3) - centres[:, None]) <= 0.001 + 1e-7).all()  # within ±0.001 of the centre


# ---- models: MC dropout, save/load, shapes -------------------------------------------------------------
def test_balanced_rounds_redraw_the_larger_class_without_replacement():
    labels = np.array([1] * 3 + [0] * 10)  # 3 positives, 10 negatives: rounds of 3 + 3 while 3 are left → 3 rounds
    rounds = balanced_rounds(labels, 3, np.random.default_rng(0))
    assert [len(r) for r in rounds] == [6, 6, 6]
    assert all(set(np.flatnonzero(labels == 1)) <= set(r) for r in rounds)
    drawn = np.concatenate([r[labels[r] == 0] for r in rounds])
    assert len(drawn) == 9 and len(set(drawn)) == 9  # no negative drawn twice; one is never drawn
    assert len(balanced_rounds(labels, 2, np.random.default_rng(0))) == 2  # capped at the configured count
    assert len(balanced_rounds(np.array([1] * 4 + [0] * 7), 3, np.random.default_rng(0))) == 1  # 3 left < 4
    assert len(balanced_rounds(np.array([0] * 2 + [1] * 5), 3, np.random.default_rng(0))[0]) == 4  # negatives smaller
    for balanced_or_off in (balanced_rounds(np.array([0, 1, 0, 1]), 3, np.random.default_rng(0)),
                            balanced_rounds(labels, 0, np.random.default_rng(0))):
        assert len(balanced_or_off) == 1 and len(balanced_or_off[0]) in (4, 13)


def test_mc_dropout_scores_vary_and_their_mean_is_stable():
    torch.manual_seed(0)
    model = SNIascore(SNIascoreConfig.from_preset("tiny", hidden=8)).eval()
    flux = torch.randn(4, 60)  # the recurrent layers take any length; short keeps the test fast
    _, std = model.predict_scores(flux, passes=50)
    assert (std > 1e-4).all()  # dropout is on at prediction
    first, _ = model.predict_scores(flux, passes=400)
    second, _ = model.predict_scores(flux, passes=400)
    single = [model.predict_scores(flux, passes=2)[0] for _ in range(2)]
    assert (first - second).abs().max() < 0.5 * (single[0] - single[1]).abs().max() + 1e-3
    assert not model.training


def _inputs(config: CCSNscoreConfig, batch: int = 3) -> dict[str, torch.Tensor]:
    inputs = {"flux": torch.randn(batch, 256)}
    if "lightcurve" in config.inputs:
        inputs["lightcurve"] = torch.rand(batch, 2, 200, 2)
    if "dmdt" in config.inputs:
        inputs["dmdt"] = torch.rand(batch, 2, 24, 24)
    return inputs


@pytest.mark.parametrize("model", ["sniascore", "ccsnscore"])
def test_recurrent_layers_start_as_in_keras_and_matlab(model):
    """Glorot input weights, orthogonal recurrent weights, zero biases, LSTM forget-gate bias 1 (both papers'
    frameworks). PyTorch's default left CCSNscore's layer 1 at validation AUC 0.50 for the benchmark's 4 epochs."""
    torch.manual_seed(0)
    net = SNIascore(SNIascoreConfig()) if model == "sniascore" else CCSNscoreClassifier(CCSNscoreConfig())
    recurrent = [m for m in net.modules() if isinstance(m, (torch.nn.LSTM, torch.nn.GRU))]
    assert len(recurrent) == (3 if model == "sniascore" else 2)
    for layer in recurrent:
        h, gates = layer.hidden_size, 4 if isinstance(layer, torch.nn.LSTM) else 3
        for name, param in layer.named_parameters():
            if name.startswith("weight_hh"):  # (gates·H, H), orthonormal columns
                assert torch.allclose(param.T @ param, torch.eye(h), atol=1e-5)
            elif name.startswith("weight_ih"):  # Glorot uniform: |w| ≤ √(6 / (inputs + gates·H))
                assert param.abs().max() <= np.sqrt(6 / (param.shape[1] + gates * h)) + 1e-7
                assert param.abs().max() > 0.8 * np.sqrt(6 / (param.shape[1] + gates * h))
            elif name.startswith("bias_ih") and gates == 4:
                expected = torch.zeros(4 * h)
                expected[h : 2 * h] = 1.0
                assert torch.equal(param.detach(), expected)
            else:
                assert not param.detach().any()  # bias_hh, GRU biases


@pytest.mark.parametrize("preset", ["tiny", "tiny-lc"])
def test_ccsnscore_forward_gradients_and_save_load(preset, tmp_path):
    overrides = {"inputs": ("spectrum", "lightcurve", "dmdt")} if preset == "tiny-lc" else {}
    config = CCSNscoreConfig.from_preset("tiny", **overrides)
    model = CCSNscoreClassifier(config)
    inputs = _inputs(config)
    out = model(**inputs, labels=torch.tensor([0.0, 1.0, 1.0]))
    assert out.logits.shape == (3, 1) and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    model.save_pretrained(tmp_path / "m")
    loaded = CCSNscoreClassifier.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    if preset == "tiny-lc":
        with pytest.raises(ValueError, match="needs the 'lightcurve' input"):
            model(inputs["flux"])


@pytest.mark.parametrize("task", ["classification", "redshift"])
def test_sniascore_forward_and_save_load(task, tmp_path):
    model = SNIascore(SNIascoreConfig.from_preset("tiny", task=task))
    flux = torch.randn(5, 209)
    labels = torch.rand(5) * 0.1 if task == "redshift" else torch.tensor([0, 1, 0, 1, 1])
    out = model(flux, labels=labels)
    assert out.logits.shape == (5, 1 if task == "redshift" else 2) and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval().save_pretrained(tmp_path / "m")
    loaded = SNIascore.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(model(flux).logits, loaded(flux).logits)
    with pytest.raises(Exception, match="class_names"):
        SNIascoreConfig(class_names=("a", "b", "c"))


def test_redshift_output_is_the_linear_layer():
    model = SNIascore(SNIascoreConfig.from_preset("tiny", task="redshift")).eval()
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.fill_(-0.02)  # no output activation (paper: a regression layer after the dense layer)
    assert model(torch.randn(3, 209)).logits[:, 0].tolist() == pytest.approx([-0.02] * 3)


def test_regression_loss_value_is_the_bias_and_gradient_the_mae():
    from applecider_spectra.modeling_sniascore import bias_mae_loss

    prediction = torch.tensor([0.1, 0.3], requires_grad=True)
    loss = bias_mae_loss(prediction, torch.tensor([0.2, 0.1]))
    assert loss.item() == pytest.approx(abs((-0.1 + 0.2) / 2))
    loss.backward()
    assert prediction.grad.tolist() == pytest.approx([-0.5, 0.5])  # d MAE / dŷ = sign(ŷ − y) / N


# ---- operating point and decisions ------------------------------------------------------------------------
def test_binary_validation_metrics_against_hand_computed_values():
    from applecider_spectra.train_seed import binary_metrics

    p = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    # pairs (positive, negative) ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); wrong: (0.35 < 0.4) → 3/4
    bce = -np.mean(np.log([0.9, 0.6, 0.35, 0.8]))
    one_logit = binary_metrics(np.log(p / (1 - p))[:, None], labels)  # CCSNscore: one sigmoid logit
    two_logits = binary_metrics(np.stack([np.zeros(4), np.log(p / (1 - p))], 1), labels)  # SNIascore: softmax
    for metrics in (one_logit, two_logits):
        assert metrics["roc_auc"] == pytest.approx(0.75) and metrics["accuracy"] == pytest.approx(0.75)
        assert metrics["bce"] == pytest.approx(bce, abs=1e-6)
        assert metrics["tpr_at_fpr_1pct"] == pytest.approx(0.5)  # cut above 0.4: only 0.8 passes, FPR 0
    assert "roc_auc" not in binary_metrics(np.zeros((3, 1)), np.ones(3))  # one class only: no AUC


def test_threshold_selection_hits_the_requested_fpr():
    negatives = np.linspace(0.0, 0.99, 1000)
    positives = np.linspace(0.5, 1.5, 500)
    scores, labels = np.concatenate([negatives, positives]), np.r_[np.zeros(1000), np.ones(500)].astype(bool)
    point = select_operating_point(scores, labels, 0.01)
    # 10 of 1000 negatives may pass: the lowest cut above the 11th-highest negative
    assert point["fpr"] == pytest.approx(0.01) and negatives[-11] < point["score_cut"] <= negatives[-10]
    assert point["tpr"] == pytest.approx((positives >= point["score_cut"]).mean())
    assert select_operating_point(scores, labels, 0.006)["fpr"] <= 0.006
    errors = np.where(labels, 0.01, 0.5)  # σ separates the classes: a σ cut reaches TPR 1 at FPR 0
    both = select_operating_point(scores, labels, 0.0, errors)
    assert both["tpr"] == 1.0 and both["fpr"] == 0.0


def test_hierarchical_decision_logic_on_fixed_scores():
    assert layer_decision({"H-rich": (0.9, 0.02), "H-poor": (0.1, 0.02)}) == ("H-rich", 0.9)
    assert layer_decision({"H-rich": (0.6, 0.1), "H-poor": (0.45, 0.1)}) == (AMBIGUOUS, 0.0)
    confident = {"1": {"H-rich": (0.95, 0.01), "H-poor": (0.05, 0.01)},
                 "2a": {"II": (0.9, 0.02), "IIb-H": (0.1, 0.02), "IIn": (0.2, 0.03)}}
    assert hierarchical_type(confident)["type"] == "II"
    shaky_sub = {**confident, "2a": {"II": (0.85, 0.2), "IIb-H": (0.1, 0.02), "IIn": (0.2, 0.03)}}
    assert hierarchical_type(shaky_sub)["type"] == "H-rich"  # layer 2a not confident (σ ≥ 0.05)
    uncertain = {"1": {"H-rich": (0.85, 0.06), "H-poor": (0.1, 0.01)}}
    out = hierarchical_type(uncertain)
    assert out["type"] == AMBIGUOUS and out["layers"]["1"]["decision"] == "H-rich"  # decided, but not confident
    assert hierarchical_type({"1": {"H-rich": (0.7, 0.01), "H-poor": (0.3, 0.01)}})["type"] == AMBIGUOUS  # P ≤ 0.8


def test_layer1_report_on_fixed_results():
    from applecider_spectra.evaluate_seed import layer1_report

    def result(decision, rich, type_):
        return {"layers": {"1": {"decision": decision}}, "scores": {"1": {"H-rich": {"score": rich}}}, "type": type_}

    results = [result("H-rich", 0.9, "II"), result(AMBIGUOUS, 0.6, AMBIGUOUS), result("H-poor", 0.2, "H-poor"),
               result("H-rich", 0.7, AMBIGUOUS)]  # the last: decided, but not past the confident cut
    report = layer1_report(results, ["H-rich", "H-rich", "H-poor", "H-poor"])
    assert report["accuracy"] == 0.5 and report["ambiguous"] == 0.25
    assert report["confident_share"] == 0.5 and report["confident_accuracy"] == 1.0
    # H-rich scores 0.9, 0.6 vs H-poor 0.2, 0.7: 3 of 4 pairs ranked right; no false positive allowed → 0.9 only
    assert report["h_rich_roc_auc"] == pytest.approx(0.75) and report["h_rich_tpr_at_2pct_fpr"] == 0.5


# ---- training and evaluation through the CLI --------------------------------------------------------------
CCSN_LINES = {"SN Ia": 6150.0, "SN II": 6563.0, "SN IIn": 6563.0, "SN IIb": 5876.0, "SN Ib": 5876.0, "SN Ic": 7774.0}


def write_seed_dataset(root, n_per_class: int = 4, seed: int = 0):
    """Shared-format dataset with Ia and core-collapse labels; the II objects have ZTF r/g light curves."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    objects, spectra, points = [], [], []
    for label, centre in CCSN_LINES.items():
        for i in range(n_per_class):
            oid = f"ZTF{label.replace(' ', '')}{i}"
            z = float(rng.uniform(0.01, 0.08))
            split = ("train", "train", "val", "test")[i % 4]
            has_lc = label == "SN II"
            objects.append({"object_id": oid, "label": label, "redshift": z, "split": split, "has_alerts": False,
                            "has_light_curve": has_lc, "has_spectrum": True})
            rest = np.linspace(3200.0, 9800.0, 500)
            flux = 1 + 0.02 * rng.standard_normal(500) + 0.5 * np.exp(-0.5 * ((rest - centre) / 80) ** 2)
            spectra.append({"spectrum_id": f"{oid}_0", "object_id": oid, "redshift": z, "mjd": 59010.0, "label": label,
                            "flux_unit": "Uncalibrated", "instrument": "SEDM", "source": "test",
                            "wavelength_aa": (rest * (1 + z)).tolist(), "flux": flux.tolist()})
            for day in range(0, 60, 4) if has_lc else ():
                for band in ("ztfg", "ztfr"):
                    f = 10 ** (-0.4 * (18 + 0.03 * day - 23.9))
                    points.append({"object_id": oid, "mjd": 59000.0 + day, "band": band, "flux_ujy": f,
                                   "flux_err_ujy": f / 30, "is_detection": True, "source": "test"})
    pd.DataFrame(objects).to_parquet(root / "objects.parquet")
    pd.DataFrame(spectra).to_parquet(root / "spectra.parquet")
    pd.DataFrame({"object_id": pd.Series(dtype=str), "candid": pd.Series(dtype="int64")}).to_parquet(root / "alerts.parquet")
    pd.DataFrame(points).to_parquet(root / "light_curves.parquet")
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "counts": {}}))
    return root


def _seed_yaml(path, dataset, out, arch, **extra):
    config = {"data": {"path": str(dataset)}, "model": {"arch": arch, "preset": "tiny"},
              "train": {"output_dir": str(out), "epochs": 1, "batch_size": 8, "cpu": True, "ema_decay": None,
                        "resume": False, "max_steps": 2}, **extra}
    path.write_text(yaml.safe_dump(config))
    return path


def test_sniascore_trains_and_evaluates_through_the_cli(tmp_path):
    dataset = write_seed_dataset(tmp_path / "dataset")
    config = _seed_yaml(tmp_path / "snia.yaml", dataset, tmp_path / "run", "sniascore",
                        sniascore={"redshift_per_bin": 1, "redshift_bin_width": 0.01, "redshift_max": 0.1})
    assert train_main(["--config", str(config)]) == 0
    classifier = SNIascore.from_pretrained(tmp_path / "run" / "classifier")
    point = classifier.preprocessor["operating_point"]
    assert point["max_fpr"] == 0.006 and point["fpr"] <= 0.006
    assert SNIascore.from_pretrained(tmp_path / "run" / "redshift").config.task == "redshift"
    assert evaluate_main(["--config", str(config), "--model", str(tmp_path / "run"), "--output", str(tmp_path / "ev")]) == 0
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["n"] == 6 and set(report["tpr_at_fpr"]) == {"0.6%", "1%", "2%"} and "redshift_all_ia" in report
    assert report["redshift_all_ia_in_range"]["n"] == 1  # the config's redshift_max 0.1 covers the one test SN Ia
    from applecider_core.dataset import open_dataset
    from applecider_spectra.evaluate_seed import evaluate_sniascore

    spectra = open_dataset(dataset).spectra()  # 4 SNe Ia; z_max at the second lowest z keeps 2 of them
    cut = sorted(s.redshift for s in spectra if s.label == "SN Ia")[1]
    by_range = evaluate_sniascore(SNIascoreSystem.from_dir(tmp_path / "run"), spectra, z_max=cut)
    assert by_range["redshift_all_ia"]["n"] == 4 and by_range["redshift_all_ia_in_range"]["n"] == 2


def test_ccsnscore_trains_every_layer_and_uses_light_curves_where_present(tmp_path):
    dataset = write_seed_dataset(tmp_path / "dataset")
    config = _seed_yaml(tmp_path / "ccsn.yaml", dataset, tmp_path / "run", "ccsnscore", ccsnscore={"cases": ["S", "SLD"]})
    assert train_main(["--config", str(config)]) == 0
    folders = sorted(p.name for p in (tmp_path / "run").iterdir() if (p / "config.json").is_file())
    assert "layer1_H-rich_S" in folders and "layer2b_Ic_SLD" in folders and len(folders) == 14
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # layer 2a, augmented to 2 spectra per class: II has 2 positives vs 4 negatives → 2 balanced rounds of 4
    assert [r["train"] for r in summary["layer2a_II_S"]["rounds"]] == [4, 4]
    assert len(summary["layer1_H-rich_S"]["rounds"]) == 1  # two classes, balanced by the augmentation
    system = CCSNscoreSystem.from_dir(tmp_path / "run")
    from applecider_core.dataset import open_dataset

    data = open_dataset(dataset)
    spectrum = next(s for s in data.spectra("test") if s.label == "SN II")
    with_lc = system.predict([spectrum], data.light_curve(spectrum.object_id))[0]
    without = system.predict([spectrum])[0]
    assert with_lc["case"] == "SLD" and without["case"] == "S"
    assert set(without["scores"]["1"]) == {"H-rich", "H-poor"} and without["type"] in {AMBIGUOUS, "H-rich", "H-poor",
                                                                                         "II", "IIb-H", "IIn", "Ib", "Ic"}
    assert evaluate_main(["--config", str(config), "--model", str(tmp_path / "run"), "--output", str(tmp_path / "ev")]) == 0
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["layer1_S"]["n"] == 5 and report["objects_with_light_curves"] == 1 and "layer1_with_lc" in report


def test_photometry_overlap_counts_the_spectra_of_objects_with_light_curves(tmp_path):
    from applecider_core.dataset import open_dataset
    from applecider_spectra.evaluate_seed import photometry_overlap

    # 6 labels × 4 objects, one spectrum each at MJD 59010; only the 4 SN II objects (splits train, train, val,
    # test) have photometry, detections from MJD 59000 on
    overlap = photometry_overlap(open_dataset(write_seed_dataset(tmp_path / "dataset")))
    assert overlap["per_label"]["SN II"] == {"spectra": 4, "objects": 4, "spectra_with_light_curve": 4,
                                             "objects_with_light_curve": 4}
    assert overlap["per_label"]["SN Ia"]["spectra_with_light_curve"] == 0 and len(overlap["per_label"]) == 6
    assert overlap["layer1_spectra_with_light_curve"] == {"train": 2, "val": 1, "test": 1}  # SN Ia is not layer 1
    assert overlap["latest_layer1_spectrum_mjd"] == 59010.0
    assert overlap["layer1_objects_with_light_curve"] == 4 and overlap["earliest_layer1_light_curve_detection_mjd"] == 59000.0


def test_redshift_regressor_has_its_own_epochs_and_patience():
    from applecider_core.config import ConfigError
    from applecider_core.training import TrainingConfig
    from applecider_spectra.train_seed import SeedRunConfig, redshift_train_config

    base = TrainingConfig(output_dir="runs/snia", epochs=325, patience=None)
    inherited = redshift_train_config(SeedRunConfig(train=base))
    assert (inherited.output_dir, inherited.epochs, inherited.patience, inherited.monitor) == (
        "runs/snia/redshift_run", 325, None, "rmse")
    own = redshift_train_config(SeedRunConfig(train=base, sniascore=SNIascoreRun(redshift_epochs=525, redshift_patience=40)))
    assert (own.epochs, own.patience, own.monitor_mode) == (525, 40, "min")
    with pytest.raises(ConfigError, match="redshift_patience must be >= 1"):
        SeedRunConfig(sniascore=SNIascoreRun(redshift_patience=0))
