"""``cider train images`` / ``python -m applecider_images.train --config configs/images.yaml``.

Reads the shared dataset's alert view (``applecider_core.dataset.open_dataset(path).alerts(split)``), fits
the metadata statistics on the training alerts, and trains AstroMiNN (or the BTSbot baseline,
``model.type: btsbot``) with the core loop: per-module learning rates (reference hyperparameters),
flip/rot90 augmentation, class-balanced loss weights or oversampling, early stopping on validation
macro-AUPRC. The best model (with its ``preprocessor.json``) is written to ``<output_dir>/model``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from applecider_core.config import ConfigError, load_yaml, parse_overrides
from applecider_core.dataset import open_dataset
from applecider_core.taxonomy import DEFAULT_MIN_CLASS_OBJECTS, covered_classes
from applecider_core.training import TrainingConfig, TrainResult, seed_everything, train

from . import build_model
from .configuration import MODEL_CONFIGS
from .data import BALANCING, AlertImageDataset, balancing
from .preprocessing import DEFAULT_LOG_FEATURES, MetadataPreprocessor, preprocessor_dict

logger = logging.getLogger(__name__)

# Reference AstroMiNN recipe (reference-implementation.md §2.4): multipliers of the base LR 1.6e-4 and
# weight decays per module. The reference's coordinate tower silently reused the nearest-source settings;
# here it has its own entry (same values).
REFERENCE_LR_MULTIPLIERS = {
    "image": 2.0, "tower.psf": 0.5, "tower.magnitude": 2.0, "tower.light_curve": 2.0, "tower.spatial": 2.0,
    "tower.nearest_source_1": 2.0, "tower.nearest_source_2": 2.0, "tower.coordinate": 2.0, "tower.mega": 2.0,
    "experts": 1.0, "router": 1.5,
}  # fmt: skip
REFERENCE_WEIGHT_DECAYS = {"image": 0.05, "tower.psf": 0.05, "tower.light_curve": 0.05, "tower.mega": 0.05,
                           "experts": 0.01}


@dataclass
class DataSection:
    path: str = "data/dataset"
    train_split: str = "train"
    val_split: str = "val"
    require_cutouts: bool = True
    augment: bool = True
    balance: str = "weights"  # weights | oversample | none
    class_weight_beta: float = 0.999
    log_features: tuple[str, ...] = DEFAULT_LOG_FEATURES
    clip: float = 10.0
    min_class_objects: int = DEFAULT_MIN_CLASS_OBJECTS  # a class needs this many training objects to get an output

    def __post_init__(self) -> None:
        if self.balance not in BALANCING:
            raise ConfigError(f"data.balance must be one of {BALANCING}, got {self.balance!r}")


@dataclass
class ModelSection:
    type: str = "astrominn"  # astrominn | btsbot
    preset: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)  # fields of the model config

    def __post_init__(self) -> None:
        if self.type not in MODEL_CONFIGS:
            raise ConfigError(f"model.type must be one of {sorted(MODEL_CONFIGS)}, got {self.type!r}")


@dataclass
class OptimSection:
    lr_multipliers: dict[str, float] = field(default_factory=lambda: dict(REFERENCE_LR_MULTIPLIERS))
    weight_decays: dict[str, float] = field(default_factory=lambda: dict(REFERENCE_WEIGHT_DECAYS))


def _default_train() -> TrainingConfig:
    return TrainingConfig(output_dir="runs/images", learning_rate=1.6e-4, monitor="macro_auprc", patience=3,
                          grad_clip_norm=5.0, batch_size=32, epochs=30, ema_decay=None)


@dataclass
class ImagesRunConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainingConfig = field(default_factory=_default_train)

    def model_config(self):
        return MODEL_CONFIGS[self.model.type].from_preset(self.model.preset, **self.model.overrides)


def module_param_groups(model: nn.Module, base_lr: float, base_weight_decay: float,
                        lr_multipliers: dict[str, float], weight_decays: dict[str, float]) -> list[dict[str, Any]]:
    """AdamW groups per module (``model.module_groups()``): lr = base · multiplier, module weight decay;
    biases and normalisation weights (1-D) never decay. Every trainable parameter is in exactly one group."""
    groups, seen = [], set()
    for name, params in model.module_groups().items():
        lr = base_lr * lr_multipliers.get(name, 1.0)
        decay = weight_decays.get(name, base_weight_decay)
        params = [p for p in params if p.requires_grad]
        seen.update(id(p) for p in params)
        for suffix, members, wd in (("", [p for p in params if p.ndim > 1], decay),
                                    (".no_decay", [p for p in params if p.ndim <= 1], 0.0)):
            if members:
                groups.append({"name": name + suffix, "params": members, "lr": lr, "weight_decay": wd})
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise RuntimeError(f"parameters outside every module group: {missing[:5]}")
    return groups


def run(config: ImagesRunConfig) -> TrainResult:
    """Train one model as described by ``config``; returns the core TrainResult."""
    dataset = open_dataset(config.data.path)
    model_config = config.model_config()
    train_table = dataset.alerts(config.data.train_split)
    val_table = dataset.alerts(config.data.val_split) if config.data.val_split else None
    if train_table.survey != model_config.survey:
        raise ConfigError(f"{config.data.path} holds {train_table.survey} alerts; the model config is for "
                          f"{model_config.survey} (set model.overrides.survey and its metadata_features)")
    meta_prep = MetadataPreprocessor.fit(train_table.metadata, model_config.metadata_features,
                                         log_features=config.data.log_features, clip=config.data.clip,
                                         missing_indicators=model_config.missing_indicators,
                                         survey=model_config.survey)
    train_ds = AlertImageDataset(train_table, model_config, meta_prep, augment=config.data.augment,
                                 require_cutouts=config.data.require_cutouts)
    covered = covered_classes(model_config.class_names, train_ds.object_counts(), config.data.min_class_objects)
    logger.info("classes with >= %d training objects: %s (objects %s)", config.data.min_class_objects,
                list(covered), train_ds.object_counts())
    if covered != model_config.class_names:
        model_config = dataclasses.replace(model_config, class_names=covered)
        train_ds = AlertImageDataset(train_table, model_config, meta_prep, augment=config.data.augment,
                                     require_cutouts=config.data.require_cutouts)
    val_ds = None if val_table is None else AlertImageDataset(val_table, model_config, meta_prep,
                                                              require_cutouts=config.data.require_cutouts)
    if len(train_ds) == 0:
        raise ValueError(f"{config.data.path}: no training alerts with labels in {model_config.class_names}")
    logger.info("training %s (%s) on %d alerts, class counts %s", model_config.model_type, config.model.preset,
                len(train_ds), dict(zip(model_config.class_names, train_ds.class_counts().tolist())))
    seed_everything(config.train.seed)  # the initial weights are a function of the seed
    model = build_model(model_config)
    weights, sampler = balancing(train_ds, config.data.balance, config.data.class_weight_beta, config.train.seed)
    model.set_class_weights(weights)
    groups = module_param_groups(model, config.train.learning_rate, config.train.weight_decay,
                                 config.optim.lr_multipliers, config.optim.weight_decays)
    preprocessor = preprocessor_dict(meta_prep, model_config.image_input)
    model.preprocessor = preprocessor
    return train(model, train_ds, val_ds, config.train, param_groups=groups, train_sampler=sampler,
                 preprocessor=preprocessor, run_config=config)


def build_parser(prog: str = "cider train images") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1])
    parser.add_argument("--config", required=True, help="YAML run config (configs/images.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set model.preset=tiny (repeatable)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_yaml(args.config, ImagesRunConfig, parse_overrides(args.set))
    result = run(config)
    summary = {k: result.best_metrics.get(k) for k in ("macro_auprc", "macro_roc_auc", "accuracy", "macro_f1")}
    logger.info("best step %d: %s; model in %s", result.best_step, json.dumps(summary), result.model_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
