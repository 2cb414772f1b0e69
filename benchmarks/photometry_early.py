"""Early-time photometry on the shared dataset's test split: balanced accuracy at 3/10/30/100 days after first
detection, beside always-SN-Ia (the majority class), with 95 % bootstrap intervals (objects resampled).

    .venv/bin/python benchmarks/photometry_early.py [--model models/photometry] [--dataset data/public] [--split test]

Two class sets: the model's own classes (those with >= 20 training objects) and the fusion classes (SN I / SN II
/ TDE / …: the model's probabilities summed by ``projection_matrix``). Light curves are the alert-like curves of
``cider data build``; Δt counts from the first detection (jdstarthist). Objects with no detection within a
horizon are not scored at it (the count is printed). Writes nothing; prints one table.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

import numpy as np
import torch

from applecider_core.dataset import open_dataset
from applecider_core.metrics import softmax
from applecider_core.taxonomy import FUSION, get_taxonomy, projection_matrix
from applecider_core.training import predict
from applecider_photometry import PhotometryClassifier, collate_events
from applecider_photometry.data import EventDataset, load_split
from applecider_photometry.features import from_preprocessor

HORIZONS = (3.0, 10.0, 30.0, 100.0)


def balanced_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[true == c] == c) for c in np.unique(true)]))


def with_interval(pred: np.ndarray, true: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> str:
    draws = [balanced_accuracy(pred[i], true[i]) for i in (rng.integers(0, len(true), len(true)) for _ in range(n_boot))]
    low, high = np.percentile(draws, [2.5, 97.5])
    return f"{balanced_accuracy(pred, true):.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/photometry")
    parser.add_argument("--dataset", default="data/public")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = PhotometryClassifier.from_pretrained(args.model).eval()
    names = model.config.class_names
    taxonomy = next(get_taxonomy(t) for t in ("fine", "spectra", "fusion") if set(names) <= set(get_taxonomy(t).classes))
    config, stats = from_preprocessor(model.preprocessor)
    curves = load_split(open_dataset(args.dataset), args.split, taxonomy, names, config.bands)
    project = projection_matrix(names, FUSION)
    majority = names.index("SN Ia" if "SN Ia" in names else "SN I")
    rng = np.random.default_rng(0)
    print(f"model {args.model}: {list(names)}; {args.split} curves {len(curves)}; load {os.getloadavg()[0]:.1f}")
    print("| horizon | n | balanced acc. (model classes) | always SN Ia (SN I) | balanced acc. (fusion classes) | always SN I |")
    print("|---|---|---|---|---|---|")
    for horizon in HORIZONS:
        ds = EventDataset(curves, config.__class__(horizon, config.max_events, config.merge_window_days,
                                                   config.flux_floor_ujy, config.bands), stats)
        logits, labels = predict(model, ds, partial(collate_events, max_events=config.max_events), 256)
        probs = softmax(logits, float(model.preprocessor.get("temperature", 1.0)))
        fused_true = project[labels].argmax(1)
        fused_pred = (probs @ project).argmax(1)
        print(f"| {horizon:g} d | {len(labels)} | {with_interval(probs.argmax(1), labels, rng)} | "
              f"{balanced_accuracy(np.full(len(labels), majority), labels):.3f} | {with_interval(fused_pred, fused_true, rng)} | "
              f"{balanced_accuracy(np.zeros(len(labels), int), fused_true):.3f} |")


if __name__ == "__main__":
    main()
