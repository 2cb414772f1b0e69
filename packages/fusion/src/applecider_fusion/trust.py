"""Records a user can trust: conformal prediction sets, abstention and out-of-distribution flags.

Fitted on the validation split by ``cider evaluate`` and stored next to the models as ``trust.json``;
``Classifier`` applies them in one place (``TrustSettings.assess``) when a record is made.

- **prediction_set**: the fusion classes c with fused probability p_c ≥ t_c. Thresholds are class-conditional
  (Mondrian) split-conformal quantiles (Vovk 2005; Sadinle, Lei & Wasserman 2019): among the n_c validation
  items of class c, t_c is the ⌈(n_c+1)·coverage⌉-th largest p_c, so a new item of class c gets c in its set
  with probability ≥ coverage. A class with fewer validation items than that needs (n_c < coverage/(1-coverage))
  gets the pooled threshold computed from all classes together (a marginal guarantee only; listed in
  ``pooled_classes``). Fused probabilities depend on which modalities an item has and on the transient's age,
  so thresholds are fitted per group, most specific first: modality pattern and age bin (days since first
  detection, upper edges ``age_edges_days``: the evaluation's horizons; e.g. ``photometry+images@10``), the
  pattern alone (``photometry+images``), then all items (``all``). In a group, a class with too few
  validation items takes its threshold from the next coarser group; a group where no class has enough items
  is not stored, and its items use the next coarser one. ``assess`` says in a note when an item's modality
  pattern had no calibration of its own (its coverage is then not guaranteed). Class-conditional thresholds
  can leave an item with no class at all; such a set gets the top class instead (Sadinle, Lei & Wasserman
  2019, §4.3: filling the null region only adds classes, so every guarantee above still holds), with a note.
- **abstain**: the set is not exactly the top class reached on its own threshold (several classes, one
  other than the argmax, or a filled empty set), or the fused score (top probability) is below
  ``abstain_below``: the lowest score threshold at which the validation items kept reach ``abstain_accuracy``.
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

from .fusion import MODALITIES, FusionError

TRUST_SETTINGS_NAME = "trust.json"
NO_TRUST_NOTE = f"no {TRUST_SETTINGS_NAME} next to the models: prediction_set, abstain and ood not assessed"


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N,) energy −T·logsumexp(logits/T) of (N, C) logits; higher = less like the training data."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1)
    return -temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


ALL = "all"


def pattern_of(modalities: Sequence[str]) -> str:
    """``photometry+images``-style name of a set of modalities (in MODALITIES order)."""
    return "+".join(m for m in MODALITIES if m in modalities)


def age_bins(edges_days: Sequence[float], ages_days: np.ndarray) -> np.ndarray:
    """Index of the first upper edge ≥ each age (ages beyond the last edge go to the last bin)."""
    return np.minimum(np.searchsorted(edges_days, np.asarray(ages_days) - 1e-6), len(edges_days) - 1)


def group_keys(modalities: Sequence[str], edges_days: Sequence[float], age_days: float | None) -> list[str]:
    """Calibration groups of an item, most specific first: pattern@age bin, pattern, all."""
    pattern = pattern_of(modalities)
    keys = [pattern, ALL]
    if edges_days and age_days is not None and np.isfinite(age_days):
        keys.insert(0, f"{pattern}@{edges_days[int(age_bins(edges_days, np.array([age_days]))[0])]:g}")
    return keys


def conformal_threshold(true_class_probs: np.ndarray, coverage: float) -> float | None:
    """Split-conformal threshold on p(true class): the ⌈(n+1)·coverage⌉-th largest; None when n is too small."""
    n = len(true_class_probs)
    rank = math.ceil((n + 1) * coverage)
    if rank > n:
        return None
    return float(np.sort(true_class_probs)[::-1][rank - 1])


def conformal_sets(probs: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) set membership p ≥ t of (N, T) probabilities and thresholds, with an empty set given its top
    class, and (N,) which sets were filled that way."""
    in_set = probs >= thresholds
    filled = ~in_set.any(axis=1)
    in_set[filled, probs[filled].argmax(axis=1)] = True
    return in_set, filled


def fit_class_thresholds(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], coverage: float,
                         fallback: dict[str, float] | None = None) -> tuple[dict[str, float], list[str]]:
    """Per-class thresholds (see module docstring) and the classes without enough items of their own, which
    take ``fallback``'s threshold or, without one, the threshold pooled over all classes."""
    true_probs = probs[np.arange(len(labels)), labels]
    pooled = conformal_threshold(true_probs, coverage)
    if pooled is None and fallback is None:
        raise FusionError(f"{len(labels)} validation items are too few for {coverage:.0%} conformal coverage")
    thresholds, borrowed = {}, []
    for c, name in enumerate(classes):
        own = conformal_threshold(true_probs[labels == c], coverage)
        thresholds[name] = own if own is not None else (fallback[name] if fallback is not None else pooled)
        if own is None:
            borrowed.append(name)
    return thresholds, borrowed


def fit_group_thresholds(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], coverage: float,
                         patterns: np.ndarray, ages: np.ndarray,
                         edges_days: Sequence[float]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Thresholds of every group with enough items (module docstring) and the pooled classes of "all"."""
    overall, pooled = fit_class_thresholds(probs, labels, classes, coverage)
    groups = {ALL: overall}
    finite = np.isfinite(ages)
    bins = age_bins(edges_days, np.where(finite, ages, 0.0)) if edges_days else np.zeros(len(labels), int)
    for pattern in sorted(set(patterns.tolist())):
        subsets = [(pattern, patterns == pattern, ALL)]
        subsets += [(f"{pattern}@{edge:g}", (patterns == pattern) & finite & (bins == b), pattern)
                    for b, edge in enumerate(edges_days)]
        for key, chosen, parent in subsets:
            fitted, borrowed = fit_class_thresholds(probs[chosen], labels[chosen], classes, coverage,
                                                    fallback=groups.get(parent, overall))
            if len(borrowed) < len(classes):  # some class calibrated here
                groups[key] = fitted
    return groups, pooled


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
    group_thresholds: dict[str, dict[str, float]]  # group key (see module docstring) → class → threshold
    pooled_classes: list[str] = field(default_factory=list)  # classes of group "all" on the pooled threshold
    age_edges_days: list[float] = field(default_factory=list)  # upper edges of the age bins (last: and older)
    abstain_below: float = 0.0
    abstain_accuracy: float = 0.9
    min_detections: int | None = None
    metadata_ranges: dict[str, list[float]] = field(default_factory=dict)  # feature → [min, max] in training
    energy_limits: dict[str, float] = field(default_factory=dict)  # modality → validation percentile
    energy_percentile: float = 99.0
    fitted_on: str = ""

    # ---- applying ------------------------------------------------------------------------------------
    def group(self, modalities: Sequence[str], age_days: float | None = None) -> str:
        """The most specific calibrated group of an item with ``modalities``, ``age_days`` after first detection."""
        for key in group_keys(modalities, self.age_edges_days, age_days):
            if key in self.group_thresholds:
                return key
        return ALL

    def prediction_set(self, fused: np.ndarray, group: str = "all") -> tuple[list[str], bool]:
        """Fusion classes in the conformal set of one (T,) fused distribution, with the thresholds of ``group``,
        and whether the set was empty and got the top class."""
        thresholds = np.array([[self.group_thresholds[group][c] for c in self.classes]])
        in_set, filled = conformal_sets(np.asarray(fused, dtype=np.float64)[None], thresholds)
        return [c for c, member in zip(self.classes, in_set[0]) if member], bool(filled[0])

    def ood_reasons(self, logits: Mapping[str, np.ndarray], temperatures: Mapping[str, float],
                    detections: int | None = None, metadata: Mapping[str, float] | None = None,
                    input_reasons: Sequence[str] = ()) -> list[str]:
        """Why one item lies outside the training data (empty when it does not), for the modalities used;
        ``input_reasons`` are the runners' own (e.g. a light curve of an earlier episode's object)."""
        reasons = list(input_reasons)
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
               age_days: float | None = None, input_reasons: Sequence[str] = ()) -> dict:
        """The record fields prediction_set, abstain, ood and ood_reasons for one item (the modalities are the
        keys of ``logits``), and ``notes`` about them."""
        group = self.group(list(logits), age_days)
        members, filled = self.prediction_set(fused, group)
        reasons = self.ood_reasons(logits, temperatures, detections, metadata, input_reasons)
        top = self.classes[int(np.argmax(fused))]
        notes = []
        if group == ALL and pattern_of(list(logits)) not in self.group_thresholds:
            notes.append(f"prediction_set: no validation calibration for {pattern_of(list(logits))} inputs; "
                         "thresholds of all inputs used, coverage not guaranteed")
        if filled:
            notes.append(f"prediction_set: no class reached its threshold; the top class {top} is given")
        abstain = filled or members != [top] or fused.max() < self.abstain_below
        return {"prediction_set": members, "abstain": bool(abstain),
                "ood": bool(reasons), "ood_reasons": reasons, "notes": notes}

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
        if ALL not in settings.group_thresholds:
            raise FusionError(f"{path}: no conformal thresholds for group {ALL!r}")
        for key, thresholds in settings.group_thresholds.items():
            missing = sorted(set(settings.classes) - set(thresholds))
            if missing:
                raise FusionError(f"{path}: group {key!r} has no conformal threshold for classes {missing}")
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
              patterns: np.ndarray, ages: np.ndarray, energies: Mapping[str, np.ndarray],
              min_detections: int | None, metadata_ranges: Mapping[str, Sequence[float]], fitted_on: str,
              age_edges_days: Sequence[float] = ()) -> TrustSettings:
    """Trust settings from validation fused ``probs`` (N, T), ``labels`` (N,), modality ``patterns`` (N,) str,
    ``ages`` (N,) days since first detection (NaN: unknown) and per-modality energies."""
    edges = sorted(float(e) for e in age_edges_days)
    groups, pooled = fit_group_thresholds(probs, labels, classes, config.coverage, np.asarray(patterns),
                                          np.asarray(ages, dtype=np.float64), edges)
    return TrustSettings(
        classes=list(classes), coverage=config.coverage, group_thresholds=groups, pooled_classes=pooled,
        age_edges_days=edges, abstain_below=fit_abstain_threshold(probs, labels, config.abstain_accuracy),
        abstain_accuracy=config.abstain_accuracy, min_detections=min_detections,
        metadata_ranges={k: [float(v[0]), float(v[1])] for k, v in metadata_ranges.items()},
        energy_limits={m: float(np.percentile(e, config.energy_percentile)) for m, e in energies.items() if len(e)},
        energy_percentile=config.energy_percentile, fitted_on=fitted_on,
    )


def trust_report(settings: TrustSettings, probs: np.ndarray, labels: np.ndarray,
                 patterns: np.ndarray | None = None, ages: np.ndarray | None = None) -> dict:
    """Empirical coverage (overall and per class), set sizes and abstention of the settings on labelled items."""
    patterns = np.full(len(labels), "") if patterns is None else np.asarray(patterns)
    ages = np.full(len(labels), np.nan) if ages is None else ages
    groups = [settings.group(p.split("+") if p else [], a) for p, a in zip(patterns, ages)]
    thresholds = np.array([[settings.group_thresholds[g][c] for c in settings.classes] for g in groups])
    in_set, filled = conformal_sets(probs, thresholds.reshape(-1, len(settings.classes)))  # (N, T), (N,)
    covered = in_set[np.arange(len(labels)), labels]
    sizes = in_set.sum(axis=1)
    top_only = (sizes == 1) & in_set[np.arange(len(labels)), probs.argmax(axis=1)] & ~filled
    abstain = ~top_only | (probs.max(axis=1) < settings.abstain_below)
    kept = ~abstain
    correct = probs.argmax(axis=1) == labels
    return {
        "n": len(labels), "target_coverage": settings.coverage, "coverage": float(covered.mean()),
        "per_class_coverage": {c: {"n": int((labels == i).sum()),
                                   "coverage": float(covered[labels == i].mean()) if (labels == i).any() else None}
                               for i, c in enumerate(settings.classes)},
        "mean_set_size": float(sizes.mean()), "filled_sets": float(filled.mean()),
        "abstain_share": float(abstain.mean()),
        "accuracy_kept": float(correct[kept].mean()) if kept.any() else None,
        "accuracy_all": float(correct.mean()),
    }
