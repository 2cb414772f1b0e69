"""Rare-class augmentation applied to raw LightCurve records (before event features are built).

Three perturbations (paper I §3.3, reference notebook ``BalancedAugDataset``), done in the units of the record:

- *event dropout*: each detection is dropped with probability ``dropout_p`` (the first detection is kept);
- *gap jitter*: each gap between consecutive distinct epochs is scaled by ``1 + N(0, jitter_scale²)``
  (clipped at 0), so the time order is preserved and intra-night groups stay together;
- *flux resampling within errors*: ``f' = f + flux_scale · σ_f · t_ν`` (Student-t with ν = ``flux_nu``),
  in linear µJy, errors unchanged. (The reference exponentiated log10 fluxes with ``exp``: wrong base.)
"""

from __future__ import annotations

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
