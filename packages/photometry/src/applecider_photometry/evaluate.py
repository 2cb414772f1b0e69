"""``cider evaluate photometry``: horizon sweep (paper I §3.3) of a trained photometry classifier.

``cider evaluate photometry --model runs/photometry/model --dataset data/dataset [--split test]
[--max-horizon-days 100 | --horizons 1 3 10 30] [--output-dir DIR]``.
For every horizon H (default 1, 2, …, ``max_horizon_days`` days) the inputs are rebuilt from the raw records
keeping events with Δt ≤ H, and macro-AUPRC, balanced accuracy, balanced precision, top-k inclusion and
per-class recall are computed (the model's validation temperature is applied when present).
Writes ``horizon_sweep.json`` and ``horizon_sweep.png`` to ``output_dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from applecider_core.dataset import open_dataset
from applecider_core.metrics import classification_report, softmax, top_k_accuracy
from applecider_core.taxonomy import get_taxonomy
from applecider_core.training import predict

from .data import EventDataset, LabelledCurve, load_split
from .features import from_preprocessor
from .modeling import PhotometryClassifier, collate_events, fast_inference
from .runconfig import EvaluateRunConfig

logger = logging.getLogger(__name__)
CURVE_METRICS = ("macro_auprc", "balanced_accuracy", "balanced_precision")


def horizon_sweep(model: PhotometryClassifier, curves: Sequence[LabelledCurve], horizons: Sequence[float],
                  top_k: Sequence[int] = (2, 3), batch_size: int = 256) -> list[dict[str, Any]]:
    """One row per horizon: H, n, macro_auprc, balanced_accuracy, balanced_precision, top{k}, recall per class."""
    feature_config, stats = from_preprocessor(model.preprocessor)
    temperature = float(model.preprocessor.get("temperature", 1.0))
    base = EventDataset(curves, feature_config, stats)
    collate = partial(collate_events, max_events=feature_config.max_events)
    rows = []
    for horizon in horizons:
        with fast_inference():
            logits, labels = predict(model, base.with_horizon(float(horizon)), collate, batch_size)
        probs = softmax(logits, temperature)
        report = classification_report(probs, labels, model.config.class_names)
        row: dict[str, Any] = {"horizon_days": float(horizon), "n": report["n"]}
        row.update({k: report[k] for k in CURVE_METRICS})
        row.update({f"top{k}": top_k_accuracy(probs, labels, k) for k in top_k})
        row["recall"] = {name: v["recall"] for name, v in report["per_class"].items() if v["support"] > 0}
        rows.append(row)
    return rows


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = [r["horizon_days"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in (*CURVE_METRICS, *[k for k in rows[0] if k.startswith("top")]):
        ax1.plot(horizons, [r[key] for r in rows], label=key)
    for name in rows[-1]["recall"]:
        ax2.plot(horizons, [r["recall"].get(name, np.nan) for r in rows], label=name)
    for ax, ylabel in ((ax1, "score"), (ax2, "recall")):
        ax.set_xlabel("horizon (days since first detection)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv: Sequence[str] | None) -> EvaluateRunConfig:
    defaults = EvaluateRunConfig()
    parser = argparse.ArgumentParser(prog="cider evaluate photometry",
                                     description="horizon-sweep evaluation of a photometry classifier")
    parser.add_argument("--model", required=True, help="directory written by `cider train photometry` (…/model)")
    parser.add_argument("--dataset", required=True, help="shared dataset directory")
    parser.add_argument("--split", default=defaults.split, choices=("train", "val", "test"))
    parser.add_argument("--max-horizon-days", type=int, default=defaults.max_horizon_days)
    parser.add_argument("--horizons", type=float, nargs="+", default=None, help="explicit horizons in days")
    parser.add_argument("--top-k", type=int, nargs="+", default=list(defaults.top_k))
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--output-dir", default=None, help="default: <model>/../evaluation")
    args = parser.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output_dir = args.output_dir or str(Path(args.model).parent / "evaluation")
    return EvaluateRunConfig(args.model, args.dataset, args.split, tuple(args.horizons) if args.horizons else None,
                             args.max_horizon_days, tuple(args.top_k), args.batch_size, output_dir)


def main(argv: Sequence[str] | None = None) -> int:
    run = parse_args(argv)
    model = PhotometryClassifier.from_pretrained(run.model_dir)
    class_names = model.config.class_names
    taxonomy = get_taxonomy("fine")
    if not set(class_names) <= set(taxonomy.classes):
        taxonomy = get_taxonomy("spectra")  # e.g. SLSN-I models
    feature_config, _ = from_preprocessor(model.preprocessor)
    curves = load_split(open_dataset(run.dataset), run.split, taxonomy, class_names, feature_config.bands)
    if not curves:
        raise SystemExit(f"no labelled light curves of {list(class_names)} in split {run.split!r} of {run.dataset}")
    horizons = run.horizons_days or tuple(float(h) for h in range(1, run.max_horizon_days + 1))
    rows = horizon_sweep(model, curves, horizons, run.top_k, run.batch_size)
    out = Path(run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "horizon_sweep.json").write_text(json.dumps({"model_dir": run.model_dir, "split": run.split, "rows": rows}, indent=1))
    plot_sweep(rows, out / "horizon_sweep.png", f"{Path(run.model_dir).name}: {run.split}")
    last = rows[-1]
    logger.info("H=%g d: macro-AUPRC %.3f, balanced accuracy %.3f (n=%d); written to %s",
                last["horizon_days"], last["macro_auprc"], last["balanced_accuracy"], last["n"], out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
