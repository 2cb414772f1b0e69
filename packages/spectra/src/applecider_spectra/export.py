"""The spectra inference graph (run by the torch engine, exported to ONNX) for every spectral classifier.

Input ``flux`` (N, L) float32: the preprocessed spectrum on the model's grid (``preprocess_batch``: rest
frame, resampled to ``input_length`` = 4096 points, normalised); batch size dynamic. Output ``logits``
(N, C) in ``config.class_names`` order.

The torch engine keeps the model's own convolution (the FFT route for SpectraNet's large kernels). The
ONNX graph is exported with direct convolutions (ONNX ``Conv``), whose result equals the FFT route within
float tolerance (tests/spectra/test_fftconv.py): the FFT route exported with real-valued channel mixing ran
3× (power-of-two lengths) to 10× (the 2·3·5 lengths) slower in ONNX Runtime's ``DFT`` than its ``Conv``
(SpectraNet ``small``, batch 8, measured while building the export; see docs/onnx.md).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from applecider_core.engines import GraphSpec

INPUT_NAMES = ("flux",)


class SpectraGraph(nn.Module):
    """flux (N, L) → logits (N, C)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        return self.model(flux).logits


def inference_graph(model: nn.Module, for_export: bool = False) -> GraphSpec:
    """The graph with an example batch of two spectra; ``for_export`` switches SpectraNet to direct convolutions
    (on a copy; the weights are the same)."""
    if for_export and hasattr(model, "set_conv_impl"):
        model = copy.deepcopy(model).set_conv_impl("direct")
    length = int(getattr(model.config, "input_length", 4096))
    example = {"flux": np.random.default_rng(0).normal(size=(2, length)).astype(np.float32)}
    layout = f"flux (N, {length}) float32: rest-frame spectrum resampled and normalised as in training"
    return GraphSpec(SpectraGraph(model), INPUT_NAMES, example, {"flux": {0: "batch"}}, "logits",
                     {"input_layout": layout})


__all__ = ["INPUT_NAMES", "SpectraGraph", "inference_graph"]
