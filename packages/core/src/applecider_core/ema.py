"""Exponential moving average of model weights, used for evaluation and for the saved model."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    """Shadow copy of floating-point parameters and buffers: shadow ← d·shadow + (1-d)·current.

    Has ``state_dict``/``load_state_dict`` so Accelerate's ``register_for_checkpointing`` saves it.
    ``apply_to(model)`` temporarily swaps the averaged weights in (for evaluation).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        # Warm-up of the decay, as in timm's ModelEmaV2 / TF: early averages follow the weights closely.
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if value.dtype.is_floating_point:
                shadow.mul_(decay).add_(value.detach().to(shadow.device), alpha=1 - decay)
            else:
                shadow.copy_(value)

    @contextmanager
    def apply_to(self, model: nn.Module):
        backup = copy.deepcopy(model.state_dict())
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(backup)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.num_updates = state["num_updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
