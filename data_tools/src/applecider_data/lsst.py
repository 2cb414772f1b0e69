"""Rubin (LSST) alert packet → ``applecider_core.records``; reached through :func:`convert.packet_to_alert`.

Packets of lsst.v9_0 … v11_x (Rubin's Avro, Fink's container/parquet rewrites of it) share what is read here;
v10 renamed ``MPCORB`` → ``mpc_orbits`` and v11 made some counts non-nullable, neither of which is used.

- identity: ``objectId`` = ``str(diaSource.diaObjectId)`` (``"ss<ssObjectId>"`` for a solar-system source
  without a diaObject), ``candid`` = ``diaSourceId``; ``mjd`` = ``midpointMjdTai`` (TAI: 37 s after UTC, kept);
- photometry: ``psfFlux``/``psfFluxErr`` in nJy ÷ 1000 → µJy (AB: m = 31.4 − 2.5 log10(f/nJy) =
  23.9 − 2.5 log10(f/µJy)); bands ``u…y`` → ``lsstu…lssty``; ``diaSource`` + ``prvDiaSources`` are detections
  (negative difference fluxes kept, signed); ``prvDiaForcedSources`` become forced-photometry rows
  (``is_detection=False``, ``is_forced=True``, measured flux and error). Points without time, band or flux
  are dropped with a problem; rows are de-duplicated on their source ids like ZTF's candids;
- metadata: ``records.LSST_METADATA_FEATURES`` (diaSource fields, diaObject per-band statistics, fluxes in
  µJy, booleans as 0/1, NaN = missing);
- cutouts: the three FITS stamps with variance and PSF (:func:`cutouts.lsst_triplet`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from applecider_core.records import (
    LSST_METADATA_FEATURES,
    LSST_OBJECT_FEATURES,
    LSST_SOURCE_FEATURES,
    NJY_PER_UJY,
    Alert,
    RecordError,
)

from .convert import _float, light_curve_from_points
from .cutouts import lsst_triplet
from .errors import AlertParseError

LSST_BAND = {letter: f"lsst{letter}" for letter in "ugrizy"}
UJY_SUFFIX = "_ujy"


def _id(value: object) -> int | None:
    """A positive integer id, or None (Rubin writes 0 or null for 'none')."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    return None


def lsst_point(source: Mapping, forced: bool) -> tuple | None:
    """One light-curve row ``(mjd, band, flux_ujy, flux_err_ujy, is_detection, id, is_forced)`` or None."""
    mjd = _float(source.get("midpointMjdTai"))
    band = LSST_BAND.get(source.get("band"))  # type: ignore[arg-type]
    flux = _float(source.get("psfFlux"))
    if math.isnan(mjd) or band is None or math.isnan(flux):
        return None
    ident = _id(source.get("diaForcedSourceId" if forced else "diaSourceId"))
    err = _float(source.get("psfFluxErr")) / NJY_PER_UJY
    return (mjd, band, flux / NJY_PER_UJY, err, not forced, -1 if ident is None else ident, forced)


def _records(packet: Mapping, name: str) -> list[Mapping]:
    rows = packet.get(name) or []
    if not isinstance(rows, (list, tuple)):
        raise AlertParseError(name, f"expected a list of records, got {type(rows).__name__}")
    return [row for row in rows if isinstance(row, Mapping)]


def _feature(record: Mapping, name: str) -> float:
    if name.endswith(UJY_SUFFIX):
        return _float(record.get(name[: -len(UJY_SUFFIX)])) / NJY_PER_UJY
    value = record.get(name)
    return float(value) if isinstance(value, bool) else _float(value)


def lsst_metadata_vector(source: Mapping, diaobject: Mapping | None, first_mjd: float, n_forced: int) -> np.ndarray:
    """(len(LSST_METADATA_FEATURES),) float32 in that order, NaN = missing (see module docstring)."""
    obj = diaobject or {}
    values = [_feature(source, name) for name in LSST_SOURCE_FEATURES]
    values += [_feature(obj, name) for name in LSST_OBJECT_FEATURES]
    values += [_float(source.get("midpointMjdTai")) - first_mjd, float(n_forced)]
    out = np.array(values, dtype=np.float32)
    assert out.shape == (len(LSST_METADATA_FEATURES),)
    return out


def _object_id(source: Mapping) -> str:
    dia_object, ss_object = _id(source.get("diaObjectId")), _id(source.get("ssObjectId"))
    if dia_object is not None:
        return str(dia_object)
    if ss_object is not None:
        return f"ss{ss_object}"
    raise AlertParseError("diaSource.diaObjectId", "neither diaObjectId nor ssObjectId is set")


def lsst_packet_to_alert(packet: Mapping, with_cutouts: bool = True) -> Alert:
    """Convert one decoded Rubin alert packet into an Alert (``survey="lsst"``). Raises AlertParseError."""
    source = packet.get("diaSource")
    if not isinstance(source, Mapping):
        raise AlertParseError("diaSource", f"missing or not a record ({type(source).__name__})")
    object_id = _object_id(source)
    candid = _id(packet.get("diaSourceId", source.get("diaSourceId")))
    if candid is None:
        raise AlertParseError("diaSourceId", f"missing or not a positive integer ({packet.get('diaSourceId')!r})")
    mjd, ra, dec = (_float(source.get(name)) for name in ("midpointMjdTai", "ra", "dec"))
    for name, value in (("midpointMjdTai", mjd), ("ra", ra), ("dec", dec)):
        if math.isnan(value):
            raise AlertParseError(f"diaSource.{name}", f"missing or not finite ({source.get(name)!r})")
    band = LSST_BAND.get(source.get("band"))  # type: ignore[arg-type]
    if band is None:
        raise AlertParseError("diaSource.band", f"{source.get('band')!r} is not a Rubin band (one of ugrizy)")
    detections = [*_records(packet, "prvDiaSources"), source]
    forced = _records(packet, "prvDiaForcedSources")
    problems: list[str] = []
    points = []
    for record, is_forced in [*((r, False) for r in detections), *((r, True) for r in forced)]:
        point = lsst_point(record, is_forced)
        if point is None:
            kind = "forced source" if is_forced else "diaSource"
            problems.append(f"{kind} mjd={record.get('midpointMjdTai')} band={record.get('band')} unusable (dropped)")
        else:
            points.append(point)
    first_mjd = min([p[0] for p in points if p[4]] or [mjd])
    cutouts = None
    if with_cutouts:
        cutouts, stamp_problems = lsst_triplet(dict(packet))
        problems += stamp_problems
    try:
        return Alert(
            object_id=object_id, candid=candid, mjd=mjd, band=band, ra_deg=ra, dec_deg=dec,
            metadata=lsst_metadata_vector(source, packet.get("diaObject"), first_mjd, len(forced)),
            light_curve=light_curve_from_points(object_id, points), cutouts=cutouts,
            schema_version=str(packet.get("lsst_schema_version") or ""), problems=problems, survey="lsst",
        )  # fmt: skip
    except RecordError as err:
        raise AlertParseError("packet", str(err)) from None
