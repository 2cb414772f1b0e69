"""Real-alert benchmark: the labelled shared ZTF alerts through the broker path, scored by models that never saw them.

    .venv/bin/python benchmarks/real_alerts.py [--folds 5] [--epochs N] [--dataset data/public] [--out runs/real_alerts]
    .venv/bin/python benchmarks/real_alerts.py --folds 0 --released models      # the released models only
    .venv/bin/python benchmarks/real_alerts.py --set photometry:finetune.alert_history_views=4   # a fold config override

1. The shared dataset (``cider data build --config configs/data_public.yaml``; reused when present) gives the
   labelled objects that have alerts (labels normalised once, in the build) and everything the models train on.
2. Object-level stratified k-fold over those objects. Per fold, a copy of the dataset (links, only
   objects.parquet rewritten) moves the fold's objects to the test split, so the project's own training entry
   points (``cider train photometry|images --config configs/public/<m>.yaml``, small presets, the configs'
   epochs unless ``--epochs`` sets one count for both; resumable: a fold's finished models are reused; ``data.min_class_objects``
   lowered to ``--min-class-objects``, 15, because a fold holds a fifth of the labelled alert objects out and
   left the images training 19 SN II objects against the configs' 20) and ``cider evaluate`` (temperatures and trust.json fitted on val) never see them.
3. The fold's packets (alert parquet + Avro folder, de-duplicated on candid) go through
   ``Classifier.stream`` one packet at a time in time order: each alert sees the history the stream built.
4. Each object is scored on its last record at or before first detection + 0/3/10/30 d (first detection: the
   earliest of the packets' detections and ``age_days`` back from them) and on its last record overall.

Printed per horizon: objects scored, accuracy, balanced accuracy, macro-F1 with 95 % bootstrap intervals
(objects resampled), per-class recall and the confusion matrix; the trust fields on these alerts (coverage of
``prediction_set`` against its target, shares abstained and out of distribution). Baselines from the same run:
always the majority class, and the released ``models/`` (which saw the objects of their own train split).
Results are written to ``--out``/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from applecider_core.dataset import TABLES, open_dataset
from applecider_core.metrics import confusion_counts
from applecider_core.records import METADATA_FEATURES
from applecider_core.taxonomy import FUSION
from applecider_data import PacketError, iter_packets, packet_to_alert
from applecider_fusion import Classifier

REPO = Path(__file__).resolve().parents[1]
ALERT_SOURCES = ("alerts/ztf_public_alerts.parquet", "alerts/avro")
HORIZONS = (0.0, 3.0, 10.0, 30.0)
TRAINED = ("photometry", "images")  # alerts carry no spectra: the broker path here is photometry + images
AGE = METADATA_FEATURES.index("age_days")


def _cider(*args: str) -> None:
    print("$ cider " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "applecider_core.cli", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)  # a failing step's one-line error reaches stderr


def stratified_folds(labels: dict[str, int], k: int, seed: int) -> list[list[str]]:
    """Object ids dealt into k folds class by class after a seeded shuffle (sizes differ by at most 1 per class)."""
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    start = 0
    for cls in sorted(set(labels.values())):
        members = sorted(o for o, c in labels.items() if c == cls)
        for i, object_id in enumerate(rng.permutation(members)):
            folds[(start + i) % k].append(str(object_id))
        start += len(members)
    return folds


def fold_dataset(dataset: Path, held_out: list[str], out: Path) -> Path:
    """A dataset directory identical to ``dataset`` except that ``held_out`` objects are in the test split."""
    out.mkdir(parents=True, exist_ok=True)
    for name in [*TABLES, "manifest.json", "cutouts.npy", "skipped.csv"]:
        if (dataset / name).exists() and name != "objects.parquet" and not (out / name).exists():
            os.symlink((dataset / name).resolve(), out / name)
    objects = pd.read_parquet(dataset / "objects.parquet")
    objects.loc[objects["object_id"].isin(held_out), "split"] = "test"
    objects.to_parquet(out / "objects.parquet")
    return out


def train_fold(fold_data: Path, out: Path, epochs: int | None, min_class_objects: int,
               overrides: dict[str, list[str]]) -> Path:
    """Photometry + images models trained on the fold's dataset, fused settings fitted on its val split;
    ``overrides[modality]``: extra ``KEY=VALUE`` settings of that training."""
    models = out / "models"
    for modality in TRAINED:
        if not (models / modality / "model.safetensors").is_file():
            epoch_override = ["--set", f"train.epochs={epochs}"] if epochs else []
            extra = [arg for setting in overrides.get(modality, []) for arg in ("--set", setting)]
            _cider("train", modality, "--config", f"configs/public/{modality}.yaml", "--set", f"data.path={fold_data}",
                   "--set", f"train.output_dir={out / modality}", *epoch_override,
                   "--set", f"data.min_class_objects={min_class_objects}", *extra)
            (models / modality).parent.mkdir(parents=True, exist_ok=True)
            os.replace(out / modality / "model", models / modality)
    if not (models / "trust.json").is_file():
        _cider("evaluate", "--config", "configs/public/fusion.yaml", "--set", f"dataset={fold_data}",
               "--set", f"models={models}", "--set", f"output_dir={out / 'evaluate'}", "--set", "per_alert=false")
        for name in ("fusion.json", "trust.json"):
            os.replace(out / "evaluate" / name, models / name)
    return models


def packets_by_object(data_dir: Path, object_ids: set[str]) -> dict[str, list[dict]]:
    """Decoded packets of ``object_ids`` (first copy of each candid), time-ordered per object."""
    seen, out = set(), defaultdict(list)
    for packet in iter_packets([data_dir / s for s in ALERT_SOURCES]):
        if isinstance(packet, PacketError) or packet.get("objectId") not in object_ids or packet["candid"] in seen:
            continue
        seen.add(packet["candid"])
        out[packet["objectId"]].append(packet)
    for packets in out.values():
        packets.sort(key=lambda p: p["candidate"]["jd"])
    return dict(out)


def first_detection_mjd(packets: list[dict]) -> float:
    epochs = []
    for packet in packets:
        alert = packet_to_alert(packet, with_cutouts=False)
        detections = alert.light_curve.mjd[alert.light_curve.is_detection]
        epochs += [alert.mjd, *detections, alert.mjd - np.nan_to_num(alert.metadata[AGE], nan=0.0)]
    return float(min(epochs))


def stream_records(models: Path, packets: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Records of every packet, fed one at a time in time order (all objects interleaved, as a night would)."""
    classifier = Classifier.from_dir(models)
    ordered = sorted((p for ps in packets.values() for p in ps), key=lambda p: p["candidate"]["jd"])
    out = defaultdict(list)
    for record in classifier.stream(ordered, batch_size=1):
        out[record["objectId"]].append(record)
    return dict(out)


def at_horizon(records: list[dict], first_mjd: float, horizon: float | None) -> dict | None:
    """The last classified record at or before first detection + ``horizon`` (None: the last one)."""
    usable = [r for r in records if r["top_class"] is not None
              and (horizon is None or r["mjd"] <= first_mjd + horizon + 1e-6)]
    return max(usable, key=lambda r: r["mjd"]) if usable else None


def scores(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    counts = confusion_counts(labels, preds, FUSION.num_classes)
    present = counts["present"]
    return {"accuracy": float(np.mean(labels == preds)), "balanced_accuracy": float(counts["recall"][present].mean()),
            "macro_f1": float(counts["f1"][present].mean())}


def summarise(labels: np.ndarray, preds: np.ndarray, n_boot: int, seed: int) -> dict:
    """Point scores, 95 % bootstrap intervals over objects, per-class recall and the confusion matrix."""
    if not len(labels):
        return {"n": 0}
    rng = np.random.default_rng(seed)
    draws = [scores(labels[i], preds[i]) for i in rng.integers(0, len(labels), (n_boot, len(labels)))]
    counts = confusion_counts(labels, preds, FUSION.num_classes)
    return {
        "n": len(labels), **scores(labels, preds),
        "interval_95": {k: [float(np.percentile([d[k] for d in draws], q)) for q in (2.5, 97.5)] for k in draws[0]},
        "recall": {c: {"n": int(s), "recall": float(r)} for c, s, r in
                   zip(FUSION.classes, counts["confusion"].sum(axis=1), counts["recall"]) if s},
        "predicted_share": dict(zip(FUSION.classes, (np.bincount(preds, minlength=FUSION.num_classes)
                                                     / len(preds)).round(3).tolist())),
        "confusion_matrix": counts["confusion"].tolist(),
    }


def trust_figures(chosen: list[dict], labels: np.ndarray) -> dict:
    assessed = [(r, y) for r, y in zip(chosen, labels) if r["abstain"] is not None]
    if not assessed:
        return {"assessed": 0}
    return {"assessed": len(assessed),
            "coverage": float(np.mean([FUSION.classes[y] in r["prediction_set"] for r, y in assessed])),
            "abstain_share": float(np.mean([r["abstain"] for r, _ in assessed])),
            "ood_share": float(np.mean([r["ood"] for r, _ in assessed]))}


def score_records(records: dict[str, list[dict]], labels: dict[str, int], first: dict[str, float],
                  n_boot: int, seed: int) -> dict:
    out = {}
    for horizon in (*HORIZONS, None):
        chosen = {o: at_horizon(records.get(o, []), first[o], horizon) for o in labels}
        kept = [o for o, r in chosen.items() if r is not None]
        y = np.array([labels[o] for o in kept], dtype=np.int64)
        pred = np.array([FUSION.index(chosen[o]["top_class"]) for o in kept], dtype=np.int64)
        majority = np.full_like(y, np.bincount(list(labels.values())).argmax())
        out["last" if horizon is None else f"{horizon:g}"] = {
            "fused": summarise(y, pred, n_boot, seed), "majority": summarise(y, majority, n_boot, seed),
            "trust": trust_figures([chosen[o] for o in kept], y)}
    return out


def _print(name: str, report: dict, target: float | None) -> None:
    print(f"\n{name}")
    print(f"{'horizon':>8} {'n':>4} {'accuracy':>19} {'bal.acc':>19} {'macro-F1':>19} {'F1/maj':>6}  recall")
    for horizon, block in report.items():
        m, base = block["fused"], block["majority"]
        if not m["n"]:
            print(f"{horizon:>8} {0:4d}")
            continue
        cells = [f"{m[k]:.3f} [{m['interval_95'][k][0]:.2f},{m['interval_95'][k][1]:.2f}]"
                 for k in ("accuracy", "balanced_accuracy", "macro_f1")]
        recall = ", ".join(f"{c} {v['recall']:.2f}/{v['n']}" for c, v in m["recall"].items())
        print(f"{horizon:>8} {m['n']:4d} {cells[0]:>19} {cells[1]:>19} {cells[2]:>19} "
              f"{m['macro_f1'] / max(base['macro_f1'], 1e-9):6.2f}  {recall}")
    for horizon, block in report.items():
        t = block["trust"]
        if t.get("assessed"):
            print(f"{horizon:>8} trust: coverage {t['coverage']:.3f} (target {target}), abstained "
                  f"{t['abstain_share']:.3f}, ood {t['ood_share']:.3f} of {t['assessed']}")
    last = report["last"]["fused"]
    if last["n"]:
        print(f"    last alert: predicted shares {last['predicted_share']}; confusion (rows true "
              f"{list(FUSION.classes)}): {last['confusion_matrix']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="data/public", help="built from configs/data_public.yaml if absent")
    parser.add_argument("--shared-data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default="runs/real_alerts")
    parser.add_argument("--folds", type=int, default=5, help="0: score only the --released models")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of both models per fold "
                        "(default: each config's own)")
    parser.add_argument("--min-class-objects", type=int, default=15,
                        help="training objects a class needs for an output in the fold models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--released", default="models", help="released models scored as a baseline ('' to skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="MODALITY:KEY=VALUE", dest="settings",
                        help="override a fold training's config, e.g. photometry:train.seed=1")
    args = parser.parse_args(argv)
    overrides: dict[str, list[str]] = defaultdict(list)
    for setting in args.settings:
        modality, sep, rest = setting.partition(":")
        if modality not in TRAINED or not sep or "=" not in rest:
            parser.error(f"--set {setting!r}: expected MODALITY:KEY=VALUE with MODALITY one of {list(TRAINED)}")
        overrides[modality].append(rest)
    torch.set_num_threads(args.threads)
    os.chdir(REPO)
    dataset, out, shared = Path(args.dataset).resolve(), Path(args.out).resolve(), Path(args.shared_data)
    if not (dataset / "objects.parquet").is_file():
        _cider("data", "build", "--config", "configs/data_public.yaml", "--set", f"output_dir={dataset}")
    objects = open_dataset(dataset).objects
    labelled = objects[objects["has_alerts"].astype(bool)]
    encoded = FUSION.encode(labelled["label"].tolist())
    labels = {o: int(c) for o, c in zip(labelled["object_id"], encoded) if c >= 0}
    packets = packets_by_object(shared, set(labels))
    labels = {o: c for o, c in labels.items() if o in packets}
    first = {o: first_detection_mjd(p) for o, p in packets.items()}
    print(f"{len(labels)} labelled objects with alerts ({sum(map(len, packets.values()))} packets): "
          f"{dict(zip(FUSION.classes, np.bincount(list(labels.values()), minlength=FUSION.num_classes).tolist()))}")
    start, records = time.perf_counter(), {}
    report = {"labels": len(labels), "folds": args.folds, "seed": args.seed}
    for k, held_out in enumerate(stratified_folds(labels, args.folds, args.seed) if args.folds else []):
        models = train_fold(fold_dataset(dataset, held_out, out / f"fold{k}" / "data"), out / f"fold{k}", args.epochs,
                            args.min_class_objects, overrides)
        records.update(stream_records(models, {o: packets[o] for o in held_out}))
        print(f"fold {k}: {len(held_out)} objects scored ({time.perf_counter() - start:.0f} s so far)", flush=True)
    if args.folds:
        report["k_fold"] = score_records(records, labels, first, args.bootstrap, args.seed)
        target = json.loads((out / "fold0" / "models" / "trust.json").read_text())["coverage"]
        _print(f"k-fold ({args.folds} folds, models never saw the scored objects)", report["k_fold"], target)
    if args.released and Path(args.released).is_dir():
        report["released"] = score_records(stream_records(Path(args.released), packets), labels, first,
                                           args.bootstrap, args.seed)
        target = json.loads((Path(args.released) / "trust.json").read_text())["coverage"]
        _print(f"released {args.released}/ (trained on their own split: saw some of these objects)",
               report["released"], target)
    report["seconds"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    print(f"\nwritten to {out / 'report.json'}; {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
