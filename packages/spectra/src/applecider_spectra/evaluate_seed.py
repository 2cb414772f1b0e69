"""Evaluation of the seed systems (``cider evaluate spectra`` with a SNIascore or CCSNscore run config).

SNIascore: TPR at FPR 0.6 %, 1 % and 2 % (cuts on the MC-mean score), the stored validation operating point
applied to the test set, and the Ia redshift metrics (σ of Δz/(1+z), outlier rate) on the confident and on
all SNe Ia. CCSNscore: layer 1 (II vs Ibc, i.e. H-rich vs H-poor) accuracy with the 'ambiguous' decisions
counted as wrong, TPR at 2 % FPR and ROC-AUC of the H-rich score, and the share passing the confident cut with its
accuracy; layer 2 accuracies; for the objects with ZTF photometry the same with the light-curve models.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from applecider_core.config import load_yaml, parse_overrides
from applecider_core.dataset import SharedDataset, open_dataset
from applecider_core.records import Spectrum

from .configuration_ccsnscore import CCSN_LAYERS
from .configuration_sniascore import IA_CLASS
from .metrics import redshift_metrics
from .seed_systems import AMBIGUOUS, CCSNscoreSystem, SNIascoreSystem, tpr_at_fpr
from .train_seed import SeedRunConfig

FPR_POINTS = (0.006, 0.01, 0.02)


def tpr_table(scores: np.ndarray, labels: np.ndarray, points: Sequence[float] = FPR_POINTS) -> dict[str, float]:
    return {f"{100 * p:g}%": tpr_at_fpr(scores, labels, p) for p in points}


def evaluate_sniascore(system: SNIascoreSystem, spectra: Sequence[Spectrum],
                       results: Sequence[dict[str, Any] | str] | None = None, z_max: float | None = None) -> dict[str, Any]:
    """Metrics of ``system`` on ``spectra``; ``results`` are its predictions when already made. With ``z_max``
    the redshift metrics are repeated on the SNe Ia with a true z ≤ ``z_max`` (``…_in_range``: the range the
    regressor's augmentation covers; beyond it no training spectrum exists)."""
    results = system.predict(spectra) if results is None else results
    usable = [i for i, r in enumerate(results) if isinstance(r, dict)]
    labels = np.array([spectra[i].label == IA_CLASS for i in usable])
    score = np.array([results[i]["score"] for i in usable])
    confident = np.array([results[i]["is_ia_confident"] for i in usable])
    report: dict[str, Any] = {"n": len(usable), "n_ia": int(labels.sum()), "rejected": len(spectra) - len(usable),
                              "tpr_at_fpr": tpr_table(score, labels),
                              "operating_point": {"score_cut": system.score_cut, "error_cut": system.error_cut,
                                                  "tpr": float(confident[labels].mean()),
                                                  "fpr": float(confident[~labels].mean())}}
    if system.regressor is not None:
        z_true = np.array([spectra[i].redshift for i in usable])
        ia = labels & np.isfinite(z_true)
        z_all = np.full(len(usable), np.nan)  # the regressor on every SN Ia, confident or not
        if ia.any():
            z_all[ia] = np.asarray(system.regressor.predict_scores(
                _inputs(system, [spectra[i] for i, keep in zip(usable, ia) if keep]))[0])
        z_reported = np.array([np.nan if results[i]["redshift"] is None else results[i]["redshift"] for i in usable])
        ranges = {"": np.ones_like(ia)} | ({} if z_max is None else {"_in_range": z_true <= z_max})
        for suffix, keep in ranges.items():
            for name, z_pred, chosen in (("all_ia", z_all, ia & keep),
                                         ("confident_ia", z_reported, ia & keep & confident & np.isfinite(z_reported))):
                if chosen.any():
                    report[f"redshift_{name}{suffix}"] = redshift_metrics(z_pred[chosen], z_true[chosen])
    return report


def _inputs(system: SNIascoreSystem, spectra: Sequence[Spectrum]):
    import torch

    from .sedm import sniascore_input

    return torch.from_numpy(np.stack([sniascore_input(s, system.classifier.config.grid) for s in spectra]))


def layer1_report(results: Sequence[dict], truth: Sequence[str]) -> dict[str, Any]:
    """II vs Ibc (H-rich vs H-poor) from per-spectrum CCSNscore results and the true layer-1 targets."""
    truth = np.asarray(truth)
    decision = np.array([r["layers"]["1"]["decision"] for r in results])
    rich = np.array([r["scores"]["1"]["H-rich"]["score"] for r in results])
    confident = np.array([r["type"] != AMBIGUOUS for r in results])
    correct = decision == truth
    report = {"n": len(truth), "accuracy": float(correct.mean()), "ambiguous": float((decision == AMBIGUOUS).mean()),
              "confident_share": float(confident.mean()),
              "confident_accuracy": float(correct[confident].mean()) if confident.any() else float("nan")}
    if len(set(truth)) == 2:
        from sklearn.metrics import roc_auc_score

        report["h_rich_tpr_at_2pct_fpr"] = tpr_at_fpr(rich, truth == "H-rich", 0.02)
        report["h_rich_roc_auc"] = float(roc_auc_score(truth == "H-rich", rich))
    return report


def _layer_target(label: str, layer: str) -> str | None:
    return next((t for t, labels in CCSN_LAYERS[layer].items() if label in labels), None)


def evaluate_ccsnscore(system: CCSNscoreSystem, spectra: Sequence[Spectrum],
                       dataset: SharedDataset | None = None) -> dict[str, Any]:
    spectra = [s for s in spectra if _layer_target(s.label, "1") is not None]
    with_lc = set(dataset.light_curve_ids()) if dataset is not None else set()
    by_object: dict[str, list[int]] = {}
    for i, s in enumerate(spectra):
        by_object.setdefault(s.object_id, []).append(i)
    results: list[Any] = [None] * len(spectra)
    results_lc: dict[int, Any] = {}
    for oid, rows in by_object.items():
        for i, r in zip(rows, system.predict([spectra[i] for i in rows], None)):
            results[i] = r
        if oid in with_lc:
            for i, r in zip(rows, system.predict([spectra[i] for i in rows], dataset.light_curve(oid))):
                results_lc[i] = r
    usable = [i for i, r in enumerate(results) if isinstance(r, dict)]
    report: dict[str, Any] = {"rejected": len(spectra) - len(usable)}
    if usable:
        report["layer1_S"] = layer1_report([results[i] for i in usable], [_layer_target(spectra[i].label, "1") for i in usable])
    both = [i for i in usable if isinstance(results_lc.get(i), dict)]
    report["objects_with_light_curves"] = len({spectra[i].object_id for i in both})
    if both:
        truth = [_layer_target(spectra[i].label, "1") for i in both]
        report["layer1_S_on_lc_objects"] = layer1_report([results[i] for i in both], truth)
        report["layer1_with_lc"] = layer1_report([results_lc[i] for i in both], truth)
    for layer in ("2a", "2b"):
        rows = [i for i in usable if _layer_target(spectra[i].label, layer) and layer in results[i]["scores"]]
        if rows:
            predicted = [max(results[i]["scores"][layer], key=lambda t: results[i]["scores"][layer][t]["score"]) for i in rows]
            truth = [_layer_target(spectra[i].label, layer) for i in rows]
            report[f"layer{layer}_accuracy"] = {"n": len(rows), "accuracy": float(np.mean(np.array(predicted) == truth))}
    return report


def photometry_overlap(dataset: SharedDataset) -> dict[str, Any]:
    """Which spectra could use CCSNscore's light-curve inputs: per spectrum label the spectra and objects, and
    how many of them belong to an object with photometry in ``dataset``; for the layer-1 (II vs Ibc) spectra
    those counts per split and the latest layer-1 spectrum's MJD; the objects with a layer-1 label and photometry
    (with or without a spectrum) and their earliest detection's MJD."""
    spectra = dataset.spectra()
    with_lc, objects = set(dataset.light_curve_ids()), dataset.objects
    split_of = dict(zip(objects["object_id"], objects["split"]))
    per_label: dict[str, dict[str, int]] = {}
    for s in spectra:
        row = per_label.setdefault(s.label or "unlabelled", {"spectra": 0, "objects": set(), "spectra_with_light_curve": 0,
                                                             "objects_with_light_curve": set()})
        row["spectra"] += 1
        row["objects"].add(s.object_id)
        if s.object_id in with_lc:
            row["spectra_with_light_curve"] += 1
            row["objects_with_light_curve"].add(s.object_id)
    layer1 = [s for s in spectra if _layer_target(s.label, "1") is not None]
    layer1_lc = sorted(oid for oid, label in zip(objects["object_id"], objects["label"])
                       if oid in with_lc and isinstance(label, str) and _layer_target(label, "1") is not None)
    first_detections = [lc.mjd[lc.is_detection].min() for lc in map(dataset.light_curve, layer1_lc)
                        if lc.is_detection.any()]
    return {
        "per_label": {k: {n: v if isinstance(v, int) else len(v) for n, v in row.items()} for k, row in sorted(per_label.items())},
        "layer1_spectra_with_light_curve": {split: sum(s.object_id in with_lc and split_of[s.object_id] == split
                                                       for s in layer1) for split in ("train", "val", "test")},
        "latest_layer1_spectrum_mjd": max((s.mjd for s in layer1 if s.mjd == s.mjd), default=float("nan")),
        "layer1_objects_with_light_curve": len(layer1_lc),
        "earliest_layer1_light_curve_detection_mjd": float(min(first_detections, default=float("nan"))),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider evaluate spectra", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the SNIascore / CCSNscore run config used for training")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--model", required=True, help="system directory written by training (e.g. runs/sniascore)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--output", help="output directory (default: <model>/eval_<split>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_yaml(args.config, SeedRunConfig, parse_overrides(args.set))
    dataset = open_dataset(config.data.path)
    spectra = dataset.spectra(args.split)
    if config.model.arch == "sniascore":
        report = evaluate_sniascore(SNIascoreSystem.from_dir(args.model), spectra, z_max=config.sniascore.redshift_max)
    else:
        report = evaluate_ccsnscore(CCSNscoreSystem.from_dir(args.model), spectra, dataset)
    out = Path(args.output or Path(args.model) / f"eval_{args.split}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps(report, indent=1, default=float))
    print(f"written to {out}/metrics.json")
    return 0


__all__ = ["evaluate_ccsnscore", "evaluate_sniascore", "layer1_report", "main", "photometry_overlap", "tpr_table"]
