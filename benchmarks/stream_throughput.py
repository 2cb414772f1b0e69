"""End-to-end stream throughput: produce → consume → classify → Kafka output, on librdkafka's mock cluster.

Rows: sequential ``Classifier.stream`` in this process over decoded packets (baseline, no Kafka, 1 torch
thread); one ``cider stream`` process (1 torch thread + its decode process); two processes in one group (the
same each); with ``--ray`` also sequential ``cider classify`` and ``cider classify --engine ray`` (2 workers)
on the shared parquet. Alerts/s = alerts / (first publish → last record on the output topic). Messages are
Avro-encoded before the clock starts (the survey, not us, encodes them) and published keyed by objectId,
paced by the group's commits (the mock keeps ~5 MB per partition). Consumers fetch with
``fetch.wait.max.ms=10``: the mock answers an empty fetch only after the full wait (a real broker answers as
soon as data arrives). Consumer lag (published − committed) is sampled every second and printed as a series.
The 1-minute load average is printed before and after every row.

    .venv/bin/python benchmarks/stream_throughput.py [--alerts 2095] [--batch-size 64] [--ray]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from applecider_core.cli import cpu_model
from applecider_data import iter_packets
from applecider_fusion.classifier import Classifier
from applecider_stream.publish import Backlog, encode_packets, publish_messages

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("APPLECIDER_SHARED_DATA", REPO.parent / "shared" / "data"))
PARQUET = SHARED / "alerts" / "ztf_public_alerts.parquet"
PARTITIONS = 4
FAST_FETCH = "fetch.wait.max.ms=10"


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def sequential(packets, batch_size: int) -> float:
    torch.set_num_threads(1)
    classifier = Classifier.from_dir(REPO / "models")
    start = time.perf_counter()
    n = sum(1 for _ in classifier.stream(packets, batch_size=batch_size))
    return n / (time.perf_counter() - start)


def streamed(producer, bootstrap: str, messages, consumers: int, batch_size: int, tag: str) -> tuple[float, list]:
    from confluent_kafka import Consumer, TopicPartition

    topic, group, out = f"in-{tag}", f"g-{tag}", f"out-{tag}"
    folder = Path(tempfile.mkdtemp(prefix="stream_bench_"))
    producer.list_topics(topic, timeout=10)  # the mock creates the (empty) topic so the group can be assigned
    procs = [subprocess.Popen([sys.executable, "-m", "applecider_core.cli", "stream", "--bootstrap-servers", bootstrap,
                               "--topic", topic, "--group-id", group, "--models", str(REPO / "models"),
                               "--output-topic", out, "--from-beginning", "--batch-size", str(batch_size),
                               "--max-wait-s", "0.2", "--threads", "1", "--idle-exit-s", "5",
                               "--kafka-option", "session.timeout.ms=6000", "--kafka-option", FAST_FETCH],
                              stderr=(folder / f"c{i}.log").open("w")) for i in range(consumers)]  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all("assigned partitions" in (folder / f"c{i}.log").read_text() for i in range(consumers)):
        time.sleep(0.2)
    time.sleep(4)  # let the group settle (the mock's initial rebalance delay is 3 s)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{tag}", "auto.offset.reset": "earliest",
                       "fetch.wait.max.ms": 10})  # fmt: skip
    reader.subscribe([out])
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    start, lag, seen = time.perf_counter(), [], set()
    publisher = threading.Thread(target=publish_messages, args=(producer, topic, messages, PARTITIONS,
                                                                Backlog(watcher)), daemon=True)  # fmt: skip
    publisher.start()
    next_sample = start
    while len(seen) < len(messages) and time.perf_counter() - start < 900:
        seen.update(m.key() for m in reader.consume(1000, 0.2) if m.error() is None)
        if time.perf_counter() >= next_sample:
            committed = watcher.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=5)
            highs = [watcher.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in range(PARTITIONS)]
            lag.append((round(time.perf_counter() - start), sum(h - max(c.offset, 0) for h, c in zip(highs, committed))))
            next_sample += 1.0
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.wait(timeout=120)
    reader.close()
    return len(seen) / elapsed, lag


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds incl. start-up, the seconds `cider classify` reports for reading + classifying)."""
    start = time.perf_counter()
    done = subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    reported = re.search(r"records \(\d+ without a classification\) in ([\d.]+)s", done.stderr)
    if reported is None:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return wall, float(reported.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2095)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="stream batch (64: two batches fit the mock's paced backlog of ~160 alerts)")
    parser.add_argument("--ray", action="store_true", help="also time the Ray backfill against cider classify")
    args = parser.parse_args()
    import confluent_kafka

    if not PARQUET.is_file():
        raise SystemExit(f"{PARQUET} not found (set APPLECIDER_SHARED_DATA)")
    packets = [p for p in iter_packets(PARQUET) if isinstance(p, dict)][: args.alerts]
    messages = list(encode_packets(packets))
    producer = confluent_kafka.Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "", "log_level": 2})
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in producer.list_topics(timeout=10).brokers.values())
    print(f"{len(packets)} real alerts, stream batch {args.batch_size}, {cpu_model()}, {os.cpu_count()} CPUs")
    rows, lags = [], {}
    before = load()
    base = sequential(packets, args.batch_size)
    rows.append(("Classifier.stream, in process, 1 thread (baseline)", base, "", before, load()))
    for consumers in (1, 2):
        before = load()
        rate, lags[consumers] = streamed(producer, bootstrap, messages, consumers, args.batch_size, f"c{consumers}")
        rows.append((f"cider stream, {consumers} consumer(s) in one group, end to end", rate, "", before, load()))
    if args.ray:
        cli = [sys.executable, "-m", "applecider_core.cli", "classify", str(PARQUET), "--models", str(REPO / "models"),
               "--no-progress", "--out", os.devnull, "--threads", "1"]  # fmt: skip
        alerts = sum(1 for _ in iter_packets(PARQUET))
        for name, command in (("cider classify (sequential)", cli),
                              ("cider classify --engine ray, 2 workers", [*cli, "--engine", "ray", "--ray-workers", "2"])):
            before = load()
            wall, reported = timed(command)
            rows.append((f"{name}, {alerts} parquet rows", alerts / wall, f"{alerts / reported:,.1f}", before, load()))
    print("\n| path | alerts/s (wall, incl. start-up for classify) | alerts/s (classify's own timer) | × baseline | load before → after |")
    print("|---|---|---|---|---|")
    for name, rate, own, before, after in rows:
        print(f"| {name} | {rate:,.1f} | {own or '–'} | {rate / base:.2f} | {before} → {after} |")
    for consumers, series in lags.items():
        print(f"\nlag over time, {consumers} consumer(s) (s, messages): {json.dumps(series)}")


if __name__ == "__main__":
    main()
