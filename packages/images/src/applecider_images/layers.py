"""Building blocks shared by AstroMiNN and the baseline: residual tower block, sine embeddings, losses."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.losses import FocalLoss


class ResidualTowerBlock(nn.Module):
    """Lightweight residual block of paper I §4.1: two linear expansion layers with GELU and a skip path.

    h = Dropout(LN(GELU(W1 x)));  y = W2 h  (⊙ σ(Wg h) with a gating head);  out = y + skip(x)
    where skip is the identity when ``in_dim == out_dim`` and a linear map otherwise.
    Input (B, in_dim) → output (B, out_dim).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, gated: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.expand = nn.Linear(in_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(hidden_dim, out_dim)
        self.gate = nn.Linear(hidden_dim, out_dim) if gated else None
        self.skip = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.norm(F.gelu(self.expand(x))))  # (B, hidden)
        y = self.project(h)  # (B, out)
        if self.gate is not None:
            y = y * torch.sigmoid(self.gate(h))
        return y + self.skip(x)


def sine_embedding(coords_deg: torch.Tensor, num_frequencies: int) -> torch.Tensor:
    """Sinusoidal embedding of sky coordinates.

    coords_deg (B, 2) = (RA, Dec) in degrees → (B, 4·num_frequencies):
    [sin(2^k α), cos(2^k α), sin(2^k δ), cos(2^k δ)] for k = 0..num_frequencies-1 (angles in radians),
    so the lowest frequency is continuous across α = 360° → 0°. Non-finite coordinates give zeros.
    """
    coords = torch.nan_to_num(coords_deg.float(), nan=0.0, posinf=0.0, neginf=0.0) * (math.pi / 180.0)
    freqs = 2.0 ** torch.arange(num_frequencies, device=coords.device, dtype=coords.dtype)  # (K,)
    angles = coords[:, :, None] * freqs  # (B, 2, K)
    emb = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (B, 2, K, 2)
    return emb.permute(0, 1, 3, 2).reshape(coords.shape[0], -1)  # (B, 4K)


class WeightedLossMixin:
    """A focal/cross-entropy criterion whose per-class weights are a run setting, not saved weights."""

    criterion: FocalLoss

    def _init_criterion(self, gamma: float, label_smoothing: float) -> None:
        self.criterion = FocalLoss(gamma=gamma, alpha=None, label_smoothing=label_smoothing)

    def set_class_weights(self, weights: Sequence[float] | torch.Tensor | None) -> None:
        """Per-class loss weights (C,) for training (non-persistent: not part of the saved weights)."""
        tensor = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if tensor is not None and tensor.shape != (self.config.num_classes,):  # type: ignore[attr-defined]
            raise ValueError(f"class weights must have shape ({self.config.num_classes},), got {tuple(tensor.shape)}")  # type: ignore[attr-defined]
        self.criterion.register_buffer("alpha", tensor, persistent=False)
