"""End-to-end throughput of fused classification (``Classifier.stream``) on the real alerts of the bundle.

    .venv/bin/python benchmarks/classify_throughput.py [--models models | --untrained paper]
        [--engines torch onnxruntime onnxruntime,images=onnxruntime-int8-static torch-bf16] [--threads 1 2]
        [--batches 1 64 256] [--workers 1 2] [--limit N] [--busy] [--overlap on off] [--modalities photometry images]

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
released models are ``small``); speed does not depend on the weights. The models are copied to (or, untrained,
written in) runs/bench_models/<name> and exported there by ``cider export onnx --quantize int8 int8-static``
(static int8 calibrated on the last 256 alerts with cutouts of the bundle), so that every engine, and a choice
per modality (``onnxruntime,images=onnxruntime-int8-static``), runs from one folder. ``--workers N`` runs N
processes side by side, as N consumers of one group would: the packets are split by object (each object's
alerts in one worker, shards of equal size) into parquet shards under a temporary folder, every worker loads
its models, and all start classifying together; the row gives the total alerts over the slowest worker's
time. ``--busy`` runs one busy-looping process (bounded by the run) beside every measurement: the thread-policy
test of a loaded machine. The last lines give the models' multiply-adds per alert and this machine's
single-thread matrix-product rates in fp32 (torch/MKL and ONNX Runtime/MLAS), bf16 (torch/oneDNN) and int8
(ONNX Runtime ``MatMulInteger``, u8×s8): the arithmetic ceiling of each route.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
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
            overlap: bool, sources: list[Path], barrier: bool) -> dict:
    """One configuration, in this process: seconds per stage, alerts/s, CPU time and peak RSS. With ``barrier``
    the models are loaded, "ready" is printed and the clock starts at the next line of stdin."""
    from itertools import islice

    from applecider_core.engines import set_torch_threads
    from applecider_data import iter_packets
    from applecider_fusion import Classifier

    set_torch_threads(engine, threads)
    classifier = Classifier.from_dir(models, modalities=modalities, engine=engine, threads=threads)
    if barrier:
        print("ready", flush=True)
        sys.stdin.readline()
    packets = timed(islice(iter_packets(sources), limit or None), classifier.timings)
    start, cpu = time.perf_counter(), time.process_time()
    records = sum(1 for _ in classifier.stream(packets, batch_size=batch_size, overlap=overlap))
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    stages = dict(classifier.timings.seconds)
    peak_mib = peak_rss_mib()
    return {"batch": batch_size, "engine": engine, "threads": threads, "overlap": overlap, "alerts": records,
            "seconds": total, "cpu_seconds": cpu, "alerts_per_s": records / total, "stages": stages,
            "peak_rss_mib": peak_mib}


def shard_sources(limit: int, workers: int, folder: Path) -> list[list[Path]]:
    """The first ``limit`` packets (0: all; the alert parquet's rows, then the Avro files) split into ``workers``
    sources of equal size: parquet rows by object (each object's alerts in one shard, a parquet file written
    under ``folder``), Avro files in turn; one list of sources per worker."""
    import pyarrow.parquet as pq

    table = pq.read_table(SOURCES[0])
    table = table.slice(0, limit or table.num_rows)
    avro = sorted(SOURCES[1].glob("*.avro"))[: (limit or len(table) + 10**6) - len(table)]
    shards: list[list[int]] = [[] for _ in range(workers)]
    owner: dict[str, int] = {}
    for row, object_id in enumerate(table.column("objectId").to_pylist()):
        if object_id not in owner:
            owner[object_id] = min(range(workers), key=lambda k: len(shards[k]))
        shards[owner[object_id]].append(row)
    paths = []
    for k, rows in enumerate(shards):
        path = folder / f"shard{k}.parquet"
        pq.write_table(table.take(rows), path)
        paths.append([path, *avro[k::workers]])
    return paths


def run_one(models: str, engine: str, threads: int, batch: int, overlap: str, workers: int,
            args: argparse.Namespace) -> dict:
    """One configuration in fresh processes: one worker on the first ``--limit`` packets, or ``workers``
    started together on object shards of them."""
    command = [sys.executable, __file__, "--one", str(batch), "--models", models, "--engines", engine,
               "--threads", str(threads), "--modalities", *args.modalities, "--overlap", overlap]
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=600)]) if args.busy else None
    folder, children = Path(tempfile.mkdtemp(prefix="cider_shards_")), []
    try:
        if workers == 1:
            output = subprocess.run([*command, "--limit", str(args.limit)], check=True, capture_output=True,
                                    text=True).stdout
            return {**json.loads(output.strip().splitlines()[-1]), "workers": 1}
        shards = shard_sources(args.limit, workers, folder)
        children = [subprocess.Popen([*command, "--barrier", "--sources", *map(str, shard)], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE) for shard in shards]
        for child in children:  # every worker has loaded its models
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a worker failed before classifying: {command}")
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children]
        if any(child.returncode for child in children):
            raise RuntimeError(f"a worker failed: {command}")
        return combine(results)
    finally:
        for child in children:
            if child.poll() is None:  # a worker left waiting when another failed
                child.kill()
                child.wait()
        shutil.rmtree(folder, ignore_errors=True)
        if busy is not None:
            busy.kill()
            busy.wait()


def combine(results: list[dict]) -> dict:
    """Workers side by side: total alerts over the slowest worker's time; CPU and stage times summed."""
    alerts, seconds = sum(r["alerts"] for r in results), max(r["seconds"] for r in results)
    stages = {s: sum(r["stages"].get(s, 0.0) for r in results) for r in results for s in r["stages"]}
    return {**results[0], "workers": len(results), "alerts": alerts, "seconds": seconds,
            "cpu_seconds": sum(r["cpu_seconds"] for r in results), "alerts_per_s": alerts / seconds,
            "stages": stages, "peak_rss_mib": max(r["peak_rss_mib"] for r in results)}


def multiply_adds(models: str, modalities: list[str]) -> dict[str, float]:
    """The models' multiply-adds per alert: torch FlopCounterMode on the first 256 real alerts, batched as the
    runners feed them (photometry in its length buckets)."""
    from itertools import islice

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from applecider_data import iter_packets, packet_to_alert
    from applecider_fusion.runners import load_runner

    alerts = [packet_to_alert(p) for p in islice(iter_packets(SOURCES), 256) if isinstance(p, dict)]
    macs = {}
    for modality in modalities:
        runner = load_runner(modality, Path(models) / modality)
        inputs, _, _ = runner.prepare([a.light_curve for a in alerts] if modality == "photometry" else alerts)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            runner.run(inputs)
        macs[modality] = counter.get_total_flops() / 2 / len(alerts)
    return macs


def matmul_rates(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Single-thread multiply-adds per second of a size³ matrix product: fp32 in torch (MKL) and ONNX Runtime
    (MLAS), bf16 in torch (oneDNN), int8 in ONNX Runtime (MatMulInteger, uint8 × int8 → int32)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    def rate(run: Any) -> float:
        run()
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        return repeats * size**3 / (time.perf_counter() - start)

    def session(op: str, a_type: int, weight: np.ndarray, out_type: int) -> Any:
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "b"], ["c"])], "matmul", [helper.make_tensor_value_info("a", a_type, [size, size])],
            [helper.make_tensor_value_info("c", out_type, [size, size])], [numpy_helper.from_array(weight, "b")],
        )  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    a32, b32 = torch.randn(size, size), torch.randn(size, size)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    fp32 = session("MatMul", TensorProto.FLOAT, b32.numpy(), TensorProto.FLOAT)
    int8 = session("MatMulInteger", TensorProto.UINT8, rng.integers(-127, 128, (size, size), dtype=np.int8),
                   TensorProto.INT32)
    a8 = rng.integers(0, 256, (size, size), dtype=np.uint8)
    return {"fp32 torch": rate(lambda: a32 @ b32), "fp32 onnxruntime": rate(lambda: fp32.run(None, {"a": a32.numpy()})),
            "bf16 torch": rate(lambda: a16 @ b16), "int8 onnxruntime": rate(lambda: int8.run(None, {"a": a8}))}


def arithmetic_ceilings(models: str, modalities: list[str]) -> str:
    """Lines: the models' multiply-adds per alert and, per number format, the alerts/s of one core doing only
    that arithmetic at the measured matrix-product rate."""
    import torch

    torch.set_num_threads(1)
    macs = multiply_adds(models, modalities)
    total = sum(macs.values())
    parts = ", ".join(f"{m} {v / 1e6:.1f}" for m, v in macs.items())
    lines = [f"# models' arithmetic: {total / 1e6:.1f} M multiply-adds per alert ({parts})"]
    for name, rate in matmul_rates().items():
        lines.append(f"#   {name:17s} 2048³ matmul on 1 thread: {rate / 1e9:6.1f} GMAC/s → at most "
                     f"{rate / total:5.0f} alerts/s per core for the models' arithmetic alone")
    return "\n".join(lines)


def calibration_alerts(count: int = 256) -> list:
    """The last ``count`` alerts with cutouts of the bundle (the static int8 calibration set)."""
    from applecider_data import iter_packets, packet_to_alert

    alerts = [packet_to_alert(p) for p in iter_packets(SOURCES) if isinstance(p, dict)]
    return [a for a in alerts if a.cutouts is not None][-count:]


def prepare_models(args: argparse.Namespace) -> str:
    """One folder with the weights and their ONNX export (fp32, dynamic and static int8) for every engine."""
    folder = REPO / "runs" / "bench_models" / (f"untrained_{args.untrained}" if args.untrained else Path(args.models).name)
    if not args.reexport and (folder / "export.json").is_file():
        return str(folder)
    shutil.rmtree(folder, ignore_errors=True)
    if args.untrained:
        from applecider_data import iter_packets, packet_to_alert
        from applecider_fusion.untrained import write_untrained_models

        packets = [p for p, _ in zip(iter_packets(SOURCES), range(256)) if isinstance(p, dict)]
        write_untrained_models(folder, [packet_to_alert(p) for p in packets], preset=args.untrained)
    else:
        shutil.copytree(args.models, folder)
    from applecider_fusion.export import export_models

    export_models(folder, folder, quantize=("int8", "int8-static"), modalities=args.modalities,
                  calibration=calibration_alerts())
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(REPO / "models"))
    parser.add_argument("--untrained", metavar="PRESET", help="time untrained models of this preset instead")
    parser.add_argument("--engines", nargs="+", default=["torch"], metavar="ENGINE[,MODALITY=ENGINE...]",
                        help="engine choices as cider classify --engine takes them")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="processes side by side on object shards of the packets (consumers of one group)")
    parser.add_argument("--limit", type=int, default=0, help="classify only the first N packets (0: all)")
    parser.add_argument("--busy", action="store_true", help="one busy-looping process beside each measurement")
    parser.add_argument("--reexport", action="store_true", help="export again even if runs/bench_models/<name> exists")
    parser.add_argument("--modalities", nargs="+", default=["photometry", "images"])
    parser.add_argument("--overlap", nargs="+", default=["off"], choices=("on", "off"),
                        help="decode the next batches in a background thread while the models run (default off)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one configuration
    parser.add_argument("--sources", nargs="+", type=Path, default=SOURCES, help=argparse.SUPPRESS)  # a worker's shard
    parser.add_argument("--barrier", action="store_true", help=argparse.SUPPRESS)  # start on a line of stdin
    args = parser.parse_args(argv)
    if not SOURCES[0].is_file():
        print(f"public alerts not found under {DATA} (set APPLECIDER_SHARED_DATA); nothing to measure")
        return 0
    if args.one:
        print(json.dumps(measure(args.models, args.one, args.threads[0], args.modalities, args.engines[0],
                                 args.limit, args.overlap[0] == "on", args.sources, args.barrier)))
        return 0
    models = prepare_models(args)
    load = os.getloadavg()[0]
    rows = [run_one(models, engine, threads, batch, overlap, workers, args) for engine in args.engines
            for workers in args.workers for threads in args.threads for overlap in args.overlap
            for batch in args.batches]
    stages = sorted({s for r in rows for s in r["stages"]}, key=lambda s: (s != "read", s != "decode", s))
    print(f"# classify throughput — {time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, {os.cpu_count()} cores, "
          f"load average {load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end, models {models} "
          f"({'+'.join(args.modalities)})" + ("; one busy process beside each run" if args.busy else ""))
    print(f"# command: python benchmarks/classify_throughput.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    header = ["engine", "workers", "threads", "overlap", "batch", "alerts", "alerts/s", "× first row",
              "CPU ms/alert", "peak MiB"]
    header += [f"{s} ms/alert" for s in stages]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    base = rows[0]["alerts_per_s"]
    for r in rows:
        cells = [r["engine"], str(r["workers"]), str(r["threads"]), "on" if r["overlap"] else "off", str(r["batch"]),
                 str(r["alerts"]), f"{r['alerts_per_s']:.1f}", f"{r['alerts_per_s'] / base:.2f}",
                 f"{1000 * r['cpu_seconds'] / r['alerts']:.2f}", f"{r['peak_rss_mib']:.0f}"]
        cells += [f"{1000 * r['stages'].get(s, 0.0) / r['alerts']:.2f}" for s in stages]
        print("| " + " | ".join(cells) + " |")
    print(arithmetic_ceilings(models, args.modalities))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
