"""Public-data benchmark: SpectraNet vs GalSpecNet vs a SNIascore-style RNN on the Open Supernova Catalog
spectra in ../shared/data/spectra/osc_spectra.parquet, plus the SpectraNet redshift regressor (Table 9).

    .venv/bin/python benchmarks/spectra_public.py [--data FILE] [--epochs 8] [--out runs/spectra_public]

``--data`` defaults to ``$APPLECIDER_SHARED_DATA/spectra/osc_spectra.parquet``, else ../shared/data beside the
repository (as the other benchmarks).

Data handling (documented in docs/spectra.md):
- labels mapped to the SPECTRA taxonomy (SN Ibn → SN Ib); SN Ib/c (ambiguous) and SLSN-II (1 object) have no
  SPECTRA class and are dropped; classes with fewer than ``--min-objects`` objects are dropped too;
- classification uses the catalogue redshift (spectra without one are dropped for the given-z runs);
- object-level split (all spectra of an object on one side), stratified by class, 70/15/15, seeded;
- the regressor reads observer-frame spectra; its train/val objects are the classification train+val objects
  re-split by 10 equal-width redshift bins (paper II §2.2), its test set is the classification test set, so
  the predicted-z strategy never sees a test object in training.
All models train with the same core loop (AdamW, warm-up + cosine, class-balanced focal loss, EMA, early
stopping on validation macro-F1) for a few epochs on CPU; numbers are for this short budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from applecider_core.metrics import classification_report, softmax
from applecider_core.records import Spectrum
from applecider_core.taxonomy import SPECTRA
from applecider_core.training import TrainingConfig, predict
from applecider_spectra import build_model
from applecider_spectra.data import SpectraDataset, build_arrays, group_split, redshift_bins, select
from applecider_spectra.metrics import redshift_metrics
from applecider_spectra.preprocessing import PreprocessConfig
from applecider_spectra.train import fit

SHARED = Path(os.environ.get("APPLECIDER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA = SHARED / "spectra" / "osc_spectra.parquet"
MODELS = {"SpectraNet (small)": ("spectranet", "small"), "GalSpecNet": ("galspecnet", "paper"),
          "SNIascore-style RNN": ("rnn", "paper")}
HEADLINE = ("accuracy", "top3_accuracy", "macro_f1", "macro_roc_auc")


def load_spectra(path: Path) -> list[Spectrum]:
    table = pd.read_parquet(path, columns=["object", "label", "redshift", "mjd", "instrument", "wavelength", "flux"])
    return [
        Spectrum(object_id=row.object, wavelength_aa=np.asarray(row.wavelength), flux=np.asarray(row.flux),
                 spectrum_id=f"{row.object}#{i}", redshift=float(row.redshift), mjd=float(row.mjd),
                 label=SPECTRA.class_of(row.label), instrument=str(row.instrument))
        for i, row in enumerate(table.itertuples(index=False))
    ]  # fmt: skip


def train_config(out: Path, name: str, args, monitor: str = "macro_f1", mode: str = "max") -> TrainingConfig:
    return TrainingConfig(
        output_dir=str(out / name), seed=args.seed, epochs=args.epochs, batch_size=32, learning_rate=args.lr,
        weight_decay=1e-4, warmup_epochs=0.5, schedule="cosine", ema_decay=0.99, patience=args.patience,
        monitor=monitor, monitor_mode=mode, resume=False, cpu=True, log_every_steps=50,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/spectra_public"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--redshift-epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-objects", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--spectranet-overrides", type=json.loads, default={},
                        help='SpectraNet config overrides as JSON, e.g. {"head_pool": 1}')
    parser.add_argument("--skip-redshift", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="load models already trained under --out (e.g. by earlier runs of single models)")
    parser.add_argument("--max-spectra", type=int, help="smoke runs: keep only the first N labelled spectra")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()

    spectra = load_spectra(args.data)
    n_objects = pd.Series({s.object_id: s.label for s in spectra}).value_counts(dropna=False)
    kept_classes = [c for c in SPECTRA.classes if n_objects.get(c, 0) >= args.min_objects]
    dropped = {str(k): int(v) for k, v in n_objects.items() if k not in kept_classes}
    labelled = [s for s in spectra if s.label in kept_classes][: args.max_spectra]
    objects = [s.object_id for s in labelled]
    split = group_split(objects, [s.label for s in labelled], (0.70, 0.15, 0.15), args.seed)
    given = PreprocessConfig()
    arrays = build_arrays(labelled, given, class_names=kept_classes)  # given z; spectra without z dropped
    split_rows = split[arrays.indices]
    parts = {name: select(arrays, split_rows == name) for name in ("train", "val", "test")}
    counts = np.bincount(parts["train"].targets, minlength=len(kept_classes))
    info = {"classes": kept_classes, "dropped_objects_by_label": dropped,
            "spectra": {k: len(v) for k, v in parts.items()}, "rejected": len(arrays.errors),
            "no_redshift": arrays.dropped_labels, "train_counts": dict(zip(kept_classes, counts.tolist()))}
    print(json.dumps(info, indent=1))

    results: dict[str, dict] = {}
    trained = {}
    for name in args.models:
        arch, preset = MODELS[name]
        overrides = args.spectranet_overrides if arch == "spectranet" else {}
        model = build_model(arch, preset, class_names=tuple(kept_classes), class_counts=tuple(counts.tolist()), **overrides)
        t0 = time.perf_counter()
        seconds_file = args.out / arch / "train_seconds.txt"
        if not (args.reuse and (args.out / arch / "model" / "model.safetensors").is_file()):
            fit(model, parts["train"], parts["val"], train_config(args.out, arch, args), given, augment=True)
            seconds_file.write_text(f"{time.perf_counter() - t0:.1f}")
        best = type(model).from_pretrained(args.out / arch / "model")
        logits, labels = predict(best, SpectraDataset(parts["test"]))
        report = classification_report(softmax(logits), labels, kept_classes)
        results[name] = {k: report[k] for k in HEADLINE} | {"train_s": float(seconds_file.read_text()),
                                                          "per_class_recall": {c: v["recall"] for c, v in report["per_class"].items()}}
        trained[arch] = best
        print(name, {k: round(v, 4) for k, v in results[name].items() if isinstance(v, float)}, flush=True)

    if not args.skip_redshift:
        # redshift regressor: observer frame; train/val = classification train+val re-split by 10 z bins
        observer = dataclasses.replace(given, redshift_mode="none")
        zarrays = build_arrays(labelled, observer, task="redshift")
        zsplit = split[zarrays.indices]
        pool = select(zarrays, zsplit != "test")
        pool_split = group_split(pool.object_ids, redshift_bins(pool.targets, 10), (0.70, 0.15), args.seed, ("train", "val"))
        regressor = build_model("spectranet", "small", task="redshift", **args.spectranet_overrides)
        t0 = time.perf_counter()
        seconds_file = args.out / "redshift" / "train_seconds.txt"
        if not (args.reuse and (args.out / "redshift" / "model" / "model.safetensors").is_file()):
            fit(regressor, select(pool, pool_split == "train"), select(pool, pool_split == "val"),
                dataclasses.replace(train_config(args.out, "redshift", args, "rmse", "min"), epochs=args.redshift_epochs),
                observer, augment=True)
            seconds_file.write_text(f"{time.perf_counter() - t0:.1f}")
        regressor = type(regressor).from_pretrained(args.out / "redshift" / "model")
        ztest = select(zarrays, zsplit == "test")
        zpred, _ = predict(regressor, SpectraDataset(ztest))
        results["redshift"] = redshift_metrics(zpred[:, 0], ztest.targets) | {"train_s": float(seconds_file.read_text())}

        # Table 8 strategies for SpectraNet on the classification test spectra
        if "spectranet" in trained:
            classifier = trained["spectranet"]
            test_spectra = [labelled[i] for i in parts["test"].indices]
            z_by_row = dict(zip(ztest.indices.tolist(), zpred[:, 0].tolist()))
            predicted_z = [z_by_row.get(i, np.nan) for i in parts["test"].indices]
            strategies = {
                "given z": build_arrays(test_spectra, given, class_names=kept_classes),
                "predicted z": build_arrays(test_spectra, given, class_names=kept_classes, redshifts=predicted_z),
                "no z (observer frame)": build_arrays(test_spectra, observer, class_names=kept_classes),
            }
            results["strategies"] = {}
            for sname, sarrays in strategies.items():
                logits, labels = predict(classifier, SpectraDataset(sarrays))
                report = classification_report(softmax(logits), labels, kept_classes)
                results["strategies"][sname] = {k: report[k] for k in HEADLINE} | {"n": report["n"]}

    results["info"] = info | {"epochs": args.epochs, "redshift_epochs": args.redshift_epochs,
                              "total_s": time.perf_counter() - started}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n{'model':24s}" + "".join(f"{k:>15s}" for k in HEADLINE) + f"{'train s':>10s}")
    for name in args.models:
        r = results[name]
        print(f"{name:24s}" + "".join(f"{r[k]:15.4f}" for k in HEADLINE) + f"{r['train_s']:10.0f}")
    for sname, r in results.get("strategies", {}).items():
        print(f"SpectraNet, {sname:13s}" + "".join(f"{r[k]:15.4f}" for k in HEADLINE))
    if "redshift" in results:
        print("redshift (Table 9): " + ", ".join(f"{k} {v:.4g}" for k, v in results["redshift"].items()))
    print(f"total {results['info']['total_s']:.0f} s; written to {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
