"""SNIascore, CCSNscore, SpectraNet and the paper I Appendix A ConvNeXt on the public spectra, in one run.

    .venv/bin/python benchmarks/spectral_systems.py [--epochs 50] [--out runs/spectral_systems] [--reuse]

``--reuse`` keeps every model already trained in ``--out`` (with its recorded training seconds, in each model's
``train_seconds.json``), so the training can run niced on a loaded machine (``--train-only``, optionally
``--models`` for a subset, e.g. two processes on one ``--out``) and a second ``--reuse`` run, alone on the
machine, gives the evaluation and the speed rows. Each model's convergence (epochs run, best epoch and its
validation figure, from the loop's ``history.json``) is part of the results.

The dataset is built with the project's own data build (``cider data build``: spectra, labels and the BTS
core-collapse light curves, objects matched by the build's identity step, object-level split 70/15/15 seed 42),
so all spectra of an object are on one side. Public spectra are not SEDM spectra: SNIascore, CCSNscore and
"R ≈ 100" SpectraNet read them degraded to R ≈ 100 on the SEDM grid (3800–9150 Å, 209 bins), SpectraNet
"native" and the ConvNeXt read the native sampling. Tables:

1. SN Ia vs rest on the test spectra every model can read: TPR at FPR 0.6 %, 1 %, 2 % (SNIascore: MC-mean
   score; SpectraNet: P(SN Ia) of its softmax, trained with the released recipe ``--spectranet-config``;
   ConvNeXt: P(SN Ia) of a binary head), the SNIascore validation operating point on the test set, SNIascore
   Ia redshift σ(Δz/(1+z)) and outlier rate;
2. CCSNscore layer 1 (II vs Ibc): accuracy, H-rich TPR at 2 % FPR, confident share and its accuracy, case S,
   and with light curves on the objects that have both; which spectra have ZTF photometry is counted on a
   second build with every source of the public bundle (alerts, both light-curve files), matched by the
   build's identity step (names and aliases);
3. training seconds and inference spectra/s per model (preprocessing included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from applecider_core.config import load_yaml
from applecider_core.dataset import open_dataset
from applecider_core.metrics import softmax
from applecider_core.records import Spectrum
from applecider_core.taxonomy import SPECTRA
from applecider_core.training import TrainingConfig, predict, seed_everything, train
from applecider_data.build import main as build_main
from applecider_images import SpectrumConvNeXt, SpectrumConvNeXtConfig
from applecider_spectra import ARCHITECTURES, CCSNscoreSystem, SNIascoreConfig, SNIascoreSystem
from applecider_spectra.data import SpectraDataset, build_arrays
from applecider_spectra.evaluate_seed import (
    evaluate_ccsnscore,
    evaluate_sniascore,
    photometry_overlap,
    tpr_table,
)
from applecider_spectra.preprocessing import SpectrumError
from applecider_spectra.sedm import SEDMGridConfig, degrade_to_sedm
from applecider_spectra.spectrum_images import SpectrumRenderer
from applecider_spectra.train import SpectraRunConfig, fit, load_arrays, model_for
from applecider_spectra.train_seed import (
    ArrayDataset,
    SeedRunConfig,
    binary_metrics,
    spectra_inputs,
    train_ccsnscore,
    train_sniascore,
    train_sniascore_redshift,
)

SHARED = Path(os.environ.get("APPLECIDER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def build_dataset(out: Path, all_sources: bool = False) -> Path:
    """The benchmark's dataset — spectra + labels + BTS light curves — via ``cider data build`` (reused if
    present); ``all_sources``: also the alerts and ztf_lightcurves.parquet (only for counting which spectra
    have ZTF photometry: more objects would change the split)."""
    name = "dataset_all_sources" if all_sources else "dataset"
    target = out / name
    if (target / "manifest.json").is_file():
        return target
    light_curves = [str(SHARED / "lightcurves" / "bts_antares_lightcurves.parquet")]
    sources = {"labels": str(SHARED / "labels" / "ztf_object_labels.csv"),
               "spectra": str(SHARED / "spectra" / "osc_spectra.parquet"), "light_curves": light_curves}
    if all_sources:
        light_curves.insert(0, str(SHARED / "lightcurves" / "ztf_lightcurves.parquet"))
        sources["alerts"] = [str(SHARED / "alerts" / "ztf_public_alerts.parquet"), str(SHARED / "alerts" / "avro")]
    config = {"output_dir": str(target), "sources": sources,
              "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 42, "min_objects": 3}}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.yaml").write_text(yaml.safe_dump(config))
    build_main(["--config", str(out / f"{name}.yaml")])
    return target


def seed_config(out: Path, arch: str, args, **train_overrides) -> SeedRunConfig:
    snia = arch == "sniascore"
    train_config = TrainingConfig(
        output_dir=str(out / arch), seed=args.seed, epochs=args.epochs if snia else args.ccsnscore_epochs,
        batch_size=256 if snia else 64, learning_rate=0.005 if snia else args.ccsnscore_lr, weight_decay=1e-4 if snia else 0.0,
        schedule="constant", grad_clip_norm=2.0, ema_decay=None,
        patience=(args.sniascore_patience or None) if snia else args.ccsnscore_patience,
        resume=False, cpu=True, log_every_steps=50, max_steps=args.max_steps, **train_overrides,
    )  # fmt: skip
    config = SeedRunConfig(train=train_config)
    config.model.arch = arch
    config.model.overrides = {"mc_passes": args.mc_passes}
    config.sniascore.redshift_per_bin = args.redshift_per_bin
    config.sniascore.redshift_epochs = args.redshift_epochs
    config.sniascore.redshift_patience = args.redshift_patience
    return config


def timed(fn, *a, **k):
    start = time.perf_counter()
    value = fn(*a, **k)
    return value, time.perf_counter() - start


def trained(directory: Path, reuse: bool, fn) -> tuple[object, float]:
    """``fn()`` (a training run writing into ``directory``) and its seconds, recorded in
    ``directory/train_seconds.json`` (with the start time and the load averages before and after); with ``reuse``
    and that record present, (None, recorded seconds)."""
    record = directory / "train_seconds.json"
    if reuse and record.is_file():
        return None, json.loads(record.read_text())["seconds"]
    load_before, started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    value, seconds = timed(fn)
    directory.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"seconds": seconds, "started": started, "load_average_before": load_before,
                                  "load_average_after": os.getloadavg()}))
    return value, seconds


def convergence(run_dir: Path, monitor: str, mode: str) -> dict:
    """From a training run's ``history.json``: epochs run, the best epoch (1-based) and its ``monitor`` value,
    and the last epoch's."""
    history = json.loads((run_dir / "history.json").read_text())
    values = np.array([entry.get(monitor, np.nan) for entry in history], float)
    best = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
    return {"monitor": monitor, "epochs": len(history), "best_epoch": best + 1, "best": float(values[best]),
            "last": float(values[-1])}


def sedm_like(spectrum: Spectrum, grid: SEDMGridConfig) -> Spectrum:
    """The spectrum degraded to R ≈ 100 on the SEDM bins (uncovered bins dropped), for SpectraNet at R ≈ 100."""
    binned = degrade_to_sedm(spectrum, grid)
    keep = np.isfinite(binned)
    return dataclasses.replace(spectrum, wavelength_aa=grid.centres_aa[keep], flux=binned[keep])


def spectranet_recipe(dataset_dir: Path, out: Path, args, degrade: bool) -> tuple[SpectraRunConfig, str]:
    """SpectraNet's released recipe (``--spectranet-config``: model, preprocessing, augmentation, schedule and
    class coverage) on the benchmark's split, and the run's folder name."""
    name = "spectranet_sedm" if degrade else "spectranet_native"
    overrides = {"data.path": str(dataset_dir), "train.output_dir": str(out / name), "train.seed": args.seed,
                 "train.cpu": True, "train.resume": False}
    if args.spectranet_epochs:
        overrides["train.epochs"] = args.spectranet_epochs
    if args.spectranet_max_steps or args.max_steps:
        overrides["train.max_steps"] = args.spectranet_max_steps or args.max_steps
    return load_yaml(args.spectranet_config, SpectraRunConfig, overrides), name


def spectranet_view(degrade: bool):
    """The spectra SpectraNet reads: native, or degraded to R ≈ 100 on the SEDM bins (unreadable ones dropped)."""
    grid = SEDMGridConfig()

    def view(spectra: list[Spectrum]) -> list[Spectrum]:
        return [s2 for s2 in (_try(sedm_like, s, grid) for s in spectra) if s2 is not None] if degrade else spectra

    return view


def train_spectranet(dataset_dir: Path, out: Path, args, degrade: bool) -> float:
    recipe, name = spectranet_recipe(dataset_dir, out, args, degrade)

    def fit_recipe():
        train_arrays, val_arrays, class_names = load_arrays(recipe, spectranet_view(degrade))
        seed_everything(args.seed)
        model = model_for(recipe, class_names, train_arrays)
        return fit(model, train_arrays, val_arrays, recipe.train, recipe.preprocess, recipe.augment, recipe)

    return trained(out / name, args.reuse, fit_recipe)[1]


def spectranet_p_ia(dataset, out: Path, args, degrade: bool) -> tuple[dict[str, float], float]:
    """P(SN Ia) of the trained SpectraNet per test spectrum id (every test spectrum, whatever its label), and
    the inference rate (spectra/s, preprocessing included)."""
    recipe, name = spectranet_recipe(dataset.root, out, args, degrade)
    best = ARCHITECTURES[recipe.model.arch][0].from_pretrained(out / name / "model").eval()
    start = time.perf_counter()
    arrays = build_arrays(spectranet_view(degrade)(dataset.spectra("test")), recipe.preprocess, taxonomy=SPECTRA,
                          class_names=SPECTRA.classes)
    logits, _ = predict(best, SpectraDataset(arrays))
    rate = len(arrays) / (time.perf_counter() - start)
    p_ia = softmax(logits)[:, list(best.config.class_names).index("SN Ia")]
    return dict(zip(arrays.spectrum_ids, p_ia.tolist())), rate


def _try(fn, *a):
    try:
        return fn(*a)
    except SpectrumError:
        return None


def convnext_arrays(dataset, split: str, renderer: SpectrumRenderer):
    """Rendered images (N, 3, H, W), 1 for SN Ia else 0 (N,), spectrum ids of the renderable spectra."""
    spectra = dataset.spectra(split)
    images, kept, _ = spectra_inputs(spectra, renderer)
    return images, np.array([int(spectra[i].label == "SN Ia") for i in kept]), [spectra[i].spectrum_id for i in kept]


def train_convnext(dataset, out: Path, args) -> float:
    """Appendix A: rendered spectra (raw + LOESS 0.05/0.1) → ConvNeXt-atto (pretrained=False, inverted input),
    SN Ia vs rest; AdamW, cosine schedule, the epoch with the best validation TPR at 1 % FPR kept."""
    renderer = SpectrumRenderer(size=args.image_size, max_smoothing_points=512)
    config = TrainingConfig(output_dir=str(out / "convnext"), seed=args.seed, epochs=args.convnext_epochs,
                            batch_size=32, learning_rate=args.convnext_lr, weight_decay=0.05, warmup_epochs=0.5, ema_decay=None,
                            patience=args.convnext_patience, monitor="tpr_at_fpr_1pct", resume=False, cpu=True,
                            log_every_steps=50, max_steps=args.max_steps)  # fmt: skip

    def fit_convnext():
        (x_train, y_train, _), (x_val, y_val, _) = (convnext_arrays(dataset, split, renderer) for split in ("train", "val"))
        seed_everything(args.seed)
        model = SpectrumConvNeXt(SpectrumConvNeXtConfig(image_size=args.image_size))
        return train(model, ArrayDataset(images=x_train, labels=y_train), ArrayDataset(images=x_val, labels=y_val),
                     config, compute_metrics=binary_metrics)

    return trained(out / "convnext", args.reuse, fit_convnext)[1]


def convnext_p_ia(dataset, out: Path, args) -> tuple[dict[str, float], float]:
    """P(SN Ia) of the trained ConvNeXt per renderable test spectrum, and spectra/s (rendering included)."""
    best = SpectrumConvNeXt.from_pretrained(out / "convnext" / "model").eval()
    start = time.perf_counter()
    x_test, y_test, ids = convnext_arrays(dataset, "test", SpectrumRenderer(size=best.config.image_size,
                                                                              max_smoothing_points=512))
    logits, _ = predict(best, ArrayDataset(images=x_test, labels=y_test))
    rate = len(ids) / (time.perf_counter() - start)
    return dict(zip(ids, softmax(logits)[:, 1].tolist())), rate


MODELS = ("sniascore", "ccsnscore", "spectranet", "convnext")
SPECTRANET_ROWS = {True: "SpectraNet (released recipe), R≈100", False: "SpectraNet (released recipe), native"}
CONVNEXT_ROW = "ConvNeXt-atto images (App. A), native"
SNIA_ROW, Z_ROW, CCSN_ROW = "SNIascore classifier", "SNIascore z regressor", "CCSNscore (7 binary models, case S)"


def train_models(args, dataset, dataset_dir: Path) -> dict[str, float]:
    """Train (or, with ``--reuse``, keep) the models of ``args.models``; their training seconds."""
    out, seconds = args.out, {}
    if "sniascore" in args.models:
        snia_config = seed_config(out, "sniascore", args)
        snia_config.data.path = str(dataset_dir)
        snia_config.sniascore.redshift = False  # the regressor is trained (and timed) on its own below
        seconds[SNIA_ROW] = trained(out / "sniascore", args.reuse, lambda: train_sniascore(snia_config, dataset))[1]
        redshift_summary = out / "sniascore" / "redshift_summary.json"
        model_config = SNIascoreConfig.from_preset("paper", **snia_config.model.overrides)
        seconds[Z_ROW] = trained(out / "sniascore" / "redshift_run", args.reuse, lambda: redshift_summary.write_text(
            json.dumps(train_sniascore_redshift(snia_config, model_config, dataset.spectra("train"),
                                                dataset.spectra("val")), default=float)))[1]
    if "ccsnscore" in args.models:
        ccsn_config = seed_config(out, "ccsnscore", args)
        ccsn_config.data.path = str(dataset_dir)
        seconds[CCSN_ROW] = trained(out / "ccsnscore", args.reuse, lambda: train_ccsnscore(ccsn_config, dataset))[1]
    if "spectranet" in args.models:
        for degrade, row in SPECTRANET_ROWS.items():
            seconds[row] = train_spectranet(dataset_dir, out, args, degrade)
    if "convnext" in args.models:
        seconds[CONVNEXT_ROW] = train_convnext(dataset, out, args)
    return seconds


def convergence_table(out: Path) -> dict[str, dict]:
    """Convergence of every trained model (CCSNscore: per binary model and balanced round)."""
    table = {SNIA_ROW: convergence(out / "sniascore" / "classifier_run", "tpr_at_fpr_1pct", "max"),
             Z_ROW: convergence(out / "sniascore" / "redshift_run", "rmse", "min")}
    for run in sorted((out / "ccsnscore").glob("*_run/round*")):
        table[f"CCSNscore {run.parent.name[:-4]} {run.name}"] = convergence(run, "bce", "min")
    for degrade, row in SPECTRANET_ROWS.items():
        table[row] = convergence(out / ("spectranet_sedm" if degrade else "spectranet_native"), "macro_f1", "max")
    table[CONVNEXT_ROW] = convergence(out / "convnext", "tpr_at_fpr_1pct", "max")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/spectral_systems"))
    parser.add_argument("--epochs", type=int, default=50, help="SNIascore epochs, classifier and z (paper: >= 325)")
    parser.add_argument("--sniascore-patience", type=int, default=15,
                        help="stop SNIascore (classifier, and z unless --redshift-patience) after this many epochs "
                             "without a better validation figure; 0: no stopping rule, the best epoch of all (the paper's)")
    parser.add_argument("--ccsnscore-epochs", type=int, default=100, help="CCSNscore epochs per binary model (paper: 100)")
    parser.add_argument("--ccsnscore-patience", type=int, default=25,
                        help="early stopping on the validation loss (paper: 7; configs/ccsnscore.yaml says why 25)")
    parser.add_argument("--ccsnscore-lr", type=float, default=1e-3, help="CCSNscore Adam learning rate (paper: 1e-3)")
    parser.add_argument("--mc-passes", type=int, default=100, help="MC-dropout passes (papers: 100)")
    parser.add_argument("--redshift-per-bin", type=int, default=10, help="augmented Ia spectra per 0.001 z bin (paper ~100)")
    parser.add_argument("--redshift-epochs", type=int, default=25, help="SNIascore z regressor epochs (paper: >= 525)")
    parser.add_argument("--redshift-patience", type=int, default=None,
                        help="z regressor: stop after this many epochs without a lower validation RMSE (default: "
                             "--sniascore-patience's rule)")
    parser.add_argument("--spectranet-config", type=Path, default=Path("configs/public/spectra.yaml"),
                        help="SpectraNet's recipe (the released model's); its data.path and output_dir are replaced")
    parser.add_argument("--spectranet-epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--spectranet-max-steps", type=int, default=None, help="cap SpectraNet's optimiser steps")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the models already trained in --out (and their recorded training seconds)")
    parser.add_argument("--convnext-epochs", type=int, default=4)
    parser.add_argument("--convnext-lr", type=float, default=3e-4,
                        help="ConvNeXt AdamW learning rate (batch 32; at 1e-3 it stayed at chance)")
    parser.add_argument("--convnext-patience", type=int, default=None,
                        help="stop the ConvNeXt after this many epochs without a better validation TPR at 1 %% FPR")
    parser.add_argument("--image-size", type=int, default=64, help="rendered image side (appendix: 288)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the recurrent models are far slower with 2 on a loaded machine)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap optimiser steps per model (smoke runs)")
    parser.add_argument("--train-only", action="store_true", help="train (or reuse) the models, evaluate nothing")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="with --train-only: train only these (the evaluation needs all)")
    parser.add_argument("--print", type=Path, dest="print_results", help="only print the tables of a results.json")
    args = parser.parse_args()
    if args.print_results:
        return reprint(args.print_results)
    if args.redshift_patience is not None and args.redshift_patience < 1:
        parser.error(f"--redshift-patience must be >= 1, got {args.redshift_patience}")
    if not args.train_only and set(args.models) != set(MODELS):
        parser.error("--models selects what --train-only trains; the evaluation needs every model")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dataset_dir = build_dataset(args.out)
    dataset = open_dataset(dataset_dir)
    train_s = train_models(args, dataset, dataset_dir)
    if args.train_only:
        return
    results = evaluate(args, dataset, train_s)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print_tables(results)


def evaluate(args, dataset, train_s: dict[str, float]) -> dict:
    """Every table of the benchmark from the trained models in ``args.out`` (load average before and after)."""
    out, test = args.out, dataset.spectra("test")
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "train_s": train_s, "spectra_per_s": {},
                     "load_average_before": os.getloadavg()}
    results["sniascore_train"] = json.loads((out / "sniascore" / "summary.json").read_text())
    results["sniascore_train"]["redshift"] = json.loads((out / "sniascore" / "redshift_summary.json").read_text())
    results["ccsnscore_train"] = json.loads((out / "ccsnscore" / "summary.json").read_text())
    results["convergence"] = convergence_table(out)
    system = SNIascoreSystem.from_dir(out / "sniascore")
    predictions, seconds = timed(system.predict, test)  # inference incl. preprocessing, MC passes, z of the Ia
    z_max = seed_config(out, "sniascore", args).sniascore.redshift_max  # the augmentation's range
    results["sniascore"] = evaluate_sniascore(system, test, predictions, z_max=z_max)
    results["spectra_per_s"][SNIA_ROW] = results["sniascore"]["n"] / seconds
    snia_scores = {s.spectrum_id: r["score"] for s, r in zip(test, predictions) if isinstance(r, dict)}
    label_of = {s.spectrum_id: s.label == "SN Ia" for s in test}

    others = {}
    for degrade, row in SPECTRANET_ROWS.items():
        others[row], results["spectra_per_s"][row] = spectranet_p_ia(dataset, out, args, degrade)
    others[CONVNEXT_ROW], results["spectra_per_s"][CONVNEXT_ROW] = convnext_p_ia(dataset, out, args)
    common = sorted(set(snia_scores).intersection(*others.values()))
    labels = np.array([label_of[i] for i in common])
    results["ia_common"] = {"n": len(common), "n_ia": int(labels.sum()),
                            "SNIascore, R≈100": tpr_table(np.array([snia_scores[i] for i in common]), labels)}
    for name, scores in others.items():
        results["ia_common"][name] = tpr_table(np.array([scores[i] for i in common]), labels)

    ccsn = CCSNscoreSystem.from_dir(out / "ccsnscore")
    results["ccsnscore"], seconds = timed(evaluate_ccsnscore, ccsn, test, dataset)
    results["spectra_per_s"][CCSN_ROW] = results["ccsnscore"]["layer1_S"]["n"] / seconds
    results["load_average_after"] = os.getloadavg()
    objects = dataset.objects
    results["objects_with_spectrum_and_light_curve"] = int((objects["has_spectrum"] & objects["has_light_curve"]).sum())
    results["photometry_overlap_all_sources"] = photometry_overlap(open_dataset(build_dataset(out, all_sources=True)))
    return results


def reprint(path: Path) -> None:
    """Print the tables of an earlier run's results.json (``python benchmarks/spectral_systems.py --print FILE``)."""
    print_tables(json.loads(path.read_text()))


def print_tables(results: dict) -> None:
    common = results["ia_common"]
    print(f"\nSN Ia vs rest, {common['n']} common test spectra ({common['n_ia']} SN Ia); TPR at FPR")
    print(f"{'model':<42s} {'0.6%':>7s} {'1%':>7s} {'2%':>7s}")
    for name, row in common.items():
        if isinstance(row, dict):
            print(f"{name:<42s} " + " ".join(f"{row[k]:7.3f}" for k in ("0.6%", "1%", "2%")))
    snia = results["sniascore"]
    point = snia["operating_point"]
    print(f"SNIascore operating point (validation, FPR ≤ 0.6 %): score ≥ {point['score_cut']:.3f}, σ ≤ "
          f"{point['error_cut']:.3f} → test TPR {point['tpr']:.3f}, FPR {point['fpr']:.4f} ({snia['n']} spectra)")
    for key in ("redshift_confident_ia", "redshift_all_ia", "redshift_confident_ia_in_range", "redshift_all_ia_in_range"):
        if key in snia:
            z = snia[key]
            print(f"SNIascore z on {key[9:]}: n {z['n']}, σ(Δz/(1+z)) {z['sigma']:.4f}, MAD {z['mad']:.4f}, "
                  f"bias {z['bias']:+.4f}, outliers (>0.05) {z['outlier_rate_pct']:.1f} %")
    ccsn = results["ccsnscore"]
    print("\nCCSNscore layer 1, II vs Ibc (test spectra)")
    print(f"{'case':<28s} {'n':>5s} {'acc':>7s} {'ambig':>7s} {'TPR@2%':>7s} {'AUC':>7s} {'conf':>7s} {'conf acc':>8s}")
    for key in ("layer1_S", "layer1_S_on_lc_objects", "layer1_with_lc"):
        if key in ccsn:
            r = ccsn[key]
            print(f"{key:<28s} {r['n']:5d} {r['accuracy']:7.3f} {r['ambiguous']:7.3f} "
                  f"{r.get('h_rich_tpr_at_2pct_fpr', float('nan')):7.3f} {r.get('h_rich_roc_auc', float('nan')):7.3f} "
                  f"{r['confident_share']:7.3f} {r['confident_accuracy']:8.3f}")
    print(f"objects with a spectrum and a light curve in the build: {results['objects_with_spectrum_and_light_curve']}")
    if overlap := results.get("photometry_overlap_all_sources"):
        print(f"all-sources build: layer-1 spectra of objects with ZTF photometry "
              f"{overlap['layer1_spectra_with_light_curve']}; latest layer-1 spectrum MJD "
              f"{overlap['latest_layer1_spectrum_mjd']:.1f}; {overlap['layer1_objects_with_light_curve']} "
              f"II/Ibc-labelled objects with photometry, earliest detection MJD "
              f"{overlap['earliest_layer1_light_curve_detection_mjd']:.1f}; spectra with photometry by label "
              + str({k: v["spectra_with_light_curve"] for k, v in overlap["per_label"].items() if v["spectra_with_light_curve"]}))
    for layer in ("layer2a_accuracy", "layer2b_accuracy"):
        if layer in ccsn:
            print(f"{layer}: {ccsn[layer]['accuracy']:.3f} on {ccsn[layer]['n']} spectra")
    print(f"\n{'model':<42s} {'train s':>8s} {'spectra/s':>10s}")
    for name in results["train_s"]:
        print(f"{name:<42s} {results['train_s'][name]:8.1f} {results['spectra_per_s'].get(name, float('nan')):10.1f}")
    if "convergence" in results:
        print(f"\n{'convergence':<42s} {'monitor':>16s} {'epochs':>6s} {'best ep':>7s} {'best':>8s} {'last':>8s}")
        for name, c in results["convergence"].items():
            print(f"{name:<42s} {c['monitor']:>16s} {c['epochs']:6d} {c['best_epoch']:7d} {c['best']:8.4f} {c['last']:8.4f}")
    if "load_average_before" in results:
        print(f"load average (1/5/15 min) before {results['load_average_before']}, after {results['load_average_after']}")


if __name__ == "__main__":
    main()
