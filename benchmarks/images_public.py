"""AstroMiNN vs the BTSbot baseline on the labelled public ZTF alerts of ../shared/data (paper I Table 6 setup).

    .venv/bin/python benchmarks/images_public.py [--classes "SN I" "SN II"] [--folds 5] [--epochs 15]

The ~190 labelled alerts (113 objects) of ``alerts/ztf_public_alerts.parquet`` joined with
``labels/ztf_object_labels.csv`` are far too few for the paper's classes: after mapping to the fusion
taxonomy there are ~55 SN I and ~30 SN II objects, 3 TDE objects, 2 AGN and 1 CV. The default task is
therefore SN I vs SN II. Alerts without FITS stamps and the alerts whose candidate position/time was
altered by their source repository (``candidate_altered``) are left out.

Protocol: object-level stratified K-fold cross-validation (fold k = test, fold k+1 = validation for early
stopping on macro-AUPRC, the rest = training), so every object is tested exactly once. Each fold is written
in the shared dataset format and trained with the package's own entry point (``applecider_images.train.run``),
then the pooled out-of-fold predictions are scored; 95 % confidence intervals come from a bootstrap over
objects (all alerts of a drawn object go together). The metadata are built here from the candidate record
(Table 2 fields; age_days from the packet history; nnondet = ncovhist - ndethist): the data tools' parser is
not imported, as the image package depends on core only.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from applecider_core.config import from_dict
from applecider_core.dataset import open_dataset
from applecider_core.records import ALERT_METADATA_FEATURES, METADATA_FEATURES
from applecider_images import load_model
from applecider_images.data import AlertImageDataset, encode_labels
from applecider_images.evaluate import predict_with_routing
from applecider_images.preprocessing import metadata_preprocessor_for, pad_stamp
from applecider_images.train import ImagesRunConfig, run

DATA = Path(os.environ.get("APPLECIDER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MODELS = {
    "AstroMiNN tiny": {"type": "astrominn", "preset": "tiny"},
    "AstroMiNN small": {"type": "astrominn", "preset": "small"},
    "BTSbot small": {"type": "btsbot", "preset": "small"},
}


def _decode(blob: bytes) -> np.ndarray:
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(gzip.decompress(blob))) as hdul:
            return pad_stamp(np.asarray(hdul[0].data, dtype=np.float32))


def _metadata(candidate: dict, history: list[dict]) -> np.ndarray:
    row = [np.nan if candidate.get(k) is None else float(candidate[k]) for k in ALERT_METADATA_FEATURES]
    detections = [p["jd"] for p in history if p.get("magpsf") is not None and p.get("jd") is not None]
    age = candidate["jd"] - min([*detections, candidate["jd"]])
    nnondet = row[METADATA_FEATURES.index("ncovhist")] - row[METADATA_FEATURES.index("ndethist")]
    return np.array([*row, age, nnondet], dtype=np.float32)


def load_labelled_alerts(class_names: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Labelled alerts with stamps: frame (object_id, candid, ra/dec, label, ...), metadata (N, 19), cutouts."""
    import pyarrow.parquet as pq

    labels = pd.read_csv(DATA / "labels" / "ztf_object_labels.csv", usecols=["objectId", "label"])
    alerts = pq.read_table(DATA / "alerts" / "ztf_public_alerts.parquet").to_pandas()
    alerts = alerts.merge(labels, on="objectId")
    alerts = alerts[(alerts["cutout_format"] == "gzip-fits") & ~alerts["candidate_altered"]]
    alerts = alerts[encode_labels(alerts["label"].tolist(), class_names) >= 0].reset_index(drop=True)
    rows, metadata, cutouts = [], [], []
    for r in alerts.itertuples():
        cand = json.loads(r.candidate)
        history = json.loads(r.prv_candidates) if r.prv_candidates else []
        try:  # a few stored stamps are corrupt (gzip CRC errors): skip those alerts
            cutouts.append(np.stack([_decode(r.cutoutScience), _decode(r.cutoutTemplate),
                                     _decode(r.cutoutDifference)]))
        except (OSError, ValueError, EOFError) as error:
            logging.warning("alert %s: stamps do not decode (%s); skipped", r.candid, error)
            continue
        metadata.append(_metadata(cand, history or []))
        rows.append({"object_id": r.objectId, "candid": int(r.candid), "mjd": cand["jd"] - 2400000.5,
                     "band": {1: "ztfg", 2: "ztfr", 3: "ztfi"}[cand["fid"]], "ra_deg": cand["ra"],
                     "dec_deg": cand["dec"], "label": r.label})
    return pd.DataFrame(rows), np.stack(metadata), np.stack(cutouts)


def object_folds(frame: pd.DataFrame, class_names: tuple[str, ...], k: int, seed: int) -> dict[str, int]:
    """Object → fold, stratified by class (objects of each class dealt round-robin after a shuffle)."""
    rng = np.random.default_rng(seed)
    objects = frame.drop_duplicates("object_id")
    classes = encode_labels(objects["label"].tolist(), class_names)
    fold_of, offset = {}, 0
    for c in range(len(class_names)):
        ids = objects["object_id"].to_numpy()[classes == c]
        for i, object_id in enumerate(rng.permutation(ids)):
            fold_of[object_id] = (i + offset) % k
        offset += len(ids)
    return fold_of


def write_fold(root: Path, frame: pd.DataFrame, metadata: np.ndarray, cutouts_path: Path, splits: dict) -> Path:
    """One fold in the shared dataset format (cutouts.npy is a symlink to the shared array)."""
    root.mkdir(parents=True, exist_ok=True)
    objects = frame.drop_duplicates("object_id")[["object_id", "label"]].copy()
    objects["redshift"], objects["split"] = np.nan, objects["object_id"].map(splits)
    objects["has_alerts"], objects["has_light_curve"], objects["has_spectrum"] = True, False, False
    objects.to_parquet(root / "objects.parquet")
    table = frame.drop(columns=["label"]).assign(cutout_index=np.arange(len(frame)))
    table = pd.concat([table, pd.DataFrame(metadata, columns=list(METADATA_FEATURES))], axis=1)
    table.to_parquet(root / "alerts.parquet")
    (root / "cutouts.npy").symlink_to(cutouts_path)
    pd.DataFrame({"object_id": pd.Series([], dtype=str)}).to_parquet(root / "light_curves.parquet")
    pd.DataFrame({"spectrum_id": pd.Series([], dtype=str)}).to_parquet(root / "spectra.parquet")
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "note": "images_public fold"}))
    return root


def _macro_auc(y: np.ndarray, p: np.ndarray) -> float:
    aucs = [roc_auc_score(y == c, p[:, c]) for c in range(p.shape[1]) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(aucs)) if aucs else np.nan


def bootstrap_scores(probs: np.ndarray, labels: np.ndarray, objects: np.ndarray, folds: np.ndarray,
                     n: int = 1000, seed: int = 0) -> dict:
    """Per-fold mean macro ROC-AUC, pooled ROC-AUC and accuracy with 95 % object-level bootstrap intervals.

    Pooling out-of-fold scores of different fold models mixes their calibrations (a near-constant model can
    then score below 0.5 only because each fold's training prior is shifted against its test fold), so the
    headline number is the mean of the per-fold AUCs; objects are resampled within each fold.
    """
    groups = {f: {o: np.flatnonzero((objects == o) & (folds == f)) for o in np.unique(objects[folds == f])}
              for f in np.unique(folds)}

    def scores(index_by_fold: dict) -> tuple[float, float, float]:
        per_fold = [_macro_auc(labels[idx], probs[idx]) for idx in index_by_fold.values()]
        idx = np.concatenate(list(index_by_fold.values()))
        return float(np.nanmean(per_fold)), _macro_auc(labels[idx], probs[idx]), float(np.mean(probs[idx].argmax(1) == labels[idx]))

    rng = np.random.default_rng(seed)
    point = scores({f: np.concatenate(list(g.values())) for f, g in groups.items()})
    draws = []
    for _ in range(n):
        drawn = {}
        for f, g in groups.items():
            keys = list(g)
            drawn[f] = np.concatenate([g[keys[i]] for i in rng.integers(0, len(keys), len(keys))])
        draws.append(scores(drawn))
    lo, hi = np.nanpercentile(np.array(draws), [2.5, 97.5], axis=0)
    names = ("auc", "pooled_auc", "accuracy")
    return {**{k: point[i] for i, k in enumerate(names)}, **{f"{k}_ci": (lo[i], hi[i]) for i, k in enumerate(names)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", nargs="+", default=["SN I", "SN II"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--save-predictions", type=Path, help="npz with the out-of-fold probabilities per model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    class_names = tuple(args.classes)
    start = time.time()
    frame, metadata, cutouts = load_labelled_alerts(class_names)
    y_all = encode_labels(frame["label"].tolist(), class_names)
    n_obj = frame.groupby(y_all)["object_id"].nunique().to_dict()
    print(f"# {len(frame)} alerts of {frame['object_id'].nunique()} objects; per class (alerts/objects): "
          + ", ".join(f"{c} {(y_all == i).sum()}/{n_obj.get(i, 0)}" for i, c in enumerate(class_names)))
    fold_of = object_folds(frame, class_names, args.folds, args.seed)
    results, predictions = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        cutouts_path = Path(tmp) / "cutouts.npy"
        np.save(cutouts_path, cutouts)
        for name in args.models:
            t0, oof = time.time(), np.zeros((len(frame), len(class_names)))
            for k in range(args.folds):
                splits = {o: "test" if f == k else "val" if f == (k + 1) % args.folds else "train"
                          for o, f in fold_of.items()}
                root = write_fold(Path(tmp) / f"{name}_{k}", frame, metadata, cutouts_path, splits)
                config = from_dict(ImagesRunConfig, {
                    "data": {"path": str(root), "balance": "weights"},
                    "model": {**MODELS[name], "overrides": {"class_names": list(class_names)}},
                    "train": {"output_dir": str(Path(tmp) / f"run_{name}_{k}"), "epochs": args.epochs,
                              "batch_size": 16, "learning_rate": args.lr, "monitor": "macro_auprc", "patience": 5,
                              "ema_decay": None, "cpu": True, "seed": args.seed, "grad_clip_norm": 5.0},
                })  # fmt: skip
                run(config)
                model = load_model(Path(config.train.output_dir) / "model")
                # the fold's test table keeps the frame's row order, so its row i is frame row test_rows[i]
                test_rows = np.flatnonzero(frame["object_id"].map(splits).to_numpy() == "test")
                ds = AlertImageDataset(open_dataset(root).alerts("test"), model.config,
                                       metadata_preprocessor_for(model.config, model.preprocessor))
                oof[test_rows[ds.rows]] = predict_with_routing(model, ds)["probs"]
            n_params = sum(p.numel() for p in model.parameters())
            predictions[name] = oof
            folds = frame["object_id"].map(fold_of).to_numpy()
            results[name] = {**bootstrap_scores(oof, y_all, frame["object_id"].to_numpy(), folds), "params": n_params,
                             "seconds": time.time() - t0}
            r = results[name]
            print(f"{name}: per-fold AUC {r['auc']:.3f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}], pooled AUC "
                  f"{r['pooled_auc']:.3f} [{r['pooled_auc_ci'][0]:.3f}, {r['pooled_auc_ci'][1]:.3f}], accuracy "
                  f"{r['accuracy']:.3f} [{r['accuracy_ci'][0]:.3f}, {r['accuracy_ci'][1]:.3f}] ({r['seconds']:.0f} s)",
                  flush=True)
    if args.save_predictions:
        np.savez(args.save_predictions, labels=y_all, objects=frame["object_id"].to_numpy(),
                 folds=frame["object_id"].map(fold_of).to_numpy(), **predictions)
    prior = np.bincount(y_all).max() / len(y_all)
    print("\n| model | parameters | ROC-AUC, mean over folds (95 % CI) | pooled out-of-fold ROC-AUC (95 % CI) | "
          "accuracy (95 % CI) | wall time |\n|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['params'] / 1e6:.2f} M | {r['auc']:.3f} ({r['auc_ci'][0]:.3f}–{r['auc_ci'][1]:.3f}) | "
              f"{r['pooled_auc']:.3f} ({r['pooled_auc_ci'][0]:.3f}–{r['pooled_auc_ci'][1]:.3f}) | "
              f"{r['accuracy']:.3f} ({r['accuracy_ci'][0]:.3f}–{r['accuracy_ci'][1]:.3f}) | {r['seconds']:.0f} s |")
    print(f"| majority class | – | 0.500 | 0.500 | {prior:.3f} | – |")
    print(f"\n# {args.folds}-fold object-level CV, {args.epochs} epochs max, lr {args.lr}, seed {args.seed}; "
          f"total {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
