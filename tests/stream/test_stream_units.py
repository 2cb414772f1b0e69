"""Fast tests of the stream's parts: output schema, decoders, settings, idempotent JSON lines, Mongo update
builders (+ a recorded real alert document), SkyPortal write-back against a loopback recorded server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import bson
import fastavro
import pytest

from applecider_core.config import ConfigError
from applecider_data import PacketError, iter_packets, packet_to_alert, synthetic
from applecider_data.kowalski import (
    classification_requests,
    classification_update,
    document_to_packet,
    packet_to_documents,
)
from applecider_data.skyportal import SkyPortalClient
from applecider_data.writers import packet_to_avro
from applecider_stream import decode_records, encode_record, get_decoder, record_schema
from applecider_stream.avro_output import schema_json
from applecider_stream.cli import resolve_settings
from applecider_stream.decoders import DecodeProcess
from applecider_stream.sinks import FailureLog, JsonLinesSink, record_key
from applecider_stream.writeback import SkyPortalSink, latest_per_object

from .conftest import REPO_ROOT

RECORD = {"objectId": "ZTF20aaaaaaa", "candid": 1234567890123456789, "mjd": 59000.5, "modalities": ["photometry"],
          "probabilities": {"photometry": {"SN Ia": 0.75, "TDE": 0.25}}, "fused": {"SN I": 0.75, "TDE": 0.25},
          "top_class": "SN I", "score": 0.75, "errors": []}  # fmt: skip


def test_output_schema_round_trip_with_optional_and_unknown_fields():
    full = {**RECORD, "prediction_set": ["SN I"], "abstain": False, "ood": True, "ood_reasons": ["far from training"],
            "notes": ["history from packet only"], "survey": "ztf", "skipped": {"spectra": "no spectrum"},
            "sniascore": {"score": 0.9, "score_error": 0.05, "is_ia_confident": True, "redshift": 0.04},
            "brand_new_key": {"a": 1}}  # fmt: skip
    (decoded,) = decode_records(encode_record(full, {"photometry": "x:abc"}))
    for key in ("prediction_set", "abstain", "ood", "ood_reasons", "notes", "survey", "skipped", "sniascore",
                "objectId", "candid", "mjd", "fused", "top_class", "score", "probabilities", "modalities"):
        assert decoded[key] == full[key], key
    assert decoded["model_versions"] == {"photometry": "x:abc"} and decoded["schema_version"] == "1"
    assert json.loads(decoded["extra"]["brand_new_key"]) == {"a": 1}  # nothing dropped
    (plain,) = decode_records(encode_record(RECORD))
    assert plain["prediction_set"] is None and plain["abstain"] is None and plain["notes"] == [] and plain["extra"] == {}


def test_output_message_is_the_container_fastavro_writes():
    from applecider_stream.avro_output import SYNC_MARKER, to_avro_record

    for record in (RECORD, {**RECORD, "candid": None, "fused": None, "errors": ["t[0]@3: empty message"]}):
        buffer = io.BytesIO()
        fastavro.writer(buffer, record_schema(), [to_avro_record(record, {"images": "astrominn:0123"})], codec="null",
                        sync_marker=SYNC_MARKER)  # fmt: skip
        assert encode_record(record, {"images": "astrominn:0123"}) == buffer.getvalue()


def test_schema_documented_field_by_field():
    text = (REPO_ROOT / "docs" / "STREAM.md").read_text()
    for field in schema_json()["fields"]:
        assert field.get("doc") and f"`{field['name']}`" in text, field["name"]
    assert record_schema()["name"] == "applecider.classification"


def test_decoders():
    packet = synthetic.make_packets(1, seed=3)[0]
    (decoded,) = get_decoder("auto")(packet_to_avro(packet), "t[0]@5")
    assert decoded["candid"] == packet["candid"]
    for value in (b"garbage", b"", b"Obj\x01truncated"):
        (error,) = get_decoder("auto")(value, "t[0]@6")
        assert isinstance(error, PacketError) and "t[0]@6" in str(error)
    (wire,) = get_decoder("lsst")(b"\x00\x00\x00\x00\x01rest", "t[1]@0")
    assert isinstance(wire, PacketError)
    with pytest.raises(ValueError, match="allowed"):
        get_decoder("rubin")


def test_decode_process_converts_on_its_own_process_and_the_records_are_unchanged():
    import numpy as np

    from applecider_core.records import Alert
    from applecider_fusion.classifier import Classifier

    packets = synthetic.make_packets(3, seed=5)
    unconvertible = {**packets[2], "candidate": {**packets[2]["candidate"], "ra": None}}
    values = [(packet_to_avro(p), f"t[0]@{i}") for i, p in enumerate([*packets[:2], unconvertible])]
    decoding = DecodeProcess("auto", with_cutouts=True)
    try:
        batch = decoding.submit([*values, (b"garbage", "t[0]@3")]).result(timeout=120)
    finally:
        decoding.close()
    assert [len(items) for items in batch] == [1, 1, 1, 1]
    (first,), (second,), (failed,), (junk,) = batch
    for alert, packet in ((first, packets[0]), (second, packets[1])):
        expected = packet_to_alert(packet)
        assert isinstance(alert, Alert) and alert.candid == expected.candid and alert.problems == expected.problems
        np.testing.assert_array_equal(alert.light_curve.flux_ujy, expected.light_curve.flux_ujy)
        np.testing.assert_array_equal(alert.metadata, expected.metadata)
        np.testing.assert_array_equal(alert.cutouts.science, expected.cutouts.science)
    assert isinstance(failed, dict) and failed["candid"] == packets[2]["candid"]  # left for the classifier's error record
    assert isinstance(junk, PacketError) and "t[0]@3" in str(junk)
    classifier = Classifier.from_dir(REPO_ROOT / "models")
    from_alerts = classifier.classify([first, second, failed, junk])
    classifier = Classifier.from_dir(REPO_ROOT / "models")
    assert from_alerts == classifier.classify([packets[0], packets[1], unconvertible, junk])
    assert "candidate.ra" in from_alerts[2]["errors"][0]


def test_decode_process_does_not_outlive_a_killed_stream_process():
    import signal
    import subprocess
    import sys
    import time

    script = ("from applecider_stream.decoders import DecodeProcess\n"
              "decoding = DecodeProcess('auto')\n"
              "decoding.submit([(b'x', 'w')]).result(timeout=120)\n"
              "print(*decoding._pool._processes, flush=True)\n"
              "import time; time.sleep(120)\n")  # fmt: skip
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.2)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_rubin_decoder_reads_wire_messages_with_the_schema_directory(tmp_path):
    schema = {"type": "record", "name": "alert", "namespace": "lsst.v9_0",
              "fields": [{"name": "diaSourceId", "type": "long"}, {"name": "ra", "type": "double"}]}  # fmt: skip
    (tmp_path / "900.avsc").write_text(json.dumps(schema))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), {"diaSourceId": 17, "ra": 1.5})
    message = bytes([0]) + (900).to_bytes(4, "big") + body.getvalue()
    for name in ("lsst", "auto"):
        (packet,) = get_decoder(name, lsst_schema_dirs=(str(tmp_path),))(message, "t[2]@0")
        assert (packet["diaSourceId"], packet["ra"], packet["lsst_schema_version"]) == (17, 1.5, "lsst.v9_0")
    (unknown,) = get_decoder("lsst", lsst_schema_dirs=(str(tmp_path),))(message[:1] + (901).to_bytes(4, "big"), "t[2]@1")
    assert isinstance(unknown, PacketError) and "901" in str(unknown) and "t[2]@1" in str(unknown)


def test_settings_yaml_and_flags(tmp_path):
    config = tmp_path / "stream.yaml"
    config.write_text("bootstrap_servers: 127.0.0.1:9092\ntopics: [a, b]\ngroup_id: g\nout: x.jsonl\nbatch_size: 64\n"
                      "kafka: {security.protocol: plaintext}\n")  # fmt: skip
    settings = resolve_settings(["--config", str(config), "--batch-size", "8", "--kafka-option", "client.id=c1"])
    assert settings.topics == ("a", "b") and settings.batch_size == 8 and settings.group_id == "g"
    assert settings.kafka == {"security.protocol": "plaintext", "client.id": "c1"}
    config.write_text("bootstrap_servers: h:1\ntopics: [a]\ngroup_id: g\nout: x\nbatchsize: 3\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        resolve_settings(["--config", str(config)])
    with pytest.raises(ConfigError, match="no sink"):
        resolve_settings(["--bootstrap-servers", "h:1", "--topic", "a", "--group-id", "g"])
    with pytest.raises(ConfigError, match="--group-id"):
        resolve_settings(["--bootstrap-servers", "h:1", "--topic", "a", "--out", "x"])
    sink = ["--bootstrap-servers", "h:1", "--topic", "a", "--group-id", "g", "--out", "x"]
    assert resolve_settings([*sink, "--engine", "onnxruntime,images=torch-bf16"]).engine == "onnxruntime,images=torch-bf16"
    with pytest.raises(ConfigError, match="unknown engine 'fast'"):
        resolve_settings([*sink, "--engine", "fast"])


def test_json_lines_sink_is_idempotent_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(path)
    second = {**RECORD, "candid": 2}
    error = {**RECORD, "candid": None, "objectId": None, "errors": ["t[0]@7: neither ..."]}
    sink.write([RECORD, second, error])
    sink.close()
    with path.open("a") as stream:
        stream.write('{"candid": 3, "objectId": "tor')  # a crash in the middle of a line
    sink = JsonLinesSink(path)
    sink.write([RECORD, error, {**RECORD, "candid": 3}])  # a replayed batch
    sink.close()
    keys = [record_key(json.loads(line)) for line in path.read_text().splitlines()]
    assert sorted(keys) == sorted([str(RECORD["candid"]), "2", record_key(error), "3"])


def test_mongo_update_builders_and_recorded_real_document(shared_data):
    (flt, update) = classification_update(RECORD, {"photometry": "v1"})
    assert flt == {"_id": RECORD["candid"]}
    value = update["$set"]["classifications.applecider"]
    assert value["top_class"] == "SN I" and value["model_versions"] == {"photometry": "v1"} and "candid" not in value
    assert classification_update({**RECORD, "candid": None}) is None
    requests = classification_requests([RECORD, {**RECORD, "candid": None}], upsert=True)
    assert len(requests) == 1 and requests[0]._doc == classification_update(RECORD)[1] and requests[0]._upsert
    packet = next(p for p in iter_packets(shared_data / "alerts" / "ztf_public_alerts.parquet") if isinstance(p, dict))
    doc, aux = packet_to_documents(packet)
    record = {**RECORD, "objectId": packet["objectId"], "candid": packet["candid"]}
    flt, update = classification_update(record)
    assert flt == {"_id": doc["_id"]}
    for _replay in range(2):  # $set of the dotted path, as MongoDB applies it; twice = once
        doc.setdefault("classifications", {})["applecider"] = update["$set"]["classifications.applecider"]
    stored = bson.decode(bson.encode(doc))
    assert stored["classifications"]["applecider"]["fused"] == RECORD["fused"]
    before, after = packet_to_alert(packet), packet_to_alert(document_to_packet(stored, aux))
    assert after.candid == before.candid and after.light_curve.mjd.tolist() == before.light_curve.mjd.tolist()


def _ok(data):
    return {"status": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"status": "success", "data": data})}  # fmt: skip


def test_skyportal_write_back_with_429_storm_and_5xx(recorded_server, tmp_path):
    storm = [{"status": 429, "headers": {"Retry-After": "0"}, "body": "Too Many Requests"}] * 8
    url, log = recorded_server({
        "GET /api/sources/ZTF20aaaaaaa/annotations": [*storm, _ok([])],
        "POST /api/sources/ZTF20aaaaaaa/annotations": [{"status": 503, "body": "busy"}, _ok({"id": 11})],
        "GET /api/sources/ZTF20aaaaaaa/classifications": [_ok([])],
        "POST /api/classification": [_ok({"id": 21})],
        "GET /api/sources/ZTF20bbbbbbb/annotations": [_ok([{"id": 12, "origin": "applecider", "data": {}}])],
        "PUT /api/sources/ZTF20bbbbbbb/annotations/12": [_ok(None)],
        "GET /api/sources/ZTF20bbbbbbb/classifications": [_ok([{"id": 22, "ml": True, "origin": "applecider",
                                                                "taxonomy_id": 3, "classification": "TDE"}])],
        "PUT /api/classification/22": [_ok(None)],
    })  # fmt: skip
    client = SkyPortalClient(url, token="secret", max_retries=10, backoff_s=0.01)
    failures = FailureLog(str(tmp_path / "errors.jsonl"))
    sink = SkyPortalSink(client, failures, {"photometry": "v1"}, group_ids=[7], taxonomy_id=3)
    older = {**RECORD, "mjd": 58000.0, "candid": 5}
    sink.write([older, RECORD, {**RECORD, "objectId": "ZTF20bbbbbbb", "candid": 9}, {**RECORD, "candid": None,
                "objectId": None, "top_class": None}])  # fmt: skip
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    keys = [r["key"] for r in requests]
    assert keys.count("GET /api/sources/ZTF20aaaaaaa/annotations") == 9  # the storm was waited out
    assert keys.count("POST /api/sources/ZTF20aaaaaaa/annotations") == 2  # 503 retried
    assert "PUT /api/sources/ZTF20bbbbbbb/annotations/12" in keys and "PUT /api/classification/22" in keys
    posted = json.loads(next(r["body"] for r in requests if r["key"] == "POST /api/sources/ZTF20aaaaaaa/annotations"))
    assert posted["origin"] == "applecider" and posted["group_ids"] == [7]
    assert posted["data"]["candid"] == RECORD["candid"] and posted["data"]["p_SN I"] == 0.75  # the latest alert
    classification = json.loads(next(r["body"] for r in requests if r["key"] == "POST /api/classification"))
    assert classification["ml"] is True and classification["probability"] == 0.75 and classification["taxonomy_id"] == 3
    assert all(r["headers"]["Authorization"] == "token secret" for r in requests)
    assert failures.count == 0


def test_skyportal_refusal_goes_to_the_failure_log(recorded_server, tmp_path):
    url, _ = recorded_server({"GET /api/sources/ZTF20aaaaaaa/annotations": [{"status": 503, "body": "down"}]})
    client = SkyPortalClient(url, token="t", max_retries=2, backoff_s=0.0)
    failures = FailureLog(str(tmp_path / "errors.jsonl"))
    SkyPortalSink(client, failures, {}).write([RECORD])
    (line,) = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert line["sink"] == "skyportal" and "HTTP 503" in line["reason"] and line["record"]["candid"] == RECORD["candid"]


def test_latest_per_object():
    records = [RECORD, {**RECORD, "mjd": 1.0, "candid": 1}, {**RECORD, "objectId": "B", "top_class": None}]
    assert latest_per_object(records) == {"ZTF20aaaaaaa": RECORD}
