"""Photometry inference throughput (light curves / s) on CPU: naive baseline vs faster variants, same run.

    .venv/bin/python benchmarks/photometry_speed.py [--threads 2] [--batch 256] [--repeats 5] [--preset paper]

The fused-path variants use a model built with ``fused_fast_path=True``; ``default model`` is the package
default (``fused_fast_path=False``, which opts out of the fused kernel), with the same weights.

Scenarios: every light curve with 30 events (an alert history), every one with 257 (the cap), and a mixed
batch (lengths 1–257, log-uniform, as in an alert stream). Variants, all on the same weights and inputs:

- ``naive``: eval mode but autograd on (what a forgotten ``no_grad`` costs; the fast path is off);
- ``no_grad``: ``torch.no_grad`` (nn.TransformerEncoder's fast path and nested tensors are on);
- ``inference_mode``: ``torch.inference_mode``;
- ``inference_mode, fast path off``: the same with ``torch.backends.mha.set_fastpath_enabled(False)``;
- ``inference_mode, no nested tensor``: fast path kept, padding not removed (``enable_nested_tensor=False``);
- ``default model, inference_mode``: the package default (fused kernel opted out per layer);
- ``… + buckets``: (mixed only) the batch sorted by length and cut into chunks, each padded only to its own
  maximum.

Also timed: feature building (numpy) for 30-point light curves. Ratios are against ``naive`` of the same
scenario; variants are interleaved round-robin and the best of ``--repeats`` rounds is reported (the build
machine is shared and noisy: the minimum is the least-disturbed run).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from applecider_core.records import LightCurve
from applecider_photometry import PhotometryClassifier, PhotometryConfig, build_events, collate_events


def make_items(lengths: list[int], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for n in lengths:
        events = rng.normal(size=(n, 7)).astype(np.float32)
        events[:, 4:] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
        items.append({"events": events, "times": np.sort(rng.uniform(0, 100, n)).astype(np.float32)})
    return items


def timed_interleaved(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds per variant, variants interleaved round-robin so that all of them see the
    same machine load (the minimum is the least-disturbed run on a shared machine)."""
    for fn in variants.values():
        fn()  # warm-up
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def with_settings(model: torch.nn.Module, batches: list[dict], fastpath: bool, nested: bool) -> None:
    encoder = model.encoder.layers
    previous = torch.backends.mha.get_fastpath_enabled(), encoder.enable_nested_tensor
    torch.backends.mha.set_fastpath_enabled(fastpath)
    encoder.enable_nested_tensor = nested
    try:
        run_model(model, batches, "inference_mode")
    finally:
        torch.backends.mha.set_fastpath_enabled(previous[0])
        encoder.enable_nested_tensor = previous[1]


def run_model(model: torch.nn.Module, batches: list[dict], mode: str) -> None:
    if mode == "naive":
        for batch in batches:
            model(**batch)
    elif mode == "no_grad":
        with torch.no_grad():
            for batch in batches:
                model(**batch)
    else:
        with torch.inference_mode():
            for batch in batches:
                model(**batch)


def bucketed(items: list[dict], chunk: int) -> list[dict]:
    order = np.argsort([len(i["events"]) for i in items])
    return [collate_events([items[j] for j in order[k : k + chunk]]) for k in range(0, len(items), chunk)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--bucket", type=int, default=64, help="chunk size of the bucketed variant")
    parser.add_argument("--scenarios", nargs="+", default=["30", "257", "mixed"], help="subset of 30 257 mixed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = PhotometryClassifier(PhotometryConfig.from_preset(args.preset, fused_fast_path=True)).eval()
    default_model = PhotometryClassifier(PhotometryConfig.from_preset(args.preset)).eval()  # fused path off
    default_model.load_state_dict(model.state_dict())
    n = args.batch
    rng = np.random.default_rng(1)
    scenarios = {
        "30 events": make_items([30] * n),
        "257 events": make_items([257] * n),
        "mixed 1-257": make_items(np.exp(rng.uniform(0, np.log(257), n)).astype(int).clip(1, 257).tolist()),
    }
    print(f"torch {torch.__version__}, {args.threads} threads, preset {args.preset}, batch {n}, "
          f"best of {args.repeats} interleaved rounds")
    print(f"{'scenario':<13} {'variant':<32} {'curves/s':>10} {'vs naive':>9}")
    for name, items in scenarios.items():
        if name.split()[0] not in args.scenarios:
            continue
        batch = [collate_events(items)]
        variants: dict[str, Callable[[], object]] = {
            "naive": lambda b=batch: run_model(model, b, "naive"),
            "no_grad": lambda b=batch: run_model(model, b, "no_grad"),
            "inference_mode": lambda b=batch: run_model(model, b, "inference_mode"),
            "inference_mode, no nested tensor": lambda b=batch: with_settings(model, b, True, False),
            "inference_mode, fast path off": lambda b=batch: with_settings(model, b, False, False),
            "default model, inference_mode": lambda b=batch: run_model(default_model, b, "inference_mode"),
        }
        if name.startswith("mixed"):
            buckets = bucketed(items, args.bucket)
            variants[f"default + buckets of {args.bucket}"] = lambda b=buckets: run_model(default_model, b, "inference_mode")
            variants[f"fast path + buckets of {args.bucket}"] = lambda b=buckets: with_settings(model, b, True, True)
        results = timed_interleaved(variants, args.repeats)
        for variant, seconds in results.items():
            print(f"{name:<13} {variant:<32} {n / seconds:>10.0f} {results['naive'] / seconds:>8.2f}x", flush=True)
    # Preprocessing: records → events for 30-point light curves (numpy, one thread of Python).
    lcs = []
    for i in range(n):
        mjd = 59000 + np.sort(rng.uniform(0, 30, 30))
        lcs.append(LightCurve(f"o{i}", mjd, rng.choice(["ztfg", "ztfr"], 30), rng.uniform(10, 500, 30),
                              rng.uniform(1, 20, 30), np.ones(30, bool)))
    seconds = timed_interleaved({"features": lambda: [build_events(lc) for lc in lcs]}, args.repeats)["features"]
    print(f"{'30 points':<13} {'features (build_events)':<32} {n / seconds:>10.0f} {'-':>9}")


if __name__ == "__main__":
    main()
