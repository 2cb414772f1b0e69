"""The photometry inference graph (run by the torch engine and exported to ONNX).

Inputs, as ``collate_events`` pads them: ``events`` (B, L, 7) float32 normalised event features, ``mask``
(B, L) bool (True = a real event, False = padding), ``times`` (B, L) float32 days since the first event;
batch size B and sequence length L are dynamic. Output ``logits`` (B, C) in ``config.class_names`` order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from applecider_core.engines import GraphSpec

from .modeling import PhotometryClassifier

INPUT_NAMES = ("events", "mask", "times")


class PhotometryGraph(nn.Module):
    """(events, mask, times) → logits (B, C)."""

    def __init__(self, model: PhotometryClassifier) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, events: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        return self.model(events, mask, times).logits


def inference_graph(model: PhotometryClassifier) -> GraphSpec:
    """The graph with an example batch of two light curves (one padded) and dynamic batch and length."""
    rng = np.random.default_rng(0)
    length, n_features = 8, model.config.n_features
    mask = np.ones((2, length), dtype=bool)
    mask[1, 5:] = False
    example = {"events": rng.normal(size=(2, length, n_features)).astype(np.float32), "mask": mask,
               "times": np.cumsum(rng.uniform(0, 5, (2, length)), axis=1).astype(np.float32)}
    dynamic = {name: {0: "batch", 1: "events"} for name in INPUT_NAMES}
    layout = "events (B, L, 7) float32 normalised event features; mask (B, L) bool True = event; times (B, L) days"
    return GraphSpec(PhotometryGraph(model), INPUT_NAMES, example, dynamic, "logits", {"input_layout": layout})


__all__ = ["INPUT_NAMES", "PhotometryGraph", "inference_graph"]
