"""The public-data chain: build the shared dataset, train the three modalities, evaluate them jointly.

    .venv/bin/python benchmarks/public_chain.py [--release] [--force STEP ...]
    (or: make public-benchmark)

Steps (each skipped when its output exists, so an interrupted run resumes; training itself also resumes from
its Accelerate checkpoints):

1. ``cider data build --config configs/data_public.yaml``                     → data/public
2. ``cider train {photometry,images,spectra} --config configs/public/<m>.yaml`` → runs/public/<m>/model
3. the three model folders gathered in runs/public/models/
4. ``cider evaluate --config configs/public/fusion.yaml``                     → runs/public/fusion/report.json

``--release`` then copies runs/public/models/* and the settings fitted on validation (fusion.json: per-modality
temperatures; trust.json: conformal sets, abstention, out-of-distribution limits) to models/, the models
shipped with the repository.
Prints the joint-evaluation table and the wall time of every step (also saved as runs/public/chain.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from applecider_core.cli import cpu_model

REPO = Path(__file__).resolve().parents[1]
MODALITIES = ("photometry", "images", "spectra")
RUNS = REPO / "runs" / "public"


def _cider(*args: str) -> None:
    command = [sys.executable, "-m", "applecider_core.cli", *args]
    print("$ cider " + " ".join(args), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


def _model_dir(modality: str) -> Path:
    config = yaml.safe_load((REPO / "configs" / "public" / f"{modality}.yaml").read_text())
    return REPO / config["train"]["output_dir"] / "model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", nargs="*", default=[], choices=("data", *MODALITIES, "evaluate"),
                        help="redo these steps even if their output exists")
    parser.add_argument("--release", action="store_true", help="copy the trained models to models/")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    seconds: dict[str, float] = {}

    def step(name: str, done: bool, action) -> None:
        if done and name not in args.force:
            print(f"[{name}] done already, skipped (--force {name} to redo)", flush=True)
            return
        start = time.perf_counter()
        action()
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"[{name}] {seconds[name]} s", flush=True)

    data_dir = REPO / yaml.safe_load((REPO / "configs" / "data_public.yaml").read_text())["output_dir"]
    step("data", (data_dir / "objects.parquet").is_file(),
         lambda: _cider("data", "build", "--config", "configs/data_public.yaml"))
    for modality in MODALITIES:
        if modality in args.force:
            shutil.rmtree(_model_dir(modality).parent, ignore_errors=True)
        step(modality, (_model_dir(modality) / "model.safetensors").is_file(),
             lambda m=modality: _cider("train", m, "--config", f"configs/public/{m}.yaml"))
    gathered = RUNS / "models"
    for modality in MODALITIES:
        shutil.rmtree(gathered / modality, ignore_errors=True)
        shutil.copytree(_model_dir(modality), gathered / modality)
    fusion_config = yaml.safe_load((REPO / "configs" / "public" / "fusion.yaml").read_text())
    report_path = REPO / fusion_config["output_dir"] / "report.json"
    step("evaluate", False, lambda: _cider("evaluate", "--config", "configs/public/fusion.yaml"))
    if args.release:
        for modality in MODALITIES:
            shutil.rmtree(REPO / "models" / modality, ignore_errors=True)
            shutil.copytree(gathered / modality, REPO / "models" / modality)
        for settings in ("fusion.json", "trust.json"):
            shutil.copy(report_path.with_name(settings), REPO / "models" / settings)
        size = sum(f.stat().st_size for f in (REPO / "models").rglob("*") if f.is_file())
        print(f"released to models/ ({size / 2**20:.1f} MiB)")
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    chain_path = RUNS / "chain.json"  # step times accumulate over resumed invocations
    previous = json.loads(chain_path.read_text())["seconds"] if chain_path.is_file() else {}
    seconds = {**previous, **seconds}
    chain_path.write_text(json.dumps({"seconds": seconds, "machine": machine, "report": str(report_path)}, indent=1))
    print(f"machine: {machine}; step seconds: {seconds}; report: {report_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
