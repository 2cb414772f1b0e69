"""Metrics of the spectra package: the composite score used for model selection reports, and the redshift
regression metrics of paper II Table 9."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from applecider_core.metrics import classification_report, softmax

COMPOSITE_WEIGHTS = {"accuracy": 0.4, "top3_accuracy": 0.3, "macro_f1": 0.3}  # the reference notebook's weights


def composite_score(report: dict) -> float:
    """0.4·accuracy + 0.3·top-3 accuracy + 0.3·macro-F1 (logged; selection uses macro-F1 as in paper II)."""
    return float(sum(weight * report[name] for name, weight in COMPOSITE_WEIGHTS.items()))


def classification_metrics(class_names: Sequence[str]) -> Callable[[np.ndarray, np.ndarray], dict]:
    """``compute_metrics`` for the core loop: the core report on softmax(logits) plus ``composite``."""

    def compute(logits: np.ndarray, labels: np.ndarray) -> dict:
        report = classification_report(softmax(logits), labels, class_names)
        report["composite"] = composite_score(report)
        return report

    return compute


def redshift_metrics(predicted: np.ndarray, true: np.ndarray, outlier_threshold: float = 0.05) -> dict:
    """Paper II Table 9 on Δz = (z_pred − z_true)/(1 + z_true): bias ⟨Δz⟩, σ (std of Δz), MAD
    (median |Δz − median Δz|), MAE ⟨|Δz|⟩, RMSE √⟨Δz²⟩, max |Δz|, R² of z_pred against z_true, and the
    outlier rate (%) of |Δz| > 0.05."""
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    true = np.asarray(true, dtype=np.float64).ravel()
    if predicted.shape != true.shape or predicted.size == 0:
        raise ValueError(f"need equal, non-empty prediction and truth arrays, got {predicted.shape} and {true.shape}")
    dz = (predicted - true) / (1.0 + true)
    total = np.sum((true - true.mean()) ** 2)
    return {
        "n": int(dz.size),
        "bias": float(dz.mean()),
        "sigma": float(dz.std()),
        "mad": float(np.median(np.abs(dz - np.median(dz)))),
        "mae": float(np.abs(dz).mean()),
        "rmse": float(np.sqrt(np.mean(dz**2))),
        "max_error": float(np.abs(dz).max()),
        "r2": float(1.0 - np.sum((predicted - true) ** 2) / total) if total > 0 else float("nan"),
        "outlier_rate_pct": float(100.0 * np.mean(np.abs(dz) > outlier_threshold)),
    }


def redshift_compute_metrics(outputs: np.ndarray, targets: np.ndarray) -> dict:
    """``compute_metrics`` for the core loop on the regressor's (N, 1) Softplus output."""
    return redshift_metrics(np.asarray(outputs).reshape(-1), targets)


def plot_redshift(predicted: np.ndarray, true: np.ndarray, path: str | Path, outlier_threshold: float = 0.05) -> Path:
    """Predicted vs true redshift with the y = x line; outliers (|Δz| > threshold) highlighted (PNG)."""
    import matplotlib.pyplot as plt

    from applecider_core.plots import save_figure

    predicted, true = np.asarray(predicted, float).ravel(), np.asarray(true, float).ravel()
    outlier = np.abs(predicted - true) / (1 + true) > outlier_threshold
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true[~outlier], predicted[~outlier], s=6, c="0.4", label="spectra")
    ax.scatter(true[outlier], predicted[outlier], s=8, c="tab:blue", label=f"|Δz|/(1+z) > {outlier_threshold}")
    top = float(max(true.max(), predicted.max(), 1e-3)) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set(xlabel="true z", ylabel="predicted z", xlim=(0, top), ylim=(0, top), title="SpectraNet-Redshift")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


__all__ = ["classification_metrics", "composite_score", "plot_redshift", "redshift_compute_metrics", "redshift_metrics"]
