"""Kafka fixtures: librdkafka's in-process mock cluster (real Kafka protocol over TCP on 127.0.0.1) and
``cider stream`` processes started against it. Every wait here is bounded in time."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

RELEASED_MODELS = REPO_ROOT / "models"
PARTITIONS = 4  # the mock cluster auto-creates topics with 4 partitions
# short group timeouts so that a killed member is noticed in seconds, not librdkafka's default 45 s
FAST_GROUP = ["--kafka-option", "session.timeout.ms=6000", "--kafka-option", "heartbeat.interval.ms=500"]


@pytest.fixture(scope="module")
def kafka():
    """(admin producer that owns the mock cluster, bootstrap address)."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    producer = confluent_kafka.Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "", "log_level": 2})
    brokers = producer.list_topics(timeout=10).brokers.values()
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)
    assert bootstrap.startswith("127.0.0.1:")
    yield producer, bootstrap
    producer.flush(10)


_names = itertools.count()


@pytest.fixture
def unique():
    """Fresh topic/group names per test (the cluster is shared by a module)."""
    n = next(_names)
    return lambda name: f"{name}-{n}-{time.monotonic_ns()}"


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    """Every message of ``topic`` from the beginning (stops at ``expected`` or after ``timeout_s``)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    messages, deadline = [], time.monotonic() + timeout_s
    while len(messages) < expected and time.monotonic() < deadline:
        messages.extend(m for m in consumer.consume(500, 0.5) if m.error() is None)
    consumer.close()
    return messages


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    offsets = watcher.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    watcher.close()
    return sum(max(tp.offset, 0) for tp in offsets)


class StreamProcess:
    """One ``cider stream`` process (stderr to a log file we can wait on)."""

    def __init__(self, folder: Path, name: str, args: list[str]) -> None:
        self.log = folder / f"{name}.log"
        self.out = folder / f"{name}.jsonl"
        self.stats = folder / f"{name}.stats.json"
        command = [sys.executable, "-m", "applecider_core.cli", "stream", *args, "--out", str(self.out),
                   "--stats-out", str(self.stats), "--threads", "1", "--log-interval-s", "1"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log.open("w"), cwd=REPO_ROOT)

    def wait_log(self, text: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{self.log.name}: no {text!r} within {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def wait_records(self, timeout_s: float = 240.0) -> None:
        """Until the process has written records (a batch went through every sink), it exits, or time runs out."""
        deadline = time.monotonic() + timeout_s
        while not self.out.exists() or not self.out.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"{self.log.name}: no record written within {timeout_s} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def wait(self, timeout_s: float = 240.0) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"{self.log.name} did not finish in {timeout_s} s:\n{self.log.read_text()[-3000:]}") from None

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.out.read_text().splitlines()] if self.out.exists() else []


@pytest.fixture
def stream_process(tmp_path):
    started: list[StreamProcess] = []

    def start(name: str, args: list[str]) -> StreamProcess:
        started.append(StreamProcess(tmp_path, name, args))
        return started[-1]

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait(timeout=10)
