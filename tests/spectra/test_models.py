import pytest
import torch

from applecider_core.pretrained import PretrainedError
from applecider_spectra import (
    GalSpecNet,
    GalSpecNetConfig,
    SpectraNet,
    SpectraNetConfig,
    SpectraRNN,
    SpectraRNNConfig,
    build_model,
)


def expected_spectranet_parameters(c: SpectraNetConfig) -> int:
    """Architecture arithmetic, written independently of the model code (see SpectraNetConfig docstring)."""
    total, c_in = 0, 1
    for i, (width, kernels) in enumerate(zip(c.widths, c.kernel_sizes)):
        paths, last = len(kernels), i == len(c.widths) - 1
        total += sum(width * c_in * k + width for k in kernels)  # parallel convs
        total += 2 * paths * width  # norm affine
        if c.variant == "paper":
            total += 0 if last else paths * width * width + width  # 1×1 projection
        else:
            gated = paths * width * (1 if last else 3)  # TriPool triples the channels
            hidden = gated // c.gate_reduction
            total += gated * hidden + hidden + hidden * gated + gated  # channel gate
            total += 0 if last else gated * width + width  # projection
            out = paths * width if last else width
            total += c_in * out + out  # skip
        c_in = width
    features = len(c.kernel_sizes[-1]) * c.widths[-1] * c.head_pool
    for hidden in c.head_hidden:
        total += features * hidden + hidden + 2 * hidden  # Linear + LayerNorm
        features = hidden
    return total + features * c.num_outputs + c.num_outputs


# paper: trunk 24,012,992 (block 1: 64·1085+192 + 384 + 192·64+64 = 82,368; …; block 5: 1024·512·23+3072 + 6144)
# + head 3072·16·384+384 + 768 + 384·11+11 = 18,879,755 → 42,892,747 (global pool: 3072·384+… → 25,198,027)
PAPER_TOTAL = 42_892_747
PAPER_GLOBALPOOL_TOTAL = 25_198_027


@pytest.mark.parametrize("preset", ["paper", "paper-globalpool", "appleCiDEr-I", "small", "tiny", "tiny-appleCiDEr-I"])
def test_parameter_counts_match_architecture_arithmetic(preset):
    config = SpectraNetConfig.from_preset(preset)
    model = SpectraNet(config)
    count = sum(p.numel() for p in model.parameters())
    print(f"SpectraNet[{preset}]: {count:,} parameters")
    assert count == expected_spectranet_parameters(config)
    if preset == "paper":
        assert count == PAPER_TOTAL
    if preset == "paper-globalpool":
        assert count == PAPER_GLOBALPOOL_TOTAL


def test_paper_block_shapes_4096_1024_256_64_16():
    model = SpectraNet(SpectraNetConfig.from_preset("paper")).eval()
    with torch.no_grad():
        outputs = model.forward_trunk(torch.randn(1, 4096))
    assert [tuple(o.shape) for o in outputs] == [(1, 64, 1024), (1, 128, 256), (1, 256, 64), (1, 512, 16), (1, 3072, 16)]
    assert model.config.block_lengths() == [1024, 256, 64, 16, 16]


def test_appleciderI_block_shapes():
    model = SpectraNet(SpectraNetConfig.from_preset("appleCiDEr-I")).eval()
    with torch.no_grad():
        outputs = model.forward_trunk(torch.randn(1, 4096))
    assert [tuple(o.shape[1:]) for o in outputs] == [(32, 1024), (64, 256), (128, 64), (256, 16), (1536, 16)]
    assert model.head[0].in_features == 1536 * 16 and model.head[0].out_features == 2048


def test_baseline_parameter_counts():
    galspec = GalSpecNet(GalSpecNetConfig())
    # convs 1→64→64→32→32 (k=3) and Linear(32·61 → 11): 4096 → 4094 → 1023 → 1021 → 255 → 253 → 63 → 61
    expected = (64 * 3 + 64) + (64 * 64 * 3 + 64) + (32 * 64 * 3 + 32) + (32 * 32 * 3 + 32) + (32 * 61 * 11 + 11)
    assert sum(p.numel() for p in galspec.parameters()) == expected
    rnn = SpectraRNN(SpectraRNNConfig())
    lstm = lambda i, h: 4 * h * (i + h) + 8 * h  # noqa: E731 (weights + two bias vectors)
    gru = lambda i, h: 3 * h * (i + h) + 6 * h  # noqa: E731
    expected_rnn = 2 * lstm(1, 32) + gru(64, 32) + 2 * lstm(32, 32) + 64 * 11 + 11
    assert sum(p.numel() for p in rnn.parameters()) == expected_rnn
    print(f"GalSpecNet: {expected:,}; SNIascore-style RNN: {expected_rnn:,} parameters")


TINY_MODELS = [
    ("spectranet", "tiny", {}), ("spectranet", "tiny-appleCiDEr-I", {}), ("spectranet", "tiny", {"task": "redshift"}),
    ("spectranet", "tiny", {"norm": ("batchnorm",) * 5}), ("galspecnet", "tiny", {}), ("rnn", "tiny", {}),
    ("rnn", "tiny", {"task": "redshift"}),
]  # fmt: skip


@pytest.mark.parametrize(("arch", "preset", "overrides"), TINY_MODELS)
def test_forward_shapes_no_nan_and_every_parameter_gets_a_gradient(arch, preset, overrides):
    torch.manual_seed(0)
    model = build_model(arch, preset, class_counts=None, **overrides)
    redshift = overrides.get("task") == "redshift"
    flux = torch.randn(4, 4096)
    labels = torch.rand(4) if redshift else torch.tensor([0, 1, 2, 10])
    out = model(flux, labels=labels)
    assert out.logits.shape == (4, 1 if redshift else 11)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    if redshift:
        assert (out.logits > 0).all()  # Softplus
    assert out.embedding.shape == (4, model.num_features)
    out.loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert model(flux).loss is None


@pytest.mark.parametrize(("arch", "preset"), [("spectranet", "tiny"), ("spectranet", "tiny-appleCiDEr-I"),
                                              ("galspecnet", "tiny"), ("rnn", "tiny")])
def test_save_load_identity_and_mismatched_config_fails(tmp_path, arch, preset):
    torch.manual_seed(0)
    model = build_model(arch, preset).eval()
    flux = torch.randn(3, 4096)
    model.save_pretrained(tmp_path / "m", preprocessor={"preprocess": {"num_points": 4096}})
    loaded = type(model).from_pretrained(tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(loaded(flux).logits, model(flux).logits, rtol=0, atol=0)
    assert loaded.preprocessor == {"preprocess": {"num_points": 4096}}
    other = SpectraNet if arch != "spectranet" else GalSpecNet
    with pytest.raises(PretrainedError, match="cannot load"):
        other.from_pretrained(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    text = config_path.read_text()
    if arch == "spectranet":
        config_path.write_text(text.replace('"widths": [\n    4,', '"widths": [\n    5,'))
    elif arch == "galspecnet":
        config_path.write_text(text.replace('"channels": [\n    1,\n    4,', '"channels": [\n    1,\n    5,'))
    else:
        config_path.write_text(text.replace('"hidden": 4', '"hidden": 5'))
    assert config_path.read_text() != text
    with pytest.raises(PretrainedError, match="does not match"):
        type(model).from_pretrained(tmp_path / "m")


def test_fft_and_direct_paper_model_give_the_same_outputs():
    torch.manual_seed(0)
    model = SpectraNet(SpectraNetConfig.from_preset("paper")).eval()
    flux = torch.randn(2, 4096)
    with torch.no_grad():
        fast = model(flux).logits
        direct = model.set_conv_impl("direct")(flux).logits
    torch.testing.assert_close(fast, direct, atol=1e-4, rtol=1e-3)


def test_chunked_inference_equals_full_batch():
    torch.manual_seed(0)
    model = SpectraNet(SpectraNetConfig.from_preset("tiny", inference_chunk=2)).eval()
    flux = torch.randn(5, 4096)
    with torch.no_grad():
        chunked = model(flux).logits
        model.config.inference_chunk = 0
        full = model(flux).logits
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)


def test_class_balanced_focal_loss_from_config_counts():
    model = build_model("spectranet", "tiny", class_names=("SN Ia", "TDE"), class_counts=(900, 10))
    alpha = model.loss_fn.alpha
    assert alpha[1] > 10 * alpha[0]  # the rare class is up-weighted (effective number, β = 0.9999)
    assert "loss_fn.alpha" not in model.state_dict()


def test_mc_dropout_gives_mean_and_std():
    torch.manual_seed(0)
    model = build_model("spectranet", "tiny", head_dropout=(0.5,)).eval()
    mean, std = model.predict_mc(torch.randn(3, 4096), passes=8)
    assert mean.shape == std.shape == (3, 11)
    torch.testing.assert_close(mean.sum(-1), torch.ones(3))
    assert (std > 0).any() and not model.training


def test_config_validation():
    with pytest.raises(ValueError, match="one entry per block"):
        SpectraNetConfig(widths=(4, 8))
    with pytest.raises(ValueError, match="task"):
        SpectraNetConfig(task="segmentation")
    with pytest.raises(ValueError, match="unknown preset"):
        SpectraNetConfig.from_preset("huge")
