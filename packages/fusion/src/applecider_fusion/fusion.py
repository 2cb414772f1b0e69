"""Late fusion by class-wise averaging of predicted probabilities (AppleCiDEr paper I §6), coverage-aware.

Each modality model predicts over its own classes (fine, spectra, ...). Its probabilities are first summed into
the fusion taxonomy's classes (``core.taxonomy.projection_matrix``: e.g. SN Ia + SN Ib + SN Ic → SN I), then
averaged over the modalities present for each object, with optional per-modality weights. A missing modality
is left out of both the sum and the weights, so the result is a proper distribution over whatever exists.
Each member is calibrated before averaging: p_m = softmax(z_m / T_m + b_m), with a temperature T_m and a per-class
logit bias b_m (bias-corrected temperature scaling; default T = 1, b = 0). ``fit_calibration`` fits both on
validation (see :func:`fit_member_calibration`): the bias undoes the class prior a model learnt from its training
sampler (capped, oversampled, weighted classes) where the validation split has the natural one; a model's
outputs on inputs that carry little information (a one-night light curve) are that prior.

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
from typing import Any

import numpy as np

from applecider_core.metrics import softmax
from applecider_core.taxonomy import FUSION, Taxonomy, TaxonomyError, projection_matrix

MODALITIES = ("photometry", "images", "spectra")
# Gaussian priors of the calibration fit (MAP): log T ~ N(0, 1), each bias ~ N(0, 1). With thousands of validation
# cases the data decide; with a few dozen (images here) the fit stays near T = 1, b = 0 instead of driving T to
# the edge of its range on a separable handful (T = 0.05 on 2026-12-02's images validation without it).
PRIOR_LOG_TEMPERATURE_SD = 1.0
PRIOR_BIAS_SD = 1.0


class FusionError(ValueError):
    """Inputs the fusion cannot combine (unknown modality, class lists that do not map, shape mismatch)."""


@dataclass
class ProbabilityFusion:
    """Maps each modality's classes onto ``taxonomy`` and averages probabilities over present modalities."""

    class_names: Mapping[str, Sequence[str]]  # modality → the model's class names, in logit order
    taxonomy: Taxonomy = FUSION
    weights: Mapping[str, float] = field(default_factory=dict)  # default 1 for every modality
    temperatures: Mapping[str, float] = field(default_factory=dict)  # default 1 (no calibration)
    biases: Mapping[str, Sequence[float]] = field(default_factory=dict)  # per-class logit offsets, default 0

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
        for name, bias in self.biases.items():
            if name not in self.class_names:
                raise FusionError(f"bias given for {name!r}, which has no model")
            if len(bias) != len(self.class_names[name]) or not np.isfinite(np.asarray(bias, float)).all():
                raise FusionError(f"{name}: bias must be {len(self.class_names[name])} finite numbers (one per "
                                  f"class of the model), got {list(bias)}")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.taxonomy.classes

    def covered(self, modality: str) -> tuple[str, ...]:
        """Fusion classes that ``modality``'s model covers (some of its classes map to them)."""
        return tuple(c for c, hit in zip(self.classes, self._projections[modality].any(axis=0)) if hit)

    def member_probabilities(self, modality: str, logits: np.ndarray) -> np.ndarray:
        """(N, C_m) logits of one modality → its calibrated (N, C_m) probabilities, softmax(z / T + b)."""
        if modality not in self._projections:
            raise FusionError(f"no model for modality {modality!r}; have {sorted(self._projections)}")
        logits = np.asarray(logits, dtype=np.float64)
        n_classes = self._projections[modality].shape[0]
        if logits.ndim != 2 or logits.shape[1] != n_classes:
            raise FusionError(f"{modality}: expected logits (N, {n_classes}), got {logits.shape}")
        temperature = self.temperatures.get(modality, 1.0)
        bias = np.asarray(self.biases.get(modality, np.zeros(n_classes)), dtype=np.float64)
        return softmax(logits / temperature + bias)

    def to_taxonomy(self, modality: str, logits: np.ndarray) -> np.ndarray:
        """(N, C_m) logits of one modality → (N, T) calibrated probabilities over the fusion classes."""
        return self.member_probabilities(modality, logits) @ self._projections[modality]

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

    def fit_calibration(self, validation: Mapping[str, tuple[np.ndarray, ...]], fit_bias: bool = True
                        ) -> dict[str, dict[str, Any]]:
        """Per-modality temperature and per-class bias from validation; stored here.

        ``validation[m]`` is (logits, fusion-class labels) or (logits, labels, case weights): the likelihood is
        that of the projected distribution over the cases whose class the model covers
        (:func:`fit_member_calibration`). Returns ``{modality: {"temperature": T, "bias": [b per model class]}}``.
        """
        fitted = {}
        for modality, (logits, labels, *weights) in validation.items():
            temperature, bias = fit_member_calibration(logits, labels, self._projections[modality], fit_bias,
                                                       weights[0] if weights else None)
            fitted[modality] = {"temperature": temperature, "bias": bias.tolist()}
        self.temperatures = {**self.temperatures, **{m: f["temperature"] for m, f in fitted.items()}}
        self.biases = {**self.biases, **{m: f["bias"] for m, f in fitted.items()}}
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


def fit_member_calibration(logits: np.ndarray, labels: np.ndarray, projection: np.ndarray, fit_bias: bool = True,
                           weights: np.ndarray | None = None, max_iter: int = 200) -> tuple[float, np.ndarray]:
    """MAP (T, b) of one member: maximise Σ_i w_i log Σ_{c → y_i} softmax(z_i / T + b)_c + log prior (module
    constants). ``weights`` (default 1) make correlated cases count once: e.g. 1 / (cases of the object).

    ``projection`` (C_m, T) maps the model's classes to the fusion classes of ``labels``; cases whose class the
    model does not cover carry no information about it and are left out. The bias is defined up to a constant
    (softmax ignores it): the prior centres it, so Σ b = 0 at the optimum. Without ``fit_bias`` b = 0.
    """
    import torch

    projection = np.asarray(projection, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    covered = projection.any(axis=0)[labels]
    n_classes = projection.shape[0]
    if not covered.any():
        return 1.0, np.zeros(n_classes)
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)[covered])
    w = torch.as_tensor((np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64))[covered])
    member_of_label = torch.as_tensor(projection[:, labels[covered]].T)  # (N, C_m): classes that map to y_i
    params = torch.zeros(1 + n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        log_t, bias = params[0], params[1:] if fit_bias else torch.zeros(n_classes, dtype=torch.float64)
        log_p = torch.log_softmax(z / log_t.exp() + bias, dim=1)
        log_likelihood = (w * torch.logsumexp(log_p.masked_fill(~member_of_label, -torch.inf), dim=1)).sum()
        log_prior = (log_t / PRIOR_LOG_TEMPERATURE_SD) ** 2 / 2 + ((bias / PRIOR_BIAS_SD) ** 2).sum() / 2
        loss = log_prior - log_likelihood
        loss.backward()
        return loss

    optimizer.step(closure)
    values = params.detach().numpy()
    return float(np.exp(values[0])), (values[1:] if fit_bias else np.zeros(n_classes))
