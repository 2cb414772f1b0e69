"""Where records go. Every sink is idempotent on ``candid``, so the replay of an uncommitted batch after a
crash duplicates nothing downstream:

- :class:`KafkaSink`: the output topic, keyed by candid (Avro, ``avro_output``); consumers of a compacted
  topic, or any reader de-duplicating on the key, see one record per alert.
- :class:`JsonLinesSink`: a file; on start it drops a torn last line and learns the keys already written.
- :class:`SkyPortalSink`: per object, one annotation under the configured origin (updated, not duplicated)
  and optionally ML classifications (updated in place).
- :class:`MongoSink`: ``bulk_write`` of ``$set classifications.applecider`` keyed by candid.

``write(records)`` returns when the sink holds the batch; it raises :class:`SinkError` for a failure that
may pass (the runner retries the batch and does not commit meanwhile). A record a sink rejects for good after
its own retries goes to the :class:`FailureLog` with the reason and the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .avro_output import encode_record

logger = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """A transient sink failure: the batch is not accepted (retried, not committed)."""


def record_key(record: Mapping[str, Any]) -> str:
    """The idempotency key: the candid, or for a record without one (undecodable message) a digest of its
    errors, which name the topic, partition and offset of the message."""
    if record.get("candid") is not None:
        return str(int(record["candid"]))
    return "error-" + hashlib.sha1(json.dumps(record.get("errors")).encode()).hexdigest()[:20]


class FailureLog:
    """Records a sink could not write after its retries: JSON lines ``{sink, reason, record}`` + an ERROR log."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.count = 0

    def add(self, sink: str, reason: str, record: Mapping[str, Any]) -> None:
        self.count += 1
        logger.error("%s could not write candid %s: %s", sink, record.get("candid"), reason)
        if self.path:
            with open(self.path, "a") as stream:
                stream.write(json.dumps({"sink": sink, "reason": reason, "record": record}) + "\n")
                stream.flush()
                os.fsync(stream.fileno())


class KafkaSink:
    """Produce each record to ``topic`` keyed by candid and wait until the brokers acknowledged the batch."""

    name = "kafka"

    def __init__(self, producer_config: Mapping[str, Any], topic: str, model_versions: Mapping[str, str],
                 flush_timeout_s: float = 60.0) -> None:  # fmt: skip
        from confluent_kafka import Producer

        self.producer = Producer({"acks": "all", "linger.ms": 20, **producer_config})
        self.topic, self.model_versions, self.flush_timeout_s = topic, dict(model_versions), flush_timeout_s

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.produce([(record_key(r).encode(), encode_record(r, self.model_versions), None) for r in records])

    def produce(self, messages: Sequence[tuple[bytes, bytes, list | None]]) -> None:
        failures: list[str] = []

        def delivered(error, _message) -> None:
            if error is not None:
                failures.append(str(error))

        for key, value, headers in messages:
            while True:
                try:
                    self.producer.produce(self.topic, value=value, key=key, headers=headers, on_delivery=delivered)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self.producer.poll(0.5)
        remaining = self.producer.flush(self.flush_timeout_s)
        if remaining or failures:
            raise SinkError(f"kafka topic {self.topic}: {remaining} undelivered, errors {failures[:3]}")

    def close(self) -> None:
        self.producer.flush(self.flush_timeout_s)


class DeadLetterSink(KafkaSink):
    """Raw bytes of undecodable messages, with headers naming where they came from and why."""

    name = "dead-letter"

    def __init__(self, producer_config: Mapping[str, Any], topic: str) -> None:
        super().__init__(producer_config, topic, {})

    def write_raw(self, dead: Sequence[tuple[Any, str]]) -> None:
        """``dead``: (confluent_kafka Message, reason) pairs."""
        self.produce([(m.key(), m.value(), [("source_topic", m.topic().encode()), ("partition", str(m.partition()).encode()),
                                            ("offset", str(m.offset()).encode()), ("reason", reason.encode())])
                      for m, reason in dead])  # fmt: skip


class JsonLinesSink:
    """Append records as JSON lines (fsync per batch), skipping keys the file already holds."""

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.written: set[str] = set()
        if self.path.exists():
            self._recover()
        self.stream = self.path.open("a")

    def _recover(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):  # a line torn by a crash was never part of a committed batch
            logger.warning("%s: dropping a torn last line (%d bytes)", self.path, len(data) - len(complete))
            with self.path.open("r+b") as stream:
                stream.truncate(len(complete))
        for line in complete.splitlines():
            self.written.add(record_key(json.loads(line)))

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        fresh = [r for r in records if record_key(r) not in self.written]
        self.stream.write("".join(json.dumps(r) + "\n" for r in fresh))
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.written.update(record_key(r) for r in fresh)

    def close(self) -> None:
        self.stream.close()
