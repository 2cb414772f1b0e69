"""AppleCiDEr photometry: event features, [CLS]-Transformer classifier, masked-event pretraining, Informer.

The torch parts load on first use, so the numpy preprocessing imports without torch (ONNX-only runs)."""

from applecider_core.lazy import lazy_exports

from .configuration import PhotometryConfig
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

__getattr__ = lazy_exports(__name__, {name: ".modeling" for name in (
    "PhotometryClassifier", "collate_events", "fast_inference", "prepare_light_curves")})

__all__ = [
    "EventSequence",
    "FeatureConfig",
    "FeatureStats",
    "NoDetectionsError",
    "PhotometryClassifier",
    "PhotometryConfig",
    "build_events",
    "collate_events",
    "fast_inference",
    "merge_band",
    "merge_events",
    "pad_events",
    "prepare_light_curves",
]
