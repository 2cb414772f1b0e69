"""Spectra given to ``cider classify --spectra FILE``, grouped by ZTF objectId.

Two layouts: a spectra parquet in the schema of the public bundle's ``osc_spectra.parquet`` (one row per
spectrum, list columns ``wavelength``/``flux``, names in ``object``/``aliases``), or a long CSV with one row per
point and columns ``objectId, wavelength_aa, flux`` plus optional ``spectrum_id`` and ``redshift``.
A spectrum is attached to every ZTF id among its names (and to its own name).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from applecider_core.records import Spectrum
from applecider_data.importers import ZTF_ID_PATTERN, SourcedSpectrum, iter_spectra

logger = logging.getLogger(__name__)
CSV_COLUMNS = ("objectId", "wavelength_aa", "flux")


def _from_csv(path: Path) -> dict[str, list[Spectrum]]:
    table = pd.read_csv(path)
    missing = sorted(set(CSV_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"{path}: spectra CSV lacks columns {missing}; needs {list(CSV_COLUMNS)} "
                         "(+ optional spectrum_id, redshift), one row per point")
    if "spectrum_id" not in table.columns:
        table["spectrum_id"] = table["objectId"]
    out: dict[str, list[Spectrum]] = defaultdict(list)
    for (object_id, spectrum_id), rows in table.groupby(["objectId", "spectrum_id"], sort=False):
        redshift = float(rows["redshift"].iloc[0]) if "redshift" in rows else float("nan")
        out[str(object_id)].append(Spectrum(str(object_id), rows["wavelength_aa"].to_numpy(),
                                            rows["flux"].to_numpy(), spectrum_id=str(spectrum_id), redshift=redshift))
    return dict(out)


def _from_parquet(path: Path) -> dict[str, list[Spectrum]]:
    out: dict[str, list[Spectrum]] = defaultdict(list)
    skipped: list[tuple[str, str]] = []
    for item in iter_spectra(path):
        if not isinstance(item, SourcedSpectrum):
            skipped.append(item)
            continue
        keys = {name for name in item.names if re.match(ZTF_ID_PATTERN, name)} | {item.spectrum.object_id}
        for key in keys:
            out[key].append(item.spectrum)
    if skipped:
        logger.warning("%s: skipped %d unusable rows (first: %s: %s)", path, len(skipped), *skipped[0])
    return dict(out)


def read_spectra_table(path: str | Path) -> dict[str, list[Spectrum]]:
    """objectId → spectra, from a parquet (bundle schema) or a long CSV (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectra file {path} does not exist")
    spectra = _from_csv(path) if path.suffix.lower() == ".csv" else _from_parquet(path)
    logger.info("%s: spectra for %d objects (%d spectra)", path, len(spectra),
                int(np.sum([len(v) for v in spectra.values()])))
    return spectra
