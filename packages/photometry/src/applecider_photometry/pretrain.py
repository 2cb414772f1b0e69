"""``cider pretrain photometry``: masked-event pretraining on unlabelled light curves with the core loop.

``python -m applecider_photometry.pretrain --config configs/photometry_pretrain.yaml [--set key=value]``

Uses every light curve of the train split (labels ignored) for training and of the val split for the
validation reconstruction loss (falls back to 10 % of the training curves when val has none). Writes
``train.output_dir/model`` (a :class:`MaskedEventModel` whose ``encoder.*`` weights fine-tuning loads, with the
feature statistics in preprocessor.json).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from applecider_core.dataset import open_dataset
from applecider_core.training import TrainResult, seed_everything, train

from .data import EventDataset, LabelledCurve, fit_stats, load_split
from .features import preprocessor_dict
from .modeling import collate_events
from .pretraining import MaskedEventConfig, MaskedEventModel, reconstruction_metrics
from .runconfig import PretrainRunConfig, parse_run_config

logger = logging.getLogger(__name__)


def _unlabelled(curves: list[LabelledCurve]) -> list[LabelledCurve]:
    return [LabelledCurve(c.light_curve, 0) for c in curves]  # dummy label: the loop wants a "labels" key


def run_pretraining(curves_train: Sequence[LabelledCurve], curves_val: Sequence[LabelledCurve],
                    run: PretrainRunConfig, model_config: MaskedEventConfig | None = None) -> TrainResult:
    """Fit stats on ``curves_train``, pretrain, save; returns the core TrainResult."""
    feature_config = run.data.feature_config()
    stats = fit_stats(curves_train, feature_config)
    if model_config is None:
        model_config = MaskedEventConfig.from_preset(run.model.preset, **run.model.overrides)
    model_config.encoder = dataclasses.replace(model_config.encoder, max_events=feature_config.max_events,
                                               **run.data.model_inputs())  # survey, bands, channels of the data
    seed_everything(run.train.seed)  # the initial weights are a function of the seed
    model = MaskedEventModel(model_config)
    train_ds = EventDataset(_unlabelled(list(curves_train)), feature_config, stats)
    val_ds = EventDataset(_unlabelled(list(curves_val)), feature_config, stats) if curves_val else None
    preprocessor = preprocessor_dict(feature_config, stats, task="masked_event_pretraining")
    return train(
        model, train_ds, val_ds, run.train, collate_fn=partial(collate_events, max_events=feature_config.max_events),
        compute_metrics=reconstruction_metrics(model_config), preprocessor=preprocessor, run_config=run,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    run = parse_run_config(argv, PretrainRunConfig, "cider pretrain photometry", "masked-event pretraining of the photometry encoder")
    dataset = open_dataset(run.data.path)
    bands = run.data.bands
    train_curves = load_split(dataset, "train", None, None, bands, labelled_only=False)
    val_curves = load_split(dataset, "val", None, None, bands, labelled_only=False)
    if not val_curves:
        rng = np.random.default_rng(run.train.seed)
        order = rng.permutation(len(train_curves))
        n_val = max(1, len(train_curves) // 10)
        val_curves = [train_curves[i] for i in order[:n_val]]
        train_curves = [train_curves[i] for i in order[n_val:]]
    result = run_pretraining(train_curves, val_curves, run)
    summary: dict[str, Any] = {k: v for k, v in result.best_metrics.items() if isinstance(v, (int, float))}
    logger.info("pretrained encoder in %s; best validation %s", result.model_dir, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
