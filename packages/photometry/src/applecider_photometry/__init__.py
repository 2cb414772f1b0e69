"""AppleCiDEr photometry: event features, [CLS]-Transformer classifier, masked-event pretraining, Informer."""

from .features import (
    EventSequence,
    FeatureConfig,
    FeatureStats,
    NoDetectionsError,
    build_events,
    merge_band,
    merge_events,
)
from .modeling import (
    PhotometryClassifier,
    PhotometryConfig,
    collate_events,
    fast_inference,
    prepare_light_curves,
)

__version__ = "0.1.0"

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
    "prepare_light_curves",
]
