"""Kowalski source: pure query builders, recorded documents, HTTP transport against a loopback server.

No MongoDB server can be installed on these machines, so the pymongo transport is exercised only through
the same query dicts (builders) and documents (recorded from real alerts) that it would send and receive.
"""

from __future__ import annotations

import json

import bson
import numpy as np
import pytest
from bson import json_util

from applecider_data import iter_packets, packet_to_alert
from applecider_data.errors import SourceError
from applecider_data.kowalski import (
    HTTPTransport,
    KowalskiSource,
    alerts_filter,
    alerts_projection,
    aux_query,
    document_to_packet,
    find_alerts_query,
    latest_alerts_pipeline,
    latest_alerts_query,
    packet_to_documents,
)

REAL_ALERT = "alerts/avro/skyportal+kowalski__2475433850015010009.avro"


def test_filter_and_projection_builders():
    assert alerts_filter(["ZTF2", "ZTF1", "ZTF1"], 2459000.5, 2459001.5) == {
        "objectId": {"$in": ["ZTF1", "ZTF2"]}, "candidate.jd": {"$gte": 2459000.5, "$lt": 2459001.5}}
    assert alerts_filter() == {}
    assert alerts_filter(jd_end=2459000) == {"candidate.jd": {"$lt": 2459000.0}}
    with pytest.raises(ValueError, match="empty time range"):
        alerts_filter(jd_start=5, jd_end=4)
    assert alerts_projection(include_cutouts=False) == {
        "coordinates": 0, "cutoutScience": 0, "cutoutTemplate": 0, "cutoutDifference": 0}
    assert alerts_projection() == {"coordinates": 0}


def test_query_builders_are_json_and_complete():
    query = find_alerts_query(["ZTF1"], include_cutouts=False, limit=10)
    assert query["query_type"] == "find" and query["query"]["catalog"] == "ZTF_alerts"
    assert query["kwargs"] == {"sort": [["objectId", 1], ["candidate.jd", 1]], "limit": 10}
    json.dumps(query)  # plain JSON, shareable by both transports
    pipeline = latest_alerts_pipeline(["ZTF1", "ZTF2"], n=3, include_cutouts=False)
    stages = [next(iter(s)) for s in pipeline]
    assert stages == ["$match", "$project", "$sort", "$group", "$project", "$unwind", "$replaceRoot", "$sort"]
    assert pipeline[2]["$sort"] == {"objectId": 1, "candidate.jd": -1}  # newest first before the slice
    assert pipeline[4]["$project"]["alerts"] == {"$slice": ["$alerts", 3]}
    assert latest_alerts_query(["ZTF1"], 2)["query_type"] == "aggregate"
    with pytest.raises(ValueError):
        latest_alerts_pipeline(["ZTF1"], 0)
    aux = aux_query(["ZTF1"])
    assert aux["query"] == {"catalog": "ZTF_alerts_aux", "filter": {"_id": {"$in": ["ZTF1"]}},
                            "projection": {"_id": 1, "prv_candidates": 1}}


def _assert_same_alert(a, b):
    assert (a.object_id, a.candid, a.band) == (b.object_id, b.candid, b.band)
    np.testing.assert_array_equal(a.metadata, b.metadata)
    np.testing.assert_array_equal(a.light_curve.flux_ujy, b.light_curve.flux_ujy)
    np.testing.assert_array_equal(a.cutouts.stack(), b.cutouts.stack())


def test_recorded_document_round_trip_synthetic(synthetic_packets):
    packet = synthetic_packets[0]
    doc, aux = packet_to_documents(packet)
    # stored as BSON: extended-JSON round trip keeps the cutout bytes
    doc, aux = json_util.loads(json_util.dumps(doc)), json_util.loads(json_util.dumps(aux))
    assert isinstance(doc["cutoutScience"]["stampData"], bytes) and "prv_candidates" not in doc
    _assert_same_alert(packet_to_alert(document_to_packet(doc, aux)), packet_to_alert(packet))


@pytest.fixture
def real_documents(shared_data):
    packet = next(iter_packets(shared_data / REAL_ALERT))
    return packet, *packet_to_documents(packet)


def test_recorded_real_document_round_trip(real_documents):
    packet, doc, aux = real_documents
    assert doc["_id"] == 2475433850015010009 and aux["_id"] == "ZTF17aadcvhq"
    assert bson.decode(bson.encode(doc))["cutoutScience"]["stampData"] == doc["cutoutScience"]["stampData"]
    bson.encode(aux)  # storable as MongoDB documents
    doc, aux = json_util.loads(json_util.dumps(doc)), json_util.loads(json_util.dumps(aux))
    _assert_same_alert(packet_to_alert(document_to_packet(doc, aux)), packet_to_alert(packet))


def test_http_transport_against_loopback_server(real_documents, recorded_server):
    packet, doc, aux = real_documents
    ok = lambda data: [{"status": 200, "headers": {"Content-Type": "application/json"},  # noqa: E731
                        "body": json_util.dumps({"status": "success", "message": "", "data": data})}]
    url, log = recorded_server({
        "POST /api/queries ZTF_alerts": ok([doc]),
        "POST /api/queries ZTF_alerts_aux": ok([aux]),
    })
    source = KowalskiSource(HTTPTransport(url, token="secret-token"))
    items = list(source.iter_packets_with_source(["ZTF17aadcvhq"], jd_start=2460000.5))
    assert len(items) == 1 and items[0][1] == "candid 2475433850015010009"
    _assert_same_alert(packet_to_alert(items[0][2]), packet_to_alert(packet))
    requests_seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert requests_seen[0]["headers"]["Authorization"] == "Bearer secret-token"
    sent = json.loads(requests_seen[0]["body"])
    assert sent == find_alerts_query(["ZTF17aadcvhq"], 2460000.5, None, True)


def test_http_errors_become_packet_errors(recorded_server):
    url, _log = recorded_server({"POST /api/queries ZTF_alerts": [
        {"status": 200, "body": json.dumps({"status": "error", "message": "token expired"})}]})
    items = list(KowalskiSource(HTTPTransport(url, token="t")).iter_packets(["ZTF1"]))
    assert len(items) == 1 and "token expired" in items[0].reason


def test_environment_is_required(monkeypatch):
    monkeypatch.delenv("KOWALSKI_TOKEN", raising=False)
    monkeypatch.delenv("KOWALSKI_MONGO_URI", raising=False)
    with pytest.raises(SourceError, match="KOWALSKI_TOKEN"):
        KowalskiSource.from_environment("http")
    with pytest.raises(SourceError, match="KOWALSKI_MONGO_URI"):
        KowalskiSource.from_environment("mongo")
    with pytest.raises(ValueError, match="transport"):
        KowalskiSource.from_environment("ftp")
