"""Public-data photometry benchmark: [CLS]-Transformer with/without masked-event pretraining vs Informer.

    .venv/bin/python benchmarks/photometry_public.py [--data ../shared/data] [--out /tmp/photometry_public]
        [--epochs 12] [--pretrain-epochs 8] [--preset small]

Classes: SN Ia, SLSN-I, TDE (the labelled ZTF light curves of ../shared/data/lightcurves). Sources differ in
cadence and format (SN Ia: ANTARES alert photometry; SLSN-I: a literature catalogue's P48 points; TDE: Fink
alert photometry; TDECat: archival multi-year photometry), so a model could learn the *source* instead of the
class. What this script does against that:

- TDECat rows are left out (archival photometry covering years around the flare, and CC BY-NC);
- every source goes through the data build's alert-like stage (``applecider_data.alertlike``, the one
  homogenisation that ``cider data build`` applies before ``cider train photometry``): detections only, ZTF
  g and r, a window anchored on the event (``--window`` = 100 days after its first detection), per-band
  cadence thinned to one point per ``--min-gap`` (2.5) days, then the same event features and horizons;
- a *source-only* check (``applecider_photometry.sourcecheck``): a logistic regression on format features
  alone (number of events, span, median gap, median σ_logf, fraction of g) — if it scores like the
  networks, the task is (partly) solvable from format;
- a *cross-source* check: models trained on the light-curve file are also evaluated on the alert histories
  (prv_candidates + candidate detections) of labelled objects in alerts/ztf_public_alerts.parquet, a
  different pipeline (objects in the training/validation light curves are excluded).

Masked-event pretraining uses the training+validation light curves and the alert histories of every object
except the test objects (labels unused), a random ``--max-pretrain`` of them. Object-level stratified split
60/20/20 (seed 0); training uses at most ``--max-per-class`` curves per class (SN Ia is subsampled), the
test set is complete. Fine-tuning: TDE augmented copies up to 3× its count, and copies of the training set
truncated at 10 and 30 days for early classification. CPU-sized (2 shared cores): ``small`` preset, few
epochs; the numbers are a smoke-scale comparison, not the paper's.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from applecider_core.records import LightCurve, mag_to_flux_ujy
from applecider_core.taxonomy import normalise_label
from applecider_core.training import TrainingConfig
from applecider_data.alertlike import AlertLikeConfig, alert_like_rows
from applecider_photometry.data import LabelledCurve, cap_per_class, usable_curves
from applecider_photometry.evaluate import horizon_sweep
from applecider_photometry.pretrain import run_pretraining
from applecider_photometry.runconfig import (
    DataSection,
    FinetuneSection,
    ModelSection,
    PretrainRunConfig,
    TrainRunConfig,
)
from applecider_photometry.sourcecheck import source_only_check
from applecider_photometry.train import run_finetuning

CLASSES = ("SN Ia", "SLSN-I", "TDE")
BANDS = ("ztfg", "ztfr")
HORIZONS = (3.0, 7.0, 15.0, 30.0, 60.0, 100.0)
logger = logging.getLogger("photometry_public")


def homogenise(lc: LightCurve, source: str, config: AlertLikeConfig) -> LightCurve:
    """The data build's alert-like stage (``applecider_data.alertlike``) applied to one curve."""
    rows = pd.DataFrame({"object_id": lc.object_id, "mjd": lc.mjd, "band": lc.band, "flux_ujy": lc.flux_ujy,
                         "flux_err_ujy": lc.flux_err_ujy, "is_detection": lc.is_detection, "source": source})
    rows = alert_like_rows(rows, config)
    return LightCurve(lc.object_id, rows["mjd"].to_numpy(), rows["band"].to_numpy(), rows["flux_ujy"].to_numpy(),
                      rows["flux_err_ujy"].to_numpy(), rows["is_detection"].to_numpy())


def load_light_curves(data: Path) -> pd.DataFrame:
    table = pd.read_parquet(data / "lightcurves/ztf_lightcurves.parquet")
    table = table[(table["source"] != "dlangis/TDECat") & table["label"].isin(CLASSES)]
    rows = []
    for (source, name), g in table.groupby(["source", "object"], sort=True):
        flux, err = mag_to_flux_ujy(g["mag"].to_numpy(), g["magerr"].to_numpy())
        lc = LightCurve(name, g["mjd"].to_numpy(), g["band"].to_numpy(), flux, err, g["is_detection"].to_numpy())
        rows.append({"object": name, "ztf_id": g["ztf_id"].iloc[0] or name, "label": g["label"].iloc[0],
                     "source": source, "lc": lc})
    return pd.DataFrame(rows)


def load_alert_histories(data: Path) -> pd.DataFrame:
    """One light curve per object: the detections of its alert with the most detections."""
    alerts = pd.read_parquet(data / "alerts/ztf_public_alerts.parquet", columns=["objectId", "candidate", "prv_candidates"])
    labels = pd.read_csv(data / "labels/ztf_object_labels.csv", usecols=["objectId", "label"])
    label_of = dict(zip(labels["objectId"], labels["label"]))
    best: dict[str, LightCurve] = {}
    for object_id, cand, prv in alerts.itertuples(index=False):
        rows = [*(json.loads(prv) if prv else []), json.loads(cand)]
        rows = [r for r in rows if r.get("magpsf") is not None and r.get("sigmapsf") is not None and r.get("fid") in (1, 2, 3)]
        if not rows:
            continue
        mag = np.array([r["magpsf"] for r in rows], dtype=float)
        flux, err = mag_to_flux_ujy(mag, np.array([r["sigmapsf"] for r in rows], dtype=float))
        sign = np.array([-1.0 if str(r.get("isdiffpos", "t")).lower() in ("f", "0") else 1.0 for r in rows])
        lc = LightCurve(object_id, np.array([r["jd"] for r in rows]) - 2400000.5,
                        np.array(["ztfg", "ztfr", "ztfi"])[np.array([r["fid"] for r in rows]) - 1],
                        sign * flux, err, np.ones(len(rows), dtype=bool))
        if object_id not in best or len(lc) > len(best[object_id]):
            best[object_id] = lc
    out = pd.DataFrame({"object": list(best), "lc": list(best.values())})
    out["label"] = [normalise_label(label_of.get(o)).label if o in label_of else None for o in out["object"]]
    return out


def split_objects(frame: pd.DataFrame, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=frame.index)
    for _, idx in frame.groupby("label").groups.items():
        idx = rng.permutation(np.asarray(idx))
        n_val, n_test = max(1, round(0.2 * len(idx))), max(1, round(0.2 * len(idx)))
        split[idx[:n_test]] = "test"
        split[idx[n_test:n_test + n_val]] = "val"
    return split


def curves_of(frame: pd.DataFrame) -> list[LabelledCurve]:
    curves = [LabelledCurve(lc, CLASSES.index(label) if label in CLASSES else 0) for lc, label in zip(frame["lc"], frame["label"])]
    return usable_curves(curves, BANDS)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data")
    parser.add_argument("--out", type=Path, default=Path("/tmp/photometry_public"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--window", type=float, default=100.0)
    parser.add_argument("--min-gap", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-per-class", type=int, default=400, help="cap on train (and val/3) curves per class")
    parser.add_argument("--max-pretrain", type=int, default=2000, help="cap on pretraining curves")
    parser.add_argument("--print-only", action="store_true", help="print the tables of OUT/results.json and exit")
    args = parser.parse_args()
    if args.print_only:
        print_tables(json.loads((args.out / "results.json").read_text()))
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    lcs = load_light_curves(args.data)
    alerts = load_alert_histories(args.data)
    alert_like = AlertLikeConfig(bands=BANDS, post_event_days=args.window, min_gap_days=args.min_gap)
    lcs["lc"] = [homogenise(lc, source, alert_like) for lc, source in zip(lcs["lc"], lcs["source"])]
    alerts["lc"] = [homogenise(lc, "alerts", alert_like) for lc in alerts["lc"]]
    lcs = lcs[[len(lc) > 0 for lc in lcs["lc"]]].reset_index(drop=True)
    alerts = alerts[[len(lc) > 0 for lc in alerts["lc"]]].reset_index(drop=True)
    lcs["split"] = split_objects(lcs)
    seen = set(lcs.loc[lcs["split"] != "test", "ztf_id"])
    alert_test = alerts[alerts["label"].isin(CLASSES) & ~alerts["object"].isin(seen)]
    test_ids = set(lcs.loc[lcs["split"] == "test", "ztf_id"]) | set(alert_test["object"])
    logger.info("light curves: %s", lcs.groupby(["label", "split"]).size().to_dict())
    logger.info("alert histories: %d objects, labelled test %s", len(alerts), alert_test["label"].value_counts().to_dict())

    train, val, test = (curves_of(lcs[lcs["split"] == s]) for s in ("train", "val", "test"))
    train, val = cap_per_class(train, args.max_per_class), cap_per_class(val, max(1, args.max_per_class // 3))
    alert_curves = curves_of(alert_test)
    data_section = DataSection(horizon_days=args.window, bands=BANDS, class_names=CLASSES)
    common = {"batch_size": 64, "learning_rate": 5e-4, "weight_decay": 1e-2, "ema_decay": None, "warmup_epochs": 1.0,
              "patience": None, "log_every_steps": 50}
    results: dict[str, dict] = {"source_only": source_only_check(train, test, CLASSES)}

    # Masked-event pretraining on unlabelled histories + light curves (test objects excluded).
    pre_frame = pd.concat([lcs[lcs["split"] != "test"][["lc"]], alerts[~alerts["object"].isin(test_ids)][["lc"]]])
    pre_curves = curves_of(pre_frame.assign(label=None))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pre_curves))[: args.max_pretrain]
    n_val = len(pre_curves) // 10
    pre_run = PretrainRunConfig(
        data=data_section, model=ModelSection(preset=args.preset),
        train=TrainingConfig(output_dir=str(args.out / "pretrain"), epochs=args.pretrain_epochs, resume=False,
                             monitor="reconstruction_loss", monitor_mode="min", **common),
    )  # fmt: skip
    t0 = time.perf_counter()
    pre_result = run_pretraining([pre_curves[i] for i in order[n_val:]], [pre_curves[i] for i in order[:n_val]], pre_run)
    logger.info("pretraining on %d curves: %.0f s, best %s", len(pre_curves), time.perf_counter() - t0,
                {k: round(v, 3) for k, v in pre_result.best_metrics.items() if k.startswith("loss")})

    variants = {
        "cls_transformer": ModelSection(preset=args.preset),
        "cls_transformer+pretraining": ModelSection(preset=args.preset, init_from=str(pre_result.model_dir)),
        "informer": ModelSection(preset=args.preset, overrides={"arch": "informer"}),
    }
    for name, model_section in variants.items():
        run = TrainRunConfig(
            data=data_section, model=model_section,
            finetune=FinetuneSection(oversample_class="TDE", oversample_target=3 * sum(c.label == 2 for c in train),
                                     extra_horizons_days=(10.0, 30.0)),
            train=TrainingConfig(output_dir=str(args.out / name), epochs=args.epochs, resume=False,
                                 monitor="macro_auprc", **common),
        )  # fmt: skip
        t0 = time.perf_counter()
        _, model = run_finetuning(train, val, run, CLASSES)
        results[name] = {
            "test": horizon_sweep(model, test, HORIZONS, top_k=(2,)),
            "alerts": horizon_sweep(model, alert_curves, (3.0, 7.0, 15.0, 30.0), top_k=(2,)) if alert_curves else [],
            "seconds": time.perf_counter() - t0,
        }
        logger.info("%s: %.0f s", name, results[name]["seconds"])
    results["counts"] = {"train": len(train), "val": len(val), "test": len(test), "alerts_test": len(alert_curves),
                         "pretrain": len(order)}
    results["total_seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print_tables(results)


def print_tables(results: dict) -> None:
    counts = results["counts"]
    print(f"\ncounts: {counts}; total {results['total_seconds']:.0f} s")
    print(f"source-only (format features, logistic regression, LC test): macro-AUPRC "
          f"{results['source_only']['macro_auprc']:.3f}, balanced accuracy {results['source_only']['balanced_accuracy']:.3f}")
    for split in ("test", "alerts"):
        print(f"\n{split}: macro-AUPRC / balanced accuracy by horizon (days)")
        names = [k for k in results if isinstance(results[k], dict) and isinstance(results[k].get(split), list)]
        horizons = [r["horizon_days"] for r in results[names[0]][split]]
        if not horizons:
            continue
        print("| model | " + " | ".join(f"{h:g} d" for h in horizons) + " |")
        print("|---|" + "---|" * len(horizons))
        for name in names:
            cells = [f"{r['macro_auprc']:.3f} / {r['balanced_accuracy']:.3f}" for r in results[name][split]]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
