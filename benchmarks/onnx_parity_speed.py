"""ONNX export of the released models: parity with torch, int8 accuracy change, BOOM feeding, start-up time.

    .venv/bin/python benchmarks/onnx_parity_speed.py [--models models] [--alerts 1024] [--spectra 300]

1. ``cider export onnx --quantize int8 int8-static`` of ``--models`` into runs/onnx/<name> (unless done
   before); the static int8 image model is calibrated on the last 256 alerts with cutouts of the bundle.
2. On the first ``--alerts`` real packets of ../shared/data/alerts (photometry from each packet's history,
   images + metadata; the calibration alerts left out) and ``--spectra`` labelled spectra spread over
   spectra/osc_spectra.parquet: each runner on every engine (onnxruntime-int8-static: the image model);
   max |Δ logit|, max and median |Δ probability| (softmax of the logits) and argmax agreement against torch
   fp32, accuracy against the bundle's labels (objects whose label is one of the model's classes; these
   include the models' training objects, so the accuracy is a like-for-like comparison of the engines, not a
   held-out score), and model milliseconds per item (1 thread, batches of 256).
3. BOOM feeding: the exported image model run directly with onnxruntime on inputs built here the way BOOM
   builds them (raw stamps, NaN → 0, each stamp divided by its L2 norm, NHWC; raw metadata in the order of
   the model's ``metadata_features`` prop), against the project's own torch probabilities.
4. Start-up: wall time and peak RSS of ``cider classify`` on one Avro file, per engine, in fresh processes.
Ratios are within this run; the load average is printed with the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("APPLECIDER_SHARED_DATA", REPO.parent / "shared" / "data"))
CALIBRATION_ALERTS = 256
CHILD = ("import sys; from pathlib import Path; from applecider_core.cli import main; rc = main(sys.argv[1:]); "
         "print(next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM')))")


def real_items(n_alerts: int, n_spectra: int) -> tuple[list, list, list, dict[str, str]]:
    """(alerts to compare on, calibration alerts, spectra, labels): the calibration alerts are the last
    ``CALIBRATION_ALERTS`` with cutouts of the bundle and are not among the compared ones."""
    from applecider_data import iter_packets, packet_to_alert
    from applecider_data.importers import SourcedSpectrum, iter_spectra, read_labels

    sources = [DATA / "alerts" / "ztf_public_alerts.parquet", DATA / "alerts" / "avro"]
    every = [packet_to_alert(p) for p in iter_packets(sources) if isinstance(p, dict)]
    calibration = [a for a in every if a.cutouts is not None][-CALIBRATION_ALERTS:]
    held = {a.candid for a in calibration}
    alerts = [a for a in every[:n_alerts] if a.candid not in held]
    spectra = [s.spectrum for s in iter_spectra(DATA / "spectra" / "osc_spectra.parquet")
               if isinstance(s, SourcedSpectrum) and s.spectrum.label]
    step = max(1, len(spectra) // n_spectra)  # spread over the file (it is ordered by source)
    labels = read_labels(DATA / "labels" / "ztf_object_labels.csv").labels
    return alerts, calibration, spectra[::step][:n_spectra], labels


def logits_of(runner, items: list) -> tuple[np.ndarray, float]:
    start, parts = time.perf_counter(), []
    for i in range(0, len(items), 256):
        parts.append(runner.predict(items[i : i + 256])[0])
    return np.concatenate(parts), time.perf_counter() - start


def parity_table(models: Path, onnx: Path, alerts: list, spectra: list, labels: dict[str, str]) -> list[str]:
    from applecider_core.engines import ENGINES, TORCH_ENGINES
    from applecider_core.metrics import softmax
    from applecider_fusion.export import STATIC_INT8_MODALITIES
    from applecider_fusion.runners import load_runner

    rows = ["| modality | engine | items | max abs Δ logit vs torch | max / median abs Δ probability | same argmax | "
            "accuracy (labelled n) | model ms/item |", "|---|---|---|---|---|---|---|---|"]
    inputs = {"photometry": [a.light_curve for a in alerts], "images": alerts, "spectra": spectra}
    truth = {"photometry": [labels.get(a.object_id) for a in alerts], "images": [labels.get(a.object_id) for a in alerts],
             "spectra": [s.label for s in spectra]}
    for modality, items in inputs.items():
        results = {}
        for engine in ENGINES:
            if engine.endswith("int8-static") and modality not in STATIC_INT8_MODALITIES:
                continue
            runner = load_runner(modality, (models if engine in TORCH_ENGINES else onnx) / modality, engine=engine)
            results[engine] = logits_of(runner, items)
        names = list(runner.class_names)
        reference = results["torch"][0]
        usable = ~np.isnan(reference).any(axis=1)
        target = np.array([names.index(t) if t in names else -1 for t in truth[modality]])
        scored = usable & (target >= 0)
        for engine, (values, seconds) in results.items():
            delta = np.abs(values[usable] - reference[usable]).max()
            dp = np.abs(softmax(values[usable]) - softmax(reference[usable])).max(axis=1)
            same = (values[usable].argmax(1) == reference[usable].argmax(1)).mean()
            accuracy = (values[scored].argmax(1) == target[scored]).mean()
            rows.append(f"| {modality} | {engine} | {usable.sum()} | {delta:.1e} | {dp.max():.1e} / {np.median(dp):.1e} | "
                        f"{100 * same:.2f} % | {accuracy:.3f} ({scored.sum()}) | {1000 * seconds / len(items):.2f} |")
    return rows


def boom_check(models: Path, onnx: Path, alerts: list) -> str:
    """Inputs built as BOOM builds them, run with a bare onnxruntime session, vs the torch runner."""
    import onnxruntime as ort

    from applecider_core.metrics import softmax
    from applecider_fusion.runners import load_runner

    alerts = [a for a in alerts if a.cutouts is not None]
    session = ort.InferenceSession(str(onnx / "images" / "model.onnx"), providers=["CPUExecutionProvider"])
    features = json.loads(session.get_modelmeta().custom_metadata_map["applecider.metadata_features"])
    stamps = np.nan_to_num(np.stack([a.cutouts.stack() for a in alerts]).astype(np.float32), nan=0.0)
    norms = np.sqrt((stamps.astype(np.float64) ** 2).sum(axis=(2, 3), keepdims=True))
    triplet = np.where(norms > 0, stamps / np.where(norms > 0, norms, 1), 0).astype(np.float32).transpose(0, 2, 3, 1)
    metadata = np.array([[a.metadata_dict()[f] for f in features] for a in alerts], dtype=np.float32)
    fc_out = np.concatenate([session.run(["fc_out"], {"triplet": triplet[i : i + 256], "metadata": metadata[i : i + 256]})[0]
                             for i in range(0, len(alerts), 256)])
    reference, _ = logits_of(load_runner("images", models / "images"), alerts)
    delta = np.abs(softmax(fc_out) - softmax(reference)).max()
    same = (fc_out.argmax(1) == reference.argmax(1)).mean()
    return (f"BOOM-fed image model ({len(alerts)} real alerts, NHWC, per-stamp L2 norm, raw metadata in "
            f"{len(features)} columns): max |Δ probability| vs the project's torch run {delta:.1e}, "
            f"max |Δ logit| {np.abs(fc_out - reference).max():.1e}, same argmax {100 * same:.1f} %")


def startup_table(models: Path, onnx: Path, repeats: int) -> list[str]:
    one_file = sorted((DATA / "alerts" / "avro").glob("*.avro"))[0]
    rows = [f"| engine | start-up + 1 file, s (best of {repeats}) | peak RSS MiB |", "|---|---|---|"]
    for engine in ("torch", "onnxruntime"):
        best, peak = float("inf"), 0.0
        folder = models if engine.startswith("torch") else onnx
        for _ in range(repeats):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, "classify", str(one_file), "--models", str(folder),
                                  "--engine", engine, "--no-progress", "--show", "0", "--out", os.devnull],
                                 capture_output=True, text=True, check=True).stdout
            best = min(best, time.perf_counter() - start)
            peak = int(out.strip().splitlines()[-1].split()[1]) / 1024
        rows.append(f"| {engine} | {best:.2f} | {peak:.0f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(REPO / "models"))
    parser.add_argument("--alerts", type=int, default=1024)
    parser.add_argument("--spectra", type=int, default=300)
    parser.add_argument("--startup-repeats", type=int, default=3)
    parser.add_argument("--reexport", action="store_true", help="export again even if runs/onnx/<name> exists")
    args = parser.parse_args(argv)
    if not (DATA / "README.md").is_file():
        print(f"public data not found under {DATA} (set APPLECIDER_SHARED_DATA); nothing to measure")
        return 0
    import torch

    from applecider_fusion.export import export_models

    torch.set_num_threads(1)
    models = Path(args.models)
    onnx = REPO / "runs" / "onnx" / models.name
    start = time.perf_counter()
    alerts, calibration, spectra, labels = real_items(args.alerts, args.spectra)
    if args.reexport or not (onnx / "export.json").is_file():
        export_models(models, onnx, quantize=("int8", "int8-static"), calibration=calibration)
    print(f"# onnx parity and speed — {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; "
          f"export of {models} → {onnx}: {time.perf_counter() - start:.0f} s (0: exported before)")
    print(f"# command: python benchmarks/onnx_parity_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# {len(alerts)} alerts compared; static int8 calibrated on {len(calibration)} other alerts")
    print("\n".join(parity_table(models, onnx, alerts, spectra, labels)))
    print(boom_check(models, onnx, alerts))
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("\n".join(startup_table(models, onnx, args.startup_repeats)))
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
