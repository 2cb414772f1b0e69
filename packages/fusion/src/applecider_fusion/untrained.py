"""Untrained model directories of any preset, for speed benchmarks and tests.

The weights are random, everything else is what training writes: ``save_pretrained`` directories whose
``preprocessor.json`` holds statistics fitted on the given alerts (photometry event statistics, metadata
mean/std) and the default spectrum preprocessing. Loading them exercises exactly the released-model path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from applecider_core.records import Alert
from applecider_core.taxonomy import FINE_CLASSES, SPECTRA_CLASSES


def write_untrained_models(root: str | Path, alerts: Sequence[Alert], preset: str = "tiny", seed: int = 0) -> Path:
    """``root/{photometry,images,spectra}`` with fresh ``preset`` models (one of tiny, small, paper)."""
    from applecider_images import AstroMiNN, AstroMiNNConfig, MetadataPreprocessor
    from applecider_images.preprocessing import preprocessor_dict as images_preprocessor
    from applecider_photometry import (
        FeatureConfig,
        FeatureStats,
        PhotometryClassifier,
        PhotometryConfig,
    )
    from applecider_photometry.features import preprocessor_dict as photometry_preprocessor
    from applecider_spectra import PreprocessConfig, SpectraNet, SpectraNetConfig

    root = Path(root)
    torch.manual_seed(seed)
    features = FeatureConfig()
    stats = FeatureStats.fit(events for a in alerts if (events := _events_or_none(a, features)) is not None)
    PhotometryClassifier(PhotometryConfig.from_preset(preset, class_names=FINE_CLASSES)).save_pretrained(
        root / "photometry", photometry_preprocessor(features, stats))
    images_config = AstroMiNNConfig.from_preset(preset, class_names=FINE_CLASSES)
    metadata = MetadataPreprocessor.fit(np.stack([a.metadata for a in alerts]))
    AstroMiNN(images_config).save_pretrained(root / "images", images_preprocessor(metadata, images_config.image_input))
    SpectraNet(SpectraNetConfig.from_preset(preset, class_names=SPECTRA_CLASSES)).save_pretrained(
        root / "spectra", {"preprocess": PreprocessConfig().to_dict(), "task": "classification"})
    return root


def _events_or_none(alert: Alert, features: object) -> object | None:
    """The alert's event tokens, or None when its light curve has no detection the features can use."""
    from applecider_photometry import NoDetectionsError, build_events

    try:
        return build_events(alert.light_curve, features)
    except NoDetectionsError:
        return None
