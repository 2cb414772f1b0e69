"""Publish alert packets to a Kafka topic the way surveys do: one Avro container per message, keyed by objectId.

Every alert of an object goes to one partition (``crc32(objectId) % partitions``, the same rule as
librdkafka's default ``consistent_random`` partitioner for keyed messages), which is what keeps per-object
history on one consumer (see runner.py). Used by the tests, the benchmark and to replay an archive.

``backlog``: optional pacing by a consumer group's committed offsets, for brokers with little retention
(librdkafka's mock cluster keeps ~5 MB per partition): a message is produced only while the group's
uncommitted bytes in its partition stay under the budget, so no uncommitted message is ever truncated away.
"""

from __future__ import annotations

import time
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from applecider_data import PacketError
from applecider_data.writers import packet_to_avro


@dataclass
class Backlog:
    """Pacing: ``watcher`` is a Consumer with the group's ``group.id`` (used only for ``committed()``).

    It remembers what it let through and is not yet committed (``in_flight``), so successive publish calls with
    one Backlog share one budget (a fresh Backlog per call would forget the previous call's uncommitted bytes).
    """

    watcher: Any
    max_bytes_per_partition: int = 3_000_000
    timeout_s: float = 300.0
    in_flight: dict[str, dict[int, list[list[int]]]] = field(default_factory=dict)  # topic → partition → entries


def partition_of(object_id: str, partitions: int) -> int:
    return zlib.crc32(object_id.encode()) % partitions


def encode_packets(packets: Iterable[Mapping[str, Any] | PacketError]) -> Iterator[tuple[str, bytes]]:
    """(objectId, one-alert Avro container) per packet; PacketErrors are skipped."""
    for packet in packets:
        if not isinstance(packet, PacketError):
            yield str(packet["objectId"]), packet_to_avro(packet)


def publish_packets(producer: Any, topic: str, packets: Iterable[Mapping[str, Any] | PacketError], partitions: int,
                    backlog: Backlog | None = None, flush_timeout_s: float = 60.0) -> int:  # fmt: skip
    """Produce every packet (PacketErrors are skipped) and flush; returns the number produced."""
    return publish_messages(producer, topic, encode_packets(packets), partitions, backlog, flush_timeout_s)


def publish_messages(producer: Any, topic: str, messages: Iterable[tuple[str, bytes]], partitions: int,
                     backlog: Backlog | None = None, flush_timeout_s: float = 60.0,
                     read_ahead: int = 200) -> int:  # fmt: skip
    """Produce ``(objectId, value)`` messages keyed by objectId, paced by ``backlog`` if given, and flush.

    Paced, each partition's messages go out in their input order as soon as that partition has room, so a
    full partition holds back only its own messages (up to ``read_ahead`` messages are read ahead)."""
    from confluent_kafka import TopicPartition

    failures: list[str] = []
    # partition -> [[offset or -1, bytes]] of produced messages the group has not committed yet
    in_flight = backlog.in_flight.setdefault(topic, defaultdict(list)) if backlog is not None else defaultdict(list)
    waiting: dict[int, deque[tuple[str, bytes]]] = defaultdict(deque)  # partition -> messages not yet produced

    def drain(partition: int) -> int:
        """Produce the partition's waiting messages while it has room; how many went out."""
        queue, sent = waiting[partition], 0
        while queue and (backlog is None or not in_flight[partition] or
                         sum(e[1] for e in in_flight[partition]) + len(queue[0][1]) <= backlog.max_bytes_per_partition):
            object_id, value = queue.popleft()
            entry = [-1, len(value)]

            def on_delivery(error, message, entry=entry) -> None:
                if error is not None:
                    failures.append(f"key {message.key()!r}: {error}")
                entry[0] = message.offset() if error is None else -1

            producer.produce(topic, value=value, key=object_id.encode(), partition=partition, on_delivery=on_delivery)
            in_flight[partition].append(entry)
            producer.poll(0)
            sent += 1
        return sent

    last_refresh = [0.0]

    def refresh() -> int:
        """Learn the group's commits for the partitions with waiting messages and produce what now fits."""
        full = sorted(p for p, queue in waiting.items() if queue)
        producer.poll(0)
        for tp in backlog.watcher.committed([TopicPartition(topic, p) for p in full], timeout=10):
            in_flight[tp.partition] = [e for e in in_flight[tp.partition] if e[0] < 0 or e[0] >= tp.offset]
        last_refresh[0] = time.monotonic()
        return sum(drain(p) for p in full)

    def wait_for_room(most_waiting: int) -> None:
        stalled_since = time.monotonic()
        while sum(map(len, waiting.values())) > most_waiting:
            if refresh():
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > backlog.timeout_s:
                raise TimeoutError(f"{topic}: the group committed nothing for {backlog.timeout_s} s")
            else:
                time.sleep(0.02)

    produced = 0
    for object_id, value in messages:
        partition = partition_of(object_id, partitions)
        waiting[partition].append((object_id, value))
        drain(partition)
        if backlog is not None:
            if any(waiting.values()) and time.monotonic() - last_refresh[0] > 0.02:
                refresh()
            wait_for_room(read_ahead)
        produced += 1
    if backlog is not None:
        wait_for_room(0)
    remaining = producer.flush(flush_timeout_s)
    if remaining or failures:
        raise RuntimeError(f"{topic}: {remaining} messages not delivered within {flush_timeout_s} s; "
                           f"{len(failures)} failed: {failures[:3]}")
    return produced
