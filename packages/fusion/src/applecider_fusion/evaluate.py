"""Joint evaluation (``cider evaluate --config configs/fusion.yaml``): paper I §6 on the shared dataset.

For every labelled object of the validation and test splits, each modality model predicts from what the
object has (its light curve, its latest alert's cutouts + metadata, its spectra); probabilities are mapped to
the fusion classes and averaged. Reported side by side: each single-modality model and the fused result on the
common set (objects with every modality), then the fused result per missing-modality pattern. Optional
per-modality temperatures are fitted on the validation split and applied to both splits; the weights and
temperatures used are written to ``output_dir/fusion.json`` — copy it next to the model folders and
``cider classify`` uses them.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from applecider_core.config import ConfigError, did_you_mean, load_yaml, parse_overrides, save_yaml
from applecider_core.dataset import SPLITS, SharedDataset, open_dataset
from applecider_core.metrics import classification_report
from applecider_core.plots import plot_confusion_matrix
from applecider_core.pretrained import PretrainedError
from applecider_core.records import Alert, CutoutTriplet, LightCurve

from .classifier import FUSION_SETTINGS_NAME, Classifier, Timings
from .fusion import MODALITIES, FusionError

logger = logging.getLogger(__name__)


@dataclass
class FusionEvaluationConfig:
    dataset: str = "runs/public/dataset"
    models: str = "models"
    output_dir: str = "runs/public/fusion_eval"
    splits: tuple[str, ...] = ("val", "test")
    fit_temperatures: bool = True
    weights: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"

    def __post_init__(self) -> None:
        bad = [s for s in self.splits if s not in SPLITS]
        if bad:
            raise ConfigError(f"splits: unknown {bad}{did_you_mean(bad[0], SPLITS)}; allowed: {list(SPLITS)}")


def _latest_alerts(ds: SharedDataset, split: str) -> dict[str, Alert]:
    """The latest alert of every object in ``split`` as an Alert record (cutouts read from the memmap)."""
    table = ds.alerts(split)
    latest = table.frame.sort_values("mjd").groupby("object_id").tail(1)
    empty = LightCurve("", [], [], [], [], [])
    alerts = {}
    for i in latest.index:
        row = table.frame.loc[i]
        stamps = table.cutouts(i)
        alerts[row.object_id] = Alert(
            row.object_id, int(row.candid), float(row.mjd), row.band, float(row.ra_deg), float(row.dec_deg),
            table.metadata[i], empty, CutoutTriplet(*stamps) if stamps is not None else None,
        )  # fmt: skip
    return alerts


def modality_logits(classifier: Classifier, ds: SharedDataset, object_ids: Sequence[str], split: str) -> dict[str, np.ndarray]:
    """(N, C_m) logits per modality for ``object_ids``; NaN rows where the object lacks that modality."""
    timings = Timings()
    out: dict[str, np.ndarray] = {}
    n = len(object_ids)
    if "photometry" in classifier.runners:
        runner = classifier.runners["photometry"]
        values = np.full((n, len(runner.class_names)), np.nan)
        with_curves = set(ds.light_curve_ids(split))
        have = [i for i, o in enumerate(object_ids) if o in with_curves]
        if have:
            values[have], _ = runner.predict([ds.light_curve(object_ids[i]) for i in have], timings)
        out["photometry"] = values
    if "images" in classifier.runners:
        runner = classifier.runners["images"]
        latest = _latest_alerts(ds, split)
        values = np.full((n, len(runner.class_names)), np.nan)
        have = [i for i, o in enumerate(object_ids) if o in latest]
        if have:
            values[have], _ = runner.predict([latest[object_ids[i]] for i in have], timings)
        out["images"] = values
    if "spectra" in classifier.runners:
        runner = classifier.runners["spectra"]
        by_object: dict[str, list] = {}
        for spectrum in ds.spectra(split):
            by_object.setdefault(spectrum.object_id, []).append(spectrum)
        values = np.full((n, len(runner.class_names)), np.nan)
        for i, object_id in enumerate(object_ids):
            if object_id in by_object:
                object_logits, _ = classifier.object_spectra_logits(object_id, by_object[object_id])
                if object_logits is not None:
                    values[i] = object_logits
        out["spectra"] = values
    return out


def _report(classifier: Classifier, logits: dict[str, np.ndarray], labels: np.ndarray, rows: np.ndarray) -> dict:
    fusion = classifier.fusion
    names = list(fusion.classes)
    present = {m: ~np.isnan(v[rows]).any(axis=1) for m, v in logits.items()}
    report: dict = {"n_objects": int(rows.sum())}
    if not rows.any():
        return report
    for modality, values in logits.items():
        have = present[modality]
        if have.any():
            probs = fusion.to_taxonomy(modality, values[rows][have])
            report[modality] = classification_report(probs, labels[rows][have], names)
    fused = fusion.fuse({m: np.nan_to_num(v[rows]) for m, v in logits.items()}, present)
    ok = ~np.isnan(fused).any(axis=1)
    if ok.any():
        report["fused"] = classification_report(fused[ok], labels[rows][ok], names)
    return report


def evaluate(config: FusionEvaluationConfig) -> dict:
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(config, output_dir / "config.yaml")
    ds = open_dataset(config.dataset)
    classifier = Classifier.from_dir(config.models, config.device, config.weights)
    fusion = classifier.fusion
    per_split = {}
    for split in config.splits:
        objects = ds.objects[ds.objects["split"] == split]
        fusion_labels = fusion.taxonomy.encode(objects["label"].tolist())
        keep = fusion_labels >= 0
        object_ids = objects["object_id"][keep].tolist()
        per_split[split] = (object_ids, fusion_labels[keep], modality_logits(classifier, ds, object_ids, split))
    temperatures = {}
    if config.fit_temperatures and "val" in per_split:
        _, labels, logits = per_split["val"]
        have = {m: ~np.isnan(v).any(axis=1) for m, v in logits.items()}
        temperatures = fusion.fit_temperatures({m: (v[have[m]], labels[have[m]]) for m, v in logits.items()
                                                if have[m].sum() >= 5})
    result: dict = {"dataset": str(config.dataset), "models": str(config.models), "classes": list(fusion.classes),
                    "temperatures": temperatures, "splits": {}}
    for split, (object_ids, labels, logits) in per_split.items():
        present = np.stack([~np.isnan(logits[m]).any(axis=1) for m in logits]) if logits else np.zeros((0, 0), bool)
        common = present.all(axis=0) if len(present) else np.zeros(len(labels), bool)
        split_report = {"n_labelled_objects": len(object_ids), "common_set": _report(classifier, logits, labels, common),
                        "by_pattern": {}}
        pattern_of = np.array(["+".join(m for m, p in zip(logits, column) if p) for column in present.T])
        for pattern in sorted(set(pattern_of) - {""}, key=lambda name: (-name.count("+"), name)):  # fullest first
            split_report["by_pattern"][pattern] = _report(classifier, logits, labels, pattern_of == pattern)
        everything = present.any(axis=0) if len(present) else np.zeros(len(labels), bool)
        split_report["all_objects"] = _report(classifier, logits, labels, everything)
        fused = split_report["all_objects"].get("fused")
        if fused:
            plot_confusion_matrix(np.array(fused["confusion_matrix"]), fusion.classes,
                                  output_dir / f"confusion_{split}.png", title=f"fused, {split} (row-normalised)")
        result["splits"][split] = split_report
    (output_dir / "report.json").write_text(json.dumps(result, indent=1))
    settings = {"weights": dict(fusion.weights), "temperatures": dict(fusion.temperatures),
                "fitted_on": f"{config.dataset} (val)" if temperatures else "not fitted"}
    (output_dir / FUSION_SETTINGS_NAME).write_text(json.dumps(settings, indent=1))
    logger.info("wrote %s", output_dir / "report.json")
    return result


def _summary(result: dict) -> str:
    lines = [f"{'split':6} {'set':28} {'model':11} {'n':>5} {'acc':>6} {'macroF1':>8} {'AUPRC':>6} {'ECE':>6}"]
    for split, report in result["splits"].items():
        lines.append(f"{split:6} {report['n_labelled_objects']} labelled objects; common set (every modality): "
                     f"{report['common_set']['n_objects']} objects")
        for name, block in [("common set", report["common_set"]), ("all objects", report["all_objects"]),
                            *report["by_pattern"].items()]:
            for model in (*MODALITIES, "fused"):
                if model in block:
                    m = block[model]
                    lines.append(f"{split:6} {name[:28]:28} {model:11} {m['n']:5d} {m['accuracy']:6.3f} "
                                 f"{m['macro_f1']:8.3f} {m['macro_auprc']:6.3f} {m['ece']:6.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML (see configs/fusion.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args(argv)
    try:
        config = load_yaml(args.config, FusionEvaluationConfig, parse_overrides(args.set))
        result = evaluate(config)
    except (ConfigError, FusionError, PretrainedError, OSError, KeyError) as error:
        parser.exit(2, f"cider evaluate: error: {error}\n")
    print(_summary(result))
    return 0
