"""Run configurations (YAML in configs/) of the photometry commands, and their argparse front end."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from applecider_core.config import load_yaml, parse_overrides
from applecider_core.records import SURVEY_BANDS, ZTF_BANDS
from applecider_core.taxonomy import DEFAULT_MIN_CLASS_OBJECTS
from applecider_core.training import TrainingConfig

from .augment import ALERT_HISTORY_DAYS, AugmentConfig
from .features import DEFAULT_MAX_EVENTS, FeatureConfig

T = TypeVar("T")
STRATEGIES = ("full", "gradual")
CLASS_WEIGHTING = ("none", "inv_sqrt", "class_balanced")


@dataclass
class DataSection:
    """Where the light curves come from and how events are built."""

    path: str = "data/dataset"  # shared dataset directory (applecider_core.dataset format)
    horizon_days: float | None = 100.0
    max_events: int = DEFAULT_MAX_EVENTS
    bands: tuple[str, ...] = ZTF_BANDS
    taxonomy: str = "fine"
    class_names: tuple[str, ...] | None = None  # default: every class of the taxonomy
    min_class_objects: int = DEFAULT_MIN_CLASS_OBJECTS  # a class needs this many training objects to get an output

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(horizon_days=self.horizon_days, max_events=self.max_events, bands=self.bands)

    def model_inputs(self) -> dict[str, Any]:
        """The model config keys these bands fix: survey, bands and the number of event channels."""
        surveys = [s for s, bands in SURVEY_BANDS.items() if set(self.bands) <= set(bands)]
        if not surveys:
            raise ValueError(f"data.bands {list(self.bands)} mix surveys; use the bands of one of {list(SURVEY_BANDS)}")
        return {"survey": surveys[0], "bands": tuple(self.bands), "n_features": self.feature_config().n_features}


@dataclass
class ModelSection:
    preset: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)  # keys of the model config
    init_from: str | None = None  # a pretrained masked-event model directory (its encoder is loaded)


@dataclass
class FinetuneSection:
    """Paper I §3.3 fine-tuning: class imbalance handling and the two strategies."""

    strategy: str = "full"  # full | gradual (head only, then unfreeze encoder blocks top-down)
    head_only_epochs: int = 5
    unfreeze_every_epochs: int = 1  # one more encoder block becomes trainable every this many epochs
    head_learning_rate: float = 5e-4  # gradual: head + [CLS] norm
    encoder_learning_rate: float = 5e-5  # gradual: top encoder block; lower blocks get ×layer_lr_decay each
    layer_lr_decay: float = 0.8
    class_weighting: str = "inv_sqrt"  # focal-loss α: none | inv_sqrt (1/sqrt(count)) | class_balanced
    oversample_class: str | None = "TDE"  # rare class given augmented copies (None: off)
    oversample_target: int | None = None  # copies until this count (default: median of the other classes)
    max_per_class: int | None = None  # a seeded random subset of at most this many curves per class (majority)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    temperature_scaling: bool = True  # fit T on validation, saved in preprocessor.json
    extra_horizons_days: tuple[float, ...] = ()  # also train on copies truncated at these horizons (early epochs)
    alert_history_views: int = 0  # also train on this many copies seen as alert packets (a random alert epoch
    alert_history_days: float = ALERT_HISTORY_DAYS  # and the detections of the days before it; augment.py)
    validation_horizons_days: tuple[float, ...] = ()  # validation (monitor, temperature) also on curves cut here

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.class_weighting not in CLASS_WEIGHTING:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTING}, got {self.class_weighting!r}")
        if self.alert_history_views < 0 or not self.alert_history_days > 0:
            raise ValueError(f"alert_history_views must be >= 0 and alert_history_days > 0, got "
                             f"{self.alert_history_views} and {self.alert_history_days}")


@dataclass
class TrainRunConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    train: TrainingConfig = field(default_factory=lambda: TrainingConfig(monitor="macro_auprc"))


@dataclass
class PretrainRunConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)  # preset/overrides of MaskedEventConfig
    train: TrainingConfig = field(
        default_factory=lambda: TrainingConfig(monitor="reconstruction_loss", monitor_mode="min")
    )


@dataclass
class EvaluateRunConfig:
    model_dir: str = "runs/photometry/model"
    dataset: str = "data/dataset"
    split: str = "test"
    horizons_days: tuple[float, ...] | None = None  # explicit list; default 1, 2, …, max_horizon_days
    max_horizon_days: int = 100
    top_k: tuple[int, ...] = (2, 3)
    batch_size: int = 256
    output_dir: str = "runs/photometry/evaluation"


def parse_run_config(argv: Sequence[str] | None, cls: type[T], prog: str, description: str) -> T:
    """``--config FILE`` and repeated ``--set key.path=value`` → run config ``cls`` (strict)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="YAML run config (see configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.epochs=3")
    args = parser.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return load_yaml(args.config, cls, parse_overrides(args.set))
