"""Canonical in-memory records shared by every package: LightCurve, CutoutTriplet, Alert, Spectrum.

Raw sources (Avro packets, Kowalski documents, parquet rows, SkyPortal JSON) are converted into these once,
at the boundary (``applecider_data``); everything downstream reads only these. Units are in field names.

Conventions (chosen once, used everywhere):
- time is MJD (``mjd``), bands are ``"ztfg"``, ``"ztfr"``, ``"ztfi"``;
- fluxes are difference-image fluxes in µJy (AB zero point 23.9: ``flux_ujy = 10**(-0.4 * (mag - 23.9))``);
- an upper limit (non-detection) has ``is_detection=False``, ``flux_ujy`` = the limiting flux
  (from ``diffmaglim``) and ``flux_err_ujy = NaN``;
- missing metadata values are NaN (never 0, never -999).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BANDS = ("ztfg", "ztfr", "ztfi")
AB_ZEROPOINT_UJY = 23.9  # AB magnitude of 1 µJy

# The 17 alert features of AppleCiDEr paper I, Table 2, plus the two custom features.
# ``age_days``: days between the object's first detection (``jdstarthist``, or the first detection in the
# packet history when earlier or when jdstarthist is missing) and the candidate; ``nnondet`` = ncovhist - ndethist.
ALERT_METADATA_FEATURES = (
    "sgscore1", "sgscore2", "distpsnr1", "distpsnr2", "ra", "dec", "magpsf", "sigmapsf", "chinr", "sharpnr",
    "sky", "classtar", "ndethist", "ncovhist", "scorr", "nmtchps", "diffmaglim",
)  # fmt: skip
CUSTOM_METADATA_FEATURES = ("age_days", "nnondet")
METADATA_FEATURES = ALERT_METADATA_FEATURES + CUSTOM_METADATA_FEATURES

CUTOUT_SIZE = 63
CUTOUT_KINDS = ("science", "template", "difference")


class RecordError(ValueError):
    """A record that violates its contract (shapes, units, allowed values)."""


def mag_to_flux_ujy(mag: np.ndarray, mag_err: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """AB magnitude → flux in µJy (and the propagated 1-σ error when ``mag_err`` is given)."""
    mag = np.asarray(mag, dtype=np.float64)
    flux = 10.0 ** (-0.4 * (mag - AB_ZEROPOINT_UJY))
    if mag_err is None:
        return flux, None
    return flux, np.abs(np.asarray(mag_err, dtype=np.float64) * flux * np.log(10.0) / 2.5)


def flux_ujy_to_mag(flux_ujy: np.ndarray) -> np.ndarray:
    """Flux in µJy → AB magnitude (NaN for non-positive flux)."""
    flux = np.asarray(flux_ujy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, AB_ZEROPOINT_UJY - 2.5 * np.log10(flux), np.nan)


@dataclass
class LightCurve:
    """Photometry of one object, one row per epoch and band (see module docstring for conventions)."""

    object_id: str
    mjd: np.ndarray  # (N,) float64
    band: np.ndarray  # (N,) str, one of BANDS
    flux_ujy: np.ndarray  # (N,) float64; limiting flux for upper limits
    flux_err_ujy: np.ndarray  # (N,) float64; NaN for upper limits
    is_detection: np.ndarray  # (N,) bool
    candid: np.ndarray | None = None  # (N,) int64 alert candidate ids, -1 where unknown
    # Earliest detection known for the object (ZTF ``jdstarthist``, or the longest history seen), MJD; NaN when
    # unknown. Δt of the photometry features is measured from it, so an alert whose 30-day history no longer
    # reaches the first detection still has the right age.
    first_detection_mjd: float = float("nan")

    def __post_init__(self) -> None:
        self.mjd = np.asarray(self.mjd, dtype=np.float64)
        self.band = np.asarray(self.band, dtype=object).astype(str)
        self.flux_ujy = np.asarray(self.flux_ujy, dtype=np.float64)
        self.flux_err_ujy = np.asarray(self.flux_err_ujy, dtype=np.float64)
        self.is_detection = np.asarray(self.is_detection, dtype=bool)
        n = len(self.mjd)
        if self.candid is None:
            self.candid = np.full(n, -1, dtype=np.int64)
        self.candid = np.asarray(self.candid, dtype=np.int64)
        self.first_detection_mjd = float(self.first_detection_mjd)
        for name in ("band", "flux_ujy", "flux_err_ujy", "is_detection", "candid"):
            if len(getattr(self, name)) != n:
                raise RecordError(f"LightCurve {self.object_id}: {name} has {len(getattr(self, name))} rows, mjd has {n}")
        bad = sorted(set(self.band.tolist()) - set(BANDS))
        if bad:
            raise RecordError(f"LightCurve {self.object_id}: unknown bands {bad}; allowed: {list(BANDS)}")

    def __len__(self) -> int:
        return len(self.mjd)

    @property
    def num_detections(self) -> int:
        return int(self.is_detection.sum())

    def select(self, mask: np.ndarray) -> LightCurve:
        """A new light curve with the rows where ``mask`` is true (or at the given indices)."""
        return LightCurve(
            self.object_id, self.mjd[mask], self.band[mask], self.flux_ujy[mask], self.flux_err_ujy[mask],
            self.is_detection[mask], self.candid[mask], self.first_detection_mjd,
        )  # fmt: skip

    def sorted(self) -> LightCurve:
        """Rows in time order (stable; ties by band)."""
        return self.select(np.lexsort((self.band, self.mjd)))

    def detections(self) -> LightCurve:
        return self.select(self.is_detection)


@dataclass
class CutoutTriplet:
    """Science, template and difference stamps, each (63, 63) float32; NaN marks masked pixels."""

    science: np.ndarray
    template: np.ndarray
    difference: np.ndarray

    def __post_init__(self) -> None:
        for kind in CUTOUT_KINDS:
            image = np.asarray(getattr(self, kind), dtype=np.float32)
            if image.ndim != 2:
                raise RecordError(f"cutout {kind} must be 2-D, got shape {image.shape}")
            setattr(self, kind, image)

    def stack(self) -> np.ndarray:
        """(3, H, W) float32 in the order science, template, difference."""
        return np.stack([self.science, self.template, self.difference])


@dataclass
class Alert:
    """One alert packet after boundary conversion."""

    object_id: str
    candid: int
    mjd: float
    band: str
    ra_deg: float
    dec_deg: float
    metadata: np.ndarray  # (len(METADATA_FEATURES),) float32, NaN = missing
    light_curve: LightCurve  # prv_candidates + candidate, de-duplicated, time-ordered
    cutouts: CutoutTriplet | None = None
    schema_version: str = ""
    problems: list[str] = field(default_factory=list)  # non-fatal issues found while parsing (e.g. bad stamp)

    def __post_init__(self) -> None:
        self.metadata = np.asarray(self.metadata, dtype=np.float32)
        if self.metadata.shape != (len(METADATA_FEATURES),):
            raise RecordError(
                f"Alert {self.candid}: metadata must have shape ({len(METADATA_FEATURES)},), got {self.metadata.shape}"
            )
        if self.band not in BANDS:
            raise RecordError(f"Alert {self.candid}: unknown band {self.band!r}; allowed: {list(BANDS)}")

    def metadata_dict(self) -> dict[str, float]:
        return dict(zip(METADATA_FEATURES, self.metadata.tolist()))


@dataclass
class Spectrum:
    """One optical spectrum in the observer frame unless ``rest_frame`` is True."""

    object_id: str
    wavelength_aa: np.ndarray  # (N,) float64, Ångström
    flux: np.ndarray  # (N,) float64, arbitrary units (see flux_unit)
    spectrum_id: str = ""
    redshift: float = float("nan")
    mjd: float = float("nan")
    label: str | None = None  # normalised label (taxonomy.NORMALISED_LABELS) if known
    flux_unit: str = "unknown"
    instrument: str = ""
    rest_frame: bool = False
    source: str = ""  # origin (repository, archive): carries the licence of the data with the spectrum

    def __post_init__(self) -> None:
        self.wavelength_aa = np.asarray(self.wavelength_aa, dtype=np.float64).ravel()
        self.flux = np.asarray(self.flux, dtype=np.float64).ravel()
        if self.wavelength_aa.shape != self.flux.shape:
            raise RecordError(
                f"Spectrum {self.spectrum_id or self.object_id}: wavelength has {self.wavelength_aa.size} points,"
                f" flux has {self.flux.size}"
            )

    def __len__(self) -> int:
        return self.wavelength_aa.size
