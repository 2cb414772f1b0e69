"""Training of the seed systems through ``cider train spectra`` (``model.arch: sniascore | ccsnscore``).

SNIascore (Fremling et al. 2021 §4): the SN Ia vs not-Ia classifier on the SEDM grid, the epoch chosen by the
validation TPR at 1 % FPR, then the operating point (score and σ cuts, 100 MC-dropout passes) fitted on the
validation set for ``max_fpr`` (0.6 %) and stored in its preprocessor.json; the Ia redshift regressor trained
on SNe Ia with the redshift-bin augmentation (§2.1). CCSNscore (Sharma et al. 2025 §4): every binary model of
every layer, the training set of each layer balanced with averaged spectra (§2.1.4), then each one-vs-rest
model in up to three balanced rounds (all of its smaller class, a fresh draw of the larger; §4), BCE, early
stopping on the validation loss. Both read the shared dataset's train/val splits (object level).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from applecider_core.config import ConfigError
from applecider_core.dataset import SharedDataset, open_dataset
from applecider_core.metrics import per_class_roc_auc, softmax
from applecider_core.records import Spectrum
from applecider_core.training import TrainingConfig, seed_everything, train

from .ccsnscore_inputs import averaged_spectra, ccsn_spectrum_input, light_curve_inputs
from .configuration_ccsnscore import CCSN_LAYERS, CCSNscoreConfig
from .configuration_sniascore import IA_CLASS, SNIascoreConfig
from .metrics import redshift_compute_metrics
from .modeling_ccsnscore import CCSNscoreClassifier
from .modeling_sniascore import SNIascore
from .preprocessing import SpectrumError
from .sedm import SEDMGridConfig, loess, sniascore_input

logger = logging.getLogger(__name__)
SEED_ARCHS = ("sniascore", "ccsnscore")


@dataclass
class SeedDataSection:
    path: str = "data/dataset"


@dataclass
class SeedModelSection:
    arch: str = "sniascore"  # sniascore | ccsnscore
    preset: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class SNIascoreRun:
    max_fpr: float = 0.006  # the paper's operating point (< 0.6 % FPR)
    redshift: bool = True  # also train the Ia redshift regressor
    redshift_bin_width: float = 0.001
    redshift_max: float = 0.13
    redshift_per_bin: int = 100  # "roughly 100 spectra in each redshift bin"
    redshift_epochs: int | None = None  # default: train.epochs
    redshift_patience: int | None = None  # epochs without a lower validation RMSE before stopping; None: train.patience


@dataclass
class CCSNscoreRun:
    cases: tuple[str, ...] = ("S",)  # S (spectra only) and/or SLD (with light curves and δm–δt)
    augment: bool = True  # balance every layer with averaged spectra
    balanced_rounds: int = 3  # §4: rounds on all of the smaller class + a fresh draw of the larger; 0: no rounds


@dataclass
class SeedRunConfig:
    data: SeedDataSection = field(default_factory=SeedDataSection)
    model: SeedModelSection = field(default_factory=SeedModelSection)
    sniascore: SNIascoreRun = field(default_factory=SNIascoreRun)
    ccsnscore: CCSNscoreRun = field(default_factory=CCSNscoreRun)
    train: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.model.arch not in SEED_ARCHS:
            raise ConfigError(f"model.arch must be one of {SEED_ARCHS} here, got {self.model.arch!r}")
        self.ccsnscore.cases = tuple(self.ccsnscore.cases)
        if bad := sorted(set(self.ccsnscore.cases) - {"S", "SLD"}):
            raise ConfigError(f"ccsnscore.cases must be among ['S', 'SLD'], got {bad}")
        if self.sniascore.redshift_patience is not None and self.sniascore.redshift_patience < 1:
            raise ConfigError(f"sniascore.redshift_patience must be >= 1 or null, got {self.sniascore.redshift_patience}")
        if self.ccsnscore.balanced_rounds < 0:
            raise ConfigError(f"ccsnscore.balanced_rounds must be >= 0, got {self.ccsnscore.balanced_rounds}")


class ArrayDataset(Dataset):
    """Items {name: tensor row} of equally long arrays (one of them ``labels``)."""

    def __init__(self, **arrays: np.ndarray) -> None:
        self.arrays = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        self.length = len(arrays["labels"])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.arrays.items()}


def spectra_inputs(spectra: Sequence[Spectrum], make) -> tuple[np.ndarray, list[int], list[SpectrumError]]:
    """Rows of ``make(spectrum)`` for the usable spectra, their indices and the errors of the others."""
    rows, kept, errors = [], [], []
    for i, spectrum in enumerate(spectra):
        try:
            rows.append(make(spectrum))
            kept.append(i)
        except SpectrumError as error:
            errors.append(error)
    return (np.stack(rows).astype(np.float32) if rows else np.zeros((0, 1), np.float32)), kept, errors


# ---- SNIascore ---------------------------------------------------------------------------------------------
def sniascore_arrays(spectra: Sequence[Spectrum], grid: SEDMGridConfig) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(N, 209) inputs, (N,) 1 for SN Ia else 0, indices of the usable spectra."""
    flux, kept, errors = spectra_inputs(spectra, lambda s: sniascore_input(s, grid))
    if errors:
        logger.info("SNIascore: %d of %d spectra rejected, e.g. %s", len(errors), len(spectra), errors[0])
    return flux, np.array([int(spectra[i].label == IA_CLASS) for i in kept], np.int64), kept


def redshift_augmented(spectra: Sequence[Spectrum], grid: SEDMGridConfig, run: SNIascoreRun,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """§2.1: per redshift bin (width 0.001, 0 … 0.13) pick spectra with z in [z_c − 0.005, z_c + 0.01], shift
    them to a z within ±0.001 of the bin centre, until ~``redshift_per_bin`` per bin; each added spectrum gets
    Gaussian noise of 0–1 × its feature-subtracted standard deviation. Returns (M, 209) inputs and z (M,)."""
    z = np.array([s.redshift for s in spectra])
    rows, targets = [], []
    for centre in np.arange(run.redshift_bin_width / 2, run.redshift_max, run.redshift_bin_width):
        candidates = np.flatnonzero((z >= centre - 0.005) & (z <= centre + 0.01))
        made, tries = 0, 0
        while len(candidates) and made < run.redshift_per_bin and tries < 3 * run.redshift_per_bin:
            tries += 1
            i = rng.choice(candidates)
            z_new = centre + rng.uniform(-run.redshift_bin_width, run.redshift_bin_width)
            try:
                x = sniascore_input(spectra[i], grid, (1 + z_new) / (1 + z[i]))
            except SpectrumError:
                continue
            noise_sigma = np.std(x - loess(x, 0.1, 2, 0))
            rows.append(x + rng.uniform() * noise_sigma * rng.standard_normal(x.size).astype(np.float32))
            targets.append(z_new)
            made += 1
    return np.asarray(rows, np.float32).reshape(-1, grid.num_bins), np.asarray(targets, np.float32)


def binary_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Validation metrics of a binary model: P(positive) from 2 logits (softmax) or 1 logit (sigmoid)."""
    from .seed_systems import tpr_at_fpr

    p = softmax(logits)[:, 1] if logits.shape[1] == 2 else 1 / (1 + np.exp(-logits[:, 0]))
    labels = labels.astype(int)
    eps = 1e-7
    out = {"accuracy": float(((p >= 0.5) == labels).mean()),
           "bce": float(-np.mean(labels * np.log(p + eps) + (1 - labels) * np.log(1 - p + eps)))}
    if 0 < labels.sum() < len(labels):
        out["roc_auc"] = float(per_class_roc_auc(np.stack([1 - p, p], 1), labels)[1])
        out["tpr_at_fpr_1pct"] = tpr_at_fpr(p, labels, 0.01)
    return out


def train_sniascore(config: SeedRunConfig, dataset: SharedDataset) -> dict[str, Any]:
    from .seed_systems import select_operating_point

    root = Path(config.train.output_dir)
    model_config = SNIascoreConfig.from_preset(config.model.preset, **config.model.overrides)
    train_spectra, val_spectra = dataset.spectra("train"), dataset.spectra("val")
    x_train, y_train, _ = sniascore_arrays(train_spectra, model_config.grid)
    x_val, y_val, _ = sniascore_arrays(val_spectra, model_config.grid)
    train_config = dataclasses.replace(config.train, output_dir=str(root / "classifier_run"), monitor="tpr_at_fpr_1pct",
                                       monitor_mode="max")
    seed_everything(config.train.seed)  # the initial weights are a function of the seed
    model = SNIascore(dataclasses.replace(model_config, task="classification"))
    preprocessor = {"grid": model_config.grid.to_dict(), "task": "classification", "model_type": "sniascore"}
    result = train(model, ArrayDataset(flux=x_train, labels=y_train), ArrayDataset(flux=x_val, labels=y_val), train_config,
                   compute_metrics=binary_metrics, preprocessor=preprocessor, run_config=config)
    best = SNIascore.from_pretrained(result.model_dir)
    score, error = (t.numpy() for t in best.predict_scores(torch.from_numpy(x_val)))
    point = select_operating_point(score, y_val, config.sniascore.max_fpr, error)
    best.save_pretrained(root / "classifier", {**best.preprocessor, "operating_point": point})
    summary: dict[str, Any] = {"classifier": result.best_metrics, "operating_point": point,
                               "train_spectra": len(y_train), "val_spectra": len(y_val)}
    if config.sniascore.redshift:
        summary["redshift"] = train_sniascore_redshift(config, model_config, train_spectra, val_spectra)
    (root / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def _with_redshift(spectra: Sequence[Spectrum]) -> list[Spectrum]:
    return [s for s in spectra if s.label == IA_CLASS and np.isfinite(s.redshift) and s.redshift >= 0]


def redshift_train_config(config: SeedRunConfig) -> TrainingConfig:
    """The regressor's loop settings: ``train`` with its own folder, epochs and patience, monitoring the
    validation RMSE."""
    run = config.sniascore
    return dataclasses.replace(
        config.train, output_dir=str(Path(config.train.output_dir) / "redshift_run"), monitor="rmse", monitor_mode="min",
        epochs=run.redshift_epochs or config.train.epochs,
        patience=config.train.patience if run.redshift_patience is None else run.redshift_patience)


def train_sniascore_redshift(config: SeedRunConfig, model_config: SNIascoreConfig, train_spectra: Sequence[Spectrum],
                             val_spectra: Sequence[Spectrum]) -> dict[str, Any]:
    root = Path(config.train.output_dir)
    rng = np.random.default_rng(config.train.seed)
    x_train, z_train = redshift_augmented(_with_redshift(train_spectra), model_config.grid, config.sniascore, rng)
    val = _with_redshift(val_spectra)
    x_val, kept, _ = spectra_inputs(val, lambda s: sniascore_input(s, model_config.grid))
    z_val = np.array([val[i].redshift for i in kept], np.float32)
    seed_everything(config.train.seed)
    model = SNIascore(dataclasses.replace(model_config, task="redshift"))
    preprocessor = {"grid": model_config.grid.to_dict(), "task": "redshift", "model_type": "sniascore"}
    result = train(model, ArrayDataset(flux=x_train, labels=z_train), ArrayDataset(flux=x_val, labels=z_val),
                   redshift_train_config(config), compute_metrics=redshift_compute_metrics, preprocessor=preprocessor,
                   run_config=config)
    SNIascore.from_pretrained(result.model_dir).save_pretrained(root / "redshift")
    return {"augmented_train_spectra": len(z_train), "val_spectra": len(z_val), **result.best_metrics}


# ---- CCSNscore ---------------------------------------------------------------------------------------------
def ccsn_arrays(spectra: Sequence[Spectrum], dataset: SharedDataset | None, config: CCSNscoreConfig,
                labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Inputs of the spectra whose label is in ``labels``: flux (N, 256), label index (N,) into ``labels``,
    light-curve inputs when the config uses them (zeros for objects without ZTF photometry), object ids."""
    chosen = [s for s in spectra if s.label in labels]
    flux, kept, errors = spectra_inputs(chosen, lambda s: ccsn_spectrum_input(s, config))
    if errors:
        logger.info("CCSNscore: %d of %d spectra rejected, e.g. %s", len(errors), len(chosen), errors[0])
    out = {"flux": flux, "labels": np.array([labels.index(chosen[i].label) for i in kept], np.int64),
           "object_ids": np.array([chosen[i].object_id for i in kept], dtype=object)}
    if config.inputs != ("spectrum",):
        with_lc = set(dataset.light_curve_ids()) if dataset is not None else set()
        cache: dict[str, dict[str, np.ndarray]] = {}
        for oid in out["object_ids"]:
            if oid not in cache:
                cache[oid] = light_curve_inputs(dataset.light_curve(oid) if oid in with_lc else None, config)
        for name in ("lightcurve", "dmdt"):
            out[name] = np.stack([cache[oid][name] for oid in out["object_ids"]]) if len(kept) else np.zeros((0,))
    return out


def _layer_training_set(arrays: dict[str, np.ndarray], config: CCSNscoreConfig, augment: bool,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The layer's real spectra plus averaged spectra so every class of the layer has as many as the largest."""
    targets = list(CCSN_LAYERS[config.layer])
    label_to_target = np.array([targets.index(t) for t in targets for _ in CCSN_LAYERS[config.layer][t]])
    classes = label_to_target[arrays["labels"]]
    inputs = {k: v for k, v in arrays.items() if k in ("lightcurve", "dmdt")}
    flux = arrays["flux"]
    if augment and len(classes):
        counts = np.bincount(classes, minlength=len(targets))
        extra_flux, extra_classes, extra_inputs = averaged_spectra(
            flux, classes, {c: int(counts.max() - n) for c, n in enumerate(counts)}, rng, list(inputs.values()))
        flux, classes = np.concatenate([flux, extra_flux]), np.concatenate([classes, extra_classes])
        inputs = {k: np.concatenate([v, e]) for (k, v), e in zip(inputs.items(), extra_inputs)}
    positive = (classes == targets.index(config.target)).astype(np.float32)
    return {"flux": flux, "labels": positive, **inputs}


def balanced_rounds(labels: np.ndarray, rounds: int, rng: np.random.Generator) -> list[np.ndarray]:
    """§4's balanced training of a binary model: indices of each round, every sample of the smaller class plus
    as many of the larger class, drawn without replacement across rounds; another round only while that many
    undrawn samples of the larger class are left, at most ``rounds``. One round of every index when the classes
    are already balanced, one of them is empty, or ``rounds`` is 0."""
    positive, negative = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    small, large = sorted((positive, negative), key=len)
    if rounds == 0 or len(small) == 0 or len(small) == len(large):
        return [np.arange(len(labels))]
    pool, out = rng.permutation(large), []
    while len(out) < rounds and len(pool) >= len(small):
        out.append(np.sort(np.concatenate([small, pool[: len(small)]])))
        pool = pool[len(small):]
    return out


def _train_in_rounds(model_config: CCSNscoreConfig, train_set: dict[str, np.ndarray], val_set: dict[str, np.ndarray],
                     config: SeedRunConfig, preprocessor: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One binary model over its balanced rounds: each round continues from the best weights so far and runs
    the whole schedule (early stopping on the validation loss); the model with the lowest validation BCE of
    all rounds is saved in ``output_dir/<folder_name>``."""
    root = Path(config.train.output_dir)
    rounds = balanced_rounds(train_set["labels"], config.ccsnscore.balanced_rounds, rng)
    seed_everything(config.train.seed)
    model, best, history = CCSNscoreClassifier(model_config), None, []
    for number, indices in enumerate(rounds, 1):
        run_config = dataclasses.replace(
            config.train, output_dir=str(root / f"{model_config.folder_name}_run" / f"round{number}"), monitor="bce",
            monitor_mode="min")
        result = train(model, ArrayDataset(**{k: v[indices] for k, v in train_set.items()}), ArrayDataset(**val_set),
                       run_config, compute_metrics=binary_metrics, preprocessor=preprocessor, run_config=config)
        history.append({"round": number, "train": len(indices), **result.best_metrics})
        if best is None or result.best_metrics["bce"] < best[1]["bce"]:
            best = (result.model_dir, result.best_metrics)
        model = CCSNscoreClassifier.from_pretrained(best[0])
    model.save_pretrained(root / model_config.folder_name)  # the best of all rounds, loaded last
    return {"train": len(train_set["labels"]), "train_positive": int(train_set["labels"].sum()),
            "val": len(val_set["labels"]), "rounds": history, **best[1]}


def train_ccsnscore(config: SeedRunConfig, dataset: SharedDataset) -> dict[str, Any]:
    root = Path(config.train.output_dir)
    rng = np.random.default_rng(config.train.seed)
    summary: dict[str, Any] = {}
    train_spectra, val_spectra = dataset.spectra("train"), dataset.spectra("val")
    for case in config.ccsnscore.cases:
        preset_inputs = ("spectrum",) if case == "S" else ("spectrum", "lightcurve", "dmdt")
        for layer, targets in CCSN_LAYERS.items():
            base = CCSNscoreConfig.from_preset(config.model.preset, **{**config.model.overrides, "layer": layer,
                                               "target": next(iter(targets)), "inputs": preset_inputs})
            layer_labels = list(base.layer_labels)
            train_arrays = ccsn_arrays(train_spectra, dataset, base, layer_labels)
            val_arrays = ccsn_arrays(val_spectra, dataset, base, layer_labels)
            for target in targets:
                model_config = dataclasses.replace(base, target=target)
                train_set = _layer_training_set(train_arrays, model_config, config.ccsnscore.augment, rng)
                val_set = _layer_training_set(val_arrays, model_config, False, rng)
                if train_set["labels"].sum() == 0 or len(val_set["labels"]) == 0:
                    summary[model_config.folder_name] = "skipped: no training positives or no validation spectra"
                    continue
                summary[model_config.folder_name] = _train_in_rounds(
                    model_config, train_set, val_set, config, {"model_type": "ccsnscore", "case": case}, rng)
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def run(config: SeedRunConfig) -> dict[str, Any]:
    dataset = open_dataset(config.data.path)
    return (train_sniascore if config.model.arch == "sniascore" else train_ccsnscore)(config, dataset)


__all__ = ["SEED_ARCHS", "ArrayDataset", "SeedRunConfig", "balanced_rounds", "binary_metrics", "ccsn_arrays",
           "redshift_augmented", "redshift_train_config", "run", "sniascore_arrays", "train_ccsnscore", "train_sniascore"]  # fmt: skip


def config_arch(path: str | Path, overrides: dict[str, Any] | None = None) -> str | None:
    """``model.arch`` of a run config (after ``--set`` overrides): selects SpectraNet's or a seed system's loop."""
    import yaml

    if overrides and "model.arch" in overrides:
        return overrides["model.arch"]
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None  # the regular config loader reports a missing or broken file in one line
    model = data.get("model") if isinstance(data, dict) else None
    return model.get("arch") if isinstance(model, dict) else None
