"""Event features of AppleCiDEr paper I §3.1 (Table 4), in numpy: LightCurve → (L, 4 + bands) event matrix.

Pipeline (detections only):

1. *Clean*: keep detections with finite flux and a finite, positive error; drop exact repeats of an epoch
   (same band and MJD to 1e-5 d: the same exposure seen twice, e.g. in two alert packets), keeping the row
   with the smallest error. Input order never matters (rows are sorted here).
2. *Merge* per band (:func:`merge_band`): a window is anchored at the earliest not-yet-merged point and takes
   every later point of that band with ``mjd - anchor_mjd <= 0.5 d`` (12 h). Points are combined with
   inverse-VARIANCE weights ``w = 1/σ²``: flux ``Σwf/Σw``, error ``1/sqrt(Σw)``, time ``Σwt/Σw``.
   (The reference code used ``1/σ`` and averaged the errors; see research notes §1.1.)
3. *Events*: merged points of all bands in time order (ties by band g, r, i). With ``Δt`` days since the
   object's first detection (``LightCurve.first_detection_mjd``: ZTF's jdstarthist, in training and in
   streaming; the first event when unknown or more than 100 d before it, see :func:`delta_t_origin`) and
   ``δt`` days since the previous one (0 for the first), the channels are
   ``[log1p Δt, log1p δt, log10 f, σ_logf, one-hot band]`` (one channel per band of ``FeatureConfig.bands``:
   ``g, r, i`` for ZTF, ``u g r i z y`` for Rubin) with ``f = max(flux, FLUX_FLOOR_UJY)`` and
   ``σ_logf = σ_f / (f ln 10)`` clipped to ``MAX_SIGMA_LOGF``.
   Flux floor: 1 µJy (AB 23.9 mag, well below ZTF's ~21 mag single-epoch limit). Zero or negative
   difference fluxes therefore become ``log10 f = 0`` with a large σ_logf, i.e. "consistent with nothing".
4. *Horizon*: keep events with ``Δt <= horizon_days`` (Δt measured from the first detection, see 3).
5. *Length*: at most ``max_events`` events; longer sequences keep the EARLIEST ``max_events`` events (the
   model is built for early classification, and truncating the tail keeps Δt/δt of the kept events
   unchanged). The [CLS] token is added by the model, not counted here.

Normalisation (:class:`FeatureStats`): the 4 continuous channels are z-scored with mean/std fitted on the
training split only; the one-hot channels are left as they are. The statistics travel in the model's
``preprocessor.json`` (:func:`preprocessor_dict`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from applecider_core.records import BANDS, ZTF_BANDS, LightCurve

logger = logging.getLogger(__name__)

MERGE_WINDOW_DAYS = 0.5
FLUX_FLOOR_UJY = 1.0
MAX_SIGMA_LOGF = 5.0
DEFAULT_HORIZON_DAYS = 100.0
NEW_EPISODE_GAP_DAYS = DEFAULT_HORIZON_DAYS  # a first detection further before the curve starts an earlier episode
DEFAULT_MAX_EVENTS = 257
DUPLICATE_MJD_DECIMALS = 5
N_CONTINUOUS = 4
N_FEATURES = N_CONTINUOUS + len(ZTF_BANDS)  # of the default (ZTF g, r, i) configuration
CONTINUOUS_FEATURE_NAMES = ("log1p_dt_first", "log1p_dt_prev", "log10_flux", "sigma_log10_flux")


def feature_names(bands: Sequence[str]) -> tuple[str, ...]:
    """Channel names of events built over ``bands``: the 4 continuous ones, then ``band_<name>``."""
    return CONTINUOUS_FEATURE_NAMES + tuple(f"band_{band}" for band in bands)


class NoDetectionsError(ValueError):
    """A light curve with no usable detection (e.g. an all-upper-limit history): no event can be built."""

    def __init__(self, object_id: str, reason: str) -> None:
        super().__init__(f"{object_id}: {reason}")
        self.object_id = object_id
        self.reason = reason


@dataclass
class MergedPoints:
    """Merged photometry of one band or of all bands; arrays of equal length (M,)."""

    mjd: np.ndarray  # float64 days
    flux_ujy: np.ndarray  # float64
    flux_err_ujy: np.ndarray  # float64
    band_index: np.ndarray  # int64, index into the bands the points were merged over
    n_merged: np.ndarray  # int64, raw points per merged point


@dataclass
class EventSequence:
    """Unnormalised events of one light curve: ``features`` (L, 4 + bands) float32, ``times_days`` (L,) float32 Δt."""

    object_id: str
    features: np.ndarray
    times_days: np.ndarray

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class FeatureConfig:
    """Settings of :func:`build_events` (stored in preprocessor.json with the model)."""

    horizon_days: float | None = DEFAULT_HORIZON_DAYS
    max_events: int = DEFAULT_MAX_EVENTS
    merge_window_days: float = MERGE_WINDOW_DAYS
    flux_floor_ujy: float = FLUX_FLOOR_UJY
    bands: tuple[str, ...] = ZTF_BANDS  # bands kept, one one-hot channel each (e.g. ("ztfg", "ztfr"))

    def __post_init__(self) -> None:
        bad = sorted(set(self.bands) - set(BANDS))
        if bad:
            raise ValueError(f"unknown bands {bad}; allowed: {list(BANDS)}")
        if len(set(self.bands)) != len(self.bands) or not self.bands:
            raise ValueError(f"bands must be distinct and not empty, got {list(self.bands)}")
        if self.max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {self.max_events}")

    @property
    def n_features(self) -> int:
        return N_CONTINUOUS + len(self.bands)


def clean_detections(lc: LightCurve, bands: Sequence[str] = ZTF_BANDS) -> LightCurve:
    """Usable detections of ``lc`` in ``bands``, time-ordered, exact epoch repeats removed (module docstring)."""
    keep = (
        lc.is_detection & np.isfinite(lc.mjd) & np.isfinite(lc.flux_ujy) & np.isfinite(lc.flux_err_ujy)
        & (lc.flux_err_ujy > 0) & np.isin(lc.band, list(bands))
    )  # fmt: skip
    if not keep.any():
        reason = "no detections" if lc.num_detections == 0 else f"no usable detections in bands {list(bands)}"
        raise NoDetectionsError(lc.object_id, reason + f" ({len(lc)} rows, {lc.num_detections} detections)")
    lc = lc.select(keep)
    mjd_key = np.round(lc.mjd, DUPLICATE_MJD_DECIMALS)
    index = {band: i for i, band in enumerate(bands)}
    band_key = np.array([index[b] for b in lc.band])
    # Sort by (band, epoch, error, flux, exact mjd): the first row of each (band, epoch) is the most precise one;
    # the exact mjd breaks ties between equally precise rows, so the kept row never depends on the input order.
    order = np.lexsort((lc.mjd, lc.flux_ujy, lc.flux_err_ujy, mjd_key, band_key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (mjd_key[order][1:] != mjd_key[order][:-1]) | (band_key[order][1:] != band_key[order][:-1])
    return lc.select(order[first]).sorted()


def merge_band(
    mjd: np.ndarray, flux_ujy: np.ndarray, flux_err_ujy: np.ndarray, window_days: float = MERGE_WINDOW_DAYS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance merge of one band's points (sorted by mjd) in windows anchored at the first point.

    Returns (mjd, flux, flux_err, n_merged), each (M,): weighted-mean time and flux, error 1/sqrt(Σ 1/σ²).
    """
    weights = 1.0 / np.square(flux_err_ujy)
    # Window start indices: a point opens a new window when it lies > window_days after the current anchor.
    starts = []
    anchor = -np.inf
    for i, t in enumerate(mjd):
        if t - anchor > window_days:
            starts.append(i)
            anchor = t
    starts_arr = np.asarray(starts, dtype=np.int64)
    wsum = np.add.reduceat(weights, starts_arr)
    merged_mjd = np.add.reduceat(weights * mjd, starts_arr) / wsum
    merged_flux = np.add.reduceat(weights * flux_ujy, starts_arr) / wsum
    n_merged = np.diff(np.append(starts_arr, len(mjd)))
    return merged_mjd, merged_flux, 1.0 / np.sqrt(wsum), n_merged


def merge_events(lc: LightCurve, window_days: float = MERGE_WINDOW_DAYS,
                 bands: Sequence[str] = ZTF_BANDS) -> MergedPoints:
    """Clean and merge every band; result in time order (ties by band order). Raises NoDetectionsError."""
    lc = clean_detections(lc, bands)
    parts = []
    for band_index, band in enumerate(bands):
        rows = lc.band == band
        if rows.any():
            t, f, e, n = merge_band(lc.mjd[rows], lc.flux_ujy[rows], lc.flux_err_ujy[rows], window_days)
            parts.append((t, f, e, np.full(len(t), band_index), n))
    mjd, flux, err, band_index, n_merged = (np.concatenate(c) for c in zip(*parts))
    order = np.lexsort((band_index, mjd))
    return MergedPoints(mjd[order], flux[order], err[order], band_index[order].astype(np.int64), n_merged[order])


def delta_t_origin(first_event_mjd: float, first_detection_mjd: float) -> float:
    """The epoch Δt counts from: the object's first detection (ZTF's jdstarthist) when it is known, not after
    the first event and at most ``NEW_EPISODE_GAP_DAYS`` before it; otherwise the first event.

    A first detection further back belongs to an earlier episode (an old variable source, a host's earlier
    transient, an artefact years ago): measured from it, every event would lie beyond the 100-d training
    horizon and the model could not speak; counted from this curve's first event, the curve is read as the
    new transient it looks like, and :func:`history_restart_days` lets the caller say so.
    """
    if not np.isfinite(first_detection_mjd) or first_detection_mjd >= first_event_mjd:
        return float(first_event_mjd)
    if first_event_mjd - first_detection_mjd > NEW_EPISODE_GAP_DAYS:
        return float(first_event_mjd)
    return float(first_detection_mjd)


def history_restart_days(lc: LightCurve, config: FeatureConfig) -> float | None:
    """Days from the object's first detection to the first usable detection of ``lc`` when Δt restarts at the
    curve's first event (gap > ``NEW_EPISODE_GAP_DAYS``, see :func:`delta_t_origin`); None otherwise."""
    if not np.isfinite(lc.first_detection_mjd) or not len(lc.mjd):
        return None
    if lc.mjd.max() - lc.first_detection_mjd <= NEW_EPISODE_GAP_DAYS:
        return None  # no event can be later than the latest point: the common case skips the second merge
    try:
        first_event = merge_events(lc, config.merge_window_days, config.bands).mjd[0]
    except NoDetectionsError:
        return None
    gap = float(first_event - lc.first_detection_mjd)
    return gap if gap > NEW_EPISODE_GAP_DAYS else None


def event_features(points: MergedPoints, flux_floor_ujy: float = FLUX_FLOOR_UJY, n_bands: int = len(ZTF_BANDS),
                   first_detection_mjd: float = float("nan")) -> tuple[np.ndarray, np.ndarray]:
    """(L, 4 + n_bands) float32 unnormalised features and (L,) float32 Δt in days of merged points, with Δt
    counted from :func:`delta_t_origin`."""
    start = delta_t_origin(points.mjd[0], first_detection_mjd)
    dt_first = points.mjd - start
    dt_prev = np.diff(points.mjd, prepend=points.mjd[0])
    flux = np.maximum(points.flux_ujy, flux_floor_ujy)
    sigma_logf = np.minimum(points.flux_err_ujy / (flux * np.log(10.0)), MAX_SIGMA_LOGF)
    features = np.zeros((len(flux), N_CONTINUOUS + n_bands), dtype=np.float32)
    features[:, 0] = np.log1p(dt_first)
    features[:, 1] = np.log1p(dt_prev)
    features[:, 2] = np.log10(flux)
    features[:, 3] = sigma_logf
    features[np.arange(len(flux)), N_CONTINUOUS + points.band_index] = 1.0
    return features, dt_first.astype(np.float32)


def build_events(lc: LightCurve, config: FeatureConfig | None = None) -> EventSequence:
    """LightCurve → unnormalised :class:`EventSequence` (merge, features, horizon, length cap).

    Raises NoDetectionsError when ``lc`` has no usable detection.
    """
    config = config or FeatureConfig()
    points = merge_events(lc, config.merge_window_days, config.bands)
    features, times = event_features(points, config.flux_floor_ujy, len(config.bands), lc.first_detection_mjd)
    keep = np.ones(len(times), dtype=bool) if config.horizon_days is None else times <= config.horizon_days
    if not keep.any():
        raise NoDetectionsError(lc.object_id, f"no detection within {config.horizon_days:g} d of the first detection "
                                              f"(the first event is {times[0]:.1f} d after it)")
    features, times = features[keep][: config.max_events], times[keep][: config.max_events]
    return EventSequence(lc.object_id, features, times)


def build_many(
    light_curves: Iterable[LightCurve], config: FeatureConfig | None = None
) -> tuple[list[EventSequence], list[tuple[str, str]]]:
    """Events of many light curves; per-item problems are returned as (object_id, reason), never raised."""
    events, errors = [], []
    for lc in light_curves:
        try:
            events.append(build_events(lc, config))
        except NoDetectionsError as err:
            errors.append((err.object_id, err.reason))
    if errors:
        logger.info("%d light curves without usable detections skipped", len(errors))
    return events, errors


@dataclass
class FeatureStats:
    """Mean and std (4,) of the continuous channels, fitted on training events only."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(N_CONTINUOUS, dtype=np.float32))
    std: np.ndarray = field(default_factory=lambda: np.ones(N_CONTINUOUS, dtype=np.float32))

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(N_CONTINUOUS)
        self.std = np.asarray(self.std, dtype=np.float32).reshape(N_CONTINUOUS)
        if not (np.all(np.isfinite(self.mean)) and np.all(self.std > 0)):
            raise ValueError(f"feature stats must be finite with std > 0, got mean={self.mean} std={self.std}")

    @classmethod
    def fit(cls, sequences: Iterable[EventSequence], min_std: float = 1e-3) -> FeatureStats:
        stacked = [s.features[:, :N_CONTINUOUS] for s in sequences if len(s)]
        if not stacked:
            raise ValueError("cannot fit feature statistics on zero events")
        values = np.concatenate(stacked).astype(np.float64)
        return cls(values.mean(axis=0), np.maximum(values.std(axis=0), min_std))

    def normalise(self, features: np.ndarray) -> np.ndarray:
        """(…, F) → (…, F) float32 with the continuous channels z-scored."""
        out = np.array(features, dtype=np.float32, copy=True)
        out[..., :N_CONTINUOUS] = (out[..., :N_CONTINUOUS] - self.mean) / self.std
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "channels": list(CONTINUOUS_FEATURE_NAMES)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureStats:
        return cls(np.asarray(data["mean"]), np.asarray(data["std"]))


def preprocessor_dict(config: FeatureConfig, stats: FeatureStats, **extra: Any) -> dict[str, Any]:
    """JSON-ready preprocessing state saved as the model's preprocessor.json."""
    return {
        "features": {
            "horizon_days": config.horizon_days, "max_events": config.max_events,
            "merge_window_days": config.merge_window_days, "flux_floor_ujy": config.flux_floor_ujy,
            "bands": list(config.bands), "feature_names": list(feature_names(config.bands)),
        },
        "feature_stats": stats.to_dict(),
        **extra,
    }  # fmt: skip


def pad_events(items: Sequence[dict[str, Any]], max_events: int | None = None) -> dict[str, np.ndarray]:
    """Pad items ``{"events": (L, 7), "times": (L,)}`` to the batch maximum length (numpy; see
    ``modeling.collate_events``): events (B, L, 7) float32, mask (B, L) bool True = event, times (B, L)."""
    lengths = [min(len(item["events"]), max_events or len(item["events"])) for item in items]
    length = max(max(lengths), 1)
    n_features = np.asarray(items[0]["events"]).shape[-1]
    events = np.zeros((len(items), length, n_features), dtype=np.float32)
    times = np.zeros((len(items), length), dtype=np.float32)
    mask = np.zeros((len(items), length), dtype=bool)
    for i, (item, n) in enumerate(zip(items, lengths)):
        events[i, :n] = np.asarray(item["events"])[:n]
        times[i, :n] = np.asarray(item["times"])[:n]
        mask[i, :n] = True
    return {"events": events, "mask": mask, "times": times}


def from_preprocessor(data: dict[str, Any]) -> tuple[FeatureConfig, FeatureStats]:
    """Inverse of :func:`preprocessor_dict` (raises KeyError naming what is missing)."""
    if "features" not in data or "feature_stats" not in data:
        raise KeyError(f"preprocessor.json lacks 'features'/'feature_stats' (has {sorted(data)})")
    f = data["features"]
    config = FeatureConfig(
        horizon_days=f["horizon_days"], max_events=int(f["max_events"]), merge_window_days=float(f["merge_window_days"]),
        flux_floor_ujy=float(f["flux_floor_ujy"]), bands=tuple(f["bands"]),
    )  # fmt: skip
    return config, FeatureStats.from_dict(data["feature_stats"])
