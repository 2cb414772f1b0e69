"""SNIascore (Fremling et al. 2021 §3): a recurrent SN Ia vs not-Ia classifier and Ia redshift regressor on
SEDM-like spectra.

(B, 209) continuum-normalised SEDM bins → dropout 0.40 → BiLSTM(32) (B, 209, 64) → dropout 0.45 → GRU(32)
(B, 209, 32) → dropout 0.35 → BiLSTM(32), final states (B, 64) → dropout 0.25 → Linear → (B, 2) logits, or
the redshift (B, 1) straight from the linear layer (§3: the softmax and classification layers "replaced by a
custom regression layer", no output activation). The score and its uncertainty are the mean and standard deviation of P(SN Ia) over
``mc_passes`` (100) passes with dropout on (:meth:`SNIascore.predict_scores`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .configuration_sniascore import SNIascoreConfig
from .heads import as_flux_batch, keras_recurrent_init, mc_dropout_predict


def bias_mae_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SNIascore's regression layer: the value is √(MBE²) = |mean(ŷ − y)|, the gradient that of the MAE."""
    error = prediction.float() - target.float()
    mae = error.abs().mean()
    return mae + (error.mean().abs() - mae).detach()


class RecurrentStack(nn.Module):
    """SNIascore's layers: dropout → BiLSTM(h) → dropout → GRU(h) → dropout → BiLSTM(h) → dropout on the last
    BiLSTM's forward and backward final states. (B, L, 1) → (B, 2h). Initialised as MATLAB does
    (:func:`~applecider_spectra.heads.keras_recurrent_init`)."""

    def __init__(self, hidden: int, dropout: tuple[float, ...]) -> None:
        super().__init__()
        self.dropouts = nn.ModuleList(nn.Dropout(p) for p in dropout)
        self.lstm1 = nn.LSTM(1, hidden, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(2 * hidden, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.out_features = 2 * hidden
        keras_recurrent_init(self)  # MATLAB's defaults (the paper's toolbox)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm1(self.dropouts[0](x))  # (B, L, 2h)
        x, _ = self.gru(self.dropouts[1](x))  # (B, L, h)
        _, (final, _) = self.lstm2(self.dropouts[2](x))  # (2, B, h): forward and backward final states
        return self.dropouts[3](torch.cat([final[0], final[1]], dim=-1))  # (B, 2h)


class SNIascore(PretrainedMixin, nn.Module):
    """``forward(flux (B, 209), labels=None)`` → ClassifierOutput(logits (B, 2) or redshift (B, 1), loss,
    embedding (B, 64))."""

    config_class = SNIascoreConfig
    mc_rows_per_batch = 4096  # MC-dropout passes batched together (see heads.mc_dropout_predict)

    def __init__(self, config: SNIascoreConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        self.recurrent = RecurrentStack(config.hidden, config.dropout)
        self.num_features = self.recurrent.out_features
        self.fc = nn.Linear(self.num_features, config.num_outputs)

    def forward_features(self, flux: torch.Tensor) -> torch.Tensor:
        return self.recurrent(as_flux_batch(flux).transpose(1, 2))  # (B, L, 1) → (B, 2h)

    def forward(self, flux: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> ClassifierOutput:
        embedding = self.forward_features(flux)
        out = self.fc(embedding)
        loss = None
        if labels is not None:
            loss = bias_mae_loss(out[:, 0], labels) if self.config.task == "redshift" else F.cross_entropy(out, labels.long())
        return ClassifierOutput(logits=out, loss=loss, embedding=embedding)

    def predict_mc(self, flux: torch.Tensor, passes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """MC dropout: mean and std over passes of the class probabilities (B, 2) or the redshift (B, 1)."""
        return mc_dropout_predict(self, flux, passes or self.config.mc_passes)

    def predict_scores(self, flux: torch.Tensor, passes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """SNIascore and σ_SNIascore (B,): mean and std of P(SN Ia), or of z for the regressor."""
        mean, std = self.predict_mc(flux, passes)
        return mean[:, -1], std[:, -1]


__all__ = ["RecurrentStack", "SNIascore", "bias_mae_loss"]
