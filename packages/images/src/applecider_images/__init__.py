"""AppleCiDEr image + metadata branch: AstroMiNN (metadata towers, split-head ConvNeXt, mixture of experts)
and the BTSbot-style baseline (AppleCiDEr paper I §4)."""

from __future__ import annotations

import json
from pathlib import Path

from .btsbot import BTSbotClassifier
from .configuration import AstroMiNNConfig, BTSbotConfig, ImageInputConfig
from .modeling import AstroMiNN
from .preprocessing import MetadataPreprocessor, preprocess_cutouts
from .spectrum_convnext import SpectrumConvNeXt, SpectrumConvNeXtConfig

__version__ = "0.1.0"

MODEL_CLASSES = {"astrominn": AstroMiNN, "btsbot": BTSbotClassifier}


def build_model(config: AstroMiNNConfig | BTSbotConfig):
    """The model class for a config (by ``model_type``), freshly initialised."""
    return MODEL_CLASSES[type(config).model_type](config)


def load_model(directory: str | Path):
    """Load a saved AstroMiNN or BTSbot model directory (the type is read from config.json)."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no config.json; expected a directory written by save_pretrained")
    model_type = json.loads(path.read_text()).get("model_type")
    if model_type not in MODEL_CLASSES:
        raise ValueError(f"{directory}: model_type {model_type!r} is not one of {sorted(MODEL_CLASSES)}")
    return MODEL_CLASSES[model_type].from_pretrained(directory)


__all__ = [
    "AstroMiNN", "AstroMiNNConfig", "BTSbotClassifier", "BTSbotConfig", "ImageInputConfig", "MetadataPreprocessor",
    "SpectrumConvNeXt", "SpectrumConvNeXtConfig", "build_model", "load_model", "preprocess_cutouts",
]  # fmt: skip
