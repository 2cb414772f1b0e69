"""Numpy preprocessing of alert cutouts and metadata (the same code serves training and inference).

Cutouts, per alert: a (3, 63, 63) float32 triplet (science, template, difference; NaN = masked) →
(C, S, S) float32:

1. Non-finite pixels (NaN, ±inf) are excluded from the statistics and set to 0 *after* normalisation,
   i.e. to the stamp's "blank" value (0 for L2, the median for median/MAD). An optional validity channel
   (1 where all three stamps were finite) lets the network tell a masked pixel from a blank one; it is off
   by default because the paper's input has no such channel and ZTF stamps are rarely masked in the centre.
2. Per-cutout normalisation, each stamp on its own, over the full 63×63 stamp (as the reference code):
   ``l2`` divides by the Frobenius norm of the finite pixels (default, as the reference alert processor);
   ``median_mad`` subtracts the median and divides by 1.4826·MAD; a constant or empty stamp becomes 0.
3. Centre crop to ``crop_size`` (49 → rows/cols 7..55, the reference slice [7:56]).
4. Extra channels of paper I §4.2, in this order:
   - radial distance from the crop centre (pixel units / centre-to-corner distance: 0 at the centre, 1 in
     the corners), which tells the translation-equivariant backbone where the candidate sits;
   - the embedded sky position as constant planes: ``unit_vector`` (cos δ cos α, cos δ sin α, sin δ), which
     is continuous over the whole sphere (no jump at α = 360° → 0°, no singularity at the poles), or
     ``sincos`` (sin α, cos α, sin δ, cos δ); NaN coordinates give zero planes;
   - the optional validity channel.

Metadata, per alert: the vector of its survey (ZTF: the (19,) ``records.METADATA_FEATURES``; Rubin:
``LSST_METADATA_FEATURES``) in that order (NaN = missing) →
``[values (F), missing flags (F)]`` for the F configured features. Values are optionally signed-log1p
compressed (heavy-tailed counts, distances, sky, S/N), standardised with the mean/std fitted on the
training split (finite values only), clipped to ±``clip`` standard deviations, and missing values
(NaN, ±inf, the legacy -999 sentinel) are set to 0 = the training mean, with the flag 1. The fitted
statistics are JSON-ready (``to_dict``) and are saved in the model's ``preprocessor.json``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from applecider_core.records import CUTOUT_SIZE, METADATA_FEATURES, METADATA_FEATURES_BY_SURVEY, Alert

from .configuration import ImageInputConfig, validate_features

logger = logging.getLogger(__name__)

MAD_TO_SIGMA = 1.4826
DEFAULT_LOG_FEATURES = (
    "distpsnr1", "distpsnr2", "ndethist", "ncovhist", "nnondet", "nmtchps", "sky", "scorr", "age_days", "chinr",
)  # fmt: skip
LEGACY_SENTINELS = (-999.0,)


class PreprocessingError(ValueError):
    """Input arrays of the wrong shape, or a preprocessor dict that does not match the model."""


# ---- cutouts -----------------------------------------------------------------------------------------------
def normalise_stamps(stamps: np.ndarray, method: str = "l2") -> np.ndarray:
    """Per-stamp normalisation of (..., H, W) images; non-finite pixels are ignored, then set to 0.

    Returns float32 of the same shape, all finite.
    """
    x = np.asarray(stamps, dtype=np.float64)
    finite = np.isfinite(x)
    filled = np.where(finite, x, 0.0)
    if method == "l2":
        norm = np.sqrt(np.sum(filled * filled, axis=(-2, -1), keepdims=True))
        out = np.divide(filled, norm, out=np.zeros_like(filled), where=norm > 0)
    elif method == "median_mad":
        masked = np.where(finite, x, np.nan)
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            median = np.nanmedian(masked, axis=(-2, -1), keepdims=True)
            mad = MAD_TO_SIGMA * np.nanmedian(np.abs(masked - median), axis=(-2, -1), keepdims=True)
        median = np.where(np.isfinite(median), median, 0.0)
        mad = np.where(np.isfinite(mad) & (mad > 0), mad, 1.0)
        out = np.where(finite, (x - median) / mad, 0.0)
    elif method == "none":
        out = filled
    else:
        raise PreprocessingError(f"unknown image_norm {method!r}; allowed: l2, median_mad, none")
    return out.astype(np.float32)


@contextmanager
def _quiet_nan_warnings():
    """Silence numpy's 'All-NaN slice' RuntimeWarning for fully masked stamps (handled explicitly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """Centre crop of (..., H, W) to (..., size, size); start = (H - size) // 2 (63 → 49: [7:56])."""
    h, w = images.shape[-2:]
    if size > min(h, w):
        raise PreprocessingError(f"crop_size {size} larger than the image {h}×{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def radial_distance(size: int) -> np.ndarray:
    """(size, size) float32 distance from the centre, divided by the centre-to-corner distance (0..1)."""
    centre = (size - 1) / 2.0
    if centre == 0:
        return np.zeros((size, size), dtype=np.float32)
    idx = np.arange(size, dtype=np.float64) - centre
    r = np.sqrt(idx[:, None] ** 2 + idx[None, :] ** 2) / (centre * np.sqrt(2.0))
    return r.astype(np.float32)


def sky_embedding(ra_deg: np.ndarray, dec_deg: np.ndarray, encoding: str) -> np.ndarray:
    """(N, K) float32 embedding of sky positions (degrees); K = 3 (unit_vector), 4 (sincos), 0 (none)."""
    ra = np.deg2rad(np.asarray(ra_deg, dtype=np.float64).reshape(-1))
    dec = np.deg2rad(np.asarray(dec_deg, dtype=np.float64).reshape(-1))
    if encoding == "unit_vector":
        out = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
    elif encoding == "sincos":
        out = np.stack([np.sin(ra), np.cos(ra), np.sin(dec), np.cos(dec)], axis=1)
    elif encoding == "none":
        out = np.zeros((len(ra), 0))
    else:
        raise PreprocessingError(f"unknown sky_encoding {encoding!r}; allowed: unit_vector, sincos, none")
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def preprocess_cutouts(
    cutouts: np.ndarray, ra_deg: np.ndarray | float, dec_deg: np.ndarray | float, spec: ImageInputConfig
) -> np.ndarray:
    """Cutout triplets (N, 3, H, W) or (3, H, W) → model input (N, C, S, S) or (C, S, S) float32.

    ``ra_deg``/``dec_deg``: (N,) or scalars, degrees. C = ``spec.num_channels``; see the module docstring.
    """
    stamps = np.asarray(cutouts, dtype=np.float32)
    single = stamps.ndim == 3
    if single:
        stamps = stamps[None]
    if stamps.ndim != 4 or stamps.shape[1] != 3:
        raise PreprocessingError(f"cutouts must be (N, 3, H, W) or (3, H, W), got {np.shape(cutouts)}")
    n, size = len(stamps), spec.crop_size
    channels = [centre_crop(normalise_stamps(stamps, spec.image_norm), size)]
    if spec.radial_channel:
        channels.append(np.broadcast_to(radial_distance(size), (n, 1, size, size)))
    if spec.sky_encoding != "none":
        ra = np.broadcast_to(np.asarray(ra_deg, dtype=np.float64), (n,))
        dec = np.broadcast_to(np.asarray(dec_deg, dtype=np.float64), (n,))
        sky = sky_embedding(ra, dec, spec.sky_encoding)  # (N, K)
        channels.append(np.broadcast_to(sky[:, :, None, None], (n, sky.shape[1], size, size)))
    if spec.validity_channel:
        valid = np.isfinite(centre_crop(stamps, size)).all(axis=1, keepdims=True)
        channels.append(valid.astype(np.float32))
    out = np.ascontiguousarray(np.concatenate(channels, axis=1), dtype=np.float32)
    return out[0] if single else out


def pad_stamp(stamp: np.ndarray, size: int = CUTOUT_SIZE) -> np.ndarray:
    """Pad a stamp smaller than size×size (CCD edges) with NaN (= masked) at the bottom/right."""
    stamp = np.asarray(stamp, dtype=np.float32)
    if stamp.shape == (size, size):
        return stamp
    if stamp.shape[0] > size or stamp.shape[1] > size:
        raise PreprocessingError(f"stamp {stamp.shape} larger than {size}×{size}")
    out = np.full((size, size), np.nan, dtype=np.float32)
    out[: stamp.shape[0], : stamp.shape[1]] = stamp
    return out


# ---- metadata ----------------------------------------------------------------------------------------------
def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class MetadataPreprocessor:
    """Selection, missing-value handling and standardisation of the metadata vector (module docstring)."""

    feature_names: tuple[str, ...] = METADATA_FEATURES
    log_features: tuple[str, ...] = DEFAULT_LOG_FEATURES
    survey: str = "ztf"  # whose metadata vector the input is (its names and order)
    mean: np.ndarray | None = None  # (F,) of the transformed values; None: 0 (unfitted)
    std: np.ndarray | None = None  # (F,); None: 1 (unfitted)
    missing_indicators: bool = True
    clip: float = 10.0
    sentinels: tuple[float, ...] = LEGACY_SENTINELS

    def __post_init__(self) -> None:
        self.feature_names = tuple(self.feature_names)
        self.log_features = tuple(f for f in self.log_features if f in self.feature_names)
        if self.survey not in METADATA_FEATURES_BY_SURVEY:
            raise PreprocessingError(f"survey must be one of {sorted(METADATA_FEATURES_BY_SURVEY)}, got {self.survey!r}")
        self._all = METADATA_FEATURES_BY_SURVEY[self.survey]
        validate_features(self.feature_names, self._all, "MetadataPreprocessor")
        n = len(self.feature_names)
        self.mean = np.zeros(n) if self.mean is None else np.asarray(self.mean, dtype=np.float64)
        self.std = np.ones(n) if self.std is None else np.asarray(self.std, dtype=np.float64)
        if self.mean.shape != (len(self.feature_names),) or self.std.shape != self.mean.shape:
            raise PreprocessingError(
                f"mean/std must have shape ({len(self.feature_names)},), got {self.mean.shape}/{self.std.shape}"
            )
        self._columns = np.array([self._all.index(f) for f in self.feature_names])
        self._log = np.array([f in self.log_features for f in self.feature_names])

    @property
    def output_dim(self) -> int:
        return len(self.feature_names) * (2 if self.missing_indicators else 1)

    def _select(self, metadata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, all) raw → transformed values (N, F) float64 with NaN where missing, and the missing mask."""
        metadata = np.asarray(metadata, dtype=np.float64)
        if metadata.ndim != 2 or metadata.shape[1] != len(self._all):
            raise PreprocessingError(
                f"metadata must be (N, {len(self._all)}) in the {self.survey} feature order, got {metadata.shape}"
            )
        x = metadata[:, self._columns]
        missing = ~np.isfinite(x)
        for sentinel in self.sentinels:
            missing |= x == sentinel
        x = np.where(missing, np.nan, x)
        x[:, self._log] = signed_log1p(x[:, self._log])
        return x, missing

    @classmethod
    def fit(cls, metadata: np.ndarray, feature_names: Sequence[str] = METADATA_FEATURES, **kwargs: Any):
        """Fit mean/std of every feature on training metadata (N, 19); all-missing features get (0, 1)."""
        prep = cls(feature_names=tuple(feature_names), **kwargs)
        x, _ = prep._select(metadata)
        with _quiet_nan_warnings():
            mean = np.nanmean(x, axis=0)
            std = np.nanstd(x, axis=0)
        prep.mean = np.where(np.isfinite(mean), mean, 0.0)
        prep.std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        empty = [f for f, m in zip(prep.feature_names, np.isfinite(mean)) if not m]
        if empty:
            logger.warning("metadata features missing in every training alert (standardised to 0): %s", empty)
        return prep

    def transform(self, metadata: np.ndarray) -> np.ndarray:
        """(N, 19) or (19,) raw metadata → (N, output_dim) or (output_dim,) float32, all finite."""
        metadata = np.asarray(metadata)
        single = metadata.ndim == 1
        x, missing = self._select(metadata[None] if single else metadata)
        z = np.clip((x - self.mean) / self.std, -self.clip, self.clip)
        z = np.where(missing, 0.0, z)
        out = np.concatenate([z, missing.astype(np.float64)], axis=1) if self.missing_indicators else z
        out = out.astype(np.float32)
        return out[0] if single else out

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_names": list(self.feature_names), "log_features": list(self.log_features),
            "mean": self.mean.tolist(), "std": self.std.tolist(), "missing_indicators": self.missing_indicators,
            "clip": self.clip, "sentinels": list(self.sentinels), "survey": self.survey,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetadataPreprocessor:
        allowed = {"feature_names", "log_features", "mean", "std", "missing_indicators", "clip", "sentinels", "survey"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PreprocessingError(f"metadata preprocessor: unknown keys {unknown}; allowed: {sorted(allowed)}")
        return cls(**{k: tuple(v) if k in ("feature_names", "log_features", "sentinels") else v
                      for k, v in data.items()})


# ---- the BOOM interface (see ``export``): what a broker passes to the image + metadata graph -------------
COORDINATES = ("ra", "dec")


def uses_position(config: Any) -> bool:
    """AstroMiNN reads (RA, Dec) in its coordinate tower and auxiliary head; sky channels need them too."""
    return config.sky_encoding != "none" or type(config).model_type == "astrominn"


def boom_features(config: Any) -> tuple[str, ...]:
    """Column order of the graph's ``metadata`` input for a model of ``config``."""
    features = tuple(config.metadata_features)
    extra = tuple(c for c in COORDINATES if c not in features) if uses_position(config) else ()
    return features + extra


def boom_inputs(alerts: Sequence[Alert], config: Any) -> dict[str, np.ndarray]:
    """What BOOM passes, built from ``Alert`` records that all have cutouts: triplet and raw metadata."""
    stamps = np.stack([a.cutouts.on_grid() for a in alerts])  # (N, 3, 63, 63), Rubin's stamps centred
    triplet = normalise_stamps(stamps, config.image_norm).transpose(0, 2, 3, 1)  # (N, 63, 63, 3)
    names = METADATA_FEATURES_BY_SURVEY[getattr(config, "survey", "ztf")]
    columns = [names.index(f) for f in boom_features(config)]
    metadata = np.stack([a.metadata for a in alerts])[:, columns].astype(np.float32)
    return {"triplet": np.ascontiguousarray(triplet), "metadata": metadata}


PREPROCESSOR_FORMAT = "applecider-images/1"


def preprocessor_dict(metadata: MetadataPreprocessor, image: ImageInputConfig) -> dict[str, Any]:
    """The JSON-ready dict saved as the model's ``preprocessor.json``."""
    from dataclasses import asdict

    return {"format": PREPROCESSOR_FORMAT, "metadata": metadata.to_dict(), "image": asdict(image)}


def metadata_preprocessor_for(model_config: Any, preprocessor: dict[str, Any] | None) -> MetadataPreprocessor:
    """The fitted metadata preprocessor stored with a model, checked against its config."""
    if not preprocessor or "metadata" not in preprocessor:
        raise PreprocessingError("the model has no fitted metadata statistics (preprocessor.json is empty)")
    prep = MetadataPreprocessor.from_dict(preprocessor["metadata"])
    if prep.feature_names != tuple(model_config.metadata_features) or prep.output_dim != model_config.metadata_dim:
        raise PreprocessingError(
            f"preprocessor features {prep.feature_names} (dim {prep.output_dim}) do not match the model's "
            f"{tuple(model_config.metadata_features)} (dim {model_config.metadata_dim})"
        )
    return prep
