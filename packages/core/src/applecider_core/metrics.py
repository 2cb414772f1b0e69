"""Classification metrics on probability matrices, calibration, and temperature scaling.

All functions take ``probs`` (N, C) (rows sum to 1) and integer ``labels`` (N,) in [0, C). Metrics that are
undefined for a class absent from ``labels`` (ROC-AUC, AUPRC) are NaN for that class and left out of the
macro mean, which is reported together with the number of classes it averages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# sklearn and torch are imported where they are used: `cider classify` needs only ``softmax`` (start-up time)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def per_class_roc_auc(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from sklearn import metrics as skm

    out = np.full(probs.shape[1], np.nan)
    for c in range(probs.shape[1]):
        positive = labels == c
        if 0 < positive.sum() < len(labels):
            out[c] = skm.roc_auc_score(positive, probs[:, c])
    return out


def per_class_auprc(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from sklearn import metrics as skm

    out = np.full(probs.shape[1], np.nan)
    for c in range(probs.shape[1]):
        positive = labels == c
        if positive.any():
            out[c] = skm.average_precision_score(positive, probs[:, c])
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-1 confidence with equal-width bins (Guo et al. 2017)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over samples of Σ_c (p_c - y_c)²."""
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def confusion_counts(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Confusion matrix (rows: true class) and per-class recall, precision, F1 (0 where undefined); ``present``
    marks the classes that occur in ``labels`` (macro means average over those)."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    confusion = np.bincount(labels * n_classes + preds, minlength=n_classes**2).reshape(n_classes, n_classes)
    hits, support, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    return {
        "confusion": confusion,
        "recall": np.divide(hits, support, out=np.zeros(n_classes), where=support > 0),
        "precision": np.divide(hits, predicted, out=np.zeros(n_classes), where=predicted > 0),
        "f1": np.divide(2 * hits, support + predicted, out=np.zeros(n_classes), where=support + predicted > 0),
        "present": support > 0,
    }


def classification_report(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], top_k: int = 3
) -> dict:
    """Every metric of the project in one JSON-ready dict (per-class entries keyed by class name)."""
    from sklearn import config_context as skm_config

    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise ValueError(f"probs must be (N, {len(class_names)}), got {probs.shape}")
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels for {len(probs)} predictions")
    n_classes = len(class_names)
    preds = probs.argmax(axis=1)
    with skm_config(skip_parameter_validation=True):  # called per class and subset: validation dominates
        roc = per_class_roc_auc(probs, labels)
        prc = per_class_auprc(probs, labels)
    counts = confusion_counts(labels, preds, n_classes)
    confusion, recall, precision, f1 = counts["confusion"], counts["recall"], counts["precision"], counts["f1"]
    present = counts["present"]
    return {
        "n": len(labels),
        "accuracy": float(np.mean(preds == labels)),
        f"top{top_k}_accuracy": top_k_accuracy(probs, labels, top_k),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "micro_f1": float(np.mean(preds == labels)),  # every prediction is one of the classes: = accuracy
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "balanced_precision": float(precision[present].mean()) if present.any() else float("nan"),
        "macro_roc_auc": _nanmean(roc),
        "macro_auprc": _nanmean(prc),
        "n_classes_in_macro_auc": int(np.isfinite(roc).sum()),
        "ece": expected_calibration_error(probs, labels),
        "brier": brier_score(probs, labels),
        "per_class": {
            name: {
                "support": int((labels == c).sum()),
                "recall": float(recall[c]),
                "precision": float(precision[c]),
                "roc_auc": float(roc[c]),
                "auprc": float(prc[c]),
            }
            for c, name in enumerate(class_names)
        },
        "confusion_matrix": confusion.tolist(),
        "class_names": list(class_names),
    }


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """Temperature T > 0 minimising the NLL of softmax(logits / T) on held-out (validation) data."""
    import torch

    logits_t = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_t.exp(), labels_t)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item())
