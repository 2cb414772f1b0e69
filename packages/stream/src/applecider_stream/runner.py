"""The stream loop: consume a batch → decode → ``Classifier.stream`` → every sink → commit the batch's offsets.

At-least-once: offsets are committed (synchronously, exactly the batch's last offset + 1 per partition) only
after every sink accepted the batch and the dead letters are delivered; batches are committed in the order
they were consumed. A crash before the commit replays the batch, which the idempotent sinks absorb. A stop
request (SIGTERM/SIGINT) is honoured between batches: the batches in hand are finished and committed before
the consumer leaves the group.

Overlap: while batch k is classified, written and committed, the decode process
(:class:`~applecider_stream.decoders.DecodeProcess`) decodes batch k+1 (Avro → packets → Alerts), so one
consumer keeps two cores busy. Every Kafka call stays on the calling thread.

History across consumers: per-object photometry history lives in each process's Classifier cache. Producers
key alerts by objectId, so all alerts of one object land in one partition and are read, in order, by the one
consumer that owns it; after a rebalance or restart the new owner starts that object from the packet's own
30-day history (documented in docs/STREAM.md; tested).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from applecider_data import PacketError

from .decoders import DecodeProcess
from .settings import StreamSettings
from .sinks import DeadLetterSink, FailureLog, SinkError

logger = logging.getLogger(__name__)


def _where(message: Any) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"


class StreamError(RuntimeError):
    """The stream cannot go on without losing data (a sink kept failing): exit without committing."""


@dataclass
class StreamStats:
    messages: int = 0
    records: int = 0
    error_records: int = 0
    dead_letters: int = 0
    batches: int = 0
    sink_retries: int = 0
    started: float = field(default_factory=time.time)
    lag: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, total lag)

    def as_dict(self, failures: int) -> dict:
        elapsed = time.time() - self.started
        return {"messages": self.messages, "records": self.records, "error_records": self.error_records,
                "dead_letters": self.dead_letters, "batches": self.batches, "sink_retries": self.sink_retries,
                "sink_failures": failures, "elapsed_s": round(elapsed, 3),
                "messages_per_s": round(self.messages / elapsed, 2) if elapsed else 0.0, "lag": self.lag}  # fmt: skip


class StreamRunner:
    """Drives one consumer (``confluent_kafka.Consumer``, already subscribed) through the classifier to the sinks."""

    def __init__(self, consumer: Any, classifier: Any, decoding: DecodeProcess, sinks: Sequence[Any],
                 settings: StreamSettings, dead_letter: DeadLetterSink | None = None,
                 failures: FailureLog | None = None) -> None:  # fmt: skip
        self.consumer, self.classifier, self.decoding = consumer, classifier, decoding
        self.sinks, self.settings, self.dead_letter = list(sinks), settings, dead_letter
        self.failures = failures or FailureLog(None)
        self.stats = StreamStats()
        self._stop = False
        self._last_log = (time.time(), 0)

    def request_stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit it and return from :meth:`run` (signal-handler compatible)."""
        self._stop = True

    def run(self) -> StreamStats:
        limit, idle_since, consumed = self.settings.max_messages, time.time(), 0
        pending: tuple[list, Future] | None = None  # consumed and being decoded, not yet classified
        while not self._stop and (limit is None or consumed < limit):
            wanted = self.settings.batch_size if limit is None else min(self.settings.batch_size, limit - consumed)
            wait = 0.0 if pending is not None else self.settings.max_wait_s  # never hold a decoded batch back
            messages = [m for m in self.consumer.consume(num_messages=wanted, timeout=wait) if self._usable(m)]
            if messages:
                consumed += len(messages)
                idle_since = time.time()
            elif not self.consumer.assignment():  # idle time counts from the moment we own partitions
                idle_since = time.time()
            elif pending is None and self.settings.idle_exit_s is not None and time.time() - idle_since >= self.settings.idle_exit_s:
                logger.info("no message for %.1f s: stopping", self.settings.idle_exit_s)
                break
            if pending is not None:
                self._process(*pending)
                idle_since = time.time()  # a commit may be what the producer waits for
            pending = (messages, self.decoding.submit([(m.value() or b"", _where(m)) for m in messages])) if messages else None
            if time.time() - self._last_log[0] >= self.settings.log_interval_s:
                self._log_progress()
        if pending is not None:
            self._process(*pending)
        self._log_progress()
        return self.stats

    # ---- one batch -----------------------------------------------------------------------------------------
    def _usable(self, message: Any) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != error._PARTITION_EOF:
            logger.warning("consumer: %s", error)
        return False

    def _process(self, messages: Sequence[Any], decoded: Future) -> None:
        items, dead = [], []
        for message, message_items in zip(messages, decoded.result()):
            items.extend(message_items)
            reasons = [str(p) for p in message_items if isinstance(p, PacketError)]
            if reasons:
                dead.append((message, "; ".join(reasons)))
        records = list(self.classifier.stream(items, batch_size=max(len(items), 1)))
        for sink in self.sinks:
            self._with_retries(sink.name, lambda sink=sink: sink.write(records))
        if dead and self.dead_letter is not None:
            self._with_retries(self.dead_letter.name, lambda: self.dead_letter.write_raw(dead))
        self._commit(messages)
        self.stats.messages += len(messages)
        self.stats.records += len(records)
        self.stats.error_records += sum(r["top_class"] is None for r in records)
        self.stats.dead_letters += len(dead) if self.dead_letter is not None else 0
        self.stats.batches += 1

    def _with_retries(self, name: str, write: Any) -> None:
        for attempt in range(self.settings.sink_retries + 1):
            try:
                write()
                return
            except SinkError as error:
                if attempt == self.settings.sink_retries:
                    raise StreamError(f"sink {name} still failing after {attempt} retries: {error}") from None
                delay = min(2.0**attempt, 30.0)
                logger.warning("sink %s failed (%s); retrying the batch in %.0f s (not committed)", name, error, delay)
                self.stats.sink_retries += 1
                time.sleep(delay)

    def _commit(self, messages: Sequence[Any]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        ends: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic(), m.partition())
            ends[key] = max(ends.get(key, -1), m.offset() + 1)
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=False)
        except KafkaException as error:  # e.g. the partitions moved in a rebalance: the new owner replays
            logger.warning("commit failed (%s); the batch will be replayed by the partitions' owner", error)

    # ---- monitoring ------------------------------------------------------------------------------------------
    def lag(self) -> int:
        """Messages behind the high watermark over the assigned partitions."""
        total = 0
        assignment = self.consumer.assignment()
        for tp, position in zip(assignment, self.consumer.position(assignment) if assignment else []):
            low, high = self.consumer.get_watermark_offsets(tp, timeout=2.0, cached=False)
            total += max(high - (position.offset if position.offset >= 0 else low), 0)
        return total

    def _log_progress(self) -> None:
        now, seen = time.time(), self.stats.messages
        rate = (seen - self._last_log[1]) / max(now - self._last_log[0], 1e-9)
        lag = self.lag()
        self.stats.lag.append((round(now - self.stats.started, 2), lag))
        logger.info("stream: %d messages, %.1f/s recently, %.1f/s overall, lag %d, %d dead letters, %d sink failures",
                    seen, rate, seen / max(now - self.stats.started, 1e-9), lag, self.stats.dead_letters,
                    self.failures.count)  # fmt: skip
        self._last_log = (now, seen)
