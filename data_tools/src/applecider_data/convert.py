"""Alert packet → ``applecider_core.records``, once, at the boundary: :func:`packet_to_alert` for both surveys.

The survey is read from each packet (:func:`packet_survey`: a ``candidate`` record is ZTF, a ``diaSource``
record is Rubin); Rubin's conventions are in :mod:`applecider_data.lsst`. ZTF:

Photometry follows Kowalski's ``make_photometry`` (skyportal/kowalski ``alert_broker.py``):

- ``mjd = jd - 2400000.5``; ``fid`` 1/2/3 → ``ztfg``/``ztfr``/``ztfi`` (other fids: point dropped);
- detections (``magpsf`` not null): ``flux_ujy = ±10**(-0.4 * (magpsf - 23.9))``, the AB zero point of 1 µJy.
  ``magpsf`` is already calibrated with the image zero point ``magzpsci`` at IPAC, so ``magzpsci`` is *not*
  applied again (Kowalski sets ``zp = 23.9`` the same way). The sign is ``isdiffpos``: ``'t'``/``'1'``
  positive, ``'f'``/``'0'`` negative (the source faded below the reference);
  ``flux_err_ujy = sigmapsf * |flux| * ln(10) / 2.5``;
- non-detections (``magpsf`` null, ``diffmaglim`` set) become upper limits: ``is_detection = False``,
  ``flux_ujy`` = the limiting flux of ``diffmaglim``, ``flux_err_ujy = NaN``;
- magnitudes outside (0, 40) are sentinels and count as missing;
- points are de-duplicated on ``candid``; points without candid (upper limits) on ``(jd, fid)``, and an
  upper limit at the ``(jd, fid)`` of a detection is dropped. The result is time-ordered and does not
  depend on the order of the input points.
- one ZTF exposure has one filter, so history rows of *different* filters at one exact ``jd`` cannot carry
  real times: they are dropped with a note (:func:`drop_impossible_epochs`). Some fink-broker test packets in
  the shared alerts set every ``prv_candidates`` jd to one value (471 of 2,095 packets; the data README's
  ``candidate_altered`` flags 305 of them): kept, they made a whole history look like one night.

Metadata vector (``METADATA_FEATURES`` order, float32, NaN = missing): the 17 Table-2 fields of the candidate;
ZTF's ``-999`` "no PS1 match" sentinels (``sgscore*``, ``distpsnr*``) become NaN. ``age_days`` = candidate
jd − the object's first detection: ``jdstarthist`` (ZTF's first detection of the source, which the 30-day
``prv_candidates`` may no longer reach) or the first *detection* in the packet history when that is earlier or
jdstarthist is missing; 0 for a first detection. The light curve carries the same first detection
(``LightCurve.first_detection_mjd``), from which the photometry features measure Δt. ``nnondet = ncovhist - ndethist``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from applecider_core.records import (
    AB_ZEROPOINT_UJY,
    ALERT_METADATA_FEATURES,
    METADATA_FEATURES,
    Alert,
    LightCurve,
    RecordError,
)

from .cutouts import packet_triplet
from .errors import AlertParseError

JD_TO_MJD = 2400000.5
FID_TO_BAND = {1: "ztfg", 2: "ztfr", 3: "ztfi"}
BAND_TO_FID = {band: fid for fid, band in FID_TO_BAND.items()}
POSITIVE_DIFF = frozenset({"t", "1", "true"})
NEGATIVE_DIFF = frozenset({"f", "0", "false"})
SENTINEL_FIELDS = frozenset({"sgscore1", "sgscore2", "distpsnr1", "distpsnr2"})
SENTINEL_MAX = -99.0  # ZTF writes -999 (sometimes -999.0 as float32) for "no PS1 source within 30 arcsec"
_LN10_OVER_2P5 = math.log(10.0) / 2.5
MAG_RANGE = (0.0, 40.0)  # outside this a magnitude is a sentinel (e.g. -999, 99) and treated as missing


def _mag(value: object) -> float:
    mag = _float(value)
    return mag if MAG_RANGE[0] < mag < MAG_RANGE[1] else math.nan


def _float(value: object) -> float:
    """A finite float or NaN (None, strings, NaN/inf all become NaN)."""
    if value is None or isinstance(value, (str, bytes)):
        return math.nan
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def diff_sign(isdiffpos: object) -> float | None:
    """+1 for 't'/'1', -1 for 'f'/'0', None when unknown."""
    text = str(isdiffpos).strip().lower() if isdiffpos is not None else ""
    if text in POSITIVE_DIFF:
        return 1.0
    if text in NEGATIVE_DIFF:
        return -1.0
    return None


def point_from_candidate(cand: Mapping) -> tuple | None:
    """One light-curve row ``(mjd, band, flux_ujy, flux_err_ujy, is_detection, candid, is_forced)`` or None.

    Unusable: no jd, fid outside 1/2/3, neither magpsf nor diffmaglim, unknown isdiffpos on a detection.
    """
    jd = _float(cand.get("jd"))
    band = FID_TO_BAND.get(cand.get("fid"))  # type: ignore[arg-type]
    if math.isnan(jd) or band is None:
        return None
    candid = cand.get("candid")
    candid = int(candid) if isinstance(candid, (int, np.integer)) and not isinstance(candid, bool) else -1
    magpsf = _mag(cand.get("magpsf"))
    if not math.isnan(magpsf):
        sign = diff_sign(cand.get("isdiffpos"))
        if sign is None:
            return None
        flux = 10.0 ** (-0.4 * (magpsf - AB_ZEROPOINT_UJY))
        err = _float(cand.get("sigmapsf")) * flux * _LN10_OVER_2P5
        return (jd - JD_TO_MJD, band, sign * flux, err, True, candid, False)
    limit = _mag(cand.get("diffmaglim"))
    if math.isnan(limit):
        return None
    return (jd - JD_TO_MJD, band, 10.0 ** (-0.4 * (limit - AB_ZEROPOINT_UJY)), math.nan, False, candid, False)


def deduplicate_points(points: Iterable[tuple]) -> list[tuple]:
    """De-duplicate rows (see module docstring); output sorted by (mjd, band), independent of input order.

    Rows carrying an id are de-duplicated on (is_forced, id): forced-photometry ids are their own namespace.
    """
    # A total order on rows makes "keep the first" independent of the input order.
    rows = sorted(points, key=lambda r: (r[0], r[1], not r[4], r[6], r[5], r[2], 0.0 if math.isnan(r[3]) else r[3]))
    seen_candid: set[tuple[bool, int]] = set()
    seen_epoch: set[tuple[float, str]] = set()
    kept = []
    for row in rows:
        epoch = (round(row[0], 6), row[1])
        if row[5] >= 0:
            if (row[6], row[5]) in seen_candid:
                continue
            seen_candid.add((row[6], row[5]))
        elif epoch in seen_epoch:
            continue
        seen_epoch.add(epoch)
        kept.append(row)
    return kept


def light_curve_from_points(object_id: str, points: Iterable[tuple], first_detection_mjd: float = math.nan
                            ) -> LightCurve:  # fmt: skip
    """LightCurve from rows made by :func:`point_from_candidate` (de-duplicated, time-ordered)."""
    rows = deduplicate_points(points)
    if not rows:
        return LightCurve(object_id, np.empty(0), np.empty(0, dtype=str), np.empty(0), np.empty(0), np.empty(0, bool),
                          first_detection_mjd=first_detection_mjd)  # fmt: skip
    mjd, band, flux, err, det, candid, forced = zip(*rows)
    return LightCurve(object_id, np.array(mjd), np.array(band), np.array(flux), np.array(err), np.array(det),
                      np.array(candid, dtype=np.int64), np.array(forced, dtype=bool), first_detection_mjd)  # fmt: skip


def merge_light_curves(*curves: LightCurve) -> LightCurve:
    """Union of light curves of one object (e.g. from successive packets), de-duplicated like one packet."""
    rows = (row for c in curves for row in zip(c.mjd.tolist(), c.band.tolist(), c.flux_ujy.tolist(),
                                                c.flux_err_ujy.tolist(), c.is_detection.tolist(), c.candid.tolist(),
                                                c.is_forced.tolist()))
    firsts = [c.first_detection_mjd for c in curves if not math.isnan(c.first_detection_mjd)]
    return light_curve_from_points(curves[0].object_id, rows, min(firsts) if firsts else math.nan)


def history_records(packet: Mapping) -> list[Mapping]:
    """prv_candidates + candidate of a packet (prv_candidates may be null)."""
    prv = packet.get("prv_candidates") or []
    if not isinstance(prv, (list, tuple)):
        raise AlertParseError("prv_candidates", f"expected a list of records, got {type(prv).__name__}")
    return [*(p for p in prv if isinstance(p, Mapping)), packet["candidate"]]


def drop_impossible_epochs(history: list[Mapping]) -> tuple[list[Mapping], str | None]:
    """``history`` (prv_candidates, then the candidate) without the previous rows whose ``jd`` is shared by rows
    of different filters (one exposure has one filter: such times are not real), and the note saying so."""
    filters_at = defaultdict(set)
    for record in history:
        filters_at[_float(record.get("jd"))].add(record.get("fid"))
    shared = {jd for jd, fids in filters_at.items() if len(fids) > 1 and not math.isnan(jd)}
    if not shared:
        return history, None
    *previous, candidate = history
    kept = [r for r in previous if _float(r.get("jd")) not in shared]
    jds = ", ".join(f"{jd:.5f}" for jd in sorted(shared)[:3]) + (" …" if len(shared) > 3 else "")
    return [*kept, candidate], (f"{len(previous) - len(kept)} history rows of different filters share jd {jds} "
                                "(one exposure has one filter): their times are not real, dropped")


def first_detection_jd(candidate: Mapping, history: Iterable[Mapping]) -> float:
    """The object's first detection (JD): ``jdstarthist`` or the earliest history detection, whichever is earlier."""
    jds = [_float(p.get("jd")) for p in history if not math.isnan(_float(p.get("magpsf")))]
    jds = [t for t in (*jds, _float(candidate.get("jdstarthist"))) if not math.isnan(t) and t > 0]
    return min(jds) if jds else math.nan


def metadata_vector(candidate: Mapping, history: Iterable[Mapping]) -> np.ndarray:
    """(19,) float32 in ``METADATA_FEATURES`` order, NaN = missing (see module docstring)."""
    values = []
    for name in ALERT_METADATA_FEATURES:
        value = _float(candidate.get(name))
        if name in SENTINEL_FIELDS and value <= SENTINEL_MAX:
            value = math.nan
        values.append(value)
    age = _float(candidate.get("jd")) - first_detection_jd(candidate, history)
    nnondet = _float(candidate.get("ncovhist")) - _float(candidate.get("ndethist"))
    out = np.array([*values, age, nnondet], dtype=np.float32)
    assert out.shape == (len(METADATA_FEATURES),)
    return out


def _required(candidate: Mapping, name: str) -> float:
    value = _float(candidate.get(name))
    if math.isnan(value):
        raise AlertParseError(f"candidate.{name}", f"missing or not finite ({candidate.get(name)!r})")
    return value


def packet_survey(packet: Mapping) -> str:
    """``"ztf"`` or ``"lsst"`` from the packet's own fields (never from a file name); AlertParseError if neither."""
    if isinstance(packet.get("diaSource"), Mapping):
        return "lsst"
    if "candidate" in packet or "objectId" in packet:
        return "ztf"
    raise AlertParseError("packet", f"neither a ZTF alert (candidate) nor a Rubin alert (diaSource); "
                          f"fields: {sorted(packet)[:12]}")


def packet_to_alert(packet: Mapping, with_cutouts: bool = True) -> Alert:
    """Convert one decoded alert packet of either survey into an Alert (``Alert.survey`` says which).

    ZTF: schema 3.2–4.02 or a Kowalski document; Rubin: lsst.v9_0–v11_x (see :mod:`applecider_data.lsst`).
    Raises AlertParseError(field, reason) for fatal problems (no objectId/candidate/jd/position, unknown fid);
    stamp problems and known caveats are listed in ``Alert.problems`` instead.
    """
    if packet_survey(packet) == "lsst":
        from .lsst import lsst_packet_to_alert  # lsst builds on this module's point helpers

        return lsst_packet_to_alert(packet, with_cutouts)
    object_id = packet.get("objectId")
    if not isinstance(object_id, str) or not object_id:
        raise AlertParseError("objectId", f"missing or not a string ({object_id!r})")
    candidate = packet.get("candidate")
    if not isinstance(candidate, Mapping):
        raise AlertParseError("candidate", f"missing or not a record ({type(candidate).__name__})")
    candid = packet.get("candid", candidate.get("candid"))
    if not isinstance(candid, (int, np.integer)) or isinstance(candid, bool):
        raise AlertParseError("candid", f"missing or not an integer ({candid!r})")
    jd = _required(candidate, "jd")
    ra, dec = _required(candidate, "ra"), _required(candidate, "dec")
    band = FID_TO_BAND.get(candidate.get("fid"))  # type: ignore[arg-type]
    if band is None:
        raise AlertParseError("candidate.fid", f"{candidate.get('fid')!r} is not a ZTF filter id (1, 2, 3)")
    history, epoch_problem = drop_impossible_epochs(history_records(packet))
    problems: list[str] = [epoch_problem] if epoch_problem else []
    points = []
    for record in history:
        point = point_from_candidate(record)
        if point is None:
            problems.append(f"history point jd={record.get('jd')} fid={record.get('fid')} unusable (dropped)")
        else:
            points.append(point)
    cutouts = None
    if with_cutouts:
        cutouts, stamp_problems = packet_triplet(packet)
        problems += stamp_problems
    if packet.get("candidate_altered"):
        problems.append("candidate position/time altered by the source repository (see data README)")
    try:
        return Alert(
            object_id=object_id, candid=int(candid), mjd=jd - JD_TO_MJD, band=band, ra_deg=ra, dec_deg=dec,
            metadata=metadata_vector(candidate, history),
            light_curve=light_curve_from_points(object_id, points, first_detection_jd(candidate, history) - JD_TO_MJD),
            cutouts=cutouts, schema_version=str(packet.get("schemavsn") or ""), problems=problems,
        )  # fmt: skip
    except RecordError as err:
        raise AlertParseError("packet", str(err)) from None
