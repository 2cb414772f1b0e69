"""SEDM-like inputs for the seed systems (SNIascore, Fremling et al. 2021 §2; CCSNscore, Sharma et al. 2025 §2.1).

SEDM spectra have R ≈ 100 and are interpolated onto 209 bins of 25.6 Å from 3800 to 9150 Å (observer frame).
Public spectra are mostly of higher resolution, so :func:`degrade_to_sedm` makes them SEDM-like:

1. clean (the spectra package's cleaning: finite points, λ > 0, sorted, duplicate λ averaged);
2. average onto a uniform ln λ grid (cells of ``1/(oversample·R)``; exact integration, so lines narrower than a
   cell keep their flux) — constant R is a constant Gaussian width in ln λ;
3. convolve with a Gaussian of FWHM λ/R (σ_lnλ = 1/(2.3548·R)); the input is taken as much sharper than R;
4. rebin onto the SEDM bins (mean of the piecewise-linear spectrum over each bin: exact integration), NaN for
   bins the spectrum does not cover completely.

SNIascore normalisation (:func:`sniascore_normalise`): divide by the median, divide by the continuum (robust
local quadratic regression, LOESS: tricube weights, bisquare robustness weights, residuals > 6 MAD get zero
weight), subtract 1 — emission lines positive, absorption negative, flat continuum at 0. Bins where the
continuum falls below 5 % of the median (the faint, noisy ends of 77 of 2,429 public spectra; never SEDM
spectra) are set to 0 like uncovered bins: dividing by such a continuum gave inputs up to ±360.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from applecider_core.config import ConfigError, PresetConfig
from applecider_core.records import Spectrum

from .preprocessing import SpectrumError, _clean

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.3548


@dataclass
class SEDMGridConfig(PresetConfig):
    """The SEDM observer-frame grid and the resolution degradation (saved with SNIascore / CCSNscore)."""

    wavelength_min_aa: float = 3800.0
    bin_width_aa: float = 25.6
    num_bins: int = 209  # 3800–9150.4 Å
    resolution: float = 100.0  # R = λ/FWHM of the Gaussian convolution; 0 disables it (already R ≈ 100)
    oversample: int = 10  # ln λ grid points per resolution element
    min_coverage: float = 0.6  # fraction of the SEDM bins a spectrum must cover
    continuum_span: float = 0.3  # LOESS span (fraction of the bins) of the "heavily smoothed" continuum
    min_continuum: float = 0.05  # continuum (in units of the median flux) below which a bin counts as uncovered
    robust_iterations: int = 4

    model_type: ClassVar[str] = "sedm_grid"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "sedm-native": {"resolution": 0.0}}

    def __post_init__(self) -> None:
        if self.num_bins < 8 or self.bin_width_aa <= 0 or self.wavelength_min_aa <= 0:
            raise ConfigError("need num_bins >= 8, bin_width_aa > 0 and wavelength_min_aa > 0")
        if not 0 < self.min_coverage <= 1:
            raise ConfigError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if not 0 < self.continuum_span <= 1:
            raise ConfigError(f"continuum_span must be in (0, 1], got {self.continuum_span}")
        if not 0 <= self.min_continuum < 1:
            raise ConfigError(f"min_continuum must be in [0, 1), got {self.min_continuum}")

    @property
    def edges_aa(self) -> np.ndarray:
        """(num_bins + 1,) bin edges, Å: 3800, 3825.6, …, 9150.4."""
        return self.wavelength_min_aa + self.bin_width_aa * np.arange(self.num_bins + 1)

    @property
    def centres_aa(self) -> np.ndarray:
        """(num_bins,) bin centres, Å: 3812.8, …, 9137.6."""
        edges = self.edges_aa
        return 0.5 * (edges[:-1] + edges[1:])


def convolve_to_resolution(wavelength_aa: np.ndarray, flux: np.ndarray, resolution: float,
                           oversample: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian convolution to constant R on a uniform ln λ grid: returns (λ (M,), flux (M,)) on that grid."""
    step = 1.0 / (oversample * resolution)
    log_edges = np.arange(np.log(wavelength_aa[0]), np.log(wavelength_aa[-1]), step)
    if log_edges.size < 2:
        raise ValueError(f"spectrum {wavelength_aa[0]:.0f}–{wavelength_aa[-1]:.0f} Å is shorter than one ln λ step")
    grid = 0.5 * (log_edges[1:] + log_edges[:-1])
    edges = np.clip(np.exp(log_edges), wavelength_aa[0], wavelength_aa[-1])  # exp(log(λ0)) may round below λ0
    values = rebin_mean(wavelength_aa, flux, edges)  # cell means: features narrower than a cell keep their flux
    sigma_points = oversample / FWHM_PER_SIGMA  # σ_lnλ / step
    half = int(np.ceil(4 * sigma_points))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_points) ** 2)
    # normalised by the kernel mass inside the spectrum, so the edges are not darkened
    def same(x: np.ndarray) -> np.ndarray:  # centred 'same' convolution, also for inputs shorter than the kernel
        return np.convolve(x, kernel, mode="full")[half : half + x.size]

    smoothed = same(values) / same(np.ones_like(values))
    return np.exp(grid), smoothed


def rebin_mean(wavelength_aa: np.ndarray, flux: np.ndarray, edges_aa: np.ndarray) -> np.ndarray:
    """Mean of the piecewise-linear spectrum over each bin [e_k, e_k+1] (exact integration); NaN for bins not
    fully inside [λ_0, λ_-1]. (K + 1,) edges → (K,)."""
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (flux[1:] + flux[:-1]) * np.diff(wavelength_aa))])
    inside = (edges_aa >= wavelength_aa[0]) & (edges_aa <= wavelength_aa[-1])
    e = np.clip(edges_aa, wavelength_aa[0], wavelength_aa[-1])
    k = np.clip(np.searchsorted(wavelength_aa, e, side="right") - 1, 0, wavelength_aa.size - 2)
    value_at_edge = np.interp(e, wavelength_aa, flux)
    integral = cumulative[k] + 0.5 * (flux[k] + value_at_edge) * (e - wavelength_aa[k])  # ∫ from λ_0 to e
    out = np.diff(integral) / np.diff(edges_aa)
    out[~(inside[:-1] & inside[1:])] = np.nan
    return out


def degrade_to_sedm(spectrum: Spectrum, config: SEDMGridConfig | None = None,
                    redshift_factor: float = 1.0) -> np.ndarray:
    """Observer-frame spectrum → (num_bins,) mean flux per SEDM bin at R ≈ ``config.resolution`` (NaN where
    not covered). ``redshift_factor`` = (1 + z_new)/(1 + z_old) moves the spectrum to another redshift first
    (SNIascore's redshift augmentation). Raises :class:`SpectrumError` when too little of 3800–9150 Å is covered."""
    config = config or SEDMGridConfig()
    name = spectrum.spectrum_id or spectrum.object_id or "<unnamed>"
    wavelength, flux = _clean(spectrum, name)
    if wavelength.size < 2:
        raise SpectrumError(name, f"too short: {wavelength.size} usable point(s), need at least 2")
    wavelength = wavelength * redshift_factor
    observed = wavelength[0], wavelength[-1]
    if config.resolution > 0:
        try:
            wavelength, flux = convolve_to_resolution(wavelength, flux, config.resolution, config.oversample)
        except ValueError as error:
            raise SpectrumError(name, str(error)) from None
    binned = rebin_mean(wavelength, flux, config.edges_aa)
    covered = np.isfinite(binned)
    if covered.mean() < config.min_coverage:
        edges = config.edges_aa
        raise SpectrumError(
            name, f"spectrum covers {observed[0]:.0f}–{observed[1]:.0f} Å, {int(covered.sum())} of "
            f"{config.num_bins} SEDM bins in {edges[0]:.0f}–{edges[-1]:.0f} Å; need {config.min_coverage:.0%}",
        )  # fmt: skip
    return binned


def loess(y: np.ndarray, span: float, degree: int = 2, robust_iterations: int = 4,
          x: np.ndarray | None = None) -> np.ndarray:
    """Robust local polynomial regression (MATLAB ``smooth(y, span, 'rloess')``-style): for every point a
    weighted least-squares polynomial of ``degree`` over the nearest ``span·N`` points with tricube distance
    weights; then ``robust_iterations`` refits with bisquare weights of the residuals (zero beyond 6 MAD).
    (N,) → (N,)."""
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    x = np.arange(n, dtype=np.float64) if x is None else np.asarray(x, dtype=np.float64)
    width = int(min(n, max(degree + 2, round(span * n))))
    starts = np.clip(np.arange(n) - width // 2, 0, n - width)
    windows = starts[:, None] + np.arange(width)[None, :]  # (N, W) neighbour indices (x is sorted)
    xw = x[windows] - x[:, None]
    reach = np.abs(xw).max(axis=1, keepdims=True) * (1 + 1e-12) + 1e-300
    distance_weights = (1 - (np.abs(xw) / reach) ** 3) ** 3
    powers = xw[None] ** np.arange(2 * degree + 1)[:, None, None]  # (2·degree+1, N, W)
    hankel = np.add.outer(np.arange(degree + 1), np.arange(degree + 1))  # normal equations: moments k = p + q
    robustness = np.ones(n)
    fit = y
    for _ in range(robust_iterations + 1):
        w = distance_weights * robustness[windows]  # (N, W)
        moments = (powers * w).sum(axis=-1)  # (2·degree+1, N): Σ w·x^k
        lhs = moments[hankel].transpose(2, 0, 1) + 1e-12 * np.eye(degree + 1)  # (N, d+1, d+1)
        rhs = (powers[: degree + 1] * (w * y[windows])).sum(axis=-1).T  # (N, d+1): Σ w·x^p·y
        fit = np.linalg.solve(lhs, rhs[..., None])[:, 0, 0]  # the local polynomial at its own point
        residual = y - fit
        scale = 6.0 * np.median(np.abs(residual))
        if scale <= 1e-12 * max(1.0, np.abs(y).max()):
            robustness = (np.abs(residual) <= 1e-9 * max(1.0, np.abs(y).max())).astype(float)
        else:
            u = np.clip(residual / scale, -1, 1)
            robustness = (1 - u**2) ** 2
    return fit


def sniascore_normalise(binned: np.ndarray, config: SEDMGridConfig | None = None) -> np.ndarray:
    """(num_bins,) SEDM fluxes (NaN where uncovered) → f/median/continuum − 1, float32; uncovered bins, and bins
    whose continuum is below ``min_continuum`` × the median, are 0 (the continuum level), so a partial spectrum
    looks featureless where it has no (usable) data."""
    config = config or SEDMGridConfig()
    covered = np.isfinite(binned)
    values = binned[covered]
    median = np.median(values)
    if not np.isfinite(median) or median <= 0 or np.std(values) <= 1e-7 * abs(median):
        raise SpectrumError("<binned>", f"flux median {median:.3g} is not positive or the flux is constant")
    normalised = values / median
    continuum = loess(normalised, config.continuum_span, 2, config.robust_iterations)
    # a continuum near zero (noisy faint ends of public spectra) would turn noise into ±100s: those bins are 0
    continuum = np.where(continuum > config.min_continuum, continuum, np.nan)
    out = np.zeros(binned.size, dtype=np.float32)
    out[covered] = np.nan_to_num(normalised / continuum - 1.0).astype(np.float32)
    return out


def sniascore_input(spectrum: Spectrum, config: SEDMGridConfig | None = None,
                    redshift_factor: float = 1.0) -> np.ndarray:
    """Spectrum → (num_bins,) SNIascore input: SEDM grid at R ≈ 100, observer frame, continuum-normalised."""
    config = config or SEDMGridConfig()
    try:
        return sniascore_normalise(degrade_to_sedm(spectrum, config, redshift_factor), config)
    except SpectrumError as error:
        if error.spectrum_id != "<binned>":
            raise
        raise SpectrumError(spectrum.spectrum_id or spectrum.object_id, error.reason) from None


__all__ = [
    "SEDMGridConfig", "convolve_to_resolution", "degrade_to_sedm", "loess", "rebin_mean", "sniascore_input",
    "sniascore_normalise",
]  # fmt: skip
