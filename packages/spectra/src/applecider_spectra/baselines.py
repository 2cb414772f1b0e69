"""Spectral baselines trained in the same loop as SpectraNet.

- GalSpecNet (Wu et al. 2024; the AppleCiDEr reference config): Conv1d(k=3, no padding) + ReLU layers with
  MaxPool(4) between them, dropout, flatten → Linear. Channels 1 → 64 → 64 → 32 → 32.
- SNIascore-style RNN (Fremling et al. 2021): dropout 0.40 → BiLSTM(32) → dropout 0.45 → GRU(32) → dropout
  0.35 → BiLSTM(32) → dropout 0.25 → Linear, on the grid average-binned to ``input_bins`` steps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .configuration import GalSpecNetConfig, SpectraRNNConfig
from .heads import as_flux_batch, build_loss, make_output, mc_dropout_predict
from .modeling_sniascore import RecurrentStack


class _LinearHeadMixin:
    """``forward`` and MC-dropout prediction for a baseline with ``forward_features`` and a linear ``fc``."""

    def forward(self, flux: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> ClassifierOutput:
        embedding = self.forward_features(flux)
        logits = self.fc(embedding)
        if self.config.task == "redshift":
            logits = F.softplus(logits)
        return make_output(self, logits, embedding, labels)

    def predict_mc(self, flux: torch.Tensor, passes: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
        return mc_dropout_predict(self, flux, passes)


class GalSpecNet(_LinearHeadMixin, PretrainedMixin, nn.Module):
    """(B, 4096) → conv stack → (B, 32·61) → logits (B, classes); the embedding is the flattened features."""

    config_class = GalSpecNetConfig

    def __init__(self, config: GalSpecNetConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        channels = config.channels
        self.convs = nn.ModuleList(nn.Conv1d(channels[i], channels[i + 1], config.kernel_size) for i in range(len(channels) - 1))
        self.pool = nn.MaxPool1d(config.pool)
        self.dropout = nn.Dropout(config.dropout)
        length = config.input_length
        for i in range(len(self.convs)):
            length -= config.kernel_size - 1
            if i < len(self.convs) - 1:
                length //= config.pool
        if length < 1:
            raise ValueError(f"input_length {config.input_length} is too short for {len(self.convs)} conv layers")
        self.num_features = channels[-1] * length  # 32 × 61 = 1952 for 4096 inputs (1632 for 3481)
        self.fc = nn.Linear(self.num_features, config.num_outputs)
        self.loss_fn = build_loss(config)

    def forward_features(self, flux: torch.Tensor) -> torch.Tensor:
        x = as_flux_batch(flux)
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i < len(self.convs) - 1:
                x = self.pool(x)
        return self.dropout(x.flatten(1))  # (B, num_features)


class SpectraRNN(_LinearHeadMixin, PretrainedMixin, nn.Module):
    """(B, 4096) → average-binned (B, input_bins, 1) → BiLSTM → GRU → BiLSTM → final states (B, 2·hidden)
    → logits (B, classes)."""

    config_class = SpectraRNNConfig

    def __init__(self, config: SpectraRNNConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        self.recurrent = RecurrentStack(config.hidden, config.dropout)
        self.num_features = self.recurrent.out_features
        self.fc = nn.Linear(self.num_features, config.num_outputs)
        self.loss_fn = build_loss(config)

    def forward_features(self, flux: torch.Tensor) -> torch.Tensor:
        x = as_flux_batch(flux)
        bin_size = self.config.input_length // self.config.input_bins
        return self.recurrent(F.avg_pool1d(x, bin_size).transpose(1, 2))  # (B, bins, 1) → (B, 2h)


__all__ = ["GalSpecNet", "SpectraRNN"]
