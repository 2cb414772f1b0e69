"""CCSNscore binary classifier (Sharma et al. 2025 §3, Fig. 3): a multi-input network, one per one-vs-rest task.

spectrum (B, 256) → BiLSTM(16) → dropout → BiLSTM(16), final states (B, 32)
lightcurve (B, bands, 200, 2) → per band: LSTM(16) → LSTM(16) → LSTM(8), final state (B, 8)   [optional]
dmdt (B, bands, 24, 24) → per band: Conv2D(32, 3) → ReLU → MaxPool 2 → Conv2D(16, 3) → ReLU → MaxPool 2
    → flatten (B, 16·6·6)                                                                      [optional]
concatenated → dropout → Dense(32, ReLU) → dropout → Linear → (B, 1) logit of the target class; sigmoid
probability, BCE loss. Probability and uncertainty: mean and std over ``mc_passes`` (100) MC-dropout passes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .configuration_ccsnscore import CCSNscoreConfig
from .heads import as_flux_batch, keras_recurrent_init, mc_dropout_predict


class StackedRNN(nn.Module):
    """Recurrent layers with dropout between them; returns the final hidden state(s): (B, T, F) → (B, H·dirs).
    Initialised as Keras does (:func:`~applecider_spectra.heads.keras_recurrent_init`)."""

    def __init__(self, input_size: int, units: tuple[int, ...], bidirectional: bool, dropout: float) -> None:
        super().__init__()
        dirs = 2 if bidirectional else 1
        sizes = (input_size, *(u * dirs for u in units[:-1]))
        self.layers = nn.ModuleList(nn.LSTM(i, u, batch_first=True, bidirectional=bidirectional) for i, u in zip(sizes, units))
        self.dropout = nn.Dropout(dropout)
        self.out_features = units[-1] * dirs
        keras_recurrent_init(self)  # Keras' defaults (the paper's framework)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, layer in enumerate(self.layers):
            if k:
                x = self.dropout(x)
            x, (final, _) = layer(x)
        return final.transpose(0, 1).reshape(x.shape[0], -1)  # (B, dirs·H)


class DmDtBranch(nn.Module):
    """Two Conv2D + max-pool stages on one band's (24, 24) histogram: (B, 1, 24, 24) → (B, c2·6·6)."""

    def __init__(self, channels: tuple[int, int], dropout: float) -> None:
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )  # fmt: skip
        self.out_features = c2 * 6 * 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CCSNscoreClassifier(PretrainedMixin, nn.Module):
    """``forward(flux (B, 256), lightcurve=None, dmdt=None, labels=None)`` → logits (B, 1) (the target's logit),
    BCE loss when ``labels`` (0/1) are given, embedding (B, concatenated features)."""

    config_class = CCSNscoreConfig
    mc_rows_per_batch = 2048

    def __init__(self, config: CCSNscoreConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        p = config.dropout
        self.spectrum = StackedRNN(1, config.spectrum_units, True, p)
        features = self.spectrum.out_features
        if "lightcurve" in config.inputs:
            self.lightcurves = nn.ModuleList(StackedRNN(2, config.lightcurve_units, False, p) for _ in config.bands)
            features += sum(branch.out_features for branch in self.lightcurves)
        if "dmdt" in config.inputs:
            self.dmdt = nn.ModuleList(DmDtBranch(config.dmdt_channels, p) for _ in config.bands)
            features += sum(branch.out_features for branch in self.dmdt)
        self.head = nn.Sequential(nn.Dropout(p), nn.Linear(features, config.dense_units), nn.ReLU(), nn.Dropout(p))
        self.num_features = config.dense_units
        self.fc = nn.Linear(config.dense_units, 1)

    def forward_features(self, flux: torch.Tensor, lightcurve: torch.Tensor | None = None,
                         dmdt: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.spectrum(as_flux_batch(flux).transpose(1, 2))]  # (B, 2·units)
        for name, value in (("lightcurve", lightcurve), ("dmdt", dmdt)):
            if name in self.config.inputs and value is None:
                raise ValueError(f"this CCSNscore model (case {self.config.case}) needs the {name!r} input")
        if "lightcurve" in self.config.inputs:
            parts += [branch(lightcurve[:, b].float()) for b, branch in enumerate(self.lightcurves)]
        if "dmdt" in self.config.inputs:
            parts += [branch(dmdt[:, b : b + 1].float()) for b, branch in enumerate(self.dmdt)]
        return self.head(torch.cat(parts, dim=1))

    def forward(self, flux: torch.Tensor, lightcurve: torch.Tensor | None = None, dmdt: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any) -> ClassifierOutput:
        embedding = self.forward_features(flux, lightcurve, dmdt)
        logits = self.fc(embedding)  # (B, 1)
        loss = None if labels is None else F.binary_cross_entropy_with_logits(logits[:, 0], labels.float())
        return ClassifierOutput(logits=logits, loss=loss, embedding=embedding)

    @staticmethod
    def output_probabilities(logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def predict_scores(self, flux: torch.Tensor, passes: int | None = None,
                       **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P(target) and its MC-dropout uncertainty (B,)."""
        mean, std = mc_dropout_predict(self, flux, passes or self.config.mc_passes, **inputs)
        return mean[:, 0], std[:, 0]


__all__ = ["CCSNscoreClassifier", "DmDtBranch", "StackedRNN"]
