"""Late fusion by class-wise averaging of predicted probabilities (AppleCiDEr paper I §6), coverage-aware.

Each modality model predicts over its own classes (fine, spectra, ...). Its probabilities are first summed into
the fusion taxonomy's classes (``core.taxonomy.projection_matrix``: e.g. SN Ia + SN Ib + SN Ic → SN I), then
averaged over the modalities present for each object, with optional per-modality weights. A missing modality
is left out of both the sum and the weights, so the result is a proper distribution over whatever exists.
Optional per-modality temperatures (fitted on validation logits) calibrate each member before averaging.

Coverage. A model *covers* the fusion classes its class names map to (a model trained without CV covers no
CV). It says nothing about the others: it neither votes zero for them nor spreads its mass onto them. Formally
the fused distribution q is the fixed point of

    q = Σ_m w_m e_m(q) / Σ_m w_m,    e_m(q)_c = p_m,c · q(S_m)  for c in S_m,    e_m(q)_c = q_c  otherwise,

where S_m is model m's covered set, p_m its distribution over S_m and q(S_m) the fused mass on S_m: within its
classes a model redistributes the mass the fusion gives them (its probabilities renormalised over the covered
classes), outside them it repeats the consensus. Consequences (tested): with full coverage this is the plain
weighted mean; a model covering one class changes nothing; classes no present model covers get 0; when the
other models cover everything, a model leaves the fused probability of every class it does not cover as they
had it. q is found by power iteration from the uniform distribution over the covered classes (the map is a
column-stochastic matrix; one step when every model covers every class). If the present models' class sets do
not overlap at all, nothing relates their masses and the split between the groups stays the uniform start's.
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

    def covered(self, modality: str) -> tuple[str, ...]:
        """Fusion classes that ``modality``'s model covers (some of its classes map to them)."""
        return tuple(c for c, hit in zip(self.classes, self._projections[modality].any(axis=0)) if hit)

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
        """Fused (N, T) probabilities (coverage-aware mean, see the module docstring).

        ``logits[m]`` is (N, C_m) for modality m (rows of absent items are ignored); ``present[m]`` (N,) bool
        says which rows have that modality (default: all). Rows with no modality at all are NaN.
        """
        if not logits:
            raise FusionError("nothing to fuse: no modality given")
        n = len(next(iter(logits.values())))
        members = []  # (probabilities (N, T), covered (T,), weight per row (N,))
        for modality, values in logits.items():
            if len(values) != n:
                raise FusionError(f"{modality}: {len(values)} rows, expected {n}")
            mask = np.ones(n, bool) if present is None or modality not in present else np.asarray(present[modality], bool)
            probs = np.zeros((n, self.taxonomy.num_classes))
            if mask.any():
                probs[mask] = self.to_taxonomy(modality, np.asarray(values)[mask])
            members.append((probs, self._projections[modality].any(axis=0), mask * self.weights.get(modality, 1.0)))
        return coverage_aware_mean(members)

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


def coverage_aware_mean(members: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], max_steps: int = 500,
                        tolerance: float = 1e-12) -> np.ndarray:
    """Fixed point q of the module docstring's map, per row; NaN rows where no member has weight.

    ``members``: (probabilities (N, T) over the fusion classes, zero outside the member's covered classes;
    covered (T,) bool; weight (N,) ≥ 0, 0 where the member is absent).
    """
    n, t = members[0][0].shape
    weight_sum = np.sum([w for _, _, w in members], axis=0)  # (N,)
    reachable = np.zeros((n, t), bool)
    for _, covered, weight in members:
        reachable |= (weight > 0)[:, None] & covered[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = reachable / reachable.sum(axis=1, keepdims=True)  # uniform over the covered classes
        shares = [(p, covered, w / weight_sum) for p, covered, w in members]
    q = np.nan_to_num(q)
    for _ in range(max_steps):
        new = np.zeros_like(q)
        for p, covered, share in shares:
            own_mass = q[:, covered].sum(axis=1, keepdims=True)  # (N, 1): the fusion's mass on S_m
            new += np.nan_to_num(share)[:, None] * (p * own_mass + q * ~covered)
        done = np.abs(new - q).max() <= tolerance if n else True
        q = new
        if done:
            break
    q[weight_sum <= 0] = np.nan
    return q


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
