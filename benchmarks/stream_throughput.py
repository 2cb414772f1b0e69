"""End-to-end stream throughput: produce → consume → classify → Kafka output, on librdkafka's mock cluster.

Rows: sequential ``Classifier.stream`` in this process (baseline, no Kafka); one ``cider stream`` process
(2 torch threads); two processes in one group (1 thread each); optionally the Ray backfill (``--ray``) beside
sequential ``cider classify`` on the same parquet. Alerts/s = alerts / (first publish → last record on the
output topic). Messages are Avro-encoded before the clock starts (the survey, not us, encodes them) and
published keyed by objectId, paced by the group's commits (the mock keeps ~5 MB per partition). Consumer lag
(published − committed) is sampled every second and printed as a series.

    .venv/bin/python benchmarks/stream_throughput.py [--alerts 2095] [--batch-size 256] [--ray]
"""

from __future__ import annotations

import argparse
import json
import os
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


def sequential(packets, batch_size: int) -> float:
    torch.set_num_threads(2)
    classifier = Classifier.from_dir(REPO / "models")
    start = time.perf_counter()
    n = sum(1 for _ in classifier.stream(packets, batch_size=batch_size))
    return n / (time.perf_counter() - start)


def streamed(producer, bootstrap: str, messages, consumers: int, batch_size: int, tag: str) -> tuple[float, list]:
    from confluent_kafka import Consumer, TopicPartition

    topic, group, out = f"in-{tag}", f"g-{tag}", f"out-{tag}"
    threads = str(2 // consumers)
    folder = Path(tempfile.mkdtemp(prefix="stream_bench_"))
    producer.list_topics(topic, timeout=10)  # the mock creates the (empty) topic so the group can be assigned
    procs = [subprocess.Popen([sys.executable, "-m", "applecider_core.cli", "stream", "--bootstrap-servers", bootstrap,
                               "--topic", topic, "--group-id", group, "--models", str(REPO / "models"),
                               "--output-topic", out, "--from-beginning", "--batch-size", str(batch_size),
                               "--max-wait-s", "0.2", "--threads", threads, "--idle-exit-s", "5",
                               "--kafka-option", "session.timeout.ms=6000"],
                              stderr=(folder / f"c{i}.log").open("w")) for i in range(consumers)]  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all("assigned partitions" in (folder / f"c{i}.log").read_text() for i in range(consumers)):
        time.sleep(0.2)
    time.sleep(4)  # let the group settle (the mock's initial rebalance delay is 3 s)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{tag}", "auto.offset.reset": "earliest"})
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


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2095)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--ray", action="store_true", help="also time the Ray backfill against cider classify")
    args = parser.parse_args()
    import confluent_kafka

    if not PARQUET.is_file():
        raise SystemExit(f"{PARQUET} not found (set APPLECIDER_SHARED_DATA)")
    packets = [p for p in iter_packets(PARQUET) if isinstance(p, dict)][: args.alerts]
    messages = list(encode_packets(packets))
    producer = confluent_kafka.Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "", "log_level": 2})
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in producer.list_topics(timeout=10).brokers.values())
    print(f"{len(packets)} real alerts, batch {args.batch_size}, {cpu_model()}, load {open('/proc/loadavg').read().split()[:3]}")
    base = sequential(packets, args.batch_size)
    rows = [("Classifier.stream, in process (baseline)", base)]
    lags = {}
    for consumers in (1, 2):
        rate, lags[consumers] = streamed(producer, bootstrap, messages, consumers, args.batch_size, f"c{consumers}")
        rows.append((f"cider stream, {consumers} consumer(s), end to end", rate))
    if args.ray:
        cli = [sys.executable, "-m", "applecider_core.cli", "classify", str(PARQUET), "--models", str(REPO / "models"),
               "--no-progress", "--out", "/dev/null", "--threads", "2"]  # fmt: skip
        rows.append(("cider classify (sequential, incl. start-up)", len(packets) / timed(cli)))
        rows.append(("cider classify --engine ray, 2 workers (incl. start-up)",
                     len(packets) / timed([*cli[:-2], "--threads", "1", "--engine", "ray", "--ray-workers", "2"])))
    print("\n| path | alerts/s | × baseline |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.1f} | {rate / base:.2f} |")
    for consumers, series in lags.items():
        print(f"\nlag over time, {consumers} consumer(s) (s, messages): {json.dumps(series)}")
    print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
