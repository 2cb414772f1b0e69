"""``cider evaluate images``: metrics, a Table 6-style AUC table, confusion matrix and expert-load plots.

Writes to ``--output-dir``: ``metrics.json`` (the core classification report, plus the fusion-level
report and the expert load when the model routes), ``table6.md`` (per-class ROC-AUC and PR-AUC; for fine
models also the paper's coarse classes SN I, SN II, CV and Nuclear = AGN + TDE), ``confusion_matrix.png``
and, for AstroMiNN, ``expert_load.png`` (mean routing weight of each expert per true class).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch.utils.data import DataLoader

from applecider_core.dataset import open_dataset
from applecider_core.metrics import classification_report
from applecider_core.taxonomy import FUSION, TaxonomyError, projection_matrix

from . import load_model
from .data import AlertImageDataset
from .preprocessing import metadata_preprocessor_for

logger = logging.getLogger(__name__)


@torch.no_grad()
def predict_with_routing(model: torch.nn.Module, dataset, batch_size: int = 64) -> dict[str, np.ndarray]:
    """probs (N, C), labels (N,), and expert_weights (N, K) when the model routes."""
    model.eval()
    probs, labels, weights = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        out = model(batch["images"], batch["metadata"], batch["coords"])
        probs.append(torch.softmax(out.logits.float(), dim=-1).numpy())
        labels.append(batch["labels"].numpy())
        if "expert_weights" in out.extras:
            weights.append(out.extras["expert_weights"].float().numpy())
    result = {"probs": np.concatenate(probs), "labels": np.concatenate(labels)}
    if weights:
        result["expert_weights"] = np.concatenate(weights)
    return result


def _one_vs_rest(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    if positive.all() or not positive.any():
        return float("nan"), float("nan")
    return float(roc_auc_score(positive, scores)), float(average_precision_score(positive, scores))


def coarse_auc_table(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """ROC-AUC / PR-AUC of the paper's Table 6 classes (SN I, SN II, CV, Nuclear = AGN + TDE).

    Probabilities of the model's classes are summed into the fusion classes; empty if they do not map.
    """
    try:
        matrix = projection_matrix(class_names, FUSION)
    except TaxonomyError:
        return {}
    coarse_probs, coarse_labels = probs @ matrix, matrix[labels].argmax(axis=1)
    groups = {"SN I": ["SN I"], "SN II": ["SN II"], "CV": ["CV"], "Nuclear": ["AGN", "TDE"]}
    table = {}
    for name, members in groups.items():
        cols = [FUSION.classes.index(m) for m in members]
        roc, pr = _one_vs_rest(coarse_probs[:, cols].sum(axis=1), np.isin(coarse_labels, cols))
        table[name] = {"roc_auc": roc, "auprc": pr, "support": int(np.isin(coarse_labels, cols).sum())}
    return table


def table6_markdown(report: dict[str, Any], coarse: dict[str, dict[str, float]], model_name: str) -> str:
    lines = [f"| class | support | ROC-AUC ({model_name}) | PR-AUC |", "|---|---|---|---|"]
    for name, entry in report["per_class"].items():
        lines.append(f"| {name} | {entry['support']} | {entry['roc_auc']:.3f} | {entry['auprc']:.3f} |")
    lines.append(f"| macro | {report['n']} | {report['macro_roc_auc']:.3f} | {report['macro_auprc']:.3f} |")
    if coarse:
        lines += ["", f"| Table 6 class | support | ROC-AUC ({model_name}) | PR-AUC |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['support']} | {v['roc_auc']:.3f} | {v['auprc']:.3f} |" for k, v in coarse.items()]
    return "\n".join(lines) + "\n"


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=float)
    rows = confusion.sum(axis=1, keepdims=True)
    normed = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(class_names), 1 + 0.5 * len(class_names)))
    ax.imshow(normed, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{int(confusion[i, j])}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (row-normalised colour, counts)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def expert_load_by_class(weights: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, K) mean routing weight of each expert over the samples of each true class (NaN if absent)."""
    out = np.full((num_classes, weights.shape[1]), np.nan)
    for c in range(num_classes):
        if (labels == c).any():
            out[c] = weights[labels == c].mean(axis=0)
    return out


def plot_expert_load(load: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * load.shape[1], 1 + 0.4 * len(class_names)))
    image = ax.imshow(np.nan_to_num(load), cmap="viridis", vmin=0, aspect="auto")
    ax.set_xticks(range(load.shape[1]), [f"expert {k}" for k in range(load.shape[1])], fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_title("mean routing weight per true class", fontsize=8)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_model(model: torch.nn.Module, dataset, output_dir: str | Path, batch_size: int = 64) -> dict[str, Any]:
    """Metrics and plots of ``model`` on ``dataset`` written to ``output_dir``; returns the metrics dict."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    class_names = list(model.config.class_names)
    pred = predict_with_routing(model, dataset, batch_size)
    report = classification_report(pred["probs"], pred["labels"], class_names)
    report["table6"] = coarse_auc_table(pred["probs"], pred["labels"], class_names)
    if "expert_weights" in pred:
        load = expert_load_by_class(pred["expert_weights"], pred["labels"], len(class_names))
        report["expert_load"] = {"overall": pred["expert_weights"].mean(axis=0).tolist(),
                                 "by_class": {n: row.tolist() for n, row in zip(class_names, load)}}
        plot_expert_load(load, class_names, output_dir / "expert_load.png")
    plot_confusion(np.asarray(report["confusion_matrix"]), class_names, output_dir / "confusion_matrix.png")
    (output_dir / "metrics.json").write_text(json.dumps(report, indent=1, default=float))
    (output_dir / "table6.md").write_text(table6_markdown(report, report["table6"], model.config.model_type))
    np.savez(output_dir / "predictions.npz", **pred)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider evaluate images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory written by training (<run>/model)")
    parser.add_argument("--dataset", required=True, help="shared dataset directory (written by `cider data build`)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = load_model(args.model)
    meta_prep = metadata_preprocessor_for(model.config, model.preprocessor)
    dataset = AlertImageDataset(open_dataset(args.dataset).alerts(args.split), model.config, meta_prep)
    report = evaluate_model(model, dataset, args.output_dir, args.batch_size)
    logger.info("%s on %s (%d alerts): macro ROC-AUC %.3f, macro AUPRC %.3f; written to %s",
                model.config.model_type, args.split, report["n"], report["macro_roc_auc"], report["macro_auprc"],
                args.output_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
