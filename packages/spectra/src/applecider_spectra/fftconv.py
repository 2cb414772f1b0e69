"""Exact 'same'-padded 1-D convolutions computed with the FFT, for SpectraNet's large kernels.

Direct convolution costs ``B·C_out·C_in·k·L`` multiply-adds; for the 1021- and 251-tap kernels of SpectraNet
that is most of the network's compute. The FFT route costs ``O(B·C_in·n log n)`` for the transforms plus one
complex channel-mixing product per frequency, ``B·C_in·C_out·(n/2+1)``, independent of ``k``.

Exactness: the result equals ``nn.Conv1d(padding=k // 2)`` (PyTorch's cross-correlation) up to float32
round-off. With a transform length ``n >= L + k_max // 2`` the circular correlation has no wrap-around inside
the ``L`` output samples we keep (the input is zero-padded on the right, and the kernel is rotated so that its
centre tap sits at index 0; negative offsets wrap into the zero padding).

Several kernels applied to the same input (the parallel paths of a SpectraBlock) share one input transform
and one channel-mixing product: their kernels are stacked along the output channels.

Parameters stay in ``nn.Conv1d`` modules, so state dicts are identical whichever implementation runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

CONV_IMPLS = ("auto", "fft", "direct")


def next_fast_len(n: int) -> int:
    """Smallest integer >= ``n`` whose prime factors are 2, 3 and 5 (fast pocketfft/MKL sizes)."""
    if n <= 1:
        return 1
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            value = p35
            while value < n:
                value *= 2
            best = min(best, value)
            p35 *= 3
        p5 *= 5
    return best


def transform_length(length: int, kernel_sizes: Sequence[int], multiple: int = 1) -> int:
    """FFT length without wrap-around for 'same' outputs of ``length`` samples: a fast size >= L + k//2 (and
    >= k, so that the kernel fits the buffer), divisible by ``multiple``."""
    k_max = max(kernel_sizes)
    n = next_fast_len(max(length + k_max // 2, k_max))
    while n % multiple:
        n = next_fast_len(n + 1)
    return n


def kernel_spectra(weights: Sequence[torch.Tensor], n: int) -> torch.Tensor:
    """Spectra of kernels (C_out_i, C_in, k_i), stacked and laid out for the mixing product: (F, C_in, ΣC_out).

    Correlation with ``w`` is convolution with ``w`` reversed; the reversed kernel is rotated so that its
    centre tap sits at index 0 (taps before the centre wrap to the end of the length-``n`` buffer).
    """
    buffers = []
    for w in weights:
        k = w.shape[-1]
        if k % 2 == 0:
            raise ValueError(f"'same' FFT convolution needs odd kernel sizes, got {k}")
        buffer = F.pad(w.flip(-1).float(), (0, n - k))
        buffers.append(torch.roll(buffer, shifts=-(k // 2), dims=-1))
    spectrum = torch.fft.rfft(torch.cat(buffers), n=n)  # (C_out, C_in, F)
    return spectrum.permute(2, 1, 0).contiguous()  # (F, C_in, C_out): contiguous, or bmm falls off a cliff


def fft_conv1d_same(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None],
                    spectra: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-correlate ``x`` (B, C_in, L) with every kernel in ``weights`` (C_out_i, C_in, k_i), odd ``k_i``.

    Returns (B, ΣC_out_i, L): the outputs of ``F.conv1d(x, w_i, b_i, padding=k_i // 2)`` concatenated along
    channels, from one forward transform of ``x``, one batched complex matmul and one inverse transform.
    ``spectra`` may pass precomputed :func:`kernel_spectra` (inference cache). Computed in float32.
    """
    if not weights:
        raise ValueError("fft_conv1d_same needs at least one kernel")
    _batch, _, length = x.shape
    n = transform_length(length, [w.shape[-1] for w in weights])
    if spectra is None:
        spectra = kernel_spectra(weights, n)
    spectrum_x = torch.fft.rfft(x.float(), n=n)  # (B, C_in, F)
    mixed = torch.bmm(spectrum_x.permute(2, 0, 1).contiguous(), spectra)  # (F, B, C_out)
    out = torch.fft.irfft(mixed.permute(1, 2, 0), n=n)[..., :length]  # (B, C_out, L)
    if any(b is not None for b in biases):
        bias = torch.cat([b if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases)])
        out = out + bias.float()[None, :, None]
    return out.to(x.dtype)


class FFTConv1d(nn.Conv1d):
    """``nn.Conv1d`` with 'same' padding whose forward runs through the FFT (same parameters, same output).

    Only stride 1, dilation 1, groups 1 and odd kernels are supported: what SpectraNet needs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        if kernel_size % 2 == 0:
            raise ValueError(f"FFTConv1d needs an odd kernel size, got {kernel_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fft_conv1d_same(x, [self.weight], [self.bias])


class MultiScaleConv1d(nn.Module):
    """Parallel 'same' Conv1d paths over one input, concatenated along channels: (B, C_in, L) → (B, P·C_out, L).

    ``conv_impl``: ``"direct"`` runs every path with ``nn.Conv1d``; ``"fft"`` runs every path through one
    shared FFT; ``"auto"`` uses the FFT for every path of a layer whose largest kernel is at least
    ``fft_all_paths_kernel``, otherwise for paths with ``kernel_size >= fft_min_kernel``, and a direct
    (unfold + matmul) convolution for the rest. The parameters live in ``self.convs`` (plain ``nn.Conv1d``) in every mode.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int],
                 conv_impl: str = "auto", fft_min_kernel: int = 7, fft_all_paths_kernel: int = 128) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be odd for 'same' padding, got {list(kernel_sizes)}")
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.convs = nn.ModuleList(nn.Conv1d(in_channels, out_channels, k, padding=k // 2) for k in self.kernel_sizes)
        self.fft_min_kernel = fft_min_kernel
        self.fft_all_paths_kernel = fft_all_paths_kernel
        self.set_conv_impl(conv_impl)

    def set_conv_impl(self, conv_impl: str) -> None:
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
        self.conv_impl = conv_impl
        if conv_impl == "fft":
            self._use_fft = [True] * len(self.kernel_sizes)
        elif conv_impl == "direct":
            self._use_fft = [False] * len(self.kernel_sizes)
        elif max(self.kernel_sizes) >= self.fft_all_paths_kernel:  # the input transform is paid anyway
            self._use_fft = [True] * len(self.kernel_sizes)
        else:
            self._use_fft = [k >= self.fft_min_kernel for k in self.kernel_sizes]

        self._cache: tuple[tuple, torch.Tensor] | None = None

    def _cached_spectra(self, weights: list[torch.Tensor], n: int) -> torch.Tensor | None:
        """Kernel spectra reused across calls when no gradient is needed (weights unchanged since last call)."""
        if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            return None
        key = (n, weights[0].device, *((w.data_ptr(), w._version) for w in weights))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, kernel_spectra(weights, n))
        return self._cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, L) → (B, P·C_out, L)."""
        return self.forward_channels_last(x.transpose(1, 2)).transpose(1, 2)

    def forward_channels_last(self, x: torch.Tensor, keep_tail: bool = False, multiple: int = 1) -> torch.Tensor:
        """(B, L, C_in) → (B, L, P·C_out). Channels-last keeps the following LayerNorm, GELU and 1×1
        projection on contiguous rows (SpectraNet's first block is memory-bound at 192 × 4096 per spectrum).

        ``keep_tail``: when every path runs through the FFT, return all ``n >= L`` samples of the inverse
        transform (B, n, P·C_out), ``n`` divisible by ``multiple``; the first ``L`` are the convolution and
        the caller drops the rest after its per-position operations (saves a slice copy and a concatenation).
        """
        parts: list[torch.Tensor | None] = [None] * len(self.convs)
        fft_paths = [i for i, use in enumerate(self._use_fft) if use]
        if fft_paths:
            weights = [self.convs[i].weight for i in fft_paths]
            n = transform_length(x.shape[1], [w.shape[-1] for w in weights], multiple)
            spectra = self._cached_spectra(weights, n)
            whole = keep_tail and len(fft_paths) == len(self.convs)
            fused = fft_conv1d_channels_last(x, weights, [self.convs[i].bias for i in fft_paths], spectra, n, whole)
            if whole:
                return fused
            for i, part in zip(fft_paths, fused.split([self.convs[i].out_channels for i in fft_paths], dim=-1)):
                parts[i] = part
        for i, use in enumerate(self._use_fft):
            if use:
                continue
            conv = self.convs[i]
            if self.conv_impl == "direct":  # the reference: plain nn.Conv1d
                parts[i] = conv(x.transpose(1, 2)).transpose(1, 2)
            else:
                parts[i] = unfold_conv1d_channels_last(x, conv.weight, conv.bias)
        return torch.cat(parts, dim=-1)  # type: ignore[arg-type]


def fft_conv1d_channels_last(x: torch.Tensor, weights: Sequence[torch.Tensor],
                             biases: Sequence[torch.Tensor | None], spectra: torch.Tensor | None = None,
                             n: int | None = None, keep_tail: bool = False) -> torch.Tensor:
    """:func:`fft_conv1d_same` on channels-last tensors: x (B, L, C_in) → (B, L, ΣC_out_i), or all
    (B, n, ΣC_out_i) samples of the inverse transform with ``keep_tail`` (the first L are the result)."""
    _batch, length, in_channels = x.shape
    n = n or transform_length(length, [w.shape[-1] for w in weights])
    if spectra is None:
        spectra = kernel_spectra(weights, n)
    spectrum_x = torch.fft.rfft(x.float(), n=n, dim=1).transpose(0, 1)  # (F, B, C_in)
    if in_channels == 1:  # an outer product per frequency: broadcasting beats a K=1 matmul
        mixed = spectrum_x * spectra  # (F, B, 1) * (F, 1, C_out)
    else:
        mixed = torch.bmm(spectrum_x.contiguous(), spectra)  # (F, B, C_out)
    if any(b is not None for b in biases):
        # a constant b in every output sample is n·b in the DC bin: saves a pass over the (B, L, C) output
        bias = torch.cat([b if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases)])
        mixed = torch.cat([mixed[:1] + n * bias.float(), mixed[1:]]) if mixed.requires_grad else mixed
        if not mixed.requires_grad:
            mixed[0] += n * bias.float()
    out = torch.fft.irfft(mixed.transpose(0, 1), n=n, dim=1)  # (B, n, C_out)
    return (out if keep_tail else out[:, :length]).to(x.dtype)


def unfold_conv1d_channels_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Small-kernel 'same' correlation as one matmul over k shifted copies: x (B, L, C_in), weight
    (C_out, C_in, k) → (B, L, C_out)."""
    k = weight.shape[-1]
    length = x.shape[1]
    padded = F.pad(x, (0, 0, k // 2, k // 2))  # (B, L + k - 1, C_in)
    columns = torch.cat([padded[:, j:j + length] for j in range(k)], dim=-1)  # (B, L, k·C_in)
    matrix = weight.permute(2, 1, 0).reshape(k * weight.shape[1], weight.shape[0])  # (k·C_in, C_out)
    out = columns @ matrix
    return out + bias if bias is not None else out


__all__ = [
    "CONV_IMPLS", "FFTConv1d", "MultiScaleConv1d", "fft_conv1d_channels_last", "fft_conv1d_same", "kernel_spectra", "next_fast_len",
    "transform_length", "unfold_conv1d_channels_last",
]
