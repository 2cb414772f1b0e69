"""Classification losses: focal loss with optional class weights and label smoothing; class-balanced weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def class_balanced_weights(class_counts: Sequence[int], beta: float = 0.9999) -> np.ndarray:
    """Per-class weights by effective number of samples (Cui et al. 2019): w_c ∝ (1-β)/(1-β^n_c).

    Normalised so the weights sum to the number of classes. Classes with zero samples get weight 0.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if np.any(counts < 0):
        raise ValueError(f"class counts must be non-negative, got {counts.tolist()}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    effective = 1.0 - np.power(beta, counts)
    weights = np.where(counts > 0, (1.0 - beta) / np.where(effective > 0, effective, 1.0), 0.0)
    present = weights > 0
    weights[present] *= present.sum() / weights[present].sum()
    return weights.astype(np.float32)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): mean over the batch of -α_y (1-p_y)^γ log p_y.

    ``alpha`` are per-class weights (C,) (e.g. ``class_balanced_weights``); ``label_smoothing`` spreads
    ε of the target mass uniformly, applied to the cross-entropy term. γ=0 without α is cross-entropy.
    Inputs: logits (B, C), integer targets (B,).
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | torch.Tensor | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=-1)  # (B, C)
        log_p_true = log_probs.gather(1, targets[:, None]).squeeze(1)  # (B,)
        ce = -log_p_true
        if self.label_smoothing > 0:
            ce = (1 - self.label_smoothing) * ce - self.label_smoothing * log_probs.mean(dim=-1)
        loss = (1.0 - log_p_true.exp()).clamp(min=0).pow(self.gamma) * ce
        if self.alpha is not None:
            loss = loss * self.alpha.to(loss.device)[targets]
        return loss.mean()
