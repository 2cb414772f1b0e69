"""Fault and scale-out tests: ``cider stream`` processes on one consumer group against the mock cluster,
all 2,095 real ZTF alerts of the shared bundle. Every wait is bounded; everything talks to 127.0.0.1 only.

The mock cluster keeps ~5 MB per partition, so the alerts are published paced by the group's committed
offsets (publish.Backlog): an uncommitted message is never truncated away, which is what a real broker's
retention guarantees too.
"""

from __future__ import annotations

import collections
import signal
import threading
import time

import pytest

from applecider_data import iter_packets
from applecider_fusion.classifier import Classifier
from applecider_stream.publish import Backlog, partition_of, publish_packets

from .conftest import FAST_GROUP, PARTITIONS, RELEASED_MODELS, committed_total, consume_all

pytestmark = pytest.mark.slow
BATCH = 64


@pytest.fixture(scope="module")
def real_packets(shared_data):
    packets = [p for p in iter_packets(shared_data / "alerts" / "ztf_public_alerts.parquet") if isinstance(p, dict)]
    assert len(packets) == 2095
    return packets


def _stream_args(bootstrap, topic, group, *extra):
    return ["--bootstrap-servers", bootstrap, "--topic", topic, "--group-id", group, "--models", str(RELEASED_MODELS),
            "--from-beginning", "--batch-size", str(BATCH), "--max-wait-s", "0.5", *FAST_GROUP, *extra]  # fmt: skip


def _publish_in_background(producer, bootstrap, topic, group, packets, corrupt_every=0):
    """Publish (paced) in a thread; corrupt messages interleaved every ``corrupt_every`` alerts."""
    from confluent_kafka import Consumer

    backlog = Backlog(Consumer({"bootstrap.servers": bootstrap, "group.id": group}), timeout_s=240)
    done: dict = {}

    def run() -> None:
        try:
            chunks = [packets[i:i + corrupt_every] for i in range(0, len(packets), corrupt_every)] if corrupt_every else [packets]
            for n, chunk in enumerate(chunks):  # one Backlog: the chunks share the budget (the mock keeps ~5 MB)
                publish_packets(producer, topic, chunk, PARTITIONS, backlog)
                if corrupt_every:
                    producer.produce(topic, value=b"corrupt %d" % n, key=b"corrupt", partition=n % PARTITIONS)
            producer.flush(30)
        except Exception as error:  # reported by the test
            done["error"] = error
        done["finished"] = True

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def test_two_consumers_kill_minus_9_and_restart_lose_nothing(kafka, unique, stream_process, real_packets):
    producer, bootstrap = kafka
    topic, group, dlq = unique("ztf"), unique("g"), unique("dlq")
    args = _stream_args(bootstrap, topic, group, "--dead-letter-topic", dlq, "--idle-exit-s", "15")
    first, second = stream_process("a", args), stream_process("b", args)
    thread, done = _publish_in_background(producer, bootstrap, topic, group, real_packets, corrupt_every=200)
    first.wait_records(timeout_s=240)  # at least one batch went through every sink
    first.process.send_signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL
    restarted = stream_process("a2", args)
    thread.join(timeout=400)
    assert not thread.is_alive() and "error" not in done, done
    assert second.wait(400) == 0 and restarted.wait(400) == 0
    outputs = {p.log.stem: p.records() for p in (first, second, restarted)}
    candids = collections.Counter(r["candid"] for records in outputs.values() for r in records if r["candid"])
    assert set(candids) == {p["candid"] for p in real_packets}  # none lost
    duplicated = {c for c, n in candids.items() if n > 1}
    killed = {r["candid"] for r in outputs["a"]}
    # a replay repeats only batches written but not committed: the killed consumer's last one, and at most one
    # more per rebalance whose commit the group refused
    assert len(duplicated) <= 2 * BATCH and len(duplicated - killed) <= BATCH, (len(duplicated), len(duplicated - killed))
    corrupt = [r for records in outputs.values() for r in records if r["candid"] is None]
    assert 11 <= len(corrupt) <= 11 + BATCH  # 11 corrupt messages became error records (a replay may repeat)
    dead = consume_all(bootstrap, dlq, 11, timeout_s=30)
    assert {m.value() for m in dead} == {b"corrupt %d" % n for n in range(11)}
    assert committed_total(bootstrap, group, topic) == 2095 + 11


def test_sigterm_finishes_the_batch_commits_and_exits_0(kafka, unique, stream_process, real_packets):
    producer, bootstrap = kafka
    topic, group = unique("ztf"), unique("g")
    proc = stream_process("c", _stream_args(bootstrap, topic, group))
    thread, _ = _publish_in_background(producer, bootstrap, topic, group, real_packets[:400])
    proc.wait_records(timeout_s=240)  # some batches went through every sink
    proc.process.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0
    written = len(proc.records())
    assert 0 < written and committed_total(bootstrap, group, topic) == written  # committed exactly what it wrote
    thread.join(timeout=1)  # the publisher may be waiting for room; it is a daemon thread


def test_history_stays_on_one_consumer_and_matches_sequential(kafka, unique, stream_process, real_packets):
    """Scale-out semantics: alerts keyed by objectId → one partition → one consumer, read in order; each
    record equals the sequential classification of the same alerts (same per-object history)."""
    producer, bootstrap = kafka
    per_object = collections.defaultdict(list)
    for packet in real_packets:
        per_object[packet["objectId"]].append(packet)
    chosen = sorted((p for ps in per_object.values() if len(ps) >= 2 for p in ps),
                    key=lambda p: (p["candidate"]["jd"], p["candid"]))[:300]
    topic, group = unique("ztf"), unique("g")
    assert len(producer.list_topics(topic, timeout=10).topics[topic].partitions) == PARTITIONS  # auto-created, empty
    args = _stream_args(bootstrap, topic, group, "--idle-exit-s", "10")
    first, second = stream_process("h1", args), stream_process("h2", args)
    for proc in (first, second):  # both members own their partitions before anything is published
        proc.wait_log("assigned partitions", timeout_s=240)
    _wait_for_split(first, second)
    thread, done = _publish_in_background(producer, bootstrap, topic, group, chosen)
    thread.join(timeout=300)
    assert "error" not in done and first.wait(300) == 0 and second.wait(300) == 0
    by_consumer = {name: {r["candid"]: r for r in p.records()} for name, p in (("h1", first), ("h2", second))}
    owners = collections.defaultdict(set)
    for name, records in by_consumer.items():
        for record in records.values():
            owners[record["objectId"]].add(name)
    assert all(len(names) == 1 for names in owners.values())  # one consumer per object
    assert {partition_of(o, PARTITIONS) for o in owners} <= set(range(PARTITIONS))
    sequential = {r["candid"]: r for r in Classifier.from_dir(RELEASED_MODELS).classify(chosen)}
    streamed = {**by_consumer["h1"], **by_consumer["h2"]}
    assert set(streamed) == set(sequential)
    for candid, record in sequential.items():
        assert (streamed[candid]["fused"] is None) == (record["fused"] is None), candid
        for name, p in (record["fused"] or {}).items():
            assert streamed[candid]["fused"][name] == pytest.approx(p, abs=1e-5), candid


def _wait_for_split(*procs, timeout_s: float = 60.0) -> None:
    """Until the latest assignment of every process holds PARTITIONS / len(procs) partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        latest = [[line for line in p.log.read_text().splitlines() if "assigned partitions" in line] for p in procs]
        if all(lines and lines[-1].count("[") - 1 == PARTITIONS // len(procs) for lines in latest):
            return
        time.sleep(0.2)
    raise AssertionError(f"partitions not split across {len(procs)} consumers in {timeout_s} s")
