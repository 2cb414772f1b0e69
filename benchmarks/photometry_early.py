"""Early-time photometry on the shared dataset's test split: balanced accuracy at 3/10/30/100 days after first
detection, beside always-SN-Ia (the majority class) and a feature baseline, with 95 % bootstrap intervals
(objects resampled).

    .venv/bin/python benchmarks/photometry_early.py [--model models/photometry] [--dataset data/public] [--split test]

Two class sets: the model's own classes (those with >= 20 training objects) and the fusion classes (SN I / SN II
/ TDE / …: the model's probabilities summed by ``projection_matrix``). Light curves are the alert-like curves of
``cider data build``; Δt counts from the first detection (jdstarthist). Objects with no detection within a
horizon are not scored at it (the count is printed). Writes nothing; prints one table.

The feature baseline asks whether the data or the network limits early classification: scikit-learn's
HistGradientBoostingClassifier on 15 summary features of the same events (counts per band, span, peak and
first/last flux, rise rate, peak and last g−r, median σ_logf, time of peak), trained on the model's training
split cut at every horizon of the table, class-balanced sample weights, seed 0.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from applecider_core.dataset import open_dataset
from applecider_core.metrics import softmax
from applecider_core.taxonomy import FUSION, get_taxonomy, projection_matrix
from applecider_core.training import predict
from applecider_photometry import PhotometryClassifier, collate_events
from applecider_photometry.data import EventDataset, load_split
from applecider_photometry.features import FeatureConfig, NoDetectionsError, build_events, from_preprocessor

HORIZONS = (3.0, 10.0, 30.0, 100.0)


def balanced_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[true == c] == c) for c in np.unique(true)]))


def with_interval(pred: np.ndarray, true: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> str:
    draws = [balanced_accuracy(pred[i], true[i]) for i in (rng.integers(0, len(true), len(true)) for _ in range(n_boot))]
    low, high = np.percentile(draws, [2.5, 97.5])
    return f"{balanced_accuracy(pred, true):.3f} [{low:.3f}, {high:.3f}]"


def summary_features(curves, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, 15) summary features of the events of each curve within ``config``'s horizon, and their labels
    (curves without an event there are left out, as the model's table does)."""
    rows, labels = [], []
    for curve in curves:
        try:
            events = build_events(curve.light_curve, config)
        except NoDetectionsError:
            continue
        f, t = events.features, events.times_days
        log_flux, green, red = f[:, 2], f[:, 4] == 1, f[:, 5] == 1
        peak_g = log_flux[green].max() if green.any() else np.nan
        peak_r = log_flux[red].max() if red.any() else np.nan
        last_g = log_flux[green][-1] if green.any() else np.nan
        last_r = log_flux[red][-1] if red.any() else np.nan
        rows.append([len(f), green.sum(), red.sum(), t.max(), t.min(), log_flux.max(), log_flux[-1], log_flux[0],
                     (log_flux[-1] - log_flux[0]) / max(t.max() - t.min(), 1.0), peak_g, peak_r, peak_g - peak_r,
                     last_g - last_r, np.median(f[:, 3]), t[np.argmax(log_flux)]])
        labels.append(curve.label)
    return np.asarray(rows, dtype=float), np.asarray(labels, dtype=int)


def feature_baseline(train_curves, config: FeatureConfig) -> HistGradientBoostingClassifier:
    """The gradient-boosted baseline, trained on the training curves cut at every horizon of the table."""
    parts = [summary_features(train_curves, config.__class__(h, config.max_events, config.merge_window_days,
                                                             config.flux_floor_ujy, config.bands)) for h in HORIZONS]
    features, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    weights = 1.0 / np.bincount(labels)[labels]
    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0).fit(
        features, labels, sample_weight=weights)


def recalls(pred: np.ndarray, true: np.ndarray, names) -> str:
    return ", ".join(f"{names[c]} {np.mean(pred[true == c] == c):.2f} ({np.sum(true == c)})" for c in np.unique(true))


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
    dataset = open_dataset(args.dataset)
    curves = load_split(dataset, args.split, taxonomy, names, config.bands)
    baseline = feature_baseline(load_split(dataset, "train", taxonomy, names, config.bands), config)
    project = projection_matrix(names, FUSION)
    majority = names.index("SN Ia" if "SN Ia" in names else "SN I")
    rng = np.random.default_rng(0)
    print(f"model {args.model}: {list(names)}; {args.split} curves {len(curves)}; load {os.getloadavg()[0]:.1f}")
    print("| horizon | n | balanced acc. (model classes) | always SN Ia (SN I) | balanced acc. (fusion classes) | always SN I "
          "| recall per class (n) | feature baseline (model classes) |")
    print("|---|---|---|---|---|---|---|---|")
    for horizon in HORIZONS:
        cut = config.__class__(horizon, config.max_events, config.merge_window_days, config.flux_floor_ujy, config.bands)
        ds = EventDataset(curves, cut, stats)
        baseline_features, baseline_labels = summary_features(curves, cut)
        logits, labels = predict(model, ds, partial(collate_events, max_events=config.max_events), 256)
        probs = softmax(logits, float(model.preprocessor.get("temperature", 1.0)))
        fused_true = project[labels].argmax(1)
        fused_pred = (probs @ project).argmax(1)
        print(f"| {horizon:g} d | {len(labels)} | {with_interval(probs.argmax(1), labels, rng)} | "
              f"{balanced_accuracy(np.full(len(labels), majority), labels):.3f} | {with_interval(fused_pred, fused_true, rng)} | "
              f"{balanced_accuracy(np.zeros(len(labels), int), fused_true):.3f} | {recalls(probs.argmax(1), labels, names)} | "
              f"{with_interval(baseline.predict(baseline_features), baseline_labels, rng)} |")


if __name__ == "__main__":
    main()
