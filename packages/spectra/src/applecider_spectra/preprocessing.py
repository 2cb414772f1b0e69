"""Spectrum preprocessing (AppleCiDEr II §2.1, paper I §5): numpy, float32 outputs.

observer-frame (λ, f) → clean (drop non-finite / non-positive λ, sort, average duplicate λ) → rest frame
λ/(1+z) → restrict to the window [λ_min, λ_max] → linear interpolation onto a fixed grid of 4096 points →
zeros where the spectrum has no coverage (outside its range, or inside gaps wider than ``max_gap_aa``) →
z-score with the mean and standard deviation of the covered points only.

Bad spectra raise :class:`SpectrumError` naming the spectrum and the reason; :func:`preprocess_batch` turns
those into a per-spectrum error list and never fails the batch. Training augmentation
(:class:`EdgeMasking`, §2.3) zeroes 1–1024 grid points at the blue (3000–4850 Å) or red (8550–10400 Å) end,
redrawn at every call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch

from applecider_core.config import ConfigError, PresetConfig, from_dict
from applecider_core.records import Spectrum

logger = logging.getLogger(__name__)

REDSHIFT_MODES = ("given", "none")


class SpectrumError(ValueError):
    """A spectrum that cannot be preprocessed; ``spectrum_id`` names it, ``reason`` says why."""

    def __init__(self, spectrum_id: str, reason: str) -> None:
        super().__init__(f"spectrum {spectrum_id!r}: {reason}")
        self.spectrum_id = spectrum_id
        self.reason = reason


@dataclass
class PreprocessConfig(PresetConfig):
    """Grid and cleaning settings (saved as the model's ``preprocessor.json``)."""

    wavelength_min_aa: float = 3000.0  # rest frame
    wavelength_max_aa: float = 10400.0
    num_points: int = 4096
    redshift_mode: str = "given"  # given: λ/(1+z) with the spectrum's (or a passed, e.g. predicted) z; none
    max_gap_aa: float | None = 100.0  # rest-frame gaps wider than this count as no coverage (None: bridge all)
    min_valid_points: int = 64  # fewer covered grid points → SpectrumError("too short coverage")
    mask_blue_aa: tuple[float, float] = (3000.0, 4850.0)  # augmentation regions (paper II §2.3)
    mask_red_aa: tuple[float, float] = (8550.0, 10400.0)
    mask_max_points: int = 1024

    model_type: ClassVar[str] = "spectrum_preprocessor"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "appleCiDEr-I": {"wavelength_min_aa": 3850.0, "wavelength_max_aa": 8500.0},
        "no-redshift": {"redshift_mode": "none"},
    }

    def __post_init__(self) -> None:
        self.mask_blue_aa, self.mask_red_aa = tuple(self.mask_blue_aa), tuple(self.mask_red_aa)
        if not 0 < self.wavelength_min_aa < self.wavelength_max_aa:
            raise ConfigError(f"need 0 < wavelength_min_aa < wavelength_max_aa, got {self.wavelength_min_aa}, {self.wavelength_max_aa}")
        if self.num_points < 2:
            raise ConfigError(f"num_points must be >= 2, got {self.num_points}")
        if self.redshift_mode not in REDSHIFT_MODES:
            raise ConfigError(f"redshift_mode must be one of {REDSHIFT_MODES}, got {self.redshift_mode!r}")
        if self.min_valid_points < 2:
            raise ConfigError("min_valid_points must be >= 2 (the z-score needs a spread)")

    @property
    def grid_aa(self) -> np.ndarray:
        """(num_points,) rest-frame wavelengths of the output grid, Å (float64)."""
        return np.linspace(self.wavelength_min_aa, self.wavelength_max_aa, self.num_points)

    def to_json(self) -> dict[str, Any]:
        return self.to_dict()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreprocessConfig:
        return from_dict(cls, data) if data else cls()


def _clean(spectrum: Spectrum, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite points with λ > 0, sorted by λ, duplicate λ averaged (order-independent)."""
    wavelength = np.asarray(spectrum.wavelength_aa, dtype=np.float64)
    flux = np.asarray(spectrum.flux, dtype=np.float64)
    if wavelength.size == 0:
        raise SpectrumError(name, "empty spectrum (no points)")
    keep = np.isfinite(wavelength) & np.isfinite(flux) & (wavelength > 0)
    if not keep.any():
        raise SpectrumError(name, f"no finite points with wavelength > 0 among {wavelength.size}")
    unique_wavelength, inverse = np.unique(wavelength[keep], return_inverse=True)
    sums = np.zeros(unique_wavelength.size)
    np.add.at(sums, inverse, flux[keep])
    counts = np.bincount(inverse, minlength=unique_wavelength.size)
    return unique_wavelength, sums / counts


def preprocess_spectrum(spectrum: Spectrum, config: PreprocessConfig | None = None,
                        redshift: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One spectrum → (flux (num_points,) float32 z-scored with zeros outside coverage, valid (num_points,) bool).

    ``redshift`` overrides ``spectrum.redshift`` (e.g. a predicted z); with ``redshift_mode="none"`` or a
    spectrum already in the rest frame no correction is applied. Raises :class:`SpectrumError`.
    """
    config = config or PreprocessConfig()
    name = spectrum.spectrum_id or spectrum.object_id or "<unnamed>"
    wavelength, flux = _clean(spectrum, name)
    if config.redshift_mode == "given" and not spectrum.rest_frame:
        z = spectrum.redshift if redshift is None else float(redshift)
        if not np.isfinite(z) or z <= -1:
            raise SpectrumError(name, f"redshift {z} is missing or invalid; pass one or use redshift_mode='none'")
        wavelength = wavelength / (1.0 + z)
    if wavelength.size < 2:
        raise SpectrumError(name, f"too short: {wavelength.size} usable point(s), need at least 2")
    grid = config.grid_aa
    valid = (grid >= wavelength[0]) & (grid <= wavelength[-1])
    if config.max_gap_aa is not None:
        right = np.clip(np.searchsorted(wavelength, grid, side="left"), 1, wavelength.size - 1)
        gap = wavelength[right] - wavelength[right - 1]
        valid &= gap <= config.max_gap_aa
    n_valid = int(valid.sum())
    if n_valid < config.min_valid_points:
        raise SpectrumError(
            name,
            f"too short coverage: {n_valid} of {config.num_points} grid points covered in "
            f"[{config.wavelength_min_aa:g}, {config.wavelength_max_aa:g}] Å rest frame (rest-frame range "
            f"{wavelength[0]:.0f}–{wavelength[-1]:.0f} Å), need {config.min_valid_points}",
        )
    values = np.interp(grid[valid], wavelength, flux)
    mean, std = values.mean(), values.std()
    # relative test: physical flux units (erg/s/cm²/Å ~ 1e-16) are fine, a flat line is not
    if not np.isfinite(std) or std == 0 or std <= 1e-7 * abs(mean):
        raise SpectrumError(name, f"flux is constant or not finite over the covered range (std {std:.3g})")
    out = np.zeros(config.num_points, dtype=np.float32)
    out[valid] = ((values - mean) / std).astype(np.float32)
    return out, valid


@dataclass
class PreprocessedBatch:
    """Good spectra as arrays plus the errors of the bad ones (numpy: no torch import for ONNX-only runs)."""

    flux: np.ndarray  # (N_good, num_points) float32
    valid: np.ndarray  # (N_good, num_points) bool
    indices: list[int]  # positions of the good spectra in the input sequence
    spectrum_ids: list[str]
    errors: list[SpectrumError] = field(default_factory=list)


def preprocess_batch(spectra: Sequence[Spectrum], config: PreprocessConfig | None = None,
                     redshifts: Sequence[float] | None = None) -> PreprocessedBatch:
    """Preprocess many spectra; bad ones become entries of ``errors`` (logged), never an exception."""
    config = config or PreprocessConfig()
    if redshifts is not None and len(redshifts) != len(spectra):
        raise ValueError(f"{len(redshifts)} redshifts for {len(spectra)} spectra")
    fluxes, masks, indices, ids, errors = [], [], [], [], []
    for i, spectrum in enumerate(spectra):
        try:
            flux, valid = preprocess_spectrum(spectrum, config, None if redshifts is None else redshifts[i])
        except SpectrumError as error:
            errors.append(error)
            continue
        fluxes.append(flux)
        masks.append(valid)
        indices.append(i)
        ids.append(spectrum.spectrum_id or spectrum.object_id)
    if errors:
        logger.warning("%d of %d spectra rejected, e.g. %s", len(errors), len(spectra), errors[0])
    n = config.num_points
    flux_array = np.stack(fluxes) if fluxes else np.zeros((0, n), dtype=np.float32)
    mask_array = np.stack(masks) if masks else np.zeros((0, n), dtype=bool)
    return PreprocessedBatch(flux_array, mask_array, indices, ids, errors)


class EdgeMasking:
    """Training augmentation: zero 1..``mask_max_points`` grid points from the blue or the red end.

    The masked points lie inside the configured blue (3000–4850 Å) or red (8550–10400 Å) rest-frame region
    (capped at the region's size on the grid). Side and length are drawn from torch's global RNG at every
    call, so the pattern changes every epoch and follows the training loop's per-epoch seed.
    """

    def __init__(self, config: PreprocessConfig | None = None, probability: float = 1.0) -> None:
        self.config = config or PreprocessConfig()
        self.probability = probability
        grid = self.config.grid_aa
        blue, red = self.config.mask_blue_aa, self.config.mask_red_aa
        self.blue_points = int(((grid >= blue[0]) & (grid <= blue[1])).sum())
        self.red_points = int(((grid >= red[0]) & (grid <= red[1])).sum())

    def __call__(self, flux: torch.Tensor) -> torch.Tensor:
        """flux (L,) → a masked copy (L,)."""
        import torch

        if self.probability < 1.0 and float(torch.rand(())) >= self.probability:
            return flux
        blue = bool(torch.randint(0, 2, ()).item())
        limit = min(self.config.mask_max_points, self.blue_points if blue else self.red_points)
        if limit < 1:
            return flux
        count = int(torch.randint(1, limit + 1, ()).item())
        out = flux.clone()
        if blue:
            out[:count] = 0.0
        else:
            out[-count:] = 0.0
        return out


def replace_redshift(spectrum: Spectrum, redshift: float) -> Spectrum:
    """A copy of ``spectrum`` with another redshift (e.g. the regressor's prediction)."""
    return dataclasses.replace(spectrum, redshift=float(redshift))


__all__ = [
    "EdgeMasking", "PreprocessConfig", "PreprocessedBatch", "SpectrumError", "preprocess_batch",
    "preprocess_spectrum", "replace_redshift",
]  # fmt: skip
