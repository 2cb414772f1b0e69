"""``cider train photometry``: supervised fine-tuning of the [CLS]-Transformer (or Informer) with the core loop.

``python -m applecider_photometry.train --config configs/photometry.yaml [--set key=value ...]``

Light curves of the shared dataset (train/val splits) truncated at ``data.horizon_days``; only classes with
at least ``data.min_class_objects`` training objects get an output (the saved config lists them); weighted
focal loss (α from the class counts after oversampling); augmented copies of a rare class (TDE) built from the raw records; two strategies:
``full`` (everything trains from the start) or ``gradual`` (head only for ``head_only_epochs``, then one
more encoder block every ``unfreeze_every_epochs`` epochs from the top down, with per-block learning rates
``encoder_lr · decay^depth``). With ``model.init_from`` the encoder of a pretrained masked-event model is
loaded (its feature statistics are reused so the encoder sees inputs normalised as in pretraining).
Training views besides the curves at the horizon: copies cut at ``extra_horizons_days`` and
``alert_history_views`` copies seen as alert packets (a random alert epoch and the 30 days before it, Δt still
from the first detection; ``augment.alert_history_view``). Validation can add copies cut at
``validation_horizons_days`` so that the monitored metric (best checkpoint, early stopping) covers early epochs.
Optional temperature scaling on validation is saved in preprocessor.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from applecider_core.dataset import open_dataset
from applecider_core.losses import class_balanced_weights
from applecider_core.metrics import fit_temperature
from applecider_core.pretrained import PREPROCESSOR_NAME
from applecider_core.taxonomy import covered_classes, get_taxonomy
from applecider_core.training import TrainResult, predict, seed_everything, train

from .data import (
    EventDataset,
    LabelledCurve,
    cap_per_class,
    fit_stats,
    load_split,
    oversample,
    restrict_classes,
)
from .features import FeatureStats, from_preprocessor, preprocessor_dict
from .modeling import PhotometryClassifier, PhotometryConfig, collate_events
from .pretraining import MaskedEventModel
from .runconfig import FinetuneSection, TrainRunConfig, parse_run_config

logger = logging.getLogger(__name__)


def class_weights(labels: Sequence[int], n_classes: int, method: str) -> tuple[float, ...] | None:
    """Focal-loss α per class from training counts (mean 1 over present classes); None for ``"none"``."""
    if method == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    if method == "class_balanced":
        return tuple(float(w) for w in class_balanced_weights(counts))
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    weights *= (counts > 0).sum() / weights.sum()
    return tuple(float(w) for w in weights)


def oversampled_with_weights(curves: Sequence[LabelledCurve], ft: FinetuneSection, class_names: Sequence[str]
                             ) -> tuple[list[LabelledCurve], tuple[float, ...] | None]:  # fmt: skip
    """Training curves (the majority capped at ``max_per_class``) with the rare class's augmented copies, and focal α from the counts AFTER oversampling
    (the counts the loss sees; α from the originals would compensate the rare class twice)."""
    curves = list(curves)
    if ft.max_per_class is not None:
        curves = cap_per_class(curves, ft.max_per_class)
    if ft.oversample_class is not None and ft.oversample_class in class_names:
        curves = oversample(curves, list(class_names).index(ft.oversample_class), ft.oversample_target)
    return curves, class_weights([c.label for c in curves], len(class_names), ft.class_weighting)


def encoder_blocks(model: PhotometryClassifier) -> list[list[nn.Parameter]]:
    """Encoder parameters in unfreezing order: top layer first, …, bottom layer, then the embeddings."""
    layers = list(model.encoder.layers.layers)
    in_layers = {id(p) for layer in layers for p in layer.parameters()}
    blocks = [list(layer.parameters()) for layer in reversed(layers)]
    blocks.append([p for p in model.encoder.parameters() if id(p) not in in_layers])
    return blocks


def _split_decay(params: list[nn.Parameter], lr: float, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "lr": lr, "weight_decay": weight_decay},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0}]


def gradual_param_groups(model: PhotometryClassifier, ft: FinetuneSection, weight_decay: float) -> list[dict[str, Any]]:
    """Head (+[CLS] norm) at ``head_learning_rate``; encoder block i (top = 0) at encoder_lr · decay^i."""
    head = [*model.head.parameters(), *model.norm.parameters()]
    groups = _split_decay(head, ft.head_learning_rate, weight_decay)
    for depth, block in enumerate(encoder_blocks(model)):
        groups += _split_decay(block, ft.encoder_learning_rate * ft.layer_lr_decay**depth, weight_decay)
    return [g for g in groups if g["params"]]


def gradual_unfreezing(ft: FinetuneSection) -> Callable[[int, nn.Module], None]:
    """``on_epoch_start`` hook: head only for ``head_only_epochs``, then unfreeze blocks top-down."""

    def hook(epoch: int, model: nn.Module) -> None:
        blocks = encoder_blocks(model)  # type: ignore[arg-type]
        n_open = 0 if epoch < ft.head_only_epochs else 1 + (epoch - ft.head_only_epochs) // ft.unfreeze_every_epochs
        for depth, block in enumerate(blocks):
            for param in block:
                param.requires_grad_(depth < n_open)
        logger.info("epoch %d: %d of %d encoder blocks trainable", epoch, min(n_open, len(blocks)), len(blocks))

    return hook


def build_model(run: TrainRunConfig, class_names: Sequence[str], weights: tuple[float, ...] | None
                ) -> tuple[PhotometryClassifier, FeatureStats | None]:
    """Classifier from the preset, or from a pretrained encoder (then also its feature statistics)."""
    extra = {"class_names": tuple(class_names), "class_weights": weights, "max_events": run.data.max_events,
             **run.data.model_inputs()}
    if run.model.init_from is None:
        return PhotometryClassifier(PhotometryConfig.from_preset(run.model.preset, **run.model.overrides, **extra)), None
    pretrained = MaskedEventModel.from_pretrained(run.model.init_from)
    config = dataclasses.replace(pretrained.config.encoder, **run.model.overrides, **extra)
    model = PhotometryClassifier(config)
    model.load_encoder(pretrained.state_dict())
    _, stats = from_preprocessor(pretrained.preprocessor)
    logger.info("encoder initialised from %s", run.model.init_from)
    return model, stats


def run_finetuning(train_curves: Sequence[LabelledCurve], val_curves: Sequence[LabelledCurve], run: TrainRunConfig,
                   class_names: Sequence[str]) -> tuple[TrainResult, PhotometryClassifier]:
    """Fine-tune on labelled curves; returns the core TrainResult and the best model (reloaded)."""
    ft, feature_config = run.finetune, run.data.feature_config()
    curves, weights = oversampled_with_weights(train_curves, ft, class_names)
    seed_everything(run.train.seed)  # the initial weights are a function of the seed
    model, stats = build_model(run, class_names, weights)
    stats = stats or fit_stats(train_curves, feature_config)
    logger.info("training classes: %s", dict(Counter(class_names[c.label] for c in curves)))
    base = EventDataset(curves, feature_config, stats, ft.augment)
    views = [base.with_alert_views(ft.alert_history_days)] if ft.alert_history_views else []
    parts = [base, *(base.with_horizon(h, keep_augment=True) for h in ft.extra_horizons_days),
             *views * ft.alert_history_views]
    train_ds: Dataset = ConcatDataset(parts) if len(parts) > 1 else base
    val_ds: Dataset | None = None
    if val_curves:
        val_base = EventDataset(val_curves, feature_config, stats)
        val_parts = [val_base, *(val_base.with_horizon(h) for h in ft.validation_horizons_days)]
        val_ds = ConcatDataset(val_parts) if len(val_parts) > 1 else val_base
    collate = partial(collate_events, max_events=feature_config.max_events)
    kwargs: dict[str, Any] = {}
    if ft.strategy == "gradual":
        kwargs = {"param_groups": gradual_param_groups(model, ft, run.train.weight_decay),
                  "on_epoch_start": gradual_unfreezing(ft)}
    preprocessor = preprocessor_dict(feature_config, stats, task="classification", temperature=1.0)
    result = train(model, train_ds, val_ds, run.train, collate_fn=collate, preprocessor=preprocessor,
                   run_config=run, **kwargs)
    best = PhotometryClassifier.from_pretrained(result.model_dir)
    if ft.temperature_scaling and val_ds is not None and len(val_ds) > 1:
        logits, labels = predict(best, val_ds, collate, batch_size=run.train.eval_batch_size or 256)
        best.preprocessor["temperature"] = fit_temperature(logits, labels)
        (Path(result.model_dir) / PREPROCESSOR_NAME).write_text(json.dumps(best.preprocessor, indent=2))
        logger.info("temperature fitted on validation: %.3f", best.preprocessor["temperature"])
    return result, best


def main(argv: Sequence[str] | None = None) -> int:
    run = parse_run_config(argv, TrainRunConfig, "cider train photometry", "fine-tune the photometry classifier")
    taxonomy = get_taxonomy(run.data.taxonomy)
    candidates = run.data.class_names or taxonomy.classes
    dataset = open_dataset(run.data.path)
    train_curves = load_split(dataset, "train", taxonomy, candidates, run.data.bands)
    if not train_curves:
        raise SystemExit(f"no labelled light curves of classes {list(candidates)} in {run.data.path} (train)")
    counts = Counter(candidates[c.label] for c in train_curves)  # one curve per object
    class_names = covered_classes(candidates, counts, run.data.min_class_objects)
    logger.info("classes with >= %d training objects: %s (counts %s)", run.data.min_class_objects,
                list(class_names), dict(counts))
    train_curves = restrict_classes(train_curves, candidates, class_names)
    val_curves = load_split(dataset, "val", taxonomy, class_names, run.data.bands)
    result, _ = run_finetuning(train_curves, val_curves, run, class_names)
    logger.info("best model in %s (step %d): %s", result.model_dir, result.best_step,
                {k: v for k, v in result.best_metrics.items() if k in ("macro_auprc", "balanced_accuracy", "macro_f1")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
