"""Model configurations (no torch): AstroMiNN and the BTSbot-style baseline.

Architecture lives here and is saved with the weights (``config.json``); run settings live in
``configs/images.yaml``. Defaults are the paper sizes (AppleCiDEr paper I, §4); presets override them.

Which metadata features feed which tower is data (``tower_features``): a mapping tower name → feature names,
validated against ``metadata_features`` (by default ``applecider_core.records.METADATA_FEATURES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from applecider_core.config import ConfigError, PresetConfig
from applecider_core.records import METADATA_FEATURES, METADATA_FEATURES_BY_SURVEY, PIXEL_SCALE_ARCSEC
from applecider_core.taxonomy import FINE_CLASSES

IMAGE_NORMS = ("l2", "median_mad", "none")
SKY_ENCODINGS = ("unit_vector", "sincos", "none")

# §4.1 of paper I (Table 2 names as they appear in ``METADATA_FEATURES``).
DEFAULT_TOWER_FEATURES: dict[str, tuple[str, ...]] = {
    "psf": ("chinr", "sharpnr", "classtar"),
    "magnitude": ("magpsf", "sigmapsf", "diffmaglim"),
    "light_curve": ("age_days", "ndethist", "ncovhist", "nnondet"),
    "spatial": ("sky", "nmtchps", "scorr"),
    "nearest_source_1": ("sgscore1", "distpsnr1"),
    "nearest_source_2": ("sgscore2", "distpsnr2"),
    "coordinate": ("ra", "dec"),
    "mega": METADATA_FEATURES,
}
COORDINATE_TOWER = "coordinate"
MEGA_TOWER = "mega"


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")


@dataclass
class ImageInputConfig:
    """How a (3, 63, 63) cutout triplet becomes the model's (C, S, S) input (see ``preprocessing``)."""

    crop_size: int = 49  # centre crop, pixels (paper §4.2: 49×49)
    image_norm: str = "l2"  # per-cutout: l2 | median_mad | none
    radial_channel: bool = True  # + distance from the cutout centre, 0 at centre, 1 at the corner
    sky_encoding: str = "unit_vector"  # + constant planes encoding (RA, Dec): unit_vector (3) | sincos (4) | none
    validity_channel: bool = False  # + 1 where all three stamps were finite before NaN filling

    def __post_init__(self) -> None:
        _check_choice("image_norm", self.image_norm, IMAGE_NORMS)
        _check_choice("sky_encoding", self.sky_encoding, SKY_ENCODINGS)
        if not 1 <= self.crop_size <= 63:
            raise ConfigError(f"crop_size must be in [1, 63], got {self.crop_size}")

    @property
    def num_channels(self) -> int:
        sky = {"unit_vector": 3, "sincos": 4, "none": 0}[self.sky_encoding]
        return 3 + int(self.radial_channel) + sky + int(self.validity_channel)


class _DerivedSizes:
    """Properties both model configs derive from their fields (image input, classes, metadata width)."""

    @property
    def image_input(self) -> ImageInputConfig:
        return ImageInputConfig(self.crop_size, self.image_norm, self.radial_channel, self.sky_encoding,
                                self.validity_channel)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def metadata_dim(self) -> int:
        return len(self.metadata_features) * (2 if self.missing_indicators else 1)


def validate_features(names: tuple[str, ...] | list[str], allowed: tuple[str, ...], where: str) -> None:
    """Raise ConfigError naming every feature of ``names`` that is not in ``allowed``."""
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown metadata features {unknown}; allowed: {list(allowed)}")


@dataclass
class AstroMiNNConfig(_DerivedSizes, PresetConfig):
    """AstroMiNN: metadata towers + split-head ConvNeXt + top-k mixture of fusion experts (paper I §4)."""

    model_type: ClassVar[str] = "astrominn"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"backbone": "convnext_atto", "tower_hidden_dim": 32, "mega_hidden_dim": 64, "tower_out_dim": 16,
                  "image_embed_dim": 64, "image_head_hidden_dim": 128, "expert_hidden_dim": 64},
        "tiny": {"backbone": "convnext_atto", "tower_hidden_dim": 16, "mega_hidden_dim": 32, "tower_out_dim": 8,
                 "image_embed_dim": 16, "image_head_hidden_dim": 32, "expert_hidden_dim": 32,
                 "coord_frequencies": 2, "aux_frequencies": 4},
    }

    class_names: tuple[str, ...] = FINE_CLASSES
    survey: str = "ztf"  # the survey the model is trained on (runners skip alerts of other surveys)
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC["ztf"]  # of the stamps it is trained on
    metadata_features: tuple[str, ...] = METADATA_FEATURES  # names of the survey's metadata vector
    missing_indicators: bool = True  # metadata input is [values (F), missing flags (F)]
    # image input (see ImageInputConfig)
    crop_size: int = 49
    image_norm: str = "l2"
    radial_channel: bool = True
    sky_encoding: str = "unit_vector"
    validity_channel: bool = False
    # towers (§4.1)
    tower_features: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_TOWER_FEATURES))
    tower_hidden_dim: int = 32
    mega_hidden_dim: int = 128
    tower_out_dim: int = 32
    tower_gating: bool = True  # sigmoid gating heads in every tower
    coord_frequencies: int = 4  # sinusoidal encoding of RA/Dec in the coordinate tower; 0 disables it
    tower_dropout: float = 0.25
    # image branch (§4.2)
    backbone: str = "convnext_tiny"
    backbone_weights: str | None = None  # local timm/safetensors state dict; never downloaded
    image_embed_dim: int = 128
    image_head_hidden_dim: int = 384
    aux_frequencies: int = 8  # sine positional embedding of (RA, Dec) driving the aux head's modulation
    head_dropout: float = 0.4
    drop_path_rate: float = 0.0
    # fusion and routing (§4.3, §4.4)
    num_experts: int = 4
    top_k: int = 2
    expert_hidden_dim: int = 128
    router_dropout: float = 0.3
    balance_loss_weight: float = 0.01  # Switch/GShard load-balancing coefficient
    # The paper's loss (§4.4, Eq. 3) is the default: focal (γ 2, Lin et al.) + λ·MSE(router, one-hot(label mod K))
    # with λ 0.1 (the reference archive's default; its "focalexpert" run used 0.5).
    specialisation_weight: float = 0.1  # λ of Eq. 3 (0 disables)
    focal_gamma: float = 2.0  # 0 = (weighted) cross-entropy
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.metadata_features = tuple(self.metadata_features)
        if len(self.class_names) < 2:
            raise ConfigError(f"class_names needs at least two classes, got {self.class_names}")
        validate_survey_features(self.survey, self.metadata_features)
        if not self.tower_features:
            raise ConfigError("tower_features must name at least one tower")
        self.tower_features = {str(k): tuple(v) for k, v in self.tower_features.items()}
        for tower, names in self.tower_features.items():
            if not names:
                raise ConfigError(f"tower {tower!r} has no features")
            validate_features(names, self.metadata_features, f"tower {tower!r}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ConfigError(f"top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}")
        self.image_input  # noqa: B018 - validates the image fields


@dataclass
class BTSbotConfig(_DerivedSizes, PresetConfig):
    """BTSbot-style multi-input CNN (Rehemtulla et al. 2024): conv branch on the triplet + metadata MLP."""

    model_type: ClassVar[str] = "btsbot"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"conv_channels": (16, 32), "meta_hidden_dim": 64, "head_hidden_dim": 32},
        "tiny": {"conv_channels": (4, 8), "meta_hidden_dim": 16, "head_hidden_dim": 8},
    }

    class_names: tuple[str, ...] = FINE_CLASSES
    survey: str = "ztf"
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC["ztf"]
    metadata_features: tuple[str, ...] = METADATA_FEATURES
    missing_indicators: bool = True
    crop_size: int = 63  # BTSbot uses the full 63×63 triplet
    image_norm: str = "l2"
    radial_channel: bool = False
    sky_encoding: str = "none"
    validity_channel: bool = False
    conv_channels: tuple[int, int] = (32, 64)
    conv_kernel: int = 5
    image_dropout: tuple[float, float] = (0.5, 0.55)
    meta_hidden_dim: int = 128
    meta_dropout: float = 0.25
    head_hidden_dim: int = 64
    head_dropout: float = 0.2
    focal_gamma: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.metadata_features = tuple(self.metadata_features)
        self.conv_channels = tuple(self.conv_channels)  # type: ignore[assignment]
        self.image_dropout = tuple(self.image_dropout)  # type: ignore[assignment]
        validate_survey_features(self.survey, self.metadata_features)
        if len(self.class_names) < 2:
            raise ConfigError(f"class_names needs at least two classes, got {self.class_names}")
        self.image_input  # noqa: B018


def validate_survey_features(survey: str, metadata_features: tuple[str, ...]) -> None:
    """``survey`` is known and ``metadata_features`` are names of its metadata vector (ConfigError otherwise)."""
    if survey not in METADATA_FEATURES_BY_SURVEY:
        raise ConfigError(f"survey must be one of {sorted(METADATA_FEATURES_BY_SURVEY)}, got {survey!r}")
    validate_features(metadata_features, METADATA_FEATURES_BY_SURVEY[survey], f"metadata_features ({survey})")


MODEL_CONFIGS: dict[str, type] = {"astrominn": AstroMiNNConfig, "btsbot": BTSbotConfig}
