"""``cider stream`` against librdkafka's mock cluster (real protocol, 127.0.0.1): the in-process paths.

The heavy fault tests (two processes, kill -9, SIGTERM, all 2,095 real alerts) are in test_stream_faults.py.
"""

from __future__ import annotations

import itertools
import json

import pytest

from applecider_data import iter_packets, synthetic
from applecider_stream import decode_records
from applecider_stream.cli import main
from applecider_stream.publish import Backlog, publish_messages, publish_packets

from .conftest import FAST_GROUP, PARTITIONS, RELEASED_MODELS, committed_total, consume_all


def _args(bootstrap, topic, group, tmp_path, *extra):
    return ["--bootstrap-servers", bootstrap, "--topic", topic, "--group-id", group, "--models", str(RELEASED_MODELS),
            "--from-beginning", "--idle-exit-s", "3", "--max-wait-s", "0.5", "--threads", "1",
            "--stats-out", str(tmp_path / "stats.json"), *FAST_GROUP, *extra]  # fmt: skip


def test_stream_classifies_writes_every_sink_and_dead_letters(kafka, unique, tmp_path):
    producer, bootstrap = kafka
    topic, group, out_topic, dlq = unique("ztf"), unique("g"), unique("out"), unique("dlq")
    packets = synthetic.make_packets(24, seed=5, n_objects=8)
    assert publish_packets(producer, topic, packets[:12], PARTITIONS) == 12
    producer.produce(topic, value=b"not an alert", key=b"bad", partition=1)
    producer.produce(topic, value=b"Obj\x01\x00broken container", key=b"bad2", partition=2)
    publish_packets(producer, topic, packets[12:], PARTITIONS)
    out = tmp_path / "records.jsonl"
    code = main(_args(bootstrap, topic, group, tmp_path, "--output-topic", out_topic, "--dead-letter-topic", dlq,
                      "--out", str(out), "--batch-size", "10"))  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["candid"] for r in lines if r["candid"]) == sorted(p["candid"] for p in packets)
    errors = [r for r in lines if r["candid"] is None]
    assert len(errors) == 2 and all(f"{topic}[" in r["errors"][0] for r in errors)
    messages = consume_all(bootstrap, out_topic, 26)
    by_key = {m.key().decode(): decode_records(m.value())[0] for m in messages}
    assert {str(p["candid"]) for p in packets} <= set(by_key) and len(messages) == 26
    assert by_key[str(packets[0]["candid"])]["model_versions"]["photometry"].count(":") == 1
    dead = consume_all(bootstrap, dlq, 2)
    assert sorted(m.value() for m in dead) == sorted([b"not an alert", b"Obj\x01\x00broken container"])
    assert {dict(m.headers())["source_topic"].decode() for m in dead} == {topic}
    assert committed_total(bootstrap, group, topic) == 26  # every message committed once the sinks had it
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["messages"] == 26 and stats["dead_letters"] == 2 and stats["exit_code"] == 0 and stats["lag"]


def test_max_messages_commits_exactly_what_was_processed(kafka, unique, tmp_path):
    producer, bootstrap = kafka
    topic, group = unique("ztf"), unique("g")
    publish_packets(producer, topic, synthetic.make_packets(20, seed=6), PARTITIONS)
    out = tmp_path / "a.jsonl"
    assert main(_args(bootstrap, topic, group, tmp_path, "--out", str(out), "--max-messages", "7", "--batch-size", "4")) == 0
    assert len(out.read_text().splitlines()) == 7 and committed_total(bootstrap, group, topic) == 7
    assert main(_args(bootstrap, topic, group, tmp_path, "--out", str(out))) == 0  # the rest, then idle exit
    assert len(out.read_text().splitlines()) == 20 and committed_total(bootstrap, group, topic) == 20


def test_skyportal_failing_for_a_while_delays_but_loses_nothing(kafka, unique, tmp_path, recorded_server,
                                                                 shared_data, monkeypatch):  # fmt: skip
    producer, bootstrap = kafka
    packets = [p for p in itertools.islice(iter_packets(shared_data / "alerts/ztf_public_alerts.parquet"), 30)]
    objects = sorted({p["objectId"] for p in packets})
    ok = {"status": 200, "body": json.dumps({"status": "success", "data": []})}
    busy = {"status": 503, "body": "Service Unavailable"}
    routes = {}
    for obj in objects:
        routes[f"GET /api/sources/{obj}/annotations"] = [busy, busy, busy, ok]
        routes[f"POST /api/sources/{obj}/annotations"] = [busy, {"status": 200, "body": '{"status": "success", "data": {"id": 1}}'}]
    url, log = recorded_server(routes)
    monkeypatch.setenv("SKYPORTAL_TOKEN", "test-token")
    topic, group = unique("ztf"), unique("g")
    publish_packets(producer, topic, packets, PARTITIONS)
    settings = tmp_path / "stream.yaml"
    settings.write_text(f"skyportal_url: {url}\nskyportal_backoff_s: 0.05\nerrors_out: {tmp_path / 'errors.jsonl'}\n")
    assert main(_args(bootstrap, topic, group, tmp_path, "--config", str(settings))) == 0
    keys = [json.loads(line)["key"] for line in log.read_text().splitlines()]
    posted = {k.split("/")[3] for k in keys if k.startswith("POST")}
    assert posted == set(objects)  # every object annotated, after 4 failures each
    assert keys.count(f"GET /api/sources/{objects[0]}/annotations") == 4
    assert not (tmp_path / "errors.jsonl").exists()
    assert committed_total(bootstrap, group, topic) == 30


def test_one_backlog_shares_its_budget_across_publish_calls(kafka, unique):
    """Nothing is committed, so a Backlog of 2 kB lets two 1 kB messages of one partition through and holds the
    third back, whether it comes in the same call or the next (a fresh Backlog per call forgot the first)."""
    from confluent_kafka import Consumer

    producer, bootstrap = kafka
    topic, group = unique("paced"), unique("g")
    backlog = Backlog(Consumer({"bootstrap.servers": bootstrap, "group.id": group}), max_bytes_per_partition=2_000,
                      timeout_s=1.0)
    assert publish_messages(producer, topic, [("ZTF1", b"x" * 1000)] * 2, 1, backlog) == 2
    with pytest.raises(TimeoutError, match="committed nothing"):
        publish_messages(producer, topic, [("ZTF1", b"x" * 1000)], 1, backlog)
    assert sum(e[1] for e in backlog.in_flight[topic][0]) == 2000


def test_bad_settings_are_config_errors():
    from applecider_core.config import ConfigError

    with pytest.raises(ConfigError, match="no sink"):
        main(["--bootstrap-servers", "127.0.0.1:1", "--topic", "t", "--group-id", "g"])
