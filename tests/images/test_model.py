"""AstroMiNN and BTSbot: towers, routing, losses, shapes, gradients, save/load."""

from __future__ import annotations

import math

import pytest
import torch

from applecider_core.config import ConfigError
from applecider_core.pretrained import PretrainedError
from applecider_core.records import METADATA_FEATURES
from applecider_core.taxonomy import FINE_CLASSES, FUSION_CLASSES
from applecider_images import AstroMiNN, AstroMiNNConfig, BTSbotClassifier, BTSbotConfig, load_model
from applecider_images.moe import load_balancing_loss, specialisation_loss

torch.set_num_threads(1)
F = len(METADATA_FEATURES)


def _inputs(config, batch: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c, s = config.image_input.num_channels, config.crop_size
    images = torch.randn(batch, c, s, s, generator=g)
    metadata = torch.randn(batch, config.metadata_dim, generator=g)
    coords = torch.stack([torch.rand(batch, generator=g) * 360, torch.rand(batch, generator=g) * 180 - 90], 1)
    return images, metadata, coords


@pytest.fixture(scope="module")
def tiny() -> AstroMiNN:
    torch.manual_seed(0)
    return AstroMiNN(AstroMiNNConfig.from_preset("tiny")).eval()


def test_tower_routing_follows_config():
    towers = {"nearest": ("sgscore1", "distpsnr1"), "photometry": ("magpsf", "sigmapsf", "diffmaglim")}
    model = AstroMiNN(AstroMiNNConfig.from_preset("tiny", tower_features=towers)).eval()
    idx = METADATA_FEATURES.index
    assert model.towers.feature_columns["nearest"] == (idx("sgscore1"), idx("distpsnr1"),
                                                       F + idx("sgscore1"), F + idx("distpsnr1"))
    assert model.towers.tower_names == ("nearest", "photometry")
    _, metadata, coords = _inputs(model.config, 4)
    before = model.towers(metadata, coords)
    changed = metadata.clone()
    changed[:, idx("magpsf")] += 5.0  # only the photometry tower reads magpsf
    after = model.towers(changed, coords)
    torch.testing.assert_close(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


def test_unknown_tower_feature_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown metadata features.*'rb'"):
        AstroMiNNConfig(tower_features={"psf": ("chinr", "rb")})
    with pytest.raises(ConfigError):
        AstroMiNNConfig(top_k=5, num_experts=4)


def test_router_picks_exactly_top_two(tiny):
    out = tiny(*_inputs(tiny.config, 16))
    weights, probs = out.extras["expert_weights"], out.extras["router_probs"]
    assert ((weights > 0).sum(dim=1) == 2).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(16))
    top2 = probs.topk(2, dim=1).indices
    assert torch.equal(weights.gather(1, top2) > 0, torch.ones_like(top2, dtype=torch.bool))
    assert out.extras["expert_load"].sum().item() == pytest.approx(1.0)


def test_balance_loss_value_and_gradient_by_hand():
    # probs [[.25, .75], [.4, .6]]; top-1 is expert 1 for both → f = (0, 1), P = (.325, .675)
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(1.5)]], requires_grad=True)
    probs = torch.softmax(logits, dim=1)
    loss = load_balancing_loss(probs, probs.topk(1, dim=1).indices, num_experts=2)
    assert loss.item() == pytest.approx(2 * 0.675)
    loss.backward()
    # dL/dp = K f / B = (0, 1); through the softmax: p_i (g_i - Σ p g)
    torch.testing.assert_close(logits.grad, torch.tensor([[-0.1875, 0.1875], [-0.24, 0.24]]))
    uniform = torch.full((4, 4), 0.25)
    idx = torch.tensor([[0, 1], [2, 3], [0, 1], [2, 3]])
    assert load_balancing_loss(uniform, idx, 4).item() == pytest.approx(1.0)  # balanced minimum


def test_specialisation_loss_by_hand():
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    # labels 4 → 4 mod 3 = expert 1; 2 → expert 2: squared errors (.25 + .25 + 0) and 0 over 6 entries
    assert specialisation_loss(probs, torch.tensor([4, 2])).item() == pytest.approx(0.5 / 6)


@pytest.mark.parametrize("class_names", [FINE_CLASSES, FUSION_CLASSES])
def test_output_width_follows_class_names(class_names):
    model = AstroMiNN(AstroMiNNConfig.from_preset("tiny", class_names=class_names)).eval()
    assert model(*_inputs(model.config, 2)).logits.shape == (2, len(class_names))


def test_coordinates_change_output_through_aux_head():
    # no coordinate tower, ra/dec not in any tower, no sky channels: coords only reach the aux head
    towers = {"psf": ("chinr", "sharpnr"), "mag": ("magpsf", "sigmapsf")}
    config = AstroMiNNConfig.from_preset("tiny", tower_features=towers, sky_encoding="none")
    model = AstroMiNN(config).eval()
    images, metadata, coords = _inputs(config, 4)
    flipped = torch.stack([(coords[:, 0] + 180.0) % 360.0, -coords[:, 1]], dim=1)
    with torch.no_grad():
        a, b = model(images, metadata, coords), model(images, metadata, flipped)
        towers_a, towers_b = model.towers(metadata, coords), model.towers(metadata, flipped)
    for x, y in zip(towers_a, towers_b):
        torch.testing.assert_close(x, y)
    assert (a.logits - b.logits).abs().max() > 1e-5


def test_forward_backward_every_parameter_gets_gradient():
    torch.manual_seed(1)
    config = AstroMiNNConfig.from_preset("tiny", specialisation_weight=0.1)
    model = AstroMiNN(config).train()
    labels = torch.arange(16) % config.num_classes
    out = model(*_inputs(config, 16), labels=labels)
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits).all()
    assert out.aux_loss is not None and "specialisation_loss" in out.extras
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    assert out.embedding.shape == (16, model.fused_dim)


def test_class_weights_are_a_run_setting(tiny, tmp_path):
    tiny.set_class_weights(torch.ones(tiny.config.num_classes))
    assert "criterion.alpha" not in tiny.state_dict()
    with pytest.raises(ValueError):
        tiny.set_class_weights(torch.ones(3))
    tiny.set_class_weights(None)


def test_save_load_identity_and_mismatch(tiny, tmp_path):
    inputs = _inputs(tiny.config, 3)
    tiny.save_pretrained(tmp_path / "m", preprocessor={"format": "x"})
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, AstroMiNN) and loaded.preprocessor == {"format": "x"}
    with torch.no_grad():
        torch.testing.assert_close(tiny(*inputs).logits, loaded(*inputs).logits, rtol=0, atol=0)
        torch.testing.assert_close(tiny.forward_features(*inputs), loaded.forward_features(*inputs), rtol=0, atol=0)
    other = AstroMiNN(AstroMiNNConfig.from_preset("tiny", tower_out_dim=4))
    from applecider_core.pretrained import load_weights

    with pytest.raises(PretrainedError, match="does not match"):
        load_weights(other, tmp_path / "m")
    with pytest.raises(PretrainedError, match="astrominn"):
        BTSbotClassifier.from_pretrained(tmp_path / "m")


def test_input_shape_errors(tiny):
    images, metadata, coords = _inputs(tiny.config, 2)
    with pytest.raises(ValueError, match="images"):
        tiny(images[:, :3], metadata, coords)
    with pytest.raises(ValueError, match="metadata"):
        tiny(images, metadata[:, :F], coords)


def test_btsbot_tiny(tmp_path):
    torch.manual_seed(0)
    config = BTSbotConfig.from_preset("tiny", class_names=FUSION_CLASSES)
    model = BTSbotClassifier(config)
    images, metadata, coords = _inputs(config, 4)
    assert images.shape == (4, 3, 63, 63)
    out = model(images, metadata, coords, labels=torch.tensor([0, 1, 2, 3]))
    assert out.logits.shape == (4, 5) and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval().save_pretrained(tmp_path / "b")
    loaded = load_model(tmp_path / "b")
    with torch.no_grad():
        torch.testing.assert_close(model(images, metadata).logits, loaded(images, metadata).logits)


def test_depthwise_kernel_crop_is_exact_for_the_input_size():
    import copy

    from applecider_images.inference import crop_depthwise_kernels

    model = AstroMiNN(AstroMiNNConfig.from_preset("tiny")).eval()
    inputs = _inputs(model.config, 3)
    cropped = copy.deepcopy(model)
    assert crop_depthwise_kernels(cropped, inputs[0]) > 0  # 49 px: stages on 3×3 and 1×1 maps
    sizes = {m.kernel_size for m in cropped.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert sizes == {(7, 7), (5, 5), (1, 1)}
    with torch.no_grad():
        torch.testing.assert_close(cropped(*inputs).logits, model(*inputs).logits, rtol=1e-5, atol=1e-6)


def test_local_backbone_weights_adapt_the_stem(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("convnext_atto", pretrained=False, num_classes=5, in_chans=3)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "atto.safetensors"))
    config = AstroMiNNConfig.from_preset("tiny", backbone_weights=str(tmp_path / "atto.safetensors"))
    backbone = AstroMiNN(config).image_encoder.backbone
    stem = backbone.stem[0].weight  # (40, 7, 4, 4)
    torch.testing.assert_close(stem[:, :3], source.stem[0].weight)
    assert (stem[:, 3:] == 0).all()
    torch.testing.assert_close(backbone.stages[3].blocks[0].mlp.fc1.weight, source.stages[3].blocks[0].mlp.fc1.weight)
    with pytest.raises(FileNotFoundError):
        AstroMiNN(AstroMiNNConfig.from_preset("tiny", backbone_weights=str(tmp_path / "missing.pt")))
