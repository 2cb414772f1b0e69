"""Training entry point: ``python -m applecider_spectra.train --config configs/spectra.yaml`` (= ``cider train
spectra``). Reads the shared dataset (``applecider_core.dataset``), preprocesses its spectra, and trains
SpectraNet / GalSpecNet / the RNN with the core loop (AdamW, warm-up then constant or cosine, class-balanced
focal loss, EMA, AMP auto, early stopping on validation macro-F1). ``--seeds 0 1 2`` trains one run per seed
and reports mean ± std. ``task: redshift`` trains the Softplus regressor on observer-frame spectra with an
object-level split stratified by 10 equal-width redshift bins (paper II §2.2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from applecider_core.config import ConfigError, load_yaml, parse_overrides
from applecider_core.dataset import open_dataset
from applecider_core.records import Spectrum
from applecider_core.taxonomy import DEFAULT_MIN_CLASS_OBJECTS, covered_classes, get_taxonomy
from applecider_core.training import TrainingConfig, TrainResult, seed_everything, train

from . import ARCHITECTURES, build_model
from .configuration import TASKS
from .data import (
    SpectraArrays,
    SpectraDataset,
    build_arrays,
    group_split,
    object_counts,
    redshift_bins,
    restrict_classes,
    select,
)
from .metrics import classification_metrics, redshift_compute_metrics
from .preprocessing import EdgeMasking, PreprocessConfig

logger = logging.getLogger(__name__)
# The class lists of the papers (spectra taxonomy names): paper II Table 2 (10 merged types) and paper I
# Table 7 (SpectraNet vs GalSpecNet, 9 classes).
CLASS_PRESETS: dict[str, tuple[str, ...]] = {
    "paper_ii_table2": ("SN Ia", "AGN", "SN Ic", "SN Ib", "SN IIn", "SN IIb", "CV", "TDE", "SLSN-I", "SN IIP"),
    "paper_i_table7": ("SN Ia", "SN Ib", "SN Ic", "SN IIP", "SN IIb", "SN IIn", "AGN", "CV", "TDE"),
}
SUMMARY_KEYS = {
    "classification": ("accuracy", "top3_accuracy", "macro_f1", "macro_roc_auc", "composite"),
    "redshift": ("bias", "sigma", "mad", "mae", "rmse", "max_error", "r2", "outlier_rate_pct"),
}


@dataclass
class DataSection:
    path: str = "data/dataset"  # a directory written by `cider data build`
    taxonomy: str = "spectra"
    class_names: tuple[str, ...] | None = None  # subset/order of the taxonomy's classes (None: all)
    class_preset: str | None = None  # a paper's class list (CLASS_PRESETS), used when class_names is None
    min_class_objects: int = DEFAULT_MIN_CLASS_OBJECTS  # classification: classes need this many training objects
    redshift_split: str = "bins"  # redshift task: bins (re-split train+val by z bins) | dataset
    redshift_bins: int = 10
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.class_preset is not None and self.class_preset not in CLASS_PRESETS:
            raise ConfigError(f"data.class_preset must be one of {sorted(CLASS_PRESETS)}, got {self.class_preset!r}")

    def candidate_classes(self) -> list[str]:
        """class_names, else the preset's classes, else every class of the taxonomy."""
        if self.class_names:
            return list(self.class_names)
        if self.class_preset:
            return list(CLASS_PRESETS[self.class_preset])
        return list(get_taxonomy(self.taxonomy).classes)


@dataclass
class ModelSection:
    arch: str = "spectranet"  # spectranet | galspecnet | rnn
    preset: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)  # model-config fields


@dataclass
class SpectraRunConfig:
    task: str = "classification"  # classification | redshift
    data: DataSection = field(default_factory=DataSection)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelSection = field(default_factory=ModelSection)
    augment: bool = True  # blue/red edge masking (paper II §2.3)
    seeds: tuple[int, ...] = ()  # several seeds: one run each under output_dir/seed_<s>
    train: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.model.arch not in ARCHITECTURES:
            raise ConfigError(f"model.arch must be one of {sorted(ARCHITECTURES)}, got {self.model.arch!r}")
        if self.data.redshift_split not in ("bins", "dataset"):
            raise ConfigError(f"data.redshift_split must be 'bins' or 'dataset', got {self.data.redshift_split!r}")
        self.seeds = tuple(int(s) for s in self.seeds)


def effective_preprocess(config: SpectraRunConfig) -> PreprocessConfig:
    """The regressor sees observer-frame spectra (it predicts z); the classifier the configured frame."""
    if config.task == "redshift":
        return dataclasses.replace(config.preprocess, redshift_mode="none")
    return config.preprocess


def load_arrays(config: SpectraRunConfig, view: Callable[[list[Spectrum]], list[Spectrum]] | None = None,
                ) -> tuple[SpectraArrays, SpectraArrays, list[str]]:
    """Train and validation arrays from the shared dataset, and the class names; ``view`` transforms each
    split's spectra first (the seed-systems benchmark degrades them to R ≈ 100)."""
    dataset = open_dataset(config.data.path)
    spectra = (lambda split: view(dataset.spectra(split))) if view else dataset.spectra
    taxonomy = get_taxonomy(config.data.taxonomy)
    class_names = config.data.candidate_classes()
    preprocess = effective_preprocess(config)
    kwargs = {"task": config.task, "taxonomy": taxonomy, "class_names": class_names}
    if config.task == "redshift" and config.data.redshift_split == "bins":
        pool = build_arrays(spectra("train") + spectra("val"), preprocess, **kwargs)
        bins = redshift_bins(pool.targets, config.data.redshift_bins)
        split = group_split(pool.object_ids, bins, (0.70, 0.15), config.data.split_seed, ("train", "val"))
        train_arrays, val_arrays = select(pool, split == "train"), select(pool, split == "val")
        train_arrays.errors, train_arrays.dropped_labels = pool.errors, pool.dropped_labels
    else:
        train_arrays = build_arrays(spectra("train"), preprocess, **kwargs)
        val_arrays = build_arrays(spectra("val"), preprocess, **kwargs)
    logger.info("train %d / val %d spectra; rejected %d; labels outside the taxonomy %s", len(train_arrays),
                len(val_arrays), len(train_arrays.errors) + len(val_arrays.errors), train_arrays.dropped_labels)
    if len(train_arrays) == 0:
        raise ValueError(f"{config.data.path}: no usable training spectra for task {config.task!r}")
    if config.task == "classification":
        counts = object_counts(train_arrays, class_names)
        covered = list(covered_classes(class_names, counts, config.data.min_class_objects))
        logger.info("classes with >= %d training objects: %s (objects %s)", config.data.min_class_objects, covered, counts)
        train_arrays = restrict_classes(train_arrays, class_names, covered)
        val_arrays = restrict_classes(val_arrays, class_names, covered)
        class_names = covered
    return train_arrays, val_arrays, class_names


def fit(model, train_arrays: SpectraArrays, val_arrays: SpectraArrays | None, train_config: TrainingConfig,
        preprocess: PreprocessConfig, augment: bool = True, run_config: Any = None) -> TrainResult:
    """Train ``model`` with the core loop on preprocessed arrays (used by the CLI and the benchmarks)."""
    task = model.config.task
    if task == "redshift" and train_config.monitor == "macro_f1":
        train_config = dataclasses.replace(train_config, monitor="rmse", monitor_mode="min")
    masking = EdgeMasking(preprocess) if augment else None
    metrics = classification_metrics(model.config.class_names) if task == "classification" else redshift_compute_metrics
    preprocessor = {"preprocess": preprocess.to_dict(), "task": task, "model_type": model.config.model_type}
    return train(
        model, SpectraDataset(train_arrays, masking), SpectraDataset(val_arrays) if val_arrays is not None else None,
        train_config, compute_metrics=metrics, preprocessor=preprocessor, run_config=run_config,
    )  # fmt: skip


def model_for(config: SpectraRunConfig, class_names: Sequence[str], train_arrays: SpectraArrays):
    overrides = {"class_names": tuple(class_names), "task": config.task, **config.model.overrides}
    if config.task == "classification" and "class_counts" not in config.model.overrides:
        overrides["class_counts"] = tuple(np.bincount(train_arrays.targets, minlength=len(class_names)).tolist())
    overrides.setdefault("input_length", config.preprocess.num_points)
    return build_model(config.model.arch, config.model.preset, **overrides)


def summarise(results: dict[int, dict], task: str) -> dict[str, Any]:
    """Mean ± std over seeds of the headline metrics."""
    summary: dict[str, Any] = {"seeds": sorted(results), "per_seed": results}
    for key in SUMMARY_KEYS[task]:
        values = [r[key] for r in results.values() if key in r]
        if values:
            summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return summary


def run(config: SpectraRunConfig) -> dict[str, Any]:
    """Train one run per seed; returns (and writes to output_dir/summary.json) mean ± std."""
    train_arrays, val_arrays, class_names = load_arrays(config)
    seeds = config.seeds or (config.train.seed,)
    root = Path(config.train.output_dir)
    results = {}
    for seed in seeds:
        output_dir = root / f"seed_{seed}" if len(seeds) > 1 else root
        train_config = dataclasses.replace(config.train, seed=seed, output_dir=str(output_dir))
        seed_everything(seed)  # the initial weights are a function of the seed
        model = model_for(config, class_names, train_arrays)
        result = fit(model, train_arrays, val_arrays, train_config, effective_preprocess(config), config.augment,
                     dataclasses.replace(config, train=train_config))
        results[seed] = {k: v for k, v in result.best_metrics.items() if isinstance(v, (int, float))}
    summary = summarise(results, config.task)
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_summary(summary: dict[str, Any], task: str) -> str:
    rows = [f"{key:>16s}  {summary[key]['mean']:.4f} ± {summary[key]['std']:.4f}" for key in SUMMARY_KEYS[task] if key in summary]
    return f"seeds {summary['seeds']}\n" + "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider train spectra", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="YAML run config (see configs/spectra.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.epochs=3")
    parser.add_argument("--seeds", type=int, nargs="+", help="train one run per seed and report mean ± std")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = parse_overrides(args.set)
    if args.seeds:
        overrides["seeds"] = list(args.seeds)
    from .train_seed import SEED_ARCHS, SeedRunConfig, config_arch

    if config_arch(args.config, overrides) in SEED_ARCHS:  # SNIascore / CCSNscore: their own recipes
        from .train_seed import run as run_seed_system

        seed_config = load_yaml(args.config, SeedRunConfig, overrides)
        print(json.dumps(run_seed_system(seed_config), indent=1, default=float))
        return 0
    config = load_yaml(args.config, SpectraRunConfig, overrides)
    summary = run(config)
    print(format_summary(summary, config.task))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
