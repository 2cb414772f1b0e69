"""Photometry model configuration (no torch): the architecture saved with the weights as ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from applecider_core.config import PresetConfig
from applecider_core.records import SURVEY_BANDS, ZTF_BANDS
from applecider_core.taxonomy import FINE_CLASSES

from .features import N_CONTINUOUS, N_FEATURES

ARCHITECTURES = ("cls_transformer", "informer")


@dataclass
class PhotometryConfig(PresetConfig):
    """Architecture of the photometry classifier (paper-size defaults)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 256, "dropout": 0.2},
        "tiny": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "dropout": 0.0},
    }
    model_type: ClassVar[str] = "applecider_photometry"

    arch: str = "cls_transformer"  # one of ARCHITECTURES
    survey: str = "ztf"  # the survey the model is trained on (runners skip light curves of other surveys)
    bands: tuple[str, ...] = ZTF_BANDS  # one one-hot event channel per band, in this order
    n_features: int = N_FEATURES  # 4 continuous channels + one per band
    d_model: int = 128
    n_heads: int = 8
    n_layers: int = 4
    d_ff: int = 512
    dropout: float = 0.3
    max_events: int = 257  # events per sequence, [CLS] not counted
    norm_first: bool = False  # False: post-norm (paper/reference), True: pre-norm
    time_scale_days: float = 100.0  # linear Time2Vec term sees Δt / time_scale_days
    min_period_days: float = 0.5  # initial periods of the sinusoidal Time2Vec terms, log-spaced
    max_period_days: float = 1000.0
    fused_fast_path: bool = False  # allow PyTorch's fused Transformer inference kernel (slower on CPU here)
    informer_factor: int = 5  # ProbSparse: u = factor · ceil(ln L) active queries / sampled keys
    informer_distil: bool = False  # Informer distilling (conv + max-pool halving the events between layers)
    focal_gamma: float = 2.0
    class_weights: tuple[float, ...] | None = None  # focal-loss α per class (e.g. 1/sqrt(count))
    label_smoothing: float = 0.0
    class_names: tuple[str, ...] = FINE_CLASSES

    def __post_init__(self) -> None:
        if self.class_weights is not None:  # core's from_dict leaves lists inside Optional[tuple] as lists
            self.class_weights = tuple(float(w) for w in self.class_weights)
        self.class_names = tuple(self.class_names)
        self.bands = tuple(self.bands)
        if self.survey not in SURVEY_BANDS or not set(self.bands) <= set(SURVEY_BANDS[self.survey]):
            raise ValueError(f"bands {list(self.bands)} are not bands of survey {self.survey!r} "
                             f"(surveys: { {s: list(b) for s, b in SURVEY_BANDS.items()} })")
        if self.n_features != N_CONTINUOUS + len(self.bands):
            raise ValueError(f"n_features ({self.n_features}) must be {N_CONTINUOUS} + {len(self.bands)} bands")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.class_weights is not None and len(self.class_weights) != len(self.class_names):
            raise ValueError(f"{len(self.class_weights)} class_weights for {len(self.class_names)} classes")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


__all__ = ["ARCHITECTURES", "PhotometryConfig"]
