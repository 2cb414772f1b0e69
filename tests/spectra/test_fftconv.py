import pytest
import torch
import torch.nn.functional as F

from applecider_spectra.fftconv import (
    FFTConv1d,
    MultiScaleConv1d,
    fft_conv1d_same,
    next_fast_len,
    unfold_conv1d_channels_last,
)


def test_next_fast_len():
    assert [next_fast_len(n) for n in (1, 7, 4606, 1149, 286, 79, 22)] == [1, 8, 4608, 1152, 288, 80, 24]


@pytest.mark.parametrize(("c_in", "c_out", "length", "k"), [
    (1, 4, 4096, 1021), (3, 5, 256, 251), (4, 6, 64, 61), (2, 3, 16, 13), (2, 2, 16, 41), (5, 7, 100, 3),
])  # fmt: skip
def test_fft_conv_equals_conv1d_forward_and_gradients(c_in, c_out, length, k):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(c_in, c_out, k, padding=k // 2)
    fft = FFTConv1d(c_in, c_out, k)
    fft.load_state_dict(conv.state_dict())  # same parameter layout
    x1 = torch.randn(3, c_in, length, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = conv(x1), fft(x2)
    scale = y1.abs().max().item()
    assert y1.shape == y2.shape
    torch.testing.assert_close(y2, y1, atol=2e-5 * max(scale, 1), rtol=1e-4)
    grad = torch.randn_like(y1)
    y1.backward(grad)
    y2.backward(grad)
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-4 * max(x1.grad.abs().max().item(), 1), rtol=1e-4)
    for p1, p2 in zip(conv.parameters(), fft.parameters()):
        torch.testing.assert_close(p2.grad, p1.grad, atol=1e-4 * max(p1.grad.abs().max().item(), 1), rtol=1e-4)


def test_several_kernels_share_one_transform():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 128)
    weights = [torch.randn(4, 3, k) for k in (7, 31, 101)]
    biases = [torch.randn(4), None, torch.randn(4)]
    fused = fft_conv1d_same(x, weights, biases)
    direct = torch.cat([F.conv1d(x, w, b, padding=w.shape[-1] // 2) for w, b in zip(weights, biases)], dim=1)
    torch.testing.assert_close(fused, direct, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="odd"):
        fft_conv1d_same(x, [torch.randn(4, 3, 4)], [None])


def test_unfold_conv_channels_last_matches_conv1d():
    torch.manual_seed(2)
    x = torch.randn(2, 5, 50)
    conv = torch.nn.Conv1d(5, 6, 3, padding=1)
    out = unfold_conv1d_channels_last(x.transpose(1, 2), conv.weight, conv.bias).transpose(1, 2)
    torch.testing.assert_close(out, conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["auto", "fft"])
def test_multiscale_impls_agree_with_direct_and_share_state_dict(impl):
    torch.manual_seed(3)
    direct = MultiScaleConv1d(4, 6, (3, 15, 61), conv_impl="direct")
    fast = MultiScaleConv1d(4, 6, (3, 15, 61), conv_impl=impl, fft_min_kernel=7)
    assert direct.state_dict().keys() == fast.state_dict().keys()
    fast.load_state_dict(direct.state_dict())
    x = torch.randn(2, 4, 256, requires_grad=True)
    y_direct = direct(x)
    y_fast = fast(x)
    torch.testing.assert_close(y_fast, y_direct, atol=1e-4, rtol=1e-4)
    (g1,) = torch.autograd.grad(y_direct.square().sum(), x)
    (g2,) = torch.autograd.grad(y_fast.square().sum(), x)
    torch.testing.assert_close(g2, g1, atol=1e-3, rtol=1e-4)


def test_inference_cache_follows_weight_updates():
    torch.manual_seed(4)
    layer = MultiScaleConv1d(2, 3, (3, 31), conv_impl="auto", fft_min_kernel=7)
    x = torch.randn(1, 2, 64)
    with torch.no_grad():
        before = layer(x)
        layer.convs[1].weight.mul_(2.0)  # in-place update bumps the tensor version
        after = layer(x)
        reference = torch.cat([layer.convs[0](x), layer.convs[1](x)], dim=1)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="conv_impl"):
        layer.set_conv_impl("winograd")

