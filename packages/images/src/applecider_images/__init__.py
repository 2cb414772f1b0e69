"""AppleCiDEr image + metadata branch: AstroMiNN (metadata towers, split-head ConvNeXt, mixture of experts)
and the BTSbot-style baseline (AppleCiDEr paper I §4).

The models (torch, timm) load on first use, so configs and the numpy preprocessing import without them."""

from __future__ import annotations

import json
from pathlib import Path

from applecider_core.lazy import lazy_exports

from .configuration import AstroMiNNConfig, BTSbotConfig, ImageInputConfig
from .preprocessing import MetadataPreprocessor, preprocess_cutouts

__version__ = "0.1.0"

_model_attr = lazy_exports(__name__, {
    "AstroMiNN": ".modeling", "BTSbotClassifier": ".btsbot", "SpectrumConvNeXt": ".spectrum_convnext",
    "SpectrumConvNeXtConfig": ".spectrum_convnext",
})  # fmt: skip


def __getattr__(name: str):
    if name == "MODEL_CLASSES":
        return {"astrominn": _model_attr("AstroMiNN"), "btsbot": _model_attr("BTSbotClassifier")}
    return _model_attr(name)


def build_model(config: AstroMiNNConfig | BTSbotConfig):
    """The model class for a config (by ``model_type``), freshly initialised."""
    return __getattr__("MODEL_CLASSES")[type(config).model_type](config)


def load_model(directory: str | Path):
    """Load a saved AstroMiNN or BTSbot model directory (the type is read from config.json)."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no config.json; expected a directory written by save_pretrained")
    model_type = json.loads(path.read_text()).get("model_type")
    model_classes = __getattr__("MODEL_CLASSES")
    if model_type not in model_classes:
        raise ValueError(f"{directory}: model_type {model_type!r} is not one of {sorted(model_classes)}")
    return model_classes[model_type].from_pretrained(directory)


__all__ = [
    "MODEL_CLASSES", "AstroMiNN", "AstroMiNNConfig", "BTSbotClassifier", "BTSbotConfig", "ImageInputConfig",
    "MetadataPreprocessor", "SpectrumConvNeXt", "SpectrumConvNeXtConfig", "build_model", "load_model",
    "preprocess_cutouts",
]  # fmt: skip
