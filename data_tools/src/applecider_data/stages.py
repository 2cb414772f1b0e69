"""Resumable per-source build stages: each writes its outputs atomically into ``<output>/_stages/<name>/``.

A stage is done when its ``done.json`` exists with the same key (a hash of the stage's config and of the
size/mtime of its input files); a re-run skips it. Every file is written to a temporary name in the same
folder and moved into place with ``os.replace``, so a killed build leaves either the old or the new file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from applecider_core.records import CUTOUT_KINDS, CUTOUT_SIZE, METADATA_FEATURES_BY_SURVEY

from .convert import packet_to_alert
from .errors import AlertParseError, PacketError
from .importers import iter_spectra, read_labels, read_light_curve_table
from .readers import PacketOrError

logger = logging.getLogger(__name__)

SKIPPED_COLUMNS = ["item", "source", "reason"]
CUTOUT_SHAPE = (len(CUTOUT_KINDS), CUTOUT_SIZE, CUTOUT_SIZE)


# ---- atomic file helpers -------------------------------------------------------------------------------
def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = _tmp(path)
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = _tmp(path)
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def write_json(data: object, path: Path) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


def link_or_copy(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` atomically (hard link when possible, else a copy)."""
    if dst.exists() and os.path.samefile(src, dst):
        return  # already the same file (rename onto a hard link of itself would be a silent no-op)
    tmp = _tmp(dst)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def input_fingerprint(paths: Iterable[str | Path]) -> list[list]:
    """(path, size, mtime) of every input file (folders expanded), for stage keys."""
    out = []
    for raw in paths:
        path = Path(raw)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            stat = f.stat() if f.exists() else None
            out.append([str(f), stat.st_size if stat else -1, int(stat.st_mtime) if stat else -1])
    return out


class Stage:
    """One resumable stage folder."""

    def __init__(self, root: Path, name: str, key_data: object) -> None:
        self.dir = root / "_stages" / name
        self.name = name
        self.key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def done(self) -> bool:
        marker = self.dir / "done.json"
        return marker.is_file() and json.loads(marker.read_text()).get("key") == self.key

    def run(self, body: Callable[[Path], dict]) -> dict:
        """Run ``body(stage_dir) -> summary`` unless already done; returns the stored summary."""
        marker = self.dir / "done.json"
        if self.done:
            logger.info("stage %s: already done (key %s), skipped", self.name, self.key)
            return json.loads(marker.read_text())["summary"]
        self.dir.mkdir(parents=True, exist_ok=True)
        marker.unlink(missing_ok=True)
        summary = body(self.dir)
        write_json({"key": self.key, "summary": summary}, marker)
        return summary


# ---- stage bodies --------------------------------------------------------------------------------------
def alerts_stage(packets: Iterable[tuple[str, str, PacketOrError]], out: Path, drop_altered: bool) -> dict:
    """Convert packets; write alerts.parquet, cutouts.npy, alert_points.parquet, skipped.csv into ``out``.

    One survey per dataset (its metadata columns): the first alert's; alerts of another survey are skipped.
    """
    rows, points, skipped = [], [], []
    survey = None
    seen: dict[int, str] = {}
    raw_path = out / ".cutouts.raw"
    n_cutouts = 0
    with raw_path.open("wb") as raw:
        for source, item, packet in packets:
            where = f"{Path(source).name}::{item}" if item else Path(source).name
            if isinstance(packet, PacketError):
                skipped.append((where, packet.source, packet.reason))
                continue
            try:
                alert = packet_to_alert(packet)
            except AlertParseError as err:
                skipped.append((where, source, f"alert parse error in {err.field}: {err.reason}"))
                continue
            survey = survey or alert.survey
            if alert.survey != survey:
                skipped.append((where, source, f"{alert.survey} alert in a {survey} dataset (one survey per dataset)"))
                continue
            if alert.candid in seen:
                skipped.append((where, source, f"duplicate candid {alert.candid} (kept the copy from {seen[alert.candid]})"))
                continue
            if drop_altered and packet.get("candidate_altered"):
                skipped.append((where, source, "candidate position/time altered by the source repository"))
                continue
            seen[alert.candid] = where
            index = -1
            if alert.cutouts is not None:
                raw.write(np.ascontiguousarray(alert.cutouts.on_grid(), dtype="<f4").tobytes())
                index, n_cutouts = n_cutouts, n_cutouts + 1
            stamp_problems = [p for p in alert.problems if p.startswith("cutout")]
            if index < 0:
                skipped.append((f"{where} cutouts", source, "; ".join(stamp_problems) or "no cutouts"))
            rows.append((alert.object_id, alert.candid, alert.mjd, alert.band, alert.ra_deg, alert.dec_deg, index,
                         *alert.metadata.tolist(), alert.light_curve.first_detection_mjd))  # fmt: skip
            lc = alert.light_curve
            points.append(pd.DataFrame({
                "object_id": alert.object_id, "mjd": lc.mjd, "band": lc.band, "flux_ujy": lc.flux_ujy,
                "flux_err_ujy": lc.flux_err_ujy, "is_detection": lc.is_detection, "candid": lc.candid,
            }))  # fmt: skip
    _raw_to_npy(raw_path, out / "cutouts.npy", n_cutouts)
    names = METADATA_FEATURES_BY_SURVEY[survey or "ztf"]
    columns = ["object_id", "candid", "mjd", "band", "ra_deg", "dec_deg", "cutout_index", *names, "first_detection_mjd"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"candid": "int64", "cutout_index": "int64", **{k: "float32" for k in names}})
    write_parquet(frame, out / "alerts.parquet")
    point_frame = pd.concat(points, ignore_index=True) if points else pd.DataFrame(
        columns=["object_id", "mjd", "band", "flux_ujy", "flux_err_ujy", "is_detection", "candid"])
    write_parquet(point_frame, out / "alert_points.parquet")
    write_csv(pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), out / "skipped.csv")
    return {"alerts": len(frame), "cutouts": n_cutouts, "skipped": len(skipped)}


def _raw_to_npy(raw_path: Path, npy_path: Path, n: int) -> None:
    """Stream a headerless float32 file into a proper ``.npy`` of shape (n, 3, 63, 63) (atomic)."""
    tmp = _tmp(npy_path)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (n, *CUTOUT_SHAPE)}
    with tmp.open("wb") as f, raw_path.open("rb") as raw:
        np.lib.format.write_array_header_1_0(f, header)
        shutil.copyfileobj(raw, f, length=16 << 20)
    os.replace(tmp, npy_path)
    raw_path.unlink()


def spectra_stage(items: Iterable, out: Path) -> dict:
    """Write spectra.parquet (with identity names and source) and skipped.csv."""
    rows, skipped = [], []
    for entry in items:
        if isinstance(entry, tuple):
            skipped.append((entry[0], "spectra", entry[1]))
            continue
        s = entry.spectrum
        rows.append({
            "spectrum_id": s.spectrum_id, "name": s.object_id, "names": entry.names, "redshift": s.redshift,
            "mjd": s.mjd, "label": s.label, "flux_unit": s.flux_unit, "instrument": s.instrument,
            "source": entry.source, "wavelength_aa": s.wavelength_aa, "flux": s.flux,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=["spectrum_id", "name", "names", "redshift", "mjd", "label", "flux_unit",
                                        "instrument", "source", "wavelength_aa", "flux"])  # fmt: skip
    dup = frame["spectrum_id"].duplicated()
    for sid in frame.loc[dup, "spectrum_id"]:
        skipped.append((sid, "spectra", "duplicate spectrum_id"))
    frame = frame[~dup]
    write_parquet(frame, out / "spectra.parquet")
    write_csv(pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), out / "skipped.csv")
    return {"spectra": len(frame), "skipped": len(skipped)}


def public_spectra_stage(path: Path, exclude: tuple[str, ...], out: Path) -> dict:
    return spectra_stage(iter_spectra(path, exclude), out)


def light_curve_stage(paths: list[Path], exclude: tuple[str, ...], out: Path) -> dict:
    """Every light-curve parquet → one long flux table (points.parquet) and skipped.csv."""
    tables, skipped = [], []
    for path in paths:
        table, problems = read_light_curve_table(path, exclude)
        tables.append(table)
        skipped += [(i, str(path), r) for i, r in problems]
    table = pd.concat(tables, ignore_index=True)
    write_parquet(table, out / "points.parquet")
    write_csv(pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), out / "skipped.csv")
    return {"points": len(table), "objects": int(table["name"].nunique()), "skipped": len(skipped)}


def labels_stage(path: Path, out: Path) -> dict:
    table = read_labels(path)
    frame = pd.DataFrame({"object_id": list(table.labels), "label": list(table.labels.values())})
    frame["redshift"] = frame["object_id"].map(table.redshifts).astype("float64")
    write_parquet(frame, out / "labels.parquet")
    skipped = [(f"label {oid}", str(path), f"label {raw!r} not mapped ({status})") for oid, raw, status in table.unmapped]
    write_csv(pd.DataFrame(skipped, columns=SKIPPED_COLUMNS), out / "skipped.csv")
    return {"labels": len(frame), "unmapped": len(skipped)}
