"""Canonical in-memory records shared by every package: LightCurve, CutoutTriplet, Alert, Spectrum.

Raw sources (Avro packets, Kowalski documents, parquet rows, SkyPortal JSON) are converted into these once,
at the boundary (``applecider_data``); everything downstream reads only these. Units are in field names.

Conventions (chosen once, used everywhere):
- time is MJD (``mjd``; ZTF's is UTC, Rubin's ``midpointMjdTai`` is TAI, 37 s = 4.3e-4 d later: kept as
  given, far below any time scale the models resolve);
- bands are ``"ztfg"``, ``"ztfr"``, ``"ztfi"`` (ZTF) and ``"lsstu"`` … ``"lssty"`` (Rubin); every record
  says its ``survey`` (``"ztf"`` or ``"lsst"``);
- fluxes are difference-image fluxes in µJy (AB zero point 23.9: ``flux_ujy = 10**(-0.4 * (mag - 23.9))``;
  Rubin's nJy divided by 1000, AB 31.4 in nJy);
- an upper limit (non-detection) has ``is_detection=False``, ``flux_ujy`` = the limiting flux
  (from ``diffmaglim``) and ``flux_err_ujy = NaN``; a forced-photometry point (Rubin ``prvDiaForcedSources``)
  has ``is_detection=False``, ``is_forced=True`` and a measured flux with its error;
- missing metadata values are NaN (never 0, never -999); the metadata vector of an alert follows the feature
  names of its survey (``METADATA_FEATURES_BY_SURVEY``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ZTF_BANDS = ("ztfg", "ztfr", "ztfi")
LSST_BANDS = ("lsstu", "lsstg", "lsstr", "lssti", "lsstz", "lssty")
SURVEY_BANDS = {"ztf": ZTF_BANDS, "lsst": LSST_BANDS}
SURVEYS = tuple(SURVEY_BANDS)
BANDS = ZTF_BANDS + LSST_BANDS  # every band a record may carry
AB_ZEROPOINT_UJY = 23.9  # AB magnitude of 1 µJy
AB_ZEROPOINT_NJY = 31.4  # AB magnitude of 1 nJy (Rubin's flux unit)
NJY_PER_UJY = 1000.0

# The 17 alert features of AppleCiDEr paper I, Table 2, plus the two custom features.
# ``age_days``: days between the object's first detection (``jdstarthist``, or the first detection in the
# packet history when earlier or when jdstarthist is missing) and the candidate; ``nnondet`` = ncovhist - ndethist.
ALERT_METADATA_FEATURES = (
    "sgscore1", "sgscore2", "distpsnr1", "distpsnr2", "ra", "dec", "magpsf", "sigmapsf", "chinr", "sharpnr",
    "sky", "classtar", "ndethist", "ncovhist", "scorr", "nmtchps", "diffmaglim",
)  # fmt: skip
CUSTOM_METADATA_FEATURES = ("age_days", "nnondet")
METADATA_FEATURES = ALERT_METADATA_FEATURES + CUSTOM_METADATA_FEATURES

# Rubin alert metadata: diaSource fields (fluxes converted to µJy, hence the suffix), the diaObject per-band
# statistics (``<band>_…``), and ``age_days`` (candidate mjd − first diaSource mjd in the packet) and
# ``n_forced`` (number of prvDiaForcedSources). ``reliability`` is Rubin's real/bogus score.
LSST_SOURCE_FEATURES = (
    "ra", "dec", "reliability", "snr", "psfFlux_ujy", "psfFluxErr_ujy", "scienceFlux_ujy", "scienceFluxErr_ujy",
    "templateFlux_ujy", "apFlux_ujy", "psfChi2", "psfNdata", "extendedness", "trailLength", "trailFlux_ujy",
    "glint_trail", "isDipole", "ixx", "iyy", "ixy", "pixelFlags_bad", "pixelFlags_cr", "pixelFlags_saturated",
    "pixelFlags_streak",
)  # fmt: skip
LSST_OBJECT_STATISTICS = ("psfFluxMean_ujy", "psfFluxSigma_ujy", "psfFluxNdata", "scienceFluxMean_ujy")
LSST_OBJECT_FEATURES = ("nDiaSources", *(f"{b}_{s}" for b in "ugrizy" for s in LSST_OBJECT_STATISTICS))
LSST_METADATA_FEATURES = LSST_SOURCE_FEATURES + LSST_OBJECT_FEATURES + ("age_days", "n_forced")
METADATA_FEATURES_BY_SURVEY = {"ztf": METADATA_FEATURES, "lsst": LSST_METADATA_FEATURES}

def survey_of_metadata_columns(columns: object) -> str:
    """The survey whose metadata names are all among ``columns`` (Rubin's first: its names are not ZTF's)."""
    present = set(columns)  # type: ignore[arg-type]
    for survey in ("lsst", "ztf"):
        if set(METADATA_FEATURES_BY_SURVEY[survey]) <= present:
            return survey
    raise RecordError(f"columns hold the metadata of no survey ({sorted(present)[:8]}...)")


CUTOUT_SIZE = 63  # ZTF stamps; the on-disk dataset keeps every survey's stamps on this grid (centred)
CUTOUT_KINDS = ("science", "template", "difference")
PIXEL_SCALE_ARCSEC = {"ztf": 1.01, "lsst": 0.2}


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
    is_forced: np.ndarray | None = None  # (N,) bool: forced photometry at a known position (not a detection)
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
        self.is_forced = np.zeros(n, dtype=bool) if self.is_forced is None else np.asarray(self.is_forced, dtype=bool)
        for name in ("band", "flux_ujy", "flux_err_ujy", "is_detection", "candid", "is_forced"):
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

    @property
    def survey(self) -> str | None:
        """``"ztf"`` or ``"lsst"`` from the bands (None when empty; ``"mixed"`` when both occur)."""
        surveys = {s for s, bands in SURVEY_BANDS.items() if np.isin(self.band, bands).any()}
        return None if not surveys else surveys.pop() if len(surveys) == 1 else "mixed"

    def select(self, mask: np.ndarray) -> LightCurve:
        """A new light curve with the rows where ``mask`` is true (or at the given indices)."""
        return LightCurve(
            self.object_id, self.mjd[mask], self.band[mask], self.flux_ujy[mask], self.flux_err_ujy[mask],
            self.is_detection[mask], self.candid[mask], self.is_forced[mask], self.first_detection_mjd,
        )  # fmt: skip

    def sorted(self) -> LightCurve:
        """Rows in time order (stable; ties by band)."""
        return self.select(np.lexsort((self.band, self.mjd)))

    def detections(self) -> LightCurve:
        return self.select(self.is_detection)


@dataclass
class CutoutTriplet:
    """Science, template and difference stamps, each (H, W) float32; NaN marks masked pixels.

    ZTF: (63, 63) at 1.01″/pixel in detector units; Rubin: variable size (mostly 30×30) at 0.2″/pixel in nJy,
    with a variance plane and a PSF image per stamp (``variance`` / ``psf``: kind → 2-D float32).
    """

    science: np.ndarray
    template: np.ndarray
    difference: np.ndarray
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC["ztf"]
    unit: str = ""  # pixel unit as the survey states it ("nJy" for Rubin; "" when the stamp does not say)
    variance: dict[str, np.ndarray] = field(default_factory=dict)
    psf: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in CUTOUT_KINDS:
            image = np.asarray(getattr(self, kind), dtype=np.float32)
            if image.ndim != 2:
                raise RecordError(f"cutout {kind} must be 2-D, got shape {image.shape}")
            setattr(self, kind, image)
        if len({getattr(self, kind).shape for kind in CUTOUT_KINDS}) != 1:
            shapes = {kind: getattr(self, kind).shape for kind in CUTOUT_KINDS}
            raise RecordError(f"cutouts must share one shape, got {shapes}")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the stamps in pixels."""
        return self.science.shape  # type: ignore[return-value]

    def stack(self) -> np.ndarray:
        """(3, H, W) float32 in the order science, template, difference."""
        return np.stack([self.science, self.template, self.difference])

    def on_grid(self, size: int = CUTOUT_SIZE) -> np.ndarray:
        """(3, size, size) float32: the stamps centred on the grid, NaN around smaller ones, larger ones cut.

        The shared dataset and the image models keep every survey's stamps on ZTF's 63×63 grid (Rubin's are
        mostly 30×30 at 0.2″: centred, surrounded by NaN = masked).
        """
        stack = self.stack()
        h, w = self.shape
        if (h, w) == (size, size):
            return stack
        out = np.full((len(CUTOUT_KINDS), size, size), np.nan, dtype=np.float32)
        ny, nx = min(h, size), min(w, size)
        sy, sx, dy, dx = max((h - size) // 2, 0), max((w - size) // 2, 0), max((size - h) // 2, 0), max((size - w) // 2, 0)
        out[:, dy : dy + ny, dx : dx + nx] = stack[:, sy : sy + ny, sx : sx + nx]
        return out


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
    survey: str = "ztf"

    def __post_init__(self) -> None:
        if self.survey not in SURVEY_BANDS:
            raise RecordError(f"Alert {self.candid}: unknown survey {self.survey!r}; allowed: {list(SURVEYS)}")
        names = self.metadata_names
        self.metadata = np.asarray(self.metadata, dtype=np.float32)
        if self.metadata.shape != (len(names),):
            raise RecordError(f"Alert {self.candid}: {self.survey} metadata must have shape ({len(names)},), "
                              f"got {self.metadata.shape}")
        if self.band not in SURVEY_BANDS[self.survey]:
            raise RecordError(f"Alert {self.candid}: unknown {self.survey} band {self.band!r}; "
                              f"allowed: {list(SURVEY_BANDS[self.survey])}")

    @property
    def metadata_names(self) -> tuple[str, ...]:
        """Names of ``metadata`` entries, in order (the survey's feature list)."""
        return METADATA_FEATURES_BY_SURVEY[self.survey]

    def metadata_dict(self) -> dict[str, float]:
        return dict(zip(self.metadata_names, self.metadata.tolist()))


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
