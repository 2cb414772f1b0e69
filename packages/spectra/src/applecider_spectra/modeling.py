"""SpectraNet (AppleCiDEr II §3.1; the paper I §5 variant as ``variant="appleCiDEr-I"``).

Five SpectraBlocks of three parallel 'same' Conv1d paths (small/medium/large kernels), concatenated,
normalised, GELU, then projected back to C channels with a 1×1 convolution and max-pooled ×4 (the last block
neither projects nor pools, so the paper preset ends at 3·1024 = 3072 channels × 16 positions). An adaptive
max pool to 16 positions and two fully connected layers (3072·16 → 384 → classes, LayerNorm + GELU +
dropout) follow.

Shapes for the paper preset: (B, 1, 4096) → (B, 64, 1024) → (B, 128, 256) → (B, 256, 64) → (B, 512, 16)
→ (B, 3072, 16) → adaptive max pool (B, 3072, 16) → flatten (B, 49152) → (B, 384) → (B, classes).
Large kernels run through an exact FFT convolution (``fftconv``) unless ``conv_impl="direct"``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .configuration import SpectraNetConfig
from .fftconv import MultiScaleConv1d
from .heads import as_flux_batch, build_loss, make_output, mc_dropout_predict


def make_norm(kind: str, channels: int) -> nn.Module:
    return nn.LayerNorm(channels) if kind == "layernorm" else nn.BatchNorm1d(channels)


def norm_channels_last(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Normalise channels of a channels-last (B, L, C) tensor (LayerNorm per position, or BatchNorm)."""
    if isinstance(norm, nn.LayerNorm):
        return norm(x)
    return norm(x.reshape(-1, x.shape[-1])).view_as(x)


class TriPool1d(nn.Module):
    """Max, average and min pooling concatenated along channels: (B, C, L) → (B, 3C, L // k)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return torch.cat([F.max_pool1d(x, k), F.avg_pool1d(x, k), -F.max_pool1d(-x, k)], dim=1)


class ChannelGate(nn.Module):
    """Sigmoid channel attention (squeeze-and-excitation): x · σ(W₂ GELU(W₁ mean_L(x))); (B, C, L) → same."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1, self.fc2 = nn.Linear(channels, hidden), nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.gelu(self.fc1(x.mean(dim=-1)))))  # (B, C)
        return x * gate[:, :, None]


class SpectraBlock(nn.Module):
    """One SpectraBlock on channels-last tensors: (B, L, C_in) → (B, L // downsample, C), or (B, L, 3C) when
    ``last``. Parameters keep the ``nn.Conv1d`` layout (the 1×1 projection runs as a matmul)."""

    def __init__(self, config: SpectraNetConfig, index: int, in_channels: int) -> None:
        super().__init__()
        width, kernels = config.widths[index], config.kernel_sizes[index]
        paths = len(kernels)
        self.last = index == len(config.widths) - 1
        self.variant = config.variant
        self.multiscale = MultiScaleConv1d(in_channels, width, kernels, config.conv_impl, config.fft_min_kernel,
                                           config.fft_all_paths_kernel)
        self.norm = make_norm(config.norm[index], paths * width)
        if config.variant == "paper":
            self.project = None if self.last else nn.Conv1d(paths * width, width, 1)
            self.downsample = config.downsample
        else:  # appleCiDEr-I: TriPool → channel gate → projection + skip
            self.tripool = None if self.last else TriPool1d(config.downsample)
            gated = paths * width * (1 if self.last else 3)
            self.gate = ChannelGate(gated, config.gate_reduction)
            self.project = None if self.last else nn.Conv1d(gated, width, 1)
            self.skip = nn.Conv1d(in_channels, paths * width if self.last else width, 1)
            self.skip_pool = None if self.last else nn.AvgPool1d(config.downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        # per-position ops (LayerNorm, GELU, 1×1 projection) may run on the FFT's tail samples, dropped after
        # pooling: exact, and cheaper than slicing the (B, L, 3C) tensor first
        keep_tail = self.variant == "paper" and not self.last and isinstance(self.norm, nn.LayerNorm)
        h = self.multiscale.forward_channels_last(x, keep_tail, getattr(self, "downsample", 1))
        h = F.gelu(norm_channels_last(self.norm, h))  # (B, L or n, P·C)
        if self.variant == "paper":
            if self.last:
                return h
            h = F.linear(h, self.project.weight[:, :, 0], self.project.bias)  # (B, L, C)
            batch, full, channels = h.shape
            d = self.downsample
            h = h[:, : full // d * d].reshape(batch, full // d, d, channels).amax(dim=2)  # max pool ×4
            return h[:, : length // d]
        h, x = h.transpose(1, 2), x.transpose(1, 2)  # appleCiDEr-I block works channels-first
        if not self.last:
            h = self.tripool(h)  # (B, 3·P·C, L / 4)
            x = self.skip_pool(x)
        h = self.gate(h)
        if self.project is not None:
            h = self.project(h)
        return (h + self.skip(x)).transpose(1, 2)


class SpectraNet(PretrainedMixin, nn.Module):
    """SpectraNet classifier (``task="classification"``) or redshift regressor (``task="redshift"``).

    ``forward(flux (B, 4096) or (B, 1, 4096), labels=None)`` → ClassifierOutput with logits (B, classes) or
    the Softplus redshift (B, 1), the loss when ``labels`` (class indices, or redshifts) are given, and the
    embedding (B, head_hidden[-1]).
    """

    config_class = SpectraNetConfig

    def __init__(self, config: SpectraNetConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        blocks, in_channels = [], 1
        for i in range(len(config.widths)):
            blocks.append(SpectraBlock(config, i, in_channels))
            in_channels = config.widths[i]
        self.blocks = nn.ModuleList(blocks)
        self.trunk_channels = len(config.kernel_sizes[-1]) * config.widths[-1]
        self.pool = nn.AdaptiveMaxPool1d(config.head_pool)
        layers: list[nn.Module] = []
        features = self.trunk_channels * config.head_pool
        for hidden, dropout in zip(config.head_hidden, config.head_dropout):
            layers += [nn.Linear(features, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)]
            features = hidden
        self.head = nn.Sequential(*layers)
        self.num_features = features
        self.fc = nn.Linear(features, config.num_outputs)
        self.loss_fn = build_loss(config)

    def set_conv_impl(self, conv_impl: str) -> SpectraNet:
        """Switch every block between ``auto``/``fft``/``direct`` convolution (weights are unchanged)."""
        for module in self.modules():
            if isinstance(module, MultiScaleConv1d):
                module.set_conv_impl(conv_impl)
        return self

    def batch_pieces(self, x: torch.Tensor, length: int) -> tuple[torch.Tensor, ...]:
        """The pieces of the batch ``x`` that a block with input ``length`` runs on: ``inference_chunk`` items
        at a time for the long (≥ 1024) early blocks without autograd (they are memory-bound: small batch chunks
        stay in cache; same result), else the whole batch."""
        chunk = self.config.inference_chunk
        if chunk and not torch.is_grad_enabled() and length >= 1024 and x.shape[0] > chunk:  # shape, not len(): a symbolic batch stays symbolic in the ONNX export
            return x.split(chunk)
        return (x,)

    def forward_trunk(self, flux: torch.Tensor) -> list[torch.Tensor]:
        """Output of every block: [(B, 64, 1024), (B, 128, 256), (B, 256, 64), (B, 512, 16), (B, 3072, 16)]."""
        x, outputs = as_flux_batch(flux).transpose(1, 2), []  # channels-last (B, L, 1)
        for block in self.blocks:
            pieces = self.batch_pieces(x, x.shape[1])
            x = block(x) if len(pieces) == 1 else torch.cat([block(part) for part in pieces])
            outputs.append(x.transpose(1, 2))
        return outputs

    def forward_features(self, flux: torch.Tensor) -> torch.Tensor:
        """Embedding (B, head_hidden[-1]): the input of the last linear layer."""
        trunk = self.forward_trunk(flux)[-1]  # (B, 3C, L_last)
        return self.head(self.pool(trunk).flatten(1))

    def forward_head(self, embedding: torch.Tensor) -> torch.Tensor:
        out = self.fc(embedding)
        return F.softplus(out) if self.config.task == "redshift" else out

    def forward(self, flux: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> ClassifierOutput:
        embedding = self.forward_features(flux)
        return make_output(self, self.forward_head(embedding), embedding, labels)

    def predict_mc(self, flux: torch.Tensor, passes: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
        """Monte-Carlo dropout: mean and std of the class probabilities over ``passes`` passes (B, C)."""
        return mc_dropout_predict(self, flux, passes)


__all__ = ["ChannelGate", "SpectraBlock", "SpectraNet", "TriPool1d"]
