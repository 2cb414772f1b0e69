"""Light-curve datasets for training and evaluation: records → normalised event tensors (one code path).

``EventDataset`` holds raw :class:`LightCurve` records and builds features in ``__getitem__`` so that
augmentation acts on the records (before merging and feature extraction) and the horizon can change
between evaluations without rebuilding anything else.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from applecider_core.records import LightCurve
from applecider_core.taxonomy import Taxonomy

from .augment import ALERT_HISTORY_DAYS, AugmentConfig, alert_history_view, augment_light_curve
from .features import (
    FeatureConfig,
    FeatureStats,
    NoDetectionsError,
    build_events,
    build_many,
    clean_detections,
)

logger = logging.getLogger(__name__)


@dataclass
class LabelledCurve:
    light_curve: LightCurve
    label: int  # class index, -1 when unlabelled
    augment: bool = False  # an oversampled copy that gets augmented


class EventDataset(Dataset):
    """Items ``{"events": (L, 7) normalised, "times": (L,) Δt days, "labels": int}`` built on the fly (cached
    unless the item is a random view: an augmented copy or, with ``alert_window_days``, an alert-history view)."""

    def __init__(self, curves: Sequence[LabelledCurve], feature_config: FeatureConfig, stats: FeatureStats,
                 augment: AugmentConfig | None = None, alert_window_days: float | None = None) -> None:
        self.feature_config = feature_config
        self.stats = stats
        self.augment = augment
        self.alert_window_days = alert_window_days  # set: every item is a fresh random alert-history view
        self._cache: dict[int, dict[str, Any]] = {}
        self.curves, dropped = [], 0
        for curve in curves:  # a curve whose events all lie past the horizon (Δt from jdstarthist) has no input
            try:
                item = self._make(curve.light_curve, curve.label)
            except NoDetectionsError:
                dropped += 1
                continue
            if not self._random(curve):
                self._cache[len(self.curves)] = item
            self.curves.append(curve)
        if dropped:
            logger.info("%d light curves without events within %s d of their first detection left out", dropped,
                        feature_config.horizon_days)

    def __len__(self) -> int:
        return len(self.curves)

    def _random(self, curve: LabelledCurve) -> bool:
        """Whether ``curve``'s item is drawn anew at every access (an alert-history view or an augmented copy)."""
        return self.alert_window_days is not None or (curve.augment and self.augment is not None)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.curves[index]
        if not self._random(item):
            return self._cache[index]  # every other item was built (and cached) in __init__
        # Random views are seeded from torch's global RNG, which the training loop reseeds every epoch.
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        light_curve = item.light_curve
        if self.alert_window_days is not None:
            light_curve = alert_history_view(light_curve, self.feature_config.horizon_days, rng, self.alert_window_days)
        if item.augment and self.augment is not None:
            light_curve = augment_light_curve(light_curve, self.augment, rng)
        return self._make(light_curve, item.label)

    def _make(self, lc: LightCurve, label: int) -> dict[str, Any]:
        seq = build_events(lc, self.feature_config)
        return {"events": self.stats.normalise(seq.features), "times": seq.times_days, "labels": label}

    def with_horizon(self, horizon_days: float | None, keep_augment: bool = False) -> EventDataset:
        """The same records with another horizon (by default without augmentation: the horizon sweep)."""
        config = dataclasses.replace(self.feature_config, horizon_days=horizon_days)
        if keep_augment:
            return EventDataset(self.curves, config, self.stats, self.augment)
        return EventDataset([LabelledCurve(c.light_curve, c.label) for c in self.curves], config, self.stats)

    def with_alert_views(self, window_days: float = ALERT_HISTORY_DAYS) -> EventDataset:
        """The same records (and augmentation) seen as alert packets: each item a random alert-history view
        (:func:`~applecider_photometry.augment.alert_history_view`) within this dataset's horizon."""
        return EventDataset(self.curves, self.feature_config, self.stats, self.augment, window_days)


def usable_curves(curves: Sequence[LabelledCurve], bands: Sequence[str]) -> tuple[list[LabelledCurve], list[tuple[str, str]]]:
    """Curves with at least one usable detection in ``bands``; the others as (object_id, reason)."""
    kept, errors = [], []
    for curve in curves:
        try:
            clean_detections(curve.light_curve, bands)
            kept.append(curve)
        except NoDetectionsError as err:
            errors.append((err.object_id, err.reason))
    return kept, errors


def load_split(dataset: Any, split: str | None, taxonomy: Taxonomy | None, class_names: Sequence[str] | None,
               bands: Sequence[str], labelled_only: bool = True) -> list[LabelledCurve]:
    """Light curves of ``split`` from a :class:`applecider_core.dataset.SharedDataset`.

    Labels are mapped with ``taxonomy`` onto ``class_names``; objects outside them are dropped when
    ``labelled_only`` (fine-tuning) and kept with label -1 otherwise (pretraining). Objects without usable
    detections are skipped and counted in the log.
    """
    labels = dict(zip(dataset.objects["object_id"], dataset.objects["label"]))
    curves, outside = [], Counter()
    for object_id in dataset.light_curve_ids(split):
        cls = taxonomy.class_of(labels.get(object_id)) if taxonomy is not None else None
        index = class_names.index(cls) if class_names is not None and cls in class_names else -1
        if index < 0 and labelled_only:
            outside[str(labels.get(object_id))] += 1
            continue
        curves.append(LabelledCurve(dataset.light_curve(object_id), index))
    curves, errors = usable_curves(curves, bands)
    logger.info("split %s: %d light curves; %d without usable detections; outside the classes: %s",
                split, len(curves), len(errors), dict(outside))
    return curves


def restrict_classes(curves: Sequence[LabelledCurve], class_names: Sequence[str], kept: Sequence[str]
                     ) -> list[LabelledCurve]:  # fmt: skip
    """Curves of the ``kept`` classes with labels re-indexed from ``class_names`` to ``kept``."""
    new_index = {class_names.index(name): i for i, name in enumerate(kept)}
    return [LabelledCurve(c.light_curve, new_index[c.label], c.augment) for c in curves if c.label in new_index]


def fit_stats(curves: Sequence[LabelledCurve], feature_config: FeatureConfig) -> FeatureStats:
    """Normalisation statistics from (training) curves at the training horizon."""
    sequences, _ = build_many((c.light_curve for c in curves), feature_config)
    return FeatureStats.fit(sequences)


def cap_per_class(curves: Sequence[LabelledCurve], cap: int, seed: int = 0) -> list[LabelledCurve]:
    """At most ``cap`` curves per class: a seeded random subset of each larger class, input order kept."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(curves), dtype=bool)
    labels = np.array([c.label for c in curves])
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        keep[members[rng.permutation(len(members))[:cap]]] = True
    return [c for c, k in zip(curves, keep) if k]


def oversample(curves: Sequence[LabelledCurve], class_index: int, target: int | None = None) -> list[LabelledCurve]:
    """Add augmented copies of class ``class_index`` until it has ``target`` members.

    ``target`` defaults to the median count of the other present classes. Only the added copies are
    augmented; the originals are left as they are.
    """
    counts = Counter(c.label for c in curves)
    members = [c for c in curves if c.label == class_index]
    if not members:
        return list(curves)
    if target is None:
        others = [n for label, n in counts.items() if label != class_index]
        target = int(np.median(others)) if others else len(members)
    extra = max(0, target - len(members))
    copies = [LabelledCurve(members[i % len(members)].light_curve, class_index, True) for i in range(extra)]
    logger.info("oversampling class %d: %d originals + %d augmented copies", class_index, len(members), extra)
    return [*curves, *copies]
