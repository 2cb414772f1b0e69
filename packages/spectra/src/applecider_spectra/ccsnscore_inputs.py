"""CCSNscore inputs (Sharma et al. 2025 §2.1): spectrum, GP-interpolated light curves, δm–δt histograms, and
the averaged-spectrum augmentation (§2.1.4).

- Spectrum: SEDM-like (R ≈ 100 on the SEDM bins, :mod:`.sedm`) → deredshifted bin centres → cubic spline at
  256 points in 4200–9200 Å (rest frame; no extrapolation) → median filter → divided by its maximum → NaN → 0.
  No continuum division ("the continuum also contains information").
- Light curves: 5σ detections per band, magnitude vs days since the first detection, scikit-learn
  GaussianProcessRegressor with C·RBF(length-scale bounds 20–200 d) + WhiteKernel; magnitudes and their GP
  errors in 1-day bins between the band's first and last detection, zero-padded / truncated to 200 days,
  converted to flux and divided by the peak flux → (200, 2) per band (flux, flux error).
- δm–δt: all pairs of the interpolated points (later minus earlier) in a 2D histogram with the paper's
  24 × 24 edges, divided by the number of pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from applecider_core.records import LightCurve, Spectrum

from .configuration_ccsnscore import DMDT_DAY_EDGES, DMDT_MAG_EDGES, CCSNscoreConfig
from .preprocessing import SpectrumError
from .sedm import degrade_to_sedm

AB_ZERO_POINT_UJY = 23.9  # m_AB = 23.9 − 2.5 log10(f / µJy)
MAG_PER_RELATIVE_FLUX = 2.5 / np.log(10.0)  # σ_m = 1.0857 σ_f / f


def ccsn_spectrum_input(spectrum: Spectrum, config: CCSNscoreConfig, redshift: float | None = None) -> np.ndarray:
    """Spectrum → (spectrum_points,) float32 CCSNscore spectral input. Raises :class:`SpectrumError`."""
    from scipy.interpolate import CubicSpline
    from scipy.signal import medfilt

    name = spectrum.spectrum_id or spectrum.object_id or "<unnamed>"
    z = spectrum.redshift if redshift is None else float(redshift)
    if not np.isfinite(z) or z <= -1:
        raise SpectrumError(name, f"redshift {z} is missing or invalid; CCSNscore deredshifts its spectra")
    binned = degrade_to_sedm(spectrum, config.grid)
    covered = np.isfinite(binned)
    rest = config.grid.centres_aa[covered] / (1.0 + z)
    grid = np.linspace(*config.rest_wavelength_aa, config.spectrum_points)
    inside = (grid >= rest[0]) & (grid <= rest[-1])
    if inside.sum() < config.median_filter + 2:
        raise SpectrumError(name, f"rest-frame coverage {rest[0]:.0f}–{rest[-1]:.0f} Å misses "
                                  f"{config.rest_wavelength_aa[0]:.0f}–{config.rest_wavelength_aa[1]:.0f} Å")
    values = medfilt(CubicSpline(rest, binned[covered])(grid[inside]), config.median_filter)
    peak = np.abs(values).max()
    if not np.isfinite(peak) or peak == 0:
        raise SpectrumError(name, "flux is zero or not finite over the rest-frame window")
    out = np.zeros(config.spectrum_points, dtype=np.float32)
    out[inside] = (values / peak).astype(np.float32)
    return out


def _detections(light_curve: LightCurve, band: str, sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(mjd, mag) of the band's detections with flux/error ≥ ``sigma``."""
    keep = (light_curve.band == band) & light_curve.is_detection & (light_curve.flux_ujy > 0)
    keep &= light_curve.flux_ujy >= sigma * np.nan_to_num(light_curve.flux_err_ujy, nan=np.inf)
    mag = AB_ZERO_POINT_UJY - 2.5 * np.log10(light_curve.flux_ujy[keep])
    return light_curve.mjd[keep], mag


def gp_interpolate(days: np.ndarray, mag: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GP fit of mag(days) → (day bins (K,), mag (K,), mag error (K,)) at integer days from the first to the
    last point (at most ``length`` bins)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(50.0, (20.0, 200.0)) + WhiteKernel(0.01, (1e-6, 1.0))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(days[:, None], mag)
    bins = np.arange(np.floor(days.min()), min(np.floor(days.max()), length - 1) + 1)
    mean, std = gp.predict(bins[:, None], return_std=True)
    return bins, mean, std


def dmdt_histogram(days: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """(24, 24) δm–δt histogram (δm rows, δt columns) of all pairs j > i, δt = t_j − t_i, δm = m_j − m_i,
    divided by the number of pairs (zeros with fewer than 2 points)."""
    out = np.zeros((len(DMDT_MAG_EDGES) - 1, len(DMDT_DAY_EDGES) - 1), dtype=np.float32)
    if len(days) < 2:
        return out
    i, j = np.triu_indices(len(days), k=1)
    order = np.argsort(days)
    days, mag = days[order], mag[order]
    counts, _, _ = np.histogram2d(mag[j] - mag[i], days[j] - days[i], bins=(DMDT_MAG_EDGES, DMDT_DAY_EDGES))
    return (counts / len(i)).astype(np.float32)


def light_curve_inputs(light_curve: LightCurve | None, config: CCSNscoreConfig) -> dict[str, np.ndarray]:
    """``{"lightcurve": (bands, days, 2), "dmdt": (bands, 24, 24)}`` float32; a band with fewer than 2 5σ
    detections (or no light curve) gives zeros, as the paper's padding does for missing data."""
    n_bands, length = len(config.bands), config.lightcurve_days
    curves = np.zeros((n_bands, length, 2), dtype=np.float32)
    histograms = np.zeros((n_bands, len(DMDT_MAG_EDGES) - 1, len(DMDT_DAY_EDGES) - 1), dtype=np.float32)
    if light_curve is None:
        return {"lightcurve": curves, "dmdt": histograms}
    per_band = [_detections(light_curve, band) for band in config.bands]
    starts = [mjd.min() for mjd, _ in per_band if len(mjd)]
    if not starts:
        return {"lightcurve": curves, "dmdt": histograms}
    first = min(starts)  # phase from the transient's first detection in any band
    for b, (mjd, mag) in enumerate(per_band):
        if len(mjd) < 2 or mjd.min() - first >= length:
            continue
        bins, mean, std = gp_interpolate(mjd - first, mag, length)
        flux = 10 ** (-0.4 * (mean - AB_ZERO_POINT_UJY))
        index = bins.astype(int)
        curves[b, index, 0] = flux
        curves[b, index, 1] = flux * std / MAG_PER_RELATIVE_FLUX
        histograms[b] = dmdt_histogram(bins, mean)
    peak = curves[..., 0].max()
    if peak > 0:
        curves /= peak
    return {"lightcurve": curves, "dmdt": histograms}


def averaged_spectra(spectra: np.ndarray, labels: np.ndarray, counts: dict[int, int], rng: np.random.Generator,
                     extra: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """§2.1.4: ``counts[c]`` synthetic spectra of class c, each the weighted average (random weight) of a random
    pair of distinct class-c spectra (N, L), renormalised by its maximum; where one of the pair has no coverage
    (0) the other is used. ``extra`` arrays (light-curve inputs, per row) are taken from the first of the
    pair: normalised to the peak, they do not change with the distance a new redshift would imply.
    Returns (spectra (M, L), labels (M,), extra rows (M, …))."""
    rows, new_labels, picks = [], [], []
    for cls, count in counts.items():
        members = np.flatnonzero(labels == cls)
        if len(members) < 2 or count <= 0:
            continue
        for _ in range(count):
            a, b = rng.choice(members, 2, replace=False)
            w = rng.uniform()
            x, y = spectra[a], spectra[b]
            mixed = np.where((x != 0) & (y != 0), w * x + (1 - w) * y, x + y)
            rows.append(mixed / max(np.abs(mixed).max(), 1e-12))
            new_labels.append(cls)
            picks.append(a)
    width = spectra.shape[1]
    out = np.asarray(rows, dtype=np.float32).reshape(-1, width)
    return out, np.asarray(new_labels, dtype=labels.dtype), [e[np.asarray(picks, dtype=int)] for e in extra]


__all__ = ["averaged_spectra", "ccsn_spectrum_input", "dmdt_histogram", "gp_interpolate", "light_curve_inputs"]
