"""Kowalski (MongoDB alert archive) as an alert source: pure query builders + two transports.

Kowalski stores each ZTF alert in ``ZTF_alerts`` (``_id`` = candid, the packet without ``prv_candidates``,
cutouts as ``{"fileName", "stampData": <gzip-FITS bytes>}``) and the full photometric history of each object
in ``ZTF_alerts_aux`` (``_id`` = objectId, ``prv_candidates``, ``fp_hists``, ``cross_matches``).

The query builders below return plain dicts in the Kowalski API query format
(``{"query_type": "find"|"aggregate", "query": {"catalog", "filter", "projection" | "pipeline"},
"kwargs": {...}}``) and are unit-tested as pure functions. Two transports execute them:

- :class:`MongoTransport`: pymongo on ``KOWALSKI_MONGO_URI`` (direct database access);
- :class:`HTTPTransport`: ``POST {base_url}/api/queries`` with ``Authorization: Bearer $KOWALSKI_TOKEN``
  (what ``penquins`` does); responses are MongoDB extended JSON (``bson.json_util``), so cutout bytes survive.

:func:`document_to_packet` turns an alert document (+ its aux document) back into a ZTF packet for
:func:`applecider_data.convert.packet_to_alert`, so Avro files and Kowalski share one converter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

from .errors import PacketError, SourceError

logger = logging.getLogger(__name__)

ALERTS_CATALOG = "ZTF_alerts"
AUX_CATALOG = "ZTF_alerts_aux"
CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
KOWALSKI_ONLY_FIELDS = ("_id", "coordinates", "classifications")


# ---- pure query builders -------------------------------------------------------------------------------
def alerts_filter(object_ids: Sequence[str] | None = None, jd_start: float | None = None,
                  jd_end: float | None = None) -> dict:  # fmt: skip
    """MongoDB filter on ZTF_alerts: objectId in ``object_ids``, ``jd_start <= candidate.jd < jd_end``."""
    flt: dict = {}
    if object_ids is not None:
        flt["objectId"] = {"$in": sorted(set(object_ids))}
    jd: dict = {}
    if jd_start is not None:
        jd["$gte"] = float(jd_start)
    if jd_end is not None:
        jd["$lt"] = float(jd_end)
    if jd_start is not None and jd_end is not None and jd_end <= jd_start:
        raise ValueError(f"empty time range: jd_end ({jd_end}) <= jd_start ({jd_start})")
    if jd:
        flt["candidate.jd"] = jd
    return flt


def alerts_projection(include_cutouts: bool = True) -> dict:
    """Exclusion projection for ZTF_alerts (cutouts are ~80% of a document; drop them when not needed)."""
    projection = {"coordinates": 0}
    if not include_cutouts:
        projection.update({name: 0 for name in CUTOUT_FIELDS})
    return projection


def find_alerts_query(object_ids: Sequence[str] | None = None, jd_start: float | None = None,
                      jd_end: float | None = None, include_cutouts: bool = True, limit: int | None = None) -> dict:  # fmt: skip
    """A ``find`` query on ZTF_alerts (sorted by objectId, candidate.jd)."""
    kwargs: dict = {"sort": [["objectId", 1], ["candidate.jd", 1]]}
    if limit is not None:
        kwargs["limit"] = int(limit)
    return {
        "query_type": "find",
        "query": {"catalog": ALERTS_CATALOG, "filter": alerts_filter(object_ids, jd_start, jd_end),
                  "projection": alerts_projection(include_cutouts)},
        "kwargs": kwargs,
    }  # fmt: skip


def latest_alerts_pipeline(object_ids: Sequence[str], n: int, jd_start: float | None = None,
                           jd_end: float | None = None, include_cutouts: bool = True) -> list[dict]:  # fmt: skip
    """Aggregation pipeline: the latest ``n`` alerts (by candidate.jd) of each object."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [
        {"$match": alerts_filter(object_ids, jd_start, jd_end)},
        {"$project": alerts_projection(include_cutouts)},
        {"$sort": {"objectId": 1, "candidate.jd": -1}},
        {"$group": {"_id": "$objectId", "alerts": {"$push": "$$ROOT"}}},
        {"$project": {"alerts": {"$slice": ["$alerts", int(n)]}}},
        {"$unwind": "$alerts"},
        {"$replaceRoot": {"newRoot": "$alerts"}},
        {"$sort": {"objectId": 1, "candidate.jd": 1}},
    ]


def latest_alerts_query(object_ids: Sequence[str], n: int, **kwargs) -> dict:
    return {"query_type": "aggregate",
            "query": {"catalog": ALERTS_CATALOG, "pipeline": latest_alerts_pipeline(object_ids, n, **kwargs)},
            "kwargs": {"allowDiskUse": True}}  # fmt: skip


def aux_query(object_ids: Sequence[str], include_fp_hists: bool = False) -> dict:
    """A ``find`` query on ZTF_alerts_aux for the histories of ``object_ids`` (no cross-matches)."""
    projection = {"_id": 1, "prv_candidates": 1}
    if include_fp_hists:
        projection["fp_hists"] = 1
    return {"query_type": "find",
            "query": {"catalog": AUX_CATALOG, "filter": {"_id": {"$in": sorted(set(object_ids))}},
                      "projection": projection},
            "kwargs": {}}  # fmt: skip


# ---- documents → packets -------------------------------------------------------------------------------
def document_to_packet(doc: Mapping, aux: Mapping | None = None, history_days: float | None = 30.0) -> dict:
    """A Kowalski ZTF_alerts document (+ its ZTF_alerts_aux document) → ZTF alert packet dict.

    ``prv_candidates`` is taken from the document if present, else from ``aux`` restricted to epochs before
    the candidate (and within ``history_days``, as in a real packet; None = the whole history).
    """
    packet = {k: v for k, v in doc.items() if k not in KOWALSKI_ONLY_FIELDS}
    if "candid" not in packet and isinstance(doc.get("_id"), int):
        packet["candid"] = doc["_id"]
    if packet.get("prv_candidates") is None and aux is not None:
        jd = (packet.get("candidate") or {}).get("jd")
        history = list(aux.get("prv_candidates") or [])
        if jd is not None:
            lo = -float("inf") if history_days is None else jd - history_days
            history = [p for p in history if p.get("jd") is not None and lo <= p["jd"] < jd]
        packet["prv_candidates"] = history
        if aux.get("fp_hists") is not None:
            packet["fp_hists"] = aux["fp_hists"]
    return packet


def packet_to_documents(packet: Mapping) -> tuple[dict, dict]:
    """The inverse, as Kowalski's ingester stores a packet: (ZTF_alerts document, ZTF_alerts_aux document)."""
    cand = packet["candidate"]
    doc = {k: v for k, v in packet.items() if k not in ("prv_candidates", "fp_hists")}
    doc["_id"] = packet["candid"]
    doc["coordinates"] = {"radec_geojson": {"type": "Point", "coordinates": [cand["ra"] - 180.0, cand["dec"]]}}
    history = [*(packet.get("prv_candidates") or []), dict(cand)]
    aux = {"_id": packet["objectId"], "prv_candidates": history, "cross_matches": {}}
    return doc, aux


# ---- classification write-back (Kowalski / BOOM style) -------------------------------------------------------
CLASSIFICATION_FIELD = "classifications.applecider"
RECORD_IDENTITY_FIELDS = ("objectId", "candid")  # already in the alert document


def classification_update(record: Mapping, model_versions: Mapping[str, str] | None = None,
                          field: str = CLASSIFICATION_FIELD) -> tuple[dict, dict] | None:
    """``(filter, update)`` writing one classification record onto its alert document (``_id`` = candid).

    ``$set`` of ``field`` replaces the whole sub-document, so applying it twice (a replay) changes nothing.
    None for a record without a candid (an undecodable message has no alert document).
    """
    if record.get("candid") is None:
        return None
    value = {k: v for k, v in record.items() if k not in RECORD_IDENTITY_FIELDS}
    if model_versions:
        value["model_versions"] = dict(model_versions)
    return {"_id": int(record["candid"])}, {"$set": {field: value}}


def classification_requests(records: Iterable[Mapping], model_versions: Mapping[str, str] | None = None,
                            field: str = CLASSIFICATION_FIELD, upsert: bool = False) -> list:
    """pymongo ``UpdateOne`` requests for ``bulk_write`` (records without a candid are left out)."""
    from pymongo import UpdateOne

    updates = (classification_update(r, model_versions, field) for r in records)
    return [UpdateOne(flt, update, upsert=upsert) for flt, update in (u for u in updates if u is not None)]


# ---- transports ----------------------------------------------------------------------------------------
class MongoTransport:
    """Run query dicts directly on the Kowalski MongoDB (``KOWALSKI_MONGO_URI``)."""

    def __init__(self, uri: str, database: str = "kowalski") -> None:
        import pymongo

        self.client = pymongo.MongoClient(uri)
        self.db = self.client[database]

    def run(self, query: Mapping) -> list[dict]:
        q, kwargs = query["query"], dict(query.get("kwargs") or {})
        collection = self.db[q["catalog"]]
        if query["query_type"] == "find":
            sort = kwargs.pop("sort", None)
            cursor = collection.find(q.get("filter", {}), q.get("projection"), **kwargs)
            if sort:
                cursor = cursor.sort([tuple(s) for s in sort])
            return list(cursor)
        if query["query_type"] == "aggregate":
            return list(collection.aggregate(q["pipeline"], **kwargs))
        raise ValueError(f"query_type {query['query_type']!r} not supported; allowed: find, aggregate")

    def bulk_write(self, catalog: str, requests: Sequence) -> dict:
        """Unordered ``bulk_write`` of update requests on ``catalog`` → matched/modified/upserted counts."""
        if not requests:
            return {"matched": 0, "modified": 0, "upserted": 0}
        result = self.db[catalog].bulk_write(list(requests), ordered=False)
        return {"matched": result.matched_count, "modified": result.modified_count,
                "upserted": result.upserted_count}  # fmt: skip


class HTTPTransport:
    """Run query dicts through the Kowalski API (``POST /api/queries``, bearer token)."""

    def __init__(self, base_url: str, token: str, timeout: float = 300.0, session=None) -> None:
        import requests

        self.url = base_url.rstrip("/") + "/api/queries"
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}"})
        self.timeout = timeout

    def run(self, query: Mapping) -> list[dict]:
        import requests
        from bson import json_util

        try:
            response = self.session.post(self.url, data=json_util.dumps(query),
                                         headers={"Content-Type": "application/json"}, timeout=self.timeout)  # fmt: skip
        except requests.RequestException as err:
            raise SourceError(f"Kowalski {self.url}: {err}") from None
        if response.status_code != 200:
            raise SourceError(f"Kowalski {self.url}: HTTP {response.status_code}: {response.text[:200]}")
        body = json_util.loads(response.text)
        if body.get("status") != "success":
            raise SourceError(f"Kowalski {self.url}: {body.get('status')}: {body.get('message')}")
        data = body.get("data") or []
        return data if isinstance(data, list) else [data]


class KowalskiSource:
    """Alert packets from Kowalski through either transport."""

    def __init__(self, transport) -> None:
        self.transport = transport

    @classmethod
    def from_environment(cls, transport: str = "http", base_url: str | None = None,
                         database: str = "kowalski") -> KowalskiSource:  # fmt: skip
        if transport == "mongo":
            uri = os.environ.get("KOWALSKI_MONGO_URI")
            if not uri:
                raise SourceError("set KOWALSKI_MONGO_URI (mongodb://user:password@host:port) for transport 'mongo'")
            return cls(MongoTransport(uri, database))
        if transport == "http":
            token = os.environ.get("KOWALSKI_TOKEN")
            if not token:
                raise SourceError("set KOWALSKI_TOKEN (a Kowalski API token) for transport 'http'")
            return cls(HTTPTransport(base_url or os.environ.get("KOWALSKI_URL", "https://kowalski.caltech.edu"), token))
        raise ValueError(f"transport must be 'http' or 'mongo', got {transport!r}")

    def iter_packets_with_source(self, object_ids: Sequence[str], jd_start: float | None = None,
                                 jd_end: float | None = None, latest_n: int | None = None,
                                 batch_size: int = 100, include_cutouts: bool = True
                                 ) -> Iterator[tuple[str, str, dict | PacketError]]:  # fmt: skip
        """``(source, item, packet or PacketError)`` for every alert of ``object_ids``, in batches of objects."""
        ids = sorted(set(object_ids))
        for start in range(0, len(ids), batch_size):
            batch = ids[start:start + batch_size]
            try:
                if latest_n:
                    docs = self.transport.run(latest_alerts_query(batch, latest_n, jd_start=jd_start, jd_end=jd_end,
                                                                  include_cutouts=include_cutouts))  # fmt: skip
                else:
                    docs = self.transport.run(find_alerts_query(batch, jd_start, jd_end, include_cutouts))
                aux = {d["_id"]: d for d in self.transport.run(aux_query(batch))}
            except SourceError as err:
                item = f"objects {batch[0]}..{batch[-1]}"
                yield "kowalski", item, PacketError("kowalski", item, str(err))
                continue
            for doc in docs:
                yield "kowalski", f"candid {doc.get('_id')}", document_to_packet(doc, aux.get(doc.get("objectId")))

    def iter_packets(self, object_ids: Iterable[str], **kwargs) -> Iterator[dict | PacketError]:
        for _s, _i, packet in self.iter_packets_with_source(list(object_ids), **kwargs):
            yield packet
