"""Importers of the public-format tables: spectra parquet, light-curve parquet, label CSV.

Formats (documented in ../shared/data/README.md):

- spectra parquet: object, aliases (``;``-joined), raw_type, label, redshift, mjd, instrument, flux_unit,
  wavelength/flux (list<float32>, Å), source, ...; → :class:`SourcedSpectrum` (a core ``Spectrum`` plus its
  ``source`` repository, kept for licences, and the aliases used for identity matching);
- light-curve parquet (long): object, ztf_id, label, redshift, mjd, band, mag, magerr, is_detection, source;
  mag → flux µJy with the AB zero point 23.9 (``records.mag_to_flux_ujy``), upper limits with NaN error;
- label CSV: objectId, label (+ raw_label, redshift, ...); labels re-normalised with the core taxonomy, and
  every label the taxonomy cannot map reported, never guessed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from applecider_core.records import BANDS, LightCurve, Spectrum, mag_to_flux_ujy
from applecider_core.taxonomy import NORMALISED_LABELS, normalise_label

logger = logging.getLogger(__name__)

ZTF_ID_PATTERN = r"^ZTF\d{2}[a-z]{7}$"
BAND_ALIASES = {"g": "ztfg", "r": "ztfr", "R": "ztfr", "i": "ztfi", "ztfg": "ztfg", "ztfr": "ztfr", "ztfi": "ztfi"}


@dataclass
class SourcedSpectrum:
    """A spectrum with the provenance needed downstream (licence ``source``, identity ``names``)."""

    spectrum: Spectrum
    source: str
    names: list[str] = field(default_factory=list)  # object name first, then aliases


@dataclass
class LabelTable:
    """Normalised labels per object id, plus what could not be mapped (raw string → reason)."""

    labels: dict[str, str]
    redshifts: dict[str, float]
    unmapped: list[tuple[str, str, str]]  # (object_id, raw label, status)


def to_label(raw: object) -> tuple[str | None, str]:
    """A normalised label for a raw or already-normalised string: (label or None, status)."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None, "empty"
    text = str(raw).strip()
    if text in NORMALISED_LABELS:
        return text, "mapped"
    result = normalise_label(text)
    return result.label, result.status


def read_labels(path: str | Path) -> LabelTable:
    """Label CSV (objectId, label[, redshift]) → normalised labels; unmapped rows are reported."""
    table = pd.read_csv(path, dtype={"objectId": str, "label": str})
    missing = {"objectId", "label"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: label CSV lacks columns {sorted(missing)}; needs objectId, label")
    labels: dict[str, str] = {}
    redshifts: dict[str, float] = {}
    unmapped: list[tuple[str, str, str]] = []
    has_z = "redshift" in table.columns
    for row in table.itertuples(index=False):
        label, status = to_label(row.label)
        if label is None:
            unmapped.append((row.objectId, str(row.label), status))
            continue
        labels[row.objectId] = label
        if has_z and row.redshift == row.redshift:
            redshifts[row.objectId] = float(row.redshift)
    logger.info("%s: %d labelled objects, %d unmapped", path, len(labels), len(unmapped))
    return LabelTable(labels, redshifts, unmapped)


SPECTRA_COLUMNS = ("object", "wavelength", "flux")  # required columns of a spectra parquet


def iter_spectra(path: str | Path, exclude_sources: tuple[str, ...] = (), batch_size: int = 256
                 ) -> Iterator[SourcedSpectrum | tuple[str, str]]:  # fmt: skip
    """Spectra parquet rows → SourcedSpectrum, or ``(item, reason)`` for a skipped row. Streams batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except pa.ArrowException as error:
        raise ValueError(f"{path}: not a readable parquet file ({error})") from error
    missing = [c for c in SPECTRA_COLUMNS if c not in parquet.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: not a spectra table, it lacks columns {missing}; expected one row per spectrum "
                         f"with columns {list(SPECTRA_COLUMNS)} (+ optional aliases, redshift, mjd, label, source) "
                         "as in the public bundle's osc_spectra.parquet")
    row_index = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            item = f"spectrum row {row_index} ({row.get('object')})"
            spectrum_id = f"{row.get('source')}:{row.get('source_file')}:{row.get('spectrum_file')}:{row_index}"
            row_index += 1
            if row.get("source") in exclude_sources:
                yield item, f"source {row.get('source')} excluded by config"
                continue
            wavelength, flux = row.get("wavelength"), row.get("flux")
            if not wavelength or not flux or len(wavelength) != len(flux):
                yield item, "missing or mismatched wavelength/flux arrays"
                continue
            label, _ = to_label(row.get("label"))
            names = [str(row["object"])] + [a for a in (row.get("aliases") or "").split(";") if a.strip()]
            try:
                spectrum = Spectrum(
                    object_id=str(row["object"]), wavelength_aa=np.asarray(wavelength, dtype=np.float64),
                    flux=np.asarray(flux, dtype=np.float64), spectrum_id=spectrum_id,
                    redshift=_nan_float(row.get("redshift")), mjd=_nan_float(row.get("mjd")), label=label,
                    flux_unit=str(row.get("flux_unit") or "unknown"), instrument=str(row.get("instrument") or ""),
                    rest_frame=bool(row.get("deredshifted") or False),
                )  # fmt: skip
            except ValueError as err:
                yield item, f"invalid spectrum: {err}"
                continue
            yield SourcedSpectrum(spectrum, str(row.get("source") or ""), names)


def _nan_float(value: object) -> float:
    try:
        return float(value) if value is not None else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def read_light_curve_table(path: str | Path, exclude_sources: tuple[str, ...] = ()) -> tuple[pd.DataFrame, list]:
    """Light-curve parquet (mag) → long flux table and skipped ``(item, reason)`` rows.

    Output columns: name, ztf_id, label (normalised), redshift, mjd, band, flux_ujy, flux_err_ujy,
    is_detection, source. Rows with an unknown band or non-finite mag/mjd are skipped (counted per object).
    """
    table = pd.read_parquet(path)
    skipped: list[tuple[str, str]] = []
    if exclude_sources:
        dropped = table["source"].isin(exclude_sources)
        for (name, source), n in table[dropped].groupby(["object", "source"]).size().items():
            skipped.append((f"light curve {name}", f"source {source} excluded by config ({n} points)"))
        table = table[~dropped]
    band = table["band"].map(BAND_ALIASES)
    mag = table["mag"].to_numpy(dtype=np.float64)
    magerr = table["magerr"].to_numpy(dtype=np.float64)
    det = table["is_detection"].to_numpy(dtype=bool)
    bad = band.isna().to_numpy() | ~np.isfinite(mag) | ~np.isfinite(table["mjd"].to_numpy()) | (det & ~np.isfinite(magerr))
    for name, n in table[bad].groupby("object").size().items():
        skipped.append((f"light curve {name}", f"{n} points with unknown band or non-finite mjd/mag/magerr"))
    flux, err = mag_to_flux_ujy(mag, magerr)
    labels = {raw: to_label(raw)[0] for raw in table["label"].dropna().unique()}
    out = pd.DataFrame({
        "name": table["object"].astype(str).to_numpy(),
        "ztf_id": table["ztf_id"].fillna("").astype(str).to_numpy(),
        "label": table["label"].map(labels).to_numpy(),
        "redshift": table["redshift"].to_numpy(dtype=np.float64),
        "mjd": table["mjd"].to_numpy(dtype=np.float64),
        "band": band.to_numpy(),
        "flux_ujy": flux,
        "flux_err_ujy": np.where(det, err, np.nan),
        "is_detection": det,
        "source": table["source"].astype(str).to_numpy(),
    })  # fmt: skip
    return out[~bad].reset_index(drop=True), skipped


def light_curve_from_frame(object_id: str, rows: pd.DataFrame) -> LightCurve:
    """A LightCurve from rows of the long flux table (any order; returned time-ordered)."""
    assert set(rows["band"]).issubset(BANDS)
    return LightCurve(object_id, rows["mjd"].to_numpy(), rows["band"].to_numpy(), rows["flux_ujy"].to_numpy(),
                      rows["flux_err_ujy"].to_numpy(), rows["is_detection"].to_numpy()).sorted()  # fmt: skip
