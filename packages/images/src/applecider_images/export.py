"""The image + metadata inference graph with the BOOM interface (run by the torch engine, exported to ONNX).

BOOM (the ZTF/LSST broker that runs models through ONNX Runtime) feeds image models exactly this:

- ``triplet`` (N, 63, 63, 3) float32, NHWC, channels science/template/difference, each stamp L2-normalised
  over its finite pixels, NaN → 0 (``preprocessing.boom_inputs`` builds both inputs from alert records);
- ``metadata`` (N, F) float32: the raw alert values of ``preprocessing.boom_features(config)``, in that order (the model's
  metadata features, then ``ra``/``dec`` when the model uses the position and does not list them); NaN,
  ±inf or the legacy -999 sentinel mark a missing value;
- output ``fc_out`` (N, C): logits in ``config.class_names`` order.

Everything else the model needs happens inside the graph, with the fitted statistics as constants: the
centre crop (63 → 49), the radial and sky-position channels, and the metadata transform of
``preprocessing.MetadataPreprocessor`` (signed log1p, standardisation, clipping, missing flags). A test
proves the graph equals the numpy preprocessing followed by the model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from applecider_core.engines import GraphSpec
from applecider_core.records import CUTOUT_SIZE

from .inference import crop_depthwise_kernels, prepare_for_inference
from .preprocessing import (
    COORDINATES,
    MetadataPreprocessor,
    boom_features,
    metadata_preprocessor_for,
    normalise_stamps,
    radial_distance,
    uses_position,
)

INPUT_NAMES = ("triplet", "metadata")
OUTPUT_NAME = "fc_out"


class ExportError(ValueError):
    """A model whose preprocessing cannot be expressed behind the BOOM interface."""


class MetadataTransform(nn.Module):
    """``MetadataPreprocessor.transform`` in torch on the selected raw columns (N, F) → (N, F or 2F)."""

    def __init__(self, prep: MetadataPreprocessor) -> None:
        super().__init__()
        as_tensor = lambda values, dtype=torch.float32: torch.tensor(np.asarray(values), dtype=dtype)  # noqa: E731
        self.register_buffer("mean", as_tensor(prep.mean))
        self.register_buffer("std", as_tensor(prep.std))
        self.register_buffer("log", as_tensor([f in prep.log_features for f in prep.feature_names], torch.bool))
        self.register_buffer("sentinels", as_tensor(prep.sentinels or [np.nan]))
        self.clip, self.indicators = float(prep.clip), prep.missing_indicators

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = ~torch.isfinite(x) | (x[..., None] == self.sentinels).any(dim=-1)  # (N, F)
        x = torch.where(missing, torch.zeros_like(x), x)
        x = torch.where(self.log, torch.sign(x) * torch.log1p(torch.abs(x)), x)
        z = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
        z = torch.where(missing, torch.zeros_like(z), z)
        return torch.cat([z, missing.to(z.dtype)], dim=1) if self.indicators else z


class BoomGraph(nn.Module):
    """(triplet (N, 63, 63, 3), metadata (N, F) raw) → fc_out (N, C); see the module docstring.

    Takes the model over for inference (in place: eval, NHWC weights, depthwise kernels cut to the taps that
    can touch the crop, ``inference.crop_depthwise_kernels``; the outputs are unchanged).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        spec = model.config.image_input
        if spec.validity_channel:
            raise ExportError("validity_channel models need the NaN mask, which the BOOM triplet (NaN → 0) lacks")
        self.model = prepare_for_inference(model, channels_last=True)
        if hasattr(self.model, "image_encoder"):  # 7×7 kernels on 3×3 and 1×1 maps: only their central taps count
            example = torch.zeros(1, spec.num_channels, spec.crop_size, spec.crop_size)
            crop_depthwise_kernels(self.model, example)
        self.crop, self.sky_encoding = spec.crop_size, spec.sky_encoding
        self.top = (CUTOUT_SIZE - spec.crop_size) // 2
        features = boom_features(model.config)
        prep = metadata_preprocessor_for(model.config, model.preprocessor)
        self.register_buffer("model_columns", torch.tensor([features.index(f) for f in prep.feature_names]))
        self.register_buffer("coord_columns", torch.tensor([features.index(c) for c in COORDINATES]
                                                           if uses_position(model.config) else [],
                                                           dtype=torch.long))
        radial = torch.from_numpy(radial_distance(spec.crop_size))[None, None] if spec.radial_channel else None
        self.register_buffer("radial", radial)
        self.transform = MetadataTransform(prep)

    def sky_planes(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, 2) degrees → (N, K) as ``preprocessing.sky_embedding`` (NaN → 0)."""
        ra, dec = torch.deg2rad(coords[:, 0]), torch.deg2rad(coords[:, 1])
        if self.sky_encoding == "unit_vector":
            out = torch.stack([torch.cos(dec) * torch.cos(ra), torch.cos(dec) * torch.sin(ra), torch.sin(dec)], 1)
        else:  # sincos
            out = torch.stack([torch.sin(ra), torch.cos(ra), torch.sin(dec), torch.cos(dec)], 1)
        return torch.nan_to_num(out, nan=0.0)

    def forward(self, triplet: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        n, size = triplet.shape[0], self.crop
        stamps = triplet.permute(0, 3, 1, 2)  # (N, 3, 63, 63), channels-last strides
        channels = [stamps[:, :, self.top : self.top + size, self.top : self.top + size]]
        coords = metadata.index_select(1, self.coord_columns) if self.coord_columns.numel() else None
        if self.radial is not None:
            channels.append(self.radial.expand(n, 1, size, size))
        if self.sky_encoding != "none":
            sky = self.sky_planes(coords)  # (N, K)
            channels.append(sky[:, :, None, None].expand(n, sky.shape[1], size, size))
        images = torch.cat(channels, dim=1).contiguous(memory_format=torch.channels_last)  # (N, C, S, S)
        values = self.transform(metadata.index_select(1, self.model_columns))
        return self.model(images, values, coords).logits


def inference_graph(model: nn.Module) -> GraphSpec:
    """The BOOM-interface graph with an example batch of two alerts and a dynamic batch size."""
    rng = np.random.default_rng(0)
    features = boom_features(model.config)
    triplet = normalise_stamps(rng.normal(size=(2, 3, CUTOUT_SIZE, CUTOUT_SIZE))).transpose(0, 2, 3, 1)
    metadata = rng.uniform(0.1, 50.0, (2, len(features))).astype(np.float32)
    metadata[1, 0] = np.nan  # one missing value
    example = {"triplet": np.ascontiguousarray(triplet), "metadata": metadata}
    props = {
        "input_layout": "triplet (N, 63, 63, 3) float32 NHWC science/template/difference, each stamp "
                             f"{model.config.image_norm}-normalised over finite pixels, NaN → 0; metadata (N, "
                             f"{len(features)}) float32 raw values in metadata_features order, NaN = missing",
        "metadata_features": list(features),
        "triplet_norm": model.config.image_norm,
    }  # fmt: skip
    return GraphSpec(BoomGraph(model), INPUT_NAMES, example, {n: {0: "batch"} for n in INPUT_NAMES}, OUTPUT_NAME,
                     props)


__all__ = ["INPUT_NAMES", "OUTPUT_NAME", "BoomGraph", "ExportError", "MetadataTransform", "inference_graph"]
