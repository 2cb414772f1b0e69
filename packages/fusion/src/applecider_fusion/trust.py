"""Records a user can trust: conformal prediction sets, abstention and out-of-distribution flags.

Fitted on the validation split by ``cider evaluate`` and stored next to the models as ``trust.json``;
``Classifier`` applies them in one place (``TrustSettings.assess``) when a record is made.

- **prediction_set**: the fusion classes c with fused probability p_c ≥ t_c. Thresholds are class-conditional
  (Mondrian) split-conformal quantiles (Vovk 2005; Sadinle, Lei & Wasserman 2019): among the n_c validation
  items of class c, t_c is the ⌈(n_c+1)·coverage⌉-th largest p_c, so a new item of class c gets c in its set
  with probability ≥ coverage. A class with fewer validation items than that needs (n_c < coverage/(1-coverage))
  gets the pooled threshold computed from all classes together (a marginal guarantee only; listed in
  ``pooled_classes``). What a model knows changes with the age of the transient, so thresholds are also fitted
  per age bin (days since first detection, upper edges ``age_edges_days``: the evaluation's horizons); an item
  of unknown age uses the thresholds fitted on all ages together (``class_thresholds``).
- **abstain**: the set is not exactly the top class (several classes, none, or one other than the argmax),
  or the fused score (top probability) is below ``abstain_below``: the lowest score threshold at which the
  validation items kept reach ``abstain_accuracy``.
- **ood** / **ood_reasons**: the input lies outside what the models saw: fewer detections than any training
  light curve, a metadata value outside its training range, or a modality's energy score
  (−T·logsumexp(z/T), Liu et al. 2020) above its validation ``energy_percentile``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .fusion import FusionError

TRUST_SETTINGS_NAME = "trust.json"
NO_TRUST_NOTE = f"no {TRUST_SETTINGS_NAME} next to the models: prediction_set, abstain and ood not assessed"


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N,) energy −T·logsumexp(logits/T) of (N, C) logits; higher = less like the training data."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1)
    return -temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def age_bins(edges_days: Sequence[float], ages_days: np.ndarray) -> np.ndarray:
    """Index of the first upper edge ≥ each age (ages beyond the last edge go to the last bin)."""
    return np.minimum(np.searchsorted(edges_days, np.asarray(ages_days) - 1e-6), len(edges_days) - 1)


def conformal_threshold(true_class_probs: np.ndarray, coverage: float) -> float | None:
    """Split-conformal threshold on p(true class): the ⌈(n+1)·coverage⌉-th largest; None when n is too small."""
    n = len(true_class_probs)
    rank = math.ceil((n + 1) * coverage)
    if rank > n:
        return None
    return float(np.sort(true_class_probs)[::-1][rank - 1])


def fit_class_thresholds(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                         coverage: float) -> tuple[dict[str, float], list[str]]:
    """Per-class thresholds (see module docstring) and the classes that fell back to the pooled one."""
    true_probs = probs[np.arange(len(labels)), labels]
    pooled = conformal_threshold(true_probs, coverage)
    if pooled is None:
        raise FusionError(f"{len(labels)} validation items are too few for {coverage:.0%} conformal coverage")
    thresholds, fallback = {}, []
    for c, name in enumerate(classes):
        own = conformal_threshold(true_probs[labels == c], coverage)
        thresholds[name] = pooled if own is None else own
        if own is None:
            fallback.append(name)
    return thresholds, fallback


def fit_abstain_threshold(probs: np.ndarray, labels: np.ndarray, target_accuracy: float) -> float:
    """Lowest top-probability threshold whose kept validation items reach ``target_accuracy`` (1.0 if none)."""
    scores = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    order = np.argsort(-scores)
    kept_accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)  # keeping the k most confident
    good = np.flatnonzero(kept_accuracy >= target_accuracy)
    return float(scores[order][good.max()]) if good.size else 1.0


@dataclass
class TrustSettings:
    """What ``cider evaluate`` fits on validation (see module docstring); JSON next to the models."""

    classes: list[str]
    coverage: float
    class_thresholds: dict[str, float]  # all ages together
    pooled_classes: list[str] = field(default_factory=list)
    age_edges_days: list[float] = field(default_factory=list)  # upper edges of the age bins (last: and older)
    thresholds_by_age: list[dict[str, float]] = field(default_factory=list)  # one per age bin
    abstain_below: float = 0.0
    abstain_accuracy: float = 0.9
    min_detections: int | None = None
    metadata_ranges: dict[str, list[float]] = field(default_factory=dict)  # feature → [min, max] in training
    energy_limits: dict[str, float] = field(default_factory=dict)  # modality → validation percentile
    energy_percentile: float = 99.0
    fitted_on: str = ""

    # ---- applying ------------------------------------------------------------------------------------
    def thresholds(self, age_days: float | None = None) -> dict[str, float]:
        """Per-class thresholds for an item ``age_days`` after first detection (None/NaN: all ages)."""
        if age_days is None or not np.isfinite(age_days) or not self.age_edges_days:
            return self.class_thresholds
        return self.thresholds_by_age[int(age_bins(self.age_edges_days, np.array([age_days]))[0])]

    def prediction_set(self, fused: np.ndarray, age_days: float | None = None) -> list[str]:
        """Fusion classes in the conformal set of one (T,) fused distribution."""
        thresholds = self.thresholds(age_days)
        return [c for c, p in zip(self.classes, fused) if p >= thresholds[c]]

    def ood_reasons(self, logits: Mapping[str, np.ndarray], temperatures: Mapping[str, float],
                    detections: int | None = None, metadata: Mapping[str, float] | None = None) -> list[str]:
        """Why one item lies outside the training data (empty when it does not), for the modalities used."""
        reasons = []
        if detections is not None and self.min_detections is not None and detections < self.min_detections:
            reasons.append(f"photometry: {detections} detection(s), fewer than any training light curve "
                           f"({self.min_detections})")
        for name, value in (metadata or {}).items():
            low, high = self.metadata_ranges.get(name, (-math.inf, math.inf))
            if np.isfinite(value) and not low <= value <= high:
                reasons.append(f"metadata: {name}={value:.4g} outside the training range [{low:.4g}, {high:.4g}]")
        for modality, row in logits.items():
            if modality in self.energy_limits:
                value = float(energy_score(np.asarray(row)[None], temperatures.get(modality, 1.0))[0])
                if value > self.energy_limits[modality]:
                    reasons.append(f"{modality}: energy {value:.3g} above the validation "
                                   f"{self.energy_percentile:g}th percentile {self.energy_limits[modality]:.3g}")
        return reasons

    def assess(self, fused: np.ndarray, logits: Mapping[str, np.ndarray], temperatures: Mapping[str, float],
               detections: int | None = None, metadata: Mapping[str, float] | None = None,
               age_days: float | None = None) -> dict:
        """The record fields prediction_set, abstain, ood and ood_reasons for one item."""
        members = self.prediction_set(fused, age_days)
        reasons = self.ood_reasons(logits, temperatures, detections, metadata)
        top = self.classes[int(np.argmax(fused))]
        return {"prediction_set": members, "abstain": bool(members != [top] or fused.max() < self.abstain_below),
                "ood": bool(reasons), "ood_reasons": reasons}

    # ---- storage -------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrustSettings:
        path = Path(path)
        values = json.loads(path.read_text())
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise FusionError(f"{path}: unknown keys {unknown}; allowed: {sorted(allowed)}")
        settings = cls(**values)
        for thresholds in (settings.class_thresholds, *settings.thresholds_by_age):
            missing = sorted(set(settings.classes) - set(thresholds))
            if missing:
                raise FusionError(f"{path}: no conformal threshold for classes {missing}")
        if len(settings.thresholds_by_age) != len(settings.age_edges_days):
            raise FusionError(f"{path}: {len(settings.age_edges_days)} age bins but "
                              f"{len(settings.thresholds_by_age)} threshold sets")
        return settings


def read_trust_settings(models_dir: str | Path) -> TrustSettings | None:
    """``models_dir/trust.json`` or None when absent (older model directories)."""
    path = Path(models_dir) / TRUST_SETTINGS_NAME
    return TrustSettings.load(path) if path.is_file() else None


@dataclass
class TrustFitConfig:
    """Run settings of the fit (the ``trust:`` block of configs/fusion.yaml)."""

    coverage: float = 0.9
    abstain_accuracy: float = 0.9
    energy_percentile: float = 99.0

    def __post_init__(self) -> None:
        for name in ("coverage", "abstain_accuracy"):
            if not 0 < getattr(self, name) < 1:
                raise FusionError(f"trust.{name} must be in (0, 1), got {getattr(self, name)}")
        if not 0 < self.energy_percentile <= 100:
            raise FusionError(f"trust.energy_percentile must be in (0, 100], got {self.energy_percentile}")


def fit_trust(config: TrustFitConfig, classes: Sequence[str], probs: np.ndarray, labels: np.ndarray,
              ages: np.ndarray, energies: Mapping[str, np.ndarray], min_detections: int | None,
              metadata_ranges: Mapping[str, Sequence[float]], fitted_on: str,
              age_edges_days: Sequence[float] = ()) -> TrustSettings:
    """Trust settings from validation fused ``probs`` (N, T), ``labels`` (N,), ``ages`` (N,) days since first
    detection and per-modality energies; one threshold set per age bin of ``age_edges_days``."""
    thresholds, pooled = fit_class_thresholds(probs, labels, classes, config.coverage)
    settings = TrustSettings(
        classes=list(classes), coverage=config.coverage, class_thresholds=thresholds, pooled_classes=pooled,
        abstain_below=fit_abstain_threshold(probs, labels, config.abstain_accuracy),
        abstain_accuracy=config.abstain_accuracy, min_detections=min_detections,
        metadata_ranges={k: [float(v[0]), float(v[1])] for k, v in metadata_ranges.items()},
        energy_limits={m: float(np.percentile(e, config.energy_percentile)) for m, e in energies.items() if len(e)},
        energy_percentile=config.energy_percentile, fitted_on=fitted_on,
    )
    if age_edges_days:
        edges = sorted(float(e) for e in age_edges_days)
        finite = np.isfinite(ages)
        bins = age_bins(edges, np.where(finite, ages, 0.0))
        for b, edge in enumerate(edges):
            chosen = finite & (bins == b)
            try:
                by_age = fit_class_thresholds(probs[chosen], labels[chosen], classes, config.coverage)[0]
            except FusionError:  # too few validation items of this age: the all-ages thresholds
                by_age = dict(thresholds)
            settings.thresholds_by_age.append(by_age)
            settings.age_edges_days.append(edge)
    return settings


def trust_report(settings: TrustSettings, probs: np.ndarray, labels: np.ndarray,
                 ages: np.ndarray | None = None) -> dict:
    """Empirical coverage (overall and per class), set sizes and abstention of the settings on labelled items."""
    ages = np.full(len(labels), np.nan) if ages is None else ages
    thresholds = np.array([[settings.thresholds(a)[c] for c in settings.classes] for a in ages]).reshape(-1, len(settings.classes))
    in_set = probs >= thresholds  # (N, T)
    covered = in_set[np.arange(len(labels)), labels]
    sizes = in_set.sum(axis=1)
    top_only = (sizes == 1) & in_set[np.arange(len(labels)), probs.argmax(axis=1)]
    abstain = ~top_only | (probs.max(axis=1) < settings.abstain_below)
    kept = ~abstain
    correct = probs.argmax(axis=1) == labels
    return {
        "n": len(labels), "target_coverage": settings.coverage, "coverage": float(covered.mean()),
        "per_class_coverage": {c: {"n": int((labels == i).sum()),
                                   "coverage": float(covered[labels == i].mean()) if (labels == i).any() else None}
                               for i, c in enumerate(settings.classes)},
        "mean_set_size": float(sizes.mean()), "empty_sets": float((sizes == 0).mean()),
        "abstain_share": float(abstain.mean()),
        "accuracy_kept": float(correct[kept].mean()) if kept.any() else None,
        "accuracy_all": float(correct.mean()),
    }
