"""Evaluation and training plots saved as PNG (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn import metrics as skm


def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                          normalise: bool = True, title: str = "") -> Path:
    """Counts, or row-normalised (each true class sums to 1) when ``normalise``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalise else matrix
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(shown.shape[0]):
        for j in range(shown.shape[1]):
            text = f"{shown[i, j]:.2f}" if normalise else f"{int(matrix[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > 0.5 * shown.max() else "black")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalise else "confusion matrix (counts)"))
    return save_figure(fig, path)


def plot_roc_pr(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """One-vs-rest ROC and precision-recall curves for every class present in ``labels``."""
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 5))
    for c, name in enumerate(class_names):
        positive = labels == c
        if not positive.any() or positive.all():
            continue
        fpr, tpr, _ = skm.roc_curve(positive, probs[:, c])
        precision, recall, _ = skm.precision_recall_curve(positive, probs[:, c])
        roc_ax.plot(fpr, tpr, label=f"{name} ({skm.auc(fpr, tpr):.2f})")
        pr_ax.plot(recall, precision, label=f"{name} ({skm.average_precision_score(positive, probs[:, c]):.2f})")
    roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUC)")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall (AP)")
    roc_ax.legend(fontsize=7)
    pr_ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_training_curves(history: Sequence[dict], path: str | Path, metrics: Sequence[str] = ("macro_f1",)) -> Path:
    """Training loss and validation metrics per epoch from the loop's history.json entries."""
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h.get("train_loss", np.nan) for h in history], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    for name in metrics:
        metric_ax.plot(epochs, [h.get(name, np.nan) for h in history], marker="o", label=name)
    metric_ax.set(xlabel="epoch", ylabel="validation metric")
    metric_ax.legend()
    return save_figure(fig, path)
