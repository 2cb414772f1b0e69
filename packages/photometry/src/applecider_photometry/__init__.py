"""AppleCiDEr photometry: event features, [CLS]-Transformer classifier, masked-event pretraining, Informer.

The torch parts load on first use, so the numpy preprocessing imports without torch (ONNX-only runs)."""

from applecider_core.lazy import lazy_exports

from .configuration import PhotometryConfig, PhotometryEnsembleConfig
from .features import (
    EventSequence,
    FeatureConfig,
    FeatureStats,
    NoDetectionsError,
    build_events,
    merge_band,
    merge_events,
    pad_events,
)

__version__ = "0.1.0"

__getattr__ = lazy_exports(__name__, {**{name: ".modeling" for name in (
    "PhotometryClassifier", "collate_events", "fast_inference", "prepare_light_curves")},
    "PhotometryEnsemble": ".ensemble", "load_photometry_model": ".ensemble"})

__all__ = [
    "EventSequence",
    "FeatureConfig",
    "FeatureStats",
    "NoDetectionsError",
    "PhotometryClassifier",
    "PhotometryConfig",
    "PhotometryEnsemble",
    "PhotometryEnsembleConfig",
    "build_events",
    "collate_events",
    "fast_inference",
    "load_photometry_model",
    "merge_band",
    "merge_events",
    "pad_events",
    "prepare_light_curves",
]
