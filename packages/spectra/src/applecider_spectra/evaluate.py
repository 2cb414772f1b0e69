"""Evaluation entry point (``cider evaluate spectra``): classification metrics (accuracy, top-3, macro-F1,
macro and per-class ROC-AUC, confusion matrix PNG) under the three redshift strategies of paper II Table 8
(catalogue z, regressor-predicted z, no z) in one report, all scored on the one shared subset of spectra
usable under every strategy, the redshift regressor's Table 9 metrics with a
predicted-vs-true plot, and optional Monte-Carlo dropout (per-class probability std)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from applecider_core.config import load_yaml, parse_overrides
from applecider_core.dataset import open_dataset
from applecider_core.metrics import softmax
from applecider_core.plots import plot_confusion_matrix, plot_roc_pr
from applecider_core.pretrained import PretrainedError, read_preprocessor
from applecider_core.records import Spectrum
from applecider_core.taxonomy import get_taxonomy
from applecider_core.training import predict

from . import ARCHITECTURES
from .data import SpectraArrays, SpectraDataset, build_arrays, select
from .metrics import composite_score, plot_redshift, redshift_metrics
from .preprocessing import PreprocessConfig
from .train import SpectraRunConfig

logger = logging.getLogger(__name__)
HEADLINE = ("accuracy", "top3_accuracy", "macro_f1", "macro_roc_auc")


def load_model(directory: str | Path):
    """Any spectra model saved by the training loop (the type is read from config.json)."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise PretrainedError(f"{directory}: no config.json; expected a model directory written by training")
    model_type = json.loads(config_path.read_text()).get("model_type")
    for model_cls, config_cls in ARCHITECTURES.values():
        if config_cls.model_type == model_type:
            return model_cls.from_pretrained(directory)
    raise PretrainedError(f"{directory}: model_type {model_type!r} is not a spectra model")


def model_preprocess(model) -> PreprocessConfig:
    return PreprocessConfig.from_json(getattr(model, "preprocessor", {}).get("preprocess", {}))


def predict_redshift(model, spectra: Sequence[Spectrum], batch_size: int = 64) -> tuple[np.ndarray, list]:
    """Regressor predictions (N,) for ``spectra`` (NaN where a spectrum was rejected) and the errors."""
    preprocess = model_preprocess(model)
    arrays = build_arrays([_with_z(s) for s in spectra], preprocess, task="redshift")
    out = np.full(len(spectra), np.nan)
    if len(arrays):
        logits, _ = predict(model, SpectraDataset(arrays), batch_size=batch_size)
        out[arrays.indices] = logits[:, 0]
    return out, arrays.errors


def _with_z(spectrum: Spectrum) -> Spectrum:
    """The regressor needs no catalogue z to predict; give spectra without one a placeholder target."""
    if np.isfinite(spectrum.redshift):
        return spectrum
    return dataclasses.replace(spectrum, redshift=0.0)


def classification_report_for(model, arrays: SpectraArrays, out_dir: Path, name: str,
                              mc_passes: int = 0) -> dict[str, Any]:
    """Metrics, confusion matrix and ROC/PR PNGs of ``model`` on ``arrays``; MC-dropout std if asked."""
    from applecider_core.metrics import classification_report

    logits, labels = predict(model, SpectraDataset(arrays))
    class_names = list(model.config.class_names)
    report = classification_report(softmax(logits), labels, class_names)
    report["composite"] = composite_score(report)
    plot_confusion_matrix(np.asarray(report["confusion_matrix"]), class_names, out_dir / f"confusion_{name}.png",
                          title=f"{name}: row-normalised")
    plot_roc_pr(softmax(logits), labels, class_names, out_dir / f"roc_pr_{name}.png")
    if mc_passes:
        _, std = model.predict_mc(torch.from_numpy(arrays.flux), mc_passes)
        report["mc_dropout"] = {"passes": mc_passes, "mean_std_per_class": dict(zip(class_names, std.mean(0).tolist()))}
    report["rejected_spectra"] = len(arrays.errors)
    return report


def evaluate(config: SpectraRunConfig, model_dir: str | Path, out_dir: str | Path, split: str = "test",
             redshift_model_dir: str | Path | None = None, no_z_model_dir: str | Path | None = None,
             mc_passes: int = 0) -> dict[str, Any]:
    """Everything in one report dict (also written to ``out_dir/metrics.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = open_dataset(config.data.path)
    spectra = dataset.spectra(split)
    classifier = load_model(model_dir)
    taxonomy = get_taxonomy(config.data.taxonomy)
    kwargs = {"taxonomy": taxonomy, "class_names": classifier.config.class_names}
    given = model_preprocess(classifier)
    report: dict[str, Any] = {"split": split, "model": str(model_dir), "strategies": {}}
    strategies = {"given_z": (classifier, build_arrays(spectra, given, **kwargs))}
    if redshift_model_dir is not None:
        regressor = load_model(redshift_model_dir)
        z_pred, _ = predict_redshift(regressor, spectra)
        have_both = np.isfinite(z_pred) & np.array([np.isfinite(s.redshift) for s in spectra])
        z_true = np.array([s.redshift for s in spectra])
        if have_both.any():
            report["redshift"] = redshift_metrics(z_pred[have_both], z_true[have_both])
            plot_redshift(z_pred[have_both], z_true[have_both], out_dir / "redshift_pred_vs_true.png")
        usable = [i for i in range(len(spectra)) if np.isfinite(z_pred[i])]
        strategies["predicted_z"] = (classifier, build_arrays([spectra[i] for i in usable], given,
                                                              redshifts=z_pred[usable], **kwargs))
    no_z_model = load_model(no_z_model_dir) if no_z_model_dir is not None else classifier
    no_z = PreprocessConfig.from_dict({**model_preprocess(no_z_model).to_dict(), "redshift_mode": "none"})
    strategies["no_z"] = (no_z_model, build_arrays(spectra, no_z, **kwargs))
    # Every strategy is scored on the same spectra: those usable under all of them (given z needs a
    # catalogue redshift, predicted z a regressor output), so the strategies differ only in the redshift.
    shared = set.intersection(*(set(arrays.spectrum_ids) for _, arrays in strategies.values()))
    report["shared_subset"] = {"spectra": len(shared), "usable_per_strategy": {
        name: len(arrays) for name, (_, arrays) in strategies.items()}}
    if not shared:
        raise ValueError(f"no {split} spectrum is usable under every redshift strategy ({report['shared_subset']})")
    for name, (model, arrays) in strategies.items():
        subset = select(arrays, np.isin(arrays.spectrum_ids, sorted(shared)))
        subset.errors = arrays.errors
        report["strategies"][name] = classification_report_for(model, subset, out_dir, name,
                                                               mc_passes if name == "given_z" else 0)
    report["no_z_model"] = str(no_z_model_dir or model_dir)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=1))
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = ["strategy        " + "  ".join(f"{k:>14s}" for k in HEADLINE)]
    for name, metrics in report["strategies"].items():
        lines.append(f"{name:<16s}" + "  ".join(f"{metrics[k]:14.4f}" for k in HEADLINE))
    if "redshift" in report:
        lines.append("redshift: " + ", ".join(f"{k} {v:.4g}" for k, v in report["redshift"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider evaluate spectra", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the run config used for training (data section)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--model", required=True, help="classifier directory (…/model)")
    parser.add_argument("--redshift-model", help="SpectraNet-Redshift directory: adds the predicted-z strategy")
    parser.add_argument("--no-z-model", help="classifier trained in the observer frame (default: --model)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--mc-passes", type=int, default=0, help="Monte-Carlo dropout passes (0: off)")
    parser.add_argument("--output", help="output directory (default: <model>/../eval_<split>)")
    args, _ = parser.parse_known_args(argv)
    from .train_seed import SEED_ARCHS, config_arch

    if config_arch(args.config, parse_overrides(args.set)) in SEED_ARCHS:  # SNIascore / CCSNscore systems
        from .evaluate_seed import main as evaluate_seed_system

        return evaluate_seed_system(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_yaml(args.config, SpectraRunConfig, parse_overrides(args.set))
    out = args.output or str(Path(args.model).parent / f"eval_{args.split}")
    report = evaluate(config, args.model, out, args.split, args.redshift_model, args.no_z_model, args.mc_passes)
    print(format_report(report))
    print(f"written to {out}/metrics.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["evaluate", "load_model", "main", "predict_redshift", "read_preprocessor"]
