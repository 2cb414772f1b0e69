"""SNIascore and CCSNscore as systems: operating points, the hierarchical decision, and loading a system
directory for inference (used by the fusion runner and ``cider evaluate spectra``).

Directory layout (what ``cider train spectra`` writes for ``model.arch: sniascore | ccsnscore``):

- SNIascore: ``DIR/classifier/`` (SN Ia vs not; its preprocessor.json holds the validation operating point)
  and optionally ``DIR/redshift/`` (the Ia redshift regressor).
- CCSNscore: one folder per binary model, ``DIR/layer1_H-rich_S/`` … (``CCSNscoreConfig.folder_name``); several
  input cases may sit side by side, the richest one whose inputs an object has is used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from applecider_core.pretrained import CONFIG_NAME, PretrainedError
from applecider_core.records import LightCurve, Spectrum

from .ccsnscore_inputs import ccsn_spectrum_input, light_curve_inputs
from .configuration_ccsnscore import CCSN_LAYERS, SUBLAYER_OF
from .modeling_ccsnscore import CCSNscoreClassifier
from .modeling_sniascore import SNIascore
from .preprocessing import SpectrumError
from .sedm import sniascore_input

AMBIGUOUS = "ambiguous"


def roc_cuts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cut "score > t" (t from +inf down through the distinct scores): thresholds, FPR, TPR (K,)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    if labels.all() or not labels.any():
        raise ValueError("need both positive and negative examples to compute false-positive rates")
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    passed = scores[None, :] >= thresholds[:, None]
    return thresholds, (passed & ~labels).sum(1) / (~labels).sum(), (passed & labels).sum(1) / labels.sum()


def select_operating_point(scores: np.ndarray, labels: np.ndarray, max_fpr: float,
                           score_errors: np.ndarray | None = None) -> dict[str, float]:
    """SNIascore §5.1: among all cuts on the score (and on its uncertainty, when given), the one with the highest
    TPR whose FPR ≤ ``max_fpr``. Returns {score_cut, error_cut, tpr, fpr, max_fpr}; a sample is positive when
    score ≥ score_cut and error ≤ error_cut."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    error_cuts = [np.inf] if score_errors is None else np.unique(np.quantile(score_errors, np.linspace(0.05, 1, 20)))
    best = {"score_cut": np.inf, "error_cut": np.inf, "tpr": 0.0, "fpr": 0.0, "max_fpr": float(max_fpr)}
    for error_cut in error_cuts:
        keep = np.ones_like(labels) if score_errors is None else np.asarray(score_errors) <= error_cut
        cut_scores = np.where(keep, scores, -np.inf)
        thresholds, fpr, tpr = roc_cuts(cut_scores, labels)
        allowed = np.flatnonzero((fpr <= max_fpr) & np.isfinite(thresholds))
        if len(allowed) and tpr[allowed].max() > best["tpr"]:
            k = allowed[np.argmax(tpr[allowed])]
            best.update(score_cut=float(thresholds[k]), error_cut=float(error_cut), tpr=float(tpr[k]), fpr=float(fpr[k]))
    return best


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, max_fpr: float) -> float:
    """Highest TPR of a score cut with FPR ≤ ``max_fpr``."""
    return select_operating_point(scores, labels, max_fpr)["tpr"]


def layer_decision(scores: Mapping[str, tuple[float, float]]) -> tuple[str, float]:
    """CCSNscore §4: the target with the highest probability wins (score = that probability) if it beats the
    second highest by more than the sum of their uncertainties; otherwise ("ambiguous", 0.0)."""
    ranked = sorted(scores.items(), key=lambda item: -item[1][0])
    (best, (p1, s1)), (_, (p2, s2)) = ranked[0], ranked[1] if len(ranked) > 1 else ("", (0.0, 0.0))
    return (best, float(p1)) if p1 - p2 > s1 + s2 else (AMBIGUOUS, 0.0)


def is_confident(probability: float, uncertainty: float, min_probability: float = 0.8,
                 max_uncertainty: float = 0.05) -> bool:
    """CCSNscore's reporting cut (Fig. 5b, §6): P > 0.8 and uncertainty < 0.05."""
    return bool(probability > min_probability and uncertainty < max_uncertainty)


def hierarchical_type(layers: Mapping[str, Mapping[str, tuple[float, float]]], min_probability: float = 0.8,
                      max_uncertainty: float = 0.05) -> dict[str, Any]:
    """Decisions of layer 1 and the matching layer 2 from {layer: {target: (P, σ)}} → {"layers": {layer:
    {"decision", "score"}}, "type"}: the deepest confident decision ("II", "Ib", …, or "H-rich"/"H-poor"), else
    "ambiguous"."""
    out: dict[str, Any] = {"layers": {}, "type": AMBIGUOUS}
    decision, score = layer_decision(layers["1"])
    out["layers"]["1"] = {"decision": decision, "score": round(score, 6)}
    if decision == AMBIGUOUS or not is_confident(score, layers["1"][decision][1], min_probability, max_uncertainty):
        return out
    out["type"] = decision
    sub = SUBLAYER_OF[decision]
    if layers.get(sub):
        sub_decision, sub_score = layer_decision(layers[sub])
        out["layers"][sub] = {"decision": sub_decision, "score": round(sub_score, 6)}
        if sub_decision != AMBIGUOUS and is_confident(sub_score, layers[sub][sub_decision][1], min_probability,
                                                      max_uncertainty):
            out["type"] = sub_decision
    return out


def _model_type(directory: Path) -> str | None:
    path = directory / CONFIG_NAME
    return json.loads(path.read_text()).get("model_type") if path.is_file() else None


def _batch_inputs(spectra: Sequence[Spectrum], make) -> tuple[np.ndarray, list[int], list[str | None]]:
    rows, usable, errors = [], [], [None] * len(spectra)
    for i, spectrum in enumerate(spectra):
        try:
            rows.append(make(spectrum))
            usable.append(i)
        except SpectrumError as error:
            errors[i] = str(error)
    return (np.stack(rows) if rows else np.zeros((0, 0), np.float32)), usable, errors


class SNIascoreSystem:
    """The SN Ia classifier with its validation operating point, and the optional Ia redshift regressor."""

    def __init__(self, classifier: SNIascore, regressor: SNIascore | None = None) -> None:
        self.classifier, self.regressor = classifier.eval(), None if regressor is None else regressor.eval()
        point = classifier.preprocessor.get("operating_point") or {}
        self.score_cut = float(point.get("score_cut", 0.6))  # paper cuts when no validation point is stored
        self.error_cut = float(point.get("error_cut", 0.3))

    @classmethod
    def from_dir(cls, directory: str | Path) -> SNIascoreSystem:
        directory = Path(directory)
        if _model_type(directory / "classifier") != "sniascore":
            raise PretrainedError(f"{directory}: expected a SNIascore system (classifier/ with a sniascore config.json)")
        regressor = SNIascore.from_pretrained(directory / "redshift") if (directory / "redshift").is_dir() else None
        return cls(SNIascore.from_pretrained(directory / "classifier"), regressor)

    @torch.no_grad()
    def predict(self, spectra: Sequence[Spectrum]) -> list[dict[str, Any] | str]:
        """Per spectrum {score, score_error, is_ia_confident, redshift, redshift_error} or an error string."""
        grid = self.classifier.config.grid
        flux, usable, errors = _batch_inputs(spectra, lambda s: sniascore_input(s, grid))
        results: list[dict[str, Any] | str] = [e or "" for e in errors]
        if not usable:
            return results
        x = torch.from_numpy(flux)
        score, score_error = (t.numpy() for t in self.classifier.predict_scores(x))
        confident = (score >= self.score_cut) & (score_error <= self.error_cut)
        z = z_error = np.full(len(usable), np.nan)
        if self.regressor is not None and confident.any():
            z_values, z_errors = self.regressor.predict_scores(x[torch.from_numpy(confident)])
            z, z_error = z.copy(), z_error.copy()
            z[confident], z_error[confident] = z_values.numpy(), z_errors.numpy()
        for k, i in enumerate(usable):
            results[i] = {
                "score": round(float(score[k]), 6), "score_error": round(float(score_error[k]), 6),
                "is_ia_confident": bool(confident[k]),
                "redshift": None if not np.isfinite(z[k]) else round(float(z[k]), 5),
                "redshift_error": None if not np.isfinite(z_error[k]) else round(float(z_error[k]), 5),
            }  # fmt: skip
        return results


class CCSNscoreSystem:
    """The parallel binary classifiers of every layer; per object the richest input case it has."""

    def __init__(self, models: Sequence[CCSNscoreClassifier]) -> None:
        if not any(m.config.layer == "1" for m in models):
            raise PretrainedError("a CCSNscore system needs the layer-1 models (H-rich, H-poor)")
        self.models = [m.eval() for m in models]

    @classmethod
    def from_dir(cls, directory: str | Path) -> CCSNscoreSystem:
        directory = Path(directory)
        folders = sorted(p for p in directory.iterdir() if p.is_dir() and _model_type(p) == "ccsnscore") if directory.is_dir() else []
        if not folders:
            raise PretrainedError(f"{directory}: no CCSNscore model folders (layer1_H-rich_S/ …)")
        return cls([CCSNscoreClassifier.from_pretrained(p) for p in folders])

    def _chosen(self, has_light_curve: bool) -> dict[tuple[str, str], CCSNscoreClassifier]:
        chosen: dict[tuple[str, str], CCSNscoreClassifier] = {}
        for model in sorted(self.models, key=lambda m: len(m.config.inputs)):
            if has_light_curve or model.config.inputs == ("spectrum",):
                chosen[(model.config.layer, model.config.target)] = model
        return chosen

    @torch.no_grad()
    def predict(self, spectra: Sequence[Spectrum], light_curve: LightCurve | None = None) -> list[dict[str, Any] | str]:
        """Per spectrum of one object {case, scores: {layer: {target: {score, score_error}}}, layers, type}."""
        chosen = self._chosen(light_curve is not None and len(light_curve) > 0)
        first = next(iter(chosen.values())).config
        flux, usable, errors = _batch_inputs(spectra, lambda s: ccsn_spectrum_input(s, first))
        results: list[dict[str, Any] | str] = [e or "" for e in errors]
        if not usable:
            return results
        extra = {k: torch.from_numpy(v[None]).expand(len(usable), *v.shape) for k, v in light_curve_inputs(light_curve, first).items()}
        scores: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for (layer, target), model in chosen.items():
            inputs = {k: v for k, v in extra.items() if k in model.config.inputs}
            p, s = model.predict_scores(torch.from_numpy(flux), **inputs)
            scores.setdefault(layer, {})[target] = (p.numpy(), s.numpy())
        case = max((m.config.case for m in chosen.values()), key=len)
        for k, i in enumerate(usable):
            per = {layer: {t: (float(p[k]), float(s[k])) for t, (p, s) in targets.items()} for layer, targets in scores.items()}
            decision = hierarchical_type(per, first.confident_probability, first.confident_uncertainty)
            results[i] = {
                "case": case, **decision,
                "scores": {layer: {t: {"score": round(p, 6), "score_error": round(s, 6)} for t, (p, s) in v.items()}
                           for layer, v in per.items()},
            }  # fmt: skip
        return results


__all__ = [
    "AMBIGUOUS", "CCSN_LAYERS", "CCSNscoreSystem", "SNIascoreSystem", "hierarchical_type", "is_confident",
    "layer_decision", "roc_cuts", "select_operating_point", "tpr_at_fpr",
]  # fmt: skip
