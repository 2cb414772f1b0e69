"""End-to-end throughput of fused classification (``Classifier.stream``) on the real alerts of the bundle.

    .venv/bin/python benchmarks/classify_throughput.py [--models models | --untrained paper]
        [--engines torch onnxruntime] [--threads 1 2] [--batches 1 64 256] [--limit N] [--busy]
        [--overlap on off] [--modalities photometry images]

Input: every packet of ../shared/data/alerts (the alert parquet and the Avro folder, ~2,000 real ZTF alerts;
``--limit`` keeps the first N), read from disk in each run, exactly as ``cider classify`` does. Each
configuration (engine × threads × overlap × batch size) runs in a fresh process (so its peak resident memory
is its own); the table gives the wall-clock alerts/s, the process's CPU time per alert (all its threads:
the figure other processes on the machine disturb least) and the time spent in each stage: reading
(fastavro/parquet → dicts), decoding (packets → records), each model's preprocessing and forward pass, and
the fusion. ``--overlap on`` (``Classifier.stream(overlap=True)``, ``cider classify --overlap``) reads and decodes in a background thread
while the models run, so those two stages overlap the others and the stages add up to more than the wall
time. Ratios are against the first row, measured in the same run. ``--untrained PRESET`` times freshly
initialised models of that preset (``paper``: the paper-size AstroMiNN with its ConvNeXt image branch; the
released models are ``small``); speed does not depend on the weights. ``onnxruntime`` engines run the
models exported by ``cider export onnx`` (done here into runs/onnx/ first, unless done before). ``--busy``
runs one busy-looping process (bounded by the run) beside every measurement: the thread-policy test of a
loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from applecider_core.cli import cpu_model

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("APPLECIDER_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCES = [DATA / "alerts" / "ztf_public_alerts.parquet", DATA / "alerts" / "avro"]
BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(items: Iterator, timings: Any) -> Iterator:
    """``items``, the seconds spent producing each added to ``timings`` as stage "read"."""
    while True:
        start = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        timings.add("read", start)
        yield item


def measure(models: str, batch_size: int, threads: int, modalities: list[str], engine: str, limit: int,
            overlap: bool) -> dict:
    """One configuration, in this process: seconds per stage, alerts/s, CPU time and peak RSS."""
    from itertools import islice

    from applecider_data import iter_packets
    from applecider_fusion import Classifier

    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
    classifier = Classifier.from_dir(models, modalities=modalities, engine=engine, threads=threads)
    packets = timed(islice(iter_packets(SOURCES), limit or None), classifier.timings)
    start, cpu = time.perf_counter(), time.process_time()
    records = sum(1 for _ in classifier.stream(packets, batch_size=batch_size, overlap=overlap))
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    stages = dict(classifier.timings.seconds)
    peak_mib = peak_rss_mib()
    return {"batch": batch_size, "engine": engine, "threads": threads, "overlap": overlap, "alerts": records,
            "seconds": total, "cpu_seconds": cpu, "alerts_per_s": records / total, "stages": stages,
            "peak_rss_mib": peak_mib}


def run_one(models: str, engine: str, threads: int, batch: int, overlap: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--one", str(batch), "--models", models, "--engines", engine,
               "--threads", str(threads), "--limit", str(args.limit), "--modalities", *args.modalities,
               "--overlap", overlap]
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=600)]) if args.busy else None
    try:
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return json.loads(output.strip().splitlines()[-1])


def compute_floor(models: str, modalities: list[str]) -> str:
    """The models' multiply-adds per alert (torch FlopCounterMode on the first 256 real alerts, batched and
    padded as the runners feed them) and this machine's single-thread fp32 sgemm rate: their ratio bounds
    the alerts/s of one core running nothing but the models' arithmetic at sgemm speed."""
    from itertools import islice

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from applecider_data import iter_packets, packet_to_alert
    from applecider_fusion.runners import load_runner

    torch.set_num_threads(1)
    alerts = [packet_to_alert(p) for p in islice(iter_packets(SOURCES), 256) if isinstance(p, dict)]
    macs = {}
    for modality in modalities:
        runner = load_runner(modality, Path(models) / modality)
        inputs, _, _ = runner.prepare([a.light_curve for a in alerts] if modality == "photometry" else alerts)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            runner.engine(inputs)
        macs[modality] = counter.get_total_flops() / 2 / len(alerts)
    matrix = torch.randn(2048, 2048)
    matrix @ matrix
    start = time.perf_counter()
    for _ in range(5):
        matrix @ matrix
    sgemm = 5 * 2048**3 / (time.perf_counter() - start)
    total = sum(macs.values())
    parts = ", ".join(f"{m} {v / 1e6:.1f}" for m, v in macs.items())
    return (f"# fp32 floor: {total / 1e6:.1f} M multiply-adds per alert ({parts}); sgemm 2048³ on 1 thread: "
            f"{sgemm / 1e9:.1f} GMAC/s → at most {sgemm / total:.0f} alerts/s per core for the models' arithmetic "
            f"alone")


def prepare_models(args: argparse.Namespace) -> dict[str, str]:
    """Models folder per engine: the save_pretrained folders (torch) and their ONNX export."""
    models = args.models
    if args.untrained:
        from applecider_data import iter_packets, packet_to_alert
        from applecider_fusion.untrained import write_untrained_models

        packets = [p for p, _ in zip(iter_packets(SOURCES), range(256)) if isinstance(p, dict)]
        models = str(REPO / "runs" / f"untrained_{args.untrained}")
        write_untrained_models(models, [packet_to_alert(p) for p in packets], preset=args.untrained)
    if any(e != "torch" for e in args.engines):  # the exported models next to the weights
        from applecider_fusion.export import export_models

        onnx = REPO / "runs" / "onnx" / Path(models).name
        if args.reexport or not (onnx / "export.json").is_file():
            export_models(models, onnx, quantize=True, modalities=args.modalities)
        return {"torch": models, "onnxruntime": str(onnx), "onnxruntime-int8": str(onnx)}
    return {"torch": models}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(REPO / "models"))
    parser.add_argument("--untrained", metavar="PRESET", help="time untrained models of this preset instead")
    parser.add_argument("--engines", nargs="+", default=["torch"],
                        choices=("torch", "onnxruntime", "onnxruntime-int8"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--limit", type=int, default=0, help="classify only the first N packets (0: all)")
    parser.add_argument("--busy", action="store_true", help="one busy-looping process beside each measurement")
    parser.add_argument("--reexport", action="store_true", help="export again even if runs/onnx/<name> exists")
    parser.add_argument("--modalities", nargs="+", default=["photometry", "images"])
    parser.add_argument("--overlap", nargs="+", default=["off"], choices=("on", "off"),
                        help="decode the next batches in a background thread while the models run (default off)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one configuration
    args = parser.parse_args(argv)
    if not SOURCES[0].is_file():
        print(f"public alerts not found under {DATA} (set APPLECIDER_SHARED_DATA); nothing to measure")
        return 0
    if args.one:
        print(json.dumps(measure(args.models, args.one, args.threads[0], args.modalities, args.engines[0],
                                 args.limit, args.overlap[0] == "on")))
        return 0
    models = prepare_models(args)
    rows = [run_one(models[engine], engine, threads, batch, overlap, args) for engine in args.engines
            for threads in args.threads for overlap in args.overlap for batch in args.batches]
    stages = sorted({s for r in rows for s in r["stages"]}, key=lambda s: (s != "read", s != "decode", s))
    print(f"# classify throughput — {time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end, models {models['torch']} ({'+'.join(args.modalities)})"
          + ("; one busy process beside each run" if args.busy else ""))
    print(f"# command: python benchmarks/classify_throughput.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    header = ["engine", "threads", "overlap", "batch", "alerts", "alerts/s", "× first row", "CPU ms/alert",
              "peak MiB"]
    header += [f"{s} ms/alert" for s in stages]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    base = rows[0]["alerts_per_s"]
    for r in rows:
        cells = [r["engine"], str(r["threads"]), "on" if r["overlap"] else "off", str(r["batch"]), str(r["alerts"]),
                 f"{r['alerts_per_s']:.1f}", f"{r['alerts_per_s'] / base:.2f}",
                 f"{1000 * r['cpu_seconds'] / r['alerts']:.2f}", f"{r['peak_rss_mib']:.0f}"]
        cells += [f"{1000 * r['stages'].get(s, 0.0) / r['alerts']:.2f}" for s in stages]
        print("| " + " | ".join(cells) + " |")
    print(compute_floor(models["torch"], args.modalities))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
