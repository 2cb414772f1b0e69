"""Record-level training views of raw LightCurve records (before event features are built).

*Alert-history view* (:func:`alert_history_view`): what one alert packet of the object shows. A ZTF packet
carries the triggering detection and the previous 30 days of photometry; the object's first detection stays
known (``jdstarthist``), so Δt is still measured from it. Late packets therefore show a curve that starts
weeks after the first detection; training only on curves that start at it leaves the model unprepared for
most real packets (on the labelled shared alerts, the history of 58 % of packets starts > 3 d after it).

Rare-class augmentation:

Three perturbations (paper I §3.3, reference notebook ``BalancedAugDataset``), done in the units of the record:

- *event dropout*: each detection is dropped with probability ``dropout_p`` (the first detection is kept);
- *gap jitter*: each gap between consecutive distinct epochs is scaled by ``1 + N(0, jitter_scale²)``
  (clipped at 0), so the time order is preserved and intra-night groups stay together;
- *flux resampling within errors*: ``f' = f + flux_scale · σ_f · t_ν`` (Student-t with ν = ``flux_nu``),
  in linear µJy, errors unchanged. (The reference exponentiated log10 fluxes with ``exp``: wrong base.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from applecider_core.records import LightCurve


@dataclass
class AugmentConfig:
    dropout_p: float = 0.1
    jitter_scale: float = 0.1
    flux_nu: float = 8.0
    flux_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout_p < 1.0:
            raise ValueError(f"dropout_p must be in [0, 1), got {self.dropout_p}")
        if self.jitter_scale < 0 or self.flux_scale < 0 or self.flux_nu <= 0:
            raise ValueError("jitter_scale and flux_scale must be >= 0 and flux_nu > 0")


ALERT_HISTORY_DAYS = 30.0  # photometry before the triggering detection that a ZTF alert packet carries


def alert_history_view(lc: LightCurve, horizon_days: float | None, rng: np.random.Generator,
                       window_days: float = ALERT_HISTORY_DAYS) -> LightCurve:
    """The detections one alert of ``lc`` would carry: an alert epoch drawn uniformly among the detections at
    most ``horizon_days`` after the first detection (every detection triggers an alert), then the detections
    in ``[epoch - window_days, epoch]``; ``first_detection_mjd`` is kept (NaN: the curve's first detection).
    A curve without a detection within the horizon is returned as its detections (the feature builder
    reports it)."""
    lc = lc.detections().sorted()
    first = lc.first_detection_mjd if np.isfinite(lc.first_detection_mjd) else (lc.mjd[0] if len(lc) else np.nan)
    eligible = np.flatnonzero(lc.mjd - first <= horizon_days) if horizon_days is not None else np.arange(len(lc))
    if len(eligible) == 0:
        return lc
    epoch = lc.mjd[rng.choice(eligible)]
    view = lc.select((lc.mjd >= epoch - window_days) & (lc.mjd <= epoch))
    return dataclasses.replace(view, first_detection_mjd=first)


def augment_light_curve(lc: LightCurve, config: AugmentConfig, rng: np.random.Generator) -> LightCurve:
    """A perturbed copy of the detections of ``lc`` (upper limits are dropped)."""
    lc = lc.detections().sorted()
    n = len(lc)
    if n == 0:
        return lc
    keep = rng.random(n) >= config.dropout_p
    keep[0] = True
    lc = lc.select(keep)
    # Gap jitter on distinct epochs: rows sharing an epoch move together.
    epochs, inverse = np.unique(lc.mjd, return_inverse=True)
    gaps = np.diff(epochs)
    scale = np.clip(1.0 + config.jitter_scale * rng.standard_normal(len(gaps)), 0.0, None)
    new_epochs = epochs[0] + np.concatenate([[0.0], np.cumsum(gaps * scale)])
    noise = rng.standard_t(config.flux_nu, size=len(lc)) if len(lc) else np.zeros(0)
    flux = lc.flux_ujy + config.flux_scale * np.nan_to_num(lc.flux_err_ujy) * noise
    return LightCurve(lc.object_id, new_epochs[inverse], lc.band, flux, lc.flux_err_ujy, lc.is_detection, lc.candid,
                      lc.is_forced, first_detection_mjd=lc.first_detection_mjd)
