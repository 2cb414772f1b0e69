"""The shared on-disk dataset every modality trains on, and its reader.

``applecider_data`` builds it (``cider data build``); model packages read it through :func:`open_dataset`
without depending on the data tools. One directory, keyed by object id:

==========================  ===================================================================================
``manifest.json``           ``{"format_version": 1, "created": ..., "build_config": {...}, "counts": {...}}``
``objects.parquet``         object_id, label (normalised label or null), redshift, split (train/val/test),
                            has_alerts, has_light_curve, has_spectrum, first_detection_mjd (jdstarthist or
                            the earliest alert-like detection; Δt of the photometry features starts there)
``alerts.parquet``          object_id, candid, mjd, band, ra_deg, dec_deg, cutout_index (-1: none), then one
                            float32 column per metadata name of the dataset's survey (ZTF:
                            ``records.METADATA_FEATURES``; Rubin: ``LSST_METADATA_FEATURES``; NaN = missing)
``cutouts.npy``             float32 (N, 3, 63, 63): science, template, difference; memory-mapped (Rubin's
                            smaller 0.2″ stamps centred on the grid, NaN around them)
``light_curves.parquet``    long format: object_id, mjd, band, flux_ujy, flux_err_ujy, is_detection, source
``spectra.parquet``         spectrum_id, object_id, redshift, mjd, label, flux_unit, instrument, source,
                            wavelength_aa (list), flux (list)
``skipped.csv``             item, source, reason: everything the build left out, and why
==========================  ===================================================================================

Tables are read lazily and once; cutouts are never loaded into RAM as a whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .records import METADATA_FEATURES_BY_SURVEY, LightCurve, Spectrum, survey_of_metadata_columns

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
TABLES = ("objects.parquet", "alerts.parquet", "light_curves.parquet", "spectra.parquet")


class DatasetError(RuntimeError):
    """A dataset directory that is missing, incomplete or of another format version."""


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")


@dataclass
class AlertTable:
    """Per-alert view: ``frame`` rows, ``metadata`` (N, 19) float32 and lazily read cutouts."""

    frame: pd.DataFrame  # object_id, candid, mjd, band, ra_deg, dec_deg, cutout_index, label
    metadata: np.ndarray  # (N, len(METADATA_FEATURES_BY_SURVEY[survey])) float32, NaN = missing
    _cutouts: np.ndarray | None  # memory-mapped (M, 3, 63, 63)
    survey: str = "ztf"

    def __len__(self) -> int:
        return len(self.frame)

    def cutouts(self, i: int) -> np.ndarray | None:
        """(3, 63, 63) float32 stamps of row ``i`` (a copy), or None when the alert had no usable cutouts."""
        index = int(self.frame["cutout_index"].iat[i])
        if index < 0 or self._cutouts is None:
            return None
        return np.array(self._cutouts[index], dtype=np.float32)


class SharedDataset:
    """Reader of one dataset directory (see module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        if not manifest.is_file():
            raise DatasetError(f"{self.root}: no manifest.json; build one with `cider data build --config ...`")
        self.manifest = json.loads(manifest.read_text())
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise DatasetError(f"{self.root}: format_version {version}, this reader understands {FORMAT_VERSION}")
        missing = [name for name in TABLES if not (self.root / name).is_file()]
        if missing:
            raise DatasetError(f"{self.root}: incomplete dataset, missing {missing}")

    # ---- objects and splits ----------------------------------------------------------------------------
    @cached_property
    def objects(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / "objects.parquet")

    @cached_property
    def _label_by_object(self) -> dict[str, str | None]:
        return dict(zip(self.objects["object_id"], self.objects["label"]))

    def label(self, object_id: str) -> str | None:
        return self._label_by_object.get(object_id)

    def split_ids(self, split: str) -> list[str]:
        _check_split(split)
        return self.objects.loc[self.objects["split"] == split, "object_id"].tolist()

    def _object_mask(self, split: str | None, flag: str) -> pd.Series:
        _check_split(split)
        mask = self.objects[flag].astype(bool)
        if split is not None:
            mask &= self.objects["split"] == split
        return mask

    def common_object_ids(self, split: str | None = None) -> list[str]:
        """Objects that have every modality (alerts, light curve and spectrum): the fusion common set."""
        mask = self._object_mask(split, "has_alerts") & self.objects["has_light_curve"] & self.objects["has_spectrum"]
        return self.objects.loc[mask, "object_id"].tolist()

    # ---- light curves ----------------------------------------------------------------------------------
    @cached_property
    def _light_curves(self) -> dict[str, pd.DataFrame]:
        table = pd.read_parquet(self.root / "light_curves.parquet")
        return {object_id: rows for object_id, rows in table.groupby("object_id", sort=False)}

    def light_curve_ids(self, split: str | None = None) -> list[str]:
        return self.objects.loc[self._object_mask(split, "has_light_curve"), "object_id"].tolist()

    def light_curve(self, object_id: str, sources: tuple[str, ...] | None = None) -> LightCurve:
        """All photometry of ``object_id`` (optionally only from the given ``source`` values), time-ordered."""
        try:
            rows = self._light_curves[object_id]
        except KeyError:
            raise KeyError(f"{object_id!r} has no light curve in {self.root}") from None
        if sources is not None:
            rows = rows[rows["source"].isin(sources)]
        return LightCurve(
            object_id, rows["mjd"].to_numpy(), rows["band"].to_numpy(), rows["flux_ujy"].to_numpy(),
            rows["flux_err_ujy"].to_numpy(), rows["is_detection"].to_numpy(),
            first_detection_mjd=self._first_detection.get(object_id, float("nan")),
        ).sorted()  # fmt: skip

    @cached_property
    def _first_detection(self) -> dict[str, float]:
        """Object → its first detection MJD (jdstarthist or the longest history; datasets before it: none)."""
        if "first_detection_mjd" not in self.objects.columns:
            return {}
        return dict(zip(self.objects["object_id"], self.objects["first_detection_mjd"].astype(float)))

    # ---- alerts ----------------------------------------------------------------------------------------
    @cached_property
    def _alerts(self) -> pd.DataFrame:
        frame = pd.read_parquet(self.root / "alerts.parquet")
        frame["label"] = frame["object_id"].map(self._label_by_object)
        return frame

    @cached_property
    def _cutouts(self) -> np.ndarray | None:
        path = self.root / "cutouts.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    def alerts(self, split: str | None = None) -> AlertTable:
        _check_split(split)
        frame = self._alerts
        if split is not None:
            frame = frame[frame["object_id"].isin(set(self.split_ids(split)))]
        frame = frame.reset_index(drop=True)
        survey = survey_of_metadata_columns(frame.columns)
        metadata = frame[list(METADATA_FEATURES_BY_SURVEY[survey])].to_numpy(dtype=np.float32)
        columns = ["object_id", "candid", "mjd", "band", "ra_deg", "dec_deg", "cutout_index", "label"]
        return AlertTable(frame[columns], metadata, self._cutouts, survey)

    # ---- spectra ---------------------------------------------------------------------------------------
    def spectra(self, split: str | None = None) -> list[Spectrum]:
        _check_split(split)
        table = pd.read_parquet(self.root / "spectra.parquet")
        if split is not None:
            table = table[table["object_id"].isin(set(self.split_ids(split)))]
        return [
            Spectrum(
                object_id=row.object_id, wavelength_aa=np.asarray(row.wavelength_aa), flux=np.asarray(row.flux),
                spectrum_id=row.spectrum_id, redshift=float(row.redshift), mjd=float(row.mjd),
                label=row.label, flux_unit=row.flux_unit, instrument=row.instrument, source=row.source,
            )
            for row in table.itertuples(index=False)
        ]


def open_dataset(root: str | Path) -> SharedDataset:
    """Open a dataset directory written by ``cider data build``."""
    return SharedDataset(root)
