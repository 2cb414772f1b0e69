"""SNIascore, CCSNscore, SpectraNet and the paper I Appendix A ConvNeXt on the public spectra, in one run.

    .venv/bin/python benchmarks/spectral_systems.py [--epochs 50] [--out runs/spectral_systems] [--reuse]

``--reuse`` keeps every model already trained in ``--out`` (with its recorded training seconds, in each model's
``train_seconds.json``), so the training can run niced on a loaded machine (``--train-only`` for the seed
systems) and a second ``--reuse`` run, alone on the machine, gives the evaluation and the speed rows.

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
   and with light curves on the objects that have both (counted from the build);
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
from applecider_spectra.evaluate_seed import evaluate_ccsnscore, evaluate_sniascore, tpr_table
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


def build_dataset(out: Path) -> Path:
    """The shared dataset of spectra + labels + BTS light curves, via ``cider data build`` (reused if present)."""
    target = out / "dataset"
    if (target / "manifest.json").is_file():
        return target
    config = {"output_dir": str(target), "sources": {
        "labels": str(SHARED / "labels" / "ztf_object_labels.csv"),
        "spectra": str(SHARED / "spectra" / "osc_spectra.parquet"),
        "light_curves": str(SHARED / "lightcurves" / "bts_antares_lightcurves.parquet")},
        "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 42, "min_objects": 3}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.yaml").write_text(yaml.safe_dump(config))
    build_main(["--config", str(out / "data.yaml")])
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
    return config


def timed(fn, *a, **k):
    start = time.perf_counter()
    value = fn(*a, **k)
    return value, time.perf_counter() - start


def trained(directory: Path, reuse: bool, fn) -> tuple[object, float]:
    """``fn()`` (a training run writing into ``directory``) and its seconds, recorded in
    ``directory/train_seconds.json``; with ``reuse`` and that record present, (None, recorded seconds)."""
    record = directory / "train_seconds.json"
    if reuse and record.is_file():
        return None, json.loads(record.read_text())["seconds"]
    value, seconds = timed(fn)
    directory.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"seconds": seconds}))
    return value, seconds


def sedm_like(spectrum: Spectrum, grid: SEDMGridConfig) -> Spectrum:
    """The spectrum degraded to R ≈ 100 on the SEDM bins (uncovered bins dropped), for SpectraNet at R ≈ 100."""
    binned = degrade_to_sedm(spectrum, grid)
    keep = np.isfinite(binned)
    return dataclasses.replace(spectrum, wavelength_aa=grid.centres_aa[keep], flux=binned[keep])


def spectranet_p_ia(dataset, out: Path, args, degrade: bool) -> tuple[dict[str, float], float, float]:
    """SpectraNet trained with the released recipe (``--spectranet-config``: its model, preprocessing,
    augmentation, schedule and class coverage) on the benchmark's split, natively or at R ≈ 100; P(SN Ia) per
    test spectrum id (every test spectrum, whatever its label)."""
    grid = SEDMGridConfig()

    def view(spectra: list[Spectrum]) -> list[Spectrum]:
        return [s2 for s2 in (_try(sedm_like, s, grid) for s in spectra) if s2 is not None] if degrade else spectra

    name = "spectranet_sedm" if degrade else "spectranet_native"
    overrides = {"data.path": str(dataset.root), "train.output_dir": str(out / name), "train.seed": args.seed,
                 "train.cpu": True, "train.resume": False}
    if args.spectranet_epochs:
        overrides["train.epochs"] = args.spectranet_epochs
    if args.spectranet_max_steps or args.max_steps:
        overrides["train.max_steps"] = args.spectranet_max_steps or args.max_steps
    recipe = load_yaml(args.spectranet_config, SpectraRunConfig, overrides)

    def fit_recipe():
        train_arrays, val_arrays, class_names = load_arrays(recipe, view)
        seed_everything(args.seed)
        model = model_for(recipe, class_names, train_arrays)
        return fit(model, train_arrays, val_arrays, recipe.train, recipe.preprocess, recipe.augment, recipe)

    _, seconds = trained(out / name, args.reuse, fit_recipe)
    best = ARCHITECTURES[recipe.model.arch][0].from_pretrained(out / name / "model").eval()
    start = time.perf_counter()
    arrays = build_arrays(view(dataset.spectra("test")), recipe.preprocess, taxonomy=SPECTRA, class_names=SPECTRA.classes)
    logits, _ = predict(best, SpectraDataset(arrays))
    rate = len(arrays) / (time.perf_counter() - start)
    p_ia = softmax(logits)[:, list(best.config.class_names).index("SN Ia")]
    return dict(zip(arrays.spectrum_ids, p_ia.tolist())), seconds, rate


def _try(fn, *a):
    try:
        return fn(*a)
    except SpectrumError:
        return None


def convnext_p_ia(dataset, out: Path, args) -> tuple[dict[str, float], float, float]:
    """Appendix A: rendered spectra (raw + LOESS 0.05/0.1) → ConvNeXt-atto (pretrained=False), SN Ia vs rest."""
    renderer = SpectrumRenderer(size=args.image_size, max_smoothing_points=512)

    def arrays(split: str):
        spectra = dataset.spectra(split)
        images, kept, _ = spectra_inputs(spectra, renderer)
        return images, np.array([int(spectra[i].label == "SN Ia") for i in kept]), [spectra[i].spectrum_id for i in kept]

    model = SpectrumConvNeXt(SpectrumConvNeXtConfig(image_size=args.image_size))
    config = TrainingConfig(output_dir=str(out / "convnext"), seed=args.seed, epochs=args.convnext_epochs,
                            batch_size=32, learning_rate=1e-3, weight_decay=0.05, warmup_epochs=0.5, ema_decay=None,
                            patience=None, monitor="tpr_at_fpr_1pct", resume=False, cpu=True, log_every_steps=50,
                            max_steps=args.max_steps)
    def fit_convnext():
        (x_train, y_train, _), (x_val, y_val, _) = arrays("train"), arrays("val")
        return train(model, ArrayDataset(images=x_train, labels=y_train), ArrayDataset(images=x_val, labels=y_val),
                     config, compute_metrics=binary_metrics)

    _, seconds = trained(out / "convnext", args.reuse, fit_convnext)
    best = SpectrumConvNeXt.from_pretrained(out / "convnext" / "model").eval()
    start = time.perf_counter()
    x_test, y_test, ids = arrays("test")
    logits, _ = predict(best, ArrayDataset(images=x_test, labels=y_test))
    rate = len(ids) / (time.perf_counter() - start)
    return dict(zip(ids, softmax(logits)[:, 1].tolist())), seconds, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/spectral_systems"))
    parser.add_argument("--epochs", type=int, default=50, help="SNIascore epochs, classifier and z (paper: >= 325)")
    parser.add_argument("--sniascore-patience", type=int, default=15,
                        help="stop SNIascore (classifier and z regressor) after this many epochs without a better "
                             "validation figure; 0: no stopping rule, the best epoch of all (the paper's)")
    parser.add_argument("--ccsnscore-epochs", type=int, default=100, help="CCSNscore epochs per binary model (paper: 100)")
    parser.add_argument("--ccsnscore-patience", type=int, default=25,
                        help="early stopping on the validation loss (paper: 7; configs/ccsnscore.yaml says why 25)")
    parser.add_argument("--ccsnscore-lr", type=float, default=1e-3, help="CCSNscore Adam learning rate (paper: 1e-3)")
    parser.add_argument("--mc-passes", type=int, default=100, help="MC-dropout passes (papers: 100)")
    parser.add_argument("--redshift-per-bin", type=int, default=10, help="augmented Ia spectra per 0.001 z bin (paper ~100)")
    parser.add_argument("--redshift-epochs", type=int, default=25, help="SNIascore z regressor epochs (paper: >= 525)")
    parser.add_argument("--spectranet-config", type=Path, default=Path("configs/public/spectra.yaml"),
                        help="SpectraNet's recipe (the released model's); its data.path and output_dir are replaced")
    parser.add_argument("--spectranet-epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--spectranet-max-steps", type=int, default=None, help="cap SpectraNet's optimiser steps")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the models already trained in --out (and their recorded training seconds)")
    parser.add_argument("--convnext-epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64, help="rendered image side (appendix: 288)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the recurrent models are far slower with 2 on a loaded machine)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap optimiser steps per model (smoke runs)")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or reuse) SNIascore and CCSNscore, evaluate nothing (SpectraNet and the "
                             "ConvNeXt train in the evaluating run)")
    parser.add_argument("--print", type=Path, dest="print_results", help="only print the tables of a results.json")
    args = parser.parse_args()
    if args.print_results:
        return reprint(args.print_results)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dataset_dir = build_dataset(args.out)
    dataset = open_dataset(dataset_dir)
    test = dataset.spectra("test")
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "train_s": {}, "spectra_per_s": {}}

    snia_config = seed_config(args.out, "sniascore", args)
    snia_config.data.path = str(dataset_dir)
    snia_config.sniascore.redshift = False  # the regressor is trained (and timed) on its own below
    _, results["train_s"]["SNIascore classifier"] = trained(
        args.out / "sniascore", args.reuse, lambda: train_sniascore(snia_config, dataset))
    results["sniascore_train"] = json.loads((args.out / "sniascore" / "summary.json").read_text())
    redshift_summary = args.out / "sniascore" / "redshift_summary.json"
    _, results["train_s"]["SNIascore z regressor"] = trained(
        args.out / "sniascore" / "redshift_run", args.reuse, lambda: redshift_summary.write_text(json.dumps(
            train_sniascore_redshift(snia_config, SNIascoreConfig.from_preset("paper", **snia_config.model.overrides),
                                     dataset.spectra("train"), dataset.spectra("val")), default=float)))
    results["sniascore_train"]["redshift"] = json.loads(redshift_summary.read_text())
    ccsn_config = seed_config(args.out, "ccsnscore", args)
    ccsn_config.data.path = str(dataset_dir)
    _, results["train_s"]["CCSNscore (7 binary models, case S)"] = trained(
        args.out / "ccsnscore", args.reuse, lambda: train_ccsnscore(ccsn_config, dataset))
    results["ccsnscore_train"] = json.loads((args.out / "ccsnscore" / "summary.json").read_text())
    if args.train_only:
        return
    system = SNIascoreSystem.from_dir(args.out / "sniascore")
    predictions, seconds = timed(system.predict, test)  # inference incl. preprocessing, MC passes, z of the Ia
    results["sniascore"] = evaluate_sniascore(system, test, predictions)
    results["spectra_per_s"]["SNIascore classifier"] = results["sniascore"]["n"] / seconds
    snia_scores = {s.spectrum_id: r["score"] for s, r in zip(test, predictions) if isinstance(r, dict)}
    label_of = {s.spectrum_id: s.label == "SN Ia" for s in test}

    others = {}
    for name, fn in (("SpectraNet (released recipe), R≈100", lambda: spectranet_p_ia(dataset, args.out, args, True)),
                     ("SpectraNet (released recipe), native", lambda: spectranet_p_ia(dataset, args.out, args, False)),
                     ("ConvNeXt-atto images (App. A), native", lambda: convnext_p_ia(dataset, args.out, args))):
        others[name], results["train_s"][name], results["spectra_per_s"][name] = fn()
    common = sorted(set(snia_scores).intersection(*others.values()))
    labels = np.array([label_of[i] for i in common])
    results["ia_common"] = {"n": len(common), "n_ia": int(labels.sum()),
                            "SNIascore, R≈100": tpr_table(np.array([snia_scores[i] for i in common]), labels)}
    for name, scores in others.items():
        results["ia_common"][name] = tpr_table(np.array([scores[i] for i in common]), labels)

    ccsn = CCSNscoreSystem.from_dir(args.out / "ccsnscore")
    results["ccsnscore"], seconds = timed(evaluate_ccsnscore, ccsn, test, dataset)
    results["spectra_per_s"]["CCSNscore (7 binary models, case S)"] = results["ccsnscore"]["layer1_S"]["n"] / seconds
    objects = dataset.objects
    results["objects_with_spectrum_and_light_curve"] = int((objects["has_spectrum"] & objects["has_light_curve"]).sum())
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print_tables(results)


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
    for key in ("redshift_confident_ia", "redshift_all_ia"):
        if key in snia:
            z = snia[key]
            print(f"SNIascore z on {key[9:]}: n {z['n']}, σ(Δz/(1+z)) {z['sigma']:.4f}, bias {z['bias']:+.4f}, "
                  f"outliers (>0.05) {z['outlier_rate_pct']:.1f} %")
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
    for layer in ("layer2a_accuracy", "layer2b_accuracy"):
        if layer in ccsn:
            print(f"{layer}: {ccsn[layer]['accuracy']:.3f} on {ccsn[layer]['n']} spectra")
    print(f"\n{'model':<42s} {'train s':>8s} {'spectra/s':>10s}")
    for name in results["train_s"]:
        print(f"{name:<42s} {results['train_s'][name]:8.1f} {results['spectra_per_s'].get(name, float('nan')):10.1f}")


if __name__ == "__main__":
    main()
