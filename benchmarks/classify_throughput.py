"""End-to-end throughput of fused classification (``Classifier.stream``) on the real alerts of the bundle.

    .venv/bin/python benchmarks/classify_throughput.py [--models models | --untrained paper] [--threads 2]
                                                       [--batches 1 64 256] [--modalities photometry images]

Input: every packet of ../shared/data/alerts (the alert parquet and the Avro folder, ~2,000 real ZTF alerts),
read from disk in each run, exactly as ``cider classify`` does. Each batch size runs in a fresh process (so
its peak resident memory is its own) on ``--threads`` torch threads; the table splits the wall time into
reading (fastavro/parquet → dicts), decoding (packets → records: light curves, FITS stamps, metadata), each
model's preprocessing and forward pass, and the fusion. Ratios are against batch 1, measured in the same run.
``--untrained PRESET`` times freshly initialised models of that preset instead (e.g. ``paper``: the paper-size
AstroMiNN with its ConvNeXt image branch; the released models are the ``small`` presets); speed does not
depend on the weights. The target: >= 100 alerts/s end to end at batch 256 with photometry + images/metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from applecider_core.cli import cpu_model

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("APPLECIDER_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCES = [DATA / "alerts" / "ztf_public_alerts.parquet", DATA / "alerts" / "avro"]


def measure(models: str, batch_size: int, threads: int, modalities: list[str]) -> dict:
    """One configuration, in this process: seconds per stage, alerts/s and peak RSS."""
    import torch

    from applecider_data import iter_packets
    from applecider_fusion import Classifier

    torch.set_num_threads(threads)
    classifier = Classifier.from_dir(models, modalities=modalities)
    start = time.perf_counter()
    records = sum(1 for _ in classifier.stream(iter_packets(SOURCES), batch_size=batch_size))
    total = time.perf_counter() - start
    stages = dict(classifier.timings.seconds)
    stages["read"] = total - sum(stages.values())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"batch": batch_size, "alerts": records, "seconds": total, "alerts_per_s": records / total,
            "stages": stages, "peak_rss_mib": peak_mib}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(REPO / "models"))
    parser.add_argument("--untrained", metavar="PRESET", help="time untrained models of this preset instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--modalities", nargs="+", default=["photometry", "images"])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one batch size, print JSON
    args = parser.parse_args(argv)
    if not SOURCES[0].is_file():
        print(f"public alerts not found under {DATA} (set APPLECIDER_SHARED_DATA); nothing to measure")
        return 0
    if args.one:
        print(json.dumps(measure(args.models, args.one, args.threads, args.modalities)))
        return 0
    models = args.models
    if args.untrained:
        from applecider_data import iter_packets, packet_to_alert
        from applecider_fusion.untrained import write_untrained_models

        packets = [p for p, _ in zip(iter_packets(SOURCES), range(256)) if isinstance(p, dict)]
        models = str(REPO / "runs" / f"untrained_{args.untrained}")
        write_untrained_models(models, [packet_to_alert(p) for p in packets], preset=args.untrained)
    rows = []
    for batch in args.batches:
        command = [sys.executable, __file__, "--one", str(batch), "--models", models,
                   "--threads", str(args.threads), "--modalities", *args.modalities]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    stages = sorted({s for r in rows for s in r["stages"]}, key=lambda s: (s != "read", s != "decode", s))
    print(f"# classify throughput — {time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, {os.cpu_count()} cores, "
          f"{args.threads} torch threads, models {models} ({'+'.join(args.modalities)})")
    which = f"--untrained {args.untrained}" if args.untrained else f"--models {args.models}"
    print(f"# command: python benchmarks/classify_throughput.py {which} --threads {args.threads} "
          f"--batches {' '.join(map(str, args.batches))} --modalities {' '.join(args.modalities)}")
    header = ["batch", "alerts", "alerts/s", "× batch 1", "peak MiB"] + [f"{s} ms/alert" for s in stages]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    base = rows[0]["alerts_per_s"]
    for r in rows:
        cells = [str(r["batch"]), str(r["alerts"]), f"{r['alerts_per_s']:.1f}", f"{r['alerts_per_s'] / base:.2f}",
                 f"{r['peak_rss_mib']:.0f}"]
        cells += [f"{1000 * r['stages'].get(s, 0.0) / r['alerts']:.2f}" for s in stages]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
