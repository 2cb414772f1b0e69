"""Late fusion by class-wise averaging of predicted probabilities (AppleCiDEr paper I §6).

Each modality model predicts over its own classes (fine, spectra, ...). Its probabilities are first summed into
the fusion taxonomy's classes (``core.taxonomy.projection_matrix``: e.g. SN Ia + SN Ib + SN Ic → SN I), then
averaged over the modalities present for each object, with optional per-modality weights. A missing modality
is left out of both the sum and the weights, so the result is a proper distribution over whatever exists.
Optional per-modality temperatures (fitted on validation logits) calibrate each member before averaging.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from applecider_core.metrics import fit_temperature, softmax
from applecider_core.taxonomy import FUSION, Taxonomy, TaxonomyError, projection_matrix

MODALITIES = ("photometry", "images", "spectra")


class FusionError(ValueError):
    """Inputs the fusion cannot combine (unknown modality, class lists that do not map, shape mismatch)."""


@dataclass
class ProbabilityFusion:
    """Maps each modality's classes onto ``taxonomy`` and averages probabilities over present modalities."""

    class_names: Mapping[str, Sequence[str]]  # modality → the model's class names, in logit order
    taxonomy: Taxonomy = FUSION
    weights: Mapping[str, float] = field(default_factory=dict)  # default 1 for every modality
    temperatures: Mapping[str, float] = field(default_factory=dict)  # default 1 (no calibration)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.class_names) - set(MODALITIES))
        if unknown:
            raise FusionError(f"unknown modalities {unknown}; allowed: {list(MODALITIES)}")
        self._projections = {}
        for modality, names in self.class_names.items():
            try:
                self._projections[modality] = projection_matrix(list(names), self.taxonomy)
            except TaxonomyError as error:
                raise FusionError(f"{modality} model: {error}") from None
        for name, value in {**self.weights, **self.temperatures}.items():
            if name not in self.class_names:
                raise FusionError(f"weight/temperature given for {name!r}, which has no model")
            if not value > 0:
                raise FusionError(f"weights and temperatures must be > 0, got {name}={value}")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.taxonomy.classes

    def to_taxonomy(self, modality: str, logits: np.ndarray) -> np.ndarray:
        """(N, C_m) logits of one modality → (N, T) probabilities over the fusion classes."""
        if modality not in self._projections:
            raise FusionError(f"no model for modality {modality!r}; have {sorted(self._projections)}")
        logits = np.asarray(logits, dtype=np.float64)
        projection = self._projections[modality]
        if logits.ndim != 2 or logits.shape[1] != projection.shape[0]:
            raise FusionError(f"{modality}: expected logits (N, {projection.shape[0]}), got {logits.shape}")
        return softmax(logits, self.temperatures.get(modality, 1.0)) @ projection

    def fuse(self, logits: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Fused (N, T) probabilities.

        ``logits[m]`` is (N, C_m) for modality m (rows of absent items are ignored); ``present[m]`` (N,) bool
        says which rows have that modality (default: all). Rows with no modality at all are NaN.
        """
        if not logits:
            raise FusionError("nothing to fuse: no modality given")
        n = len(next(iter(logits.values())))
        total = np.zeros((n, self.taxonomy.num_classes))
        weight_sum = np.zeros(n)
        for modality, values in logits.items():
            if len(values) != n:
                raise FusionError(f"{modality}: {len(values)} rows, expected {n}")
            mask = np.ones(n, bool) if present is None or modality not in present else np.asarray(present[modality], bool)
            if not mask.any():
                continue
            weight = self.weights.get(modality, 1.0)
            total[mask] += weight * self.to_taxonomy(modality, np.asarray(values)[mask])
            weight_sum[mask] += weight
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / weight_sum[:, None]

    def fit_temperatures(self, validation: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """Per-modality temperature from validation (logits, fusion-class labels); stored on this object.

        Labels are indices into the fusion taxonomy; each member's projected probabilities are calibrated
        through its own logits, so the NLL is that of the projected distribution.
        """
        fitted = {}
        for modality, (logits, labels) in validation.items():
            fitted[modality] = _fit_projected_temperature(logits, labels, self._projections[modality])
        self.temperatures = {**self.temperatures, **fitted}
        return fitted


def _fit_projected_temperature(logits: np.ndarray, labels: np.ndarray, projection: np.ndarray) -> float:
    """Temperature minimising NLL of softmax(logits/T) summed into fusion classes (1-D search over log T)."""
    if projection.shape[0] == projection.shape[1] and np.allclose(projection, np.eye(projection.shape[0])):
        return fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
    labels = np.asarray(labels, dtype=np.int64)

    def nll(t: float) -> float:
        probs = softmax(logits, t) @ projection
        return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))

    return float(min(grid, key=nll))
