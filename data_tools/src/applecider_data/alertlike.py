"""Alert-like light curves: the build stage that makes every light-curve source look like ZTF alert photometry.

Light-curve sources differ in format: alert photometry (ANTARES, Fink, the alert packets' histories) holds
difference-image detections from the first detection on; a literature catalogue adds upper limits and other
bands; archival data-release photometry (TDECat) measures the *total* flux of the host for years around the
flare. A classifier trained on such a mix learns the source instead of the class. Every object's light
curve therefore goes through one rule, here, before any model sees it (training, the public benchmark and
the released models read the dataset this stage writes):

1. *Archival sources* (``archival_sources``; total-flux photometry): per band, the baseline is the median
   flux of the points more than ``baseline_exclusion_days`` from the object's peak (brightest point, g/r);
   the baseline is subtracted and only points ``>= detection_sigma`` σ above it are kept as detections
   (the 5σ alert threshold), σ being the larger of the point's error and the baseline's robust scatter
   (1.4826 × MAD: total-flux photometry of a bright host varies by more than its quoted errors). A band without ``min_baseline_points`` baseline points is dropped (no
   difference flux can be formed); so are old flares outside the survey (nothing rises above the host).
2. *Detections only*, bands ``bands`` (ZTF g and r), finite flux and positive error.
3. *Window anchored on the transient*: the peak is the brightest detection; the first detection of the
   event is found by walking back from the peak through detections while consecutive detections are at
   most ``max_gap_days`` apart and no earlier than ``max_rise_days`` before the peak. The window keeps
   ``[start - pre_event_days, start + post_event_days]`` (by the gap rule the pre-event part only holds
   points when the rise cap stopped the walk).
4. *Cadence thinned per band*: greedy from the first point, a point is kept when it lies at least
   ``min_gap_days`` after the last kept point of its band (the public survey's ~2–3 night cadence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LC_COLUMNS = ["object_id", "mjd", "band", "flux_ujy", "flux_err_ujy", "is_detection", "source"]


@dataclass
class AlertLikeConfig:
    """Settings of the alert-like stage (``light_curve_stage`` in the build config; see module docstring)."""

    enabled: bool = True
    bands: tuple[str, ...] = ("ztfg", "ztfr")
    archival_sources: tuple[str, ...] = ("dlangis/TDECat",)
    baseline_exclusion_days: float = 365.0
    min_baseline_points: int = 5
    detection_sigma: float = 5.0
    max_gap_days: float = 30.0
    max_rise_days: float = 100.0
    pre_event_days: float = 30.0
    post_event_days: float = 100.0
    min_gap_days: float = 2.5


def _difference_flux(rows: pd.DataFrame, config: AlertLikeConfig) -> pd.DataFrame:
    """Archival total-flux rows → baseline-subtracted detections (step 1)."""
    peak_mjd = rows["mjd"].to_numpy()[np.argmax(rows["flux_ujy"].to_numpy())]
    parts = []
    for _, band_rows in rows.groupby("band", sort=True):
        far = np.abs(band_rows["mjd"].to_numpy() - peak_mjd) > config.baseline_exclusion_days
        if far.sum() < config.min_baseline_points:
            continue
        baseline = band_rows["flux_ujy"].to_numpy()[far]
        diff = band_rows["flux_ujy"].to_numpy() - np.median(baseline)
        scatter = 1.4826 * np.median(np.abs(baseline - np.median(baseline)))  # robust σ of the baseline
        above = diff >= config.detection_sigma * np.maximum(band_rows["flux_err_ujy"].to_numpy(), scatter)
        parts.append(band_rows[above].assign(flux_ujy=diff[above]))
    return pd.concat(parts) if parts else rows.iloc[:0]


def event_window(mjd: np.ndarray, flux_ujy: np.ndarray, config: AlertLikeConfig) -> tuple[float, float]:
    """(start, end) MJD of the window around the event of time-ordered detections (step 3)."""
    peak = int(np.argmax(flux_ujy))
    start = peak
    while start > 0 and mjd[start] - mjd[start - 1] <= config.max_gap_days and mjd[peak] - mjd[start - 1] <= config.max_rise_days:
        start -= 1
    return mjd[start] - config.pre_event_days, mjd[start] + config.post_event_days


def thin_cadence(mjd: np.ndarray, band: np.ndarray, min_gap_days: float) -> np.ndarray:
    """Boolean mask keeping, per band, points at least ``min_gap_days`` after the last kept one (step 4)."""
    keep = np.zeros(len(mjd), dtype=bool)
    for value in np.unique(band):
        last = -np.inf
        for i in np.flatnonzero(band == value):
            if mjd[i] - last >= min_gap_days:
                keep[i], last = True, mjd[i]
    return keep


def alert_like_rows(rows: pd.DataFrame, config: AlertLikeConfig) -> pd.DataFrame:
    """One object's long rows (``LC_COLUMNS``) → its alert-like rows (possibly none), time-ordered."""
    usable = rows["is_detection"].to_numpy(bool) & rows["band"].isin(config.bands).to_numpy()
    usable &= np.isfinite(rows["flux_ujy"].to_numpy(float)) & (rows["flux_err_ujy"].to_numpy(float) > 0)
    rows = rows[usable]
    archival = rows["source"].isin(config.archival_sources).to_numpy()
    if archival.any():
        rows = pd.concat([rows[~archival], _difference_flux(rows[archival], config)])
    if rows.empty:
        return rows
    rows = rows.sort_values(["mjd", "band"], kind="stable")
    mjd = rows["mjd"].to_numpy(float)
    start, end = event_window(mjd, rows["flux_ujy"].to_numpy(float), config)
    rows = rows[(mjd >= start) & (mjd <= end)]
    return rows[thin_cadence(rows["mjd"].to_numpy(float), rows["band"].to_numpy(str), config.min_gap_days)]


def alert_like_table(light_curves: pd.DataFrame, config: AlertLikeConfig) -> tuple[pd.DataFrame, dict]:
    """The long light-curve table of every object made alert-like; returns (table, counts for the manifest)."""
    if not config.enabled or light_curves.empty:
        return light_curves, {"enabled": config.enabled}
    parts = [alert_like_rows(rows, config) for _, rows in light_curves.groupby("object_id", sort=True)]
    out = pd.concat(parts, ignore_index=True) if parts else light_curves.iloc[:0]
    emptied = sorted(set(light_curves["object_id"]) - set(out["object_id"]))
    counts = {"enabled": True, "points_in": len(light_curves), "points_out": len(out),
              "objects_in": int(light_curves["object_id"].nunique()), "objects_out": int(out["object_id"].nunique()),
              "objects_without_alert_like_points": len(emptied)}  # fmt: skip
    return out[LC_COLUMNS].reset_index(drop=True), counts
