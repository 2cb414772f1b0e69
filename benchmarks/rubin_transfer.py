"""Does the released ZTF photometry model transfer to Rubin light curves? The measurement behind the decision.

Runs ``models/photometry`` on every light curve of the bundle's Rubin packets (alerts_lsst/, g/r/i detections
relabelled to the ZTF bands; u/z/y dropped) and on the ZTF public alerts, grouped by number of detections, and
prints per group: curves, median detections, median flux, mean top probability, mean entropy and the top
classes. There are no labels for the Rubin packets, so this compares behaviour, not accuracy: a model that
transfers should be no more confident on Rubin curves than on ZTF ones of the same length.

    .venv/bin/python benchmarks/rubin_transfer.py [--data ../shared/data] [--models models]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np
import torch

from applecider_core.metrics import softmax
from applecider_core.records import LightCurve
from applecider_data import PacketError, iter_packets, packet_to_alert
from applecider_fusion.runners import load_runner

RUBIN_TO_ZTF = {"lsstg": "ztfg", "lsstr": "ztfr", "lssti": "ztfi"}


def detections(paths: list[Path], relabel: bool) -> list[LightCurve]:
    curves = []
    for packet in iter_packets(paths):
        if isinstance(packet, PacketError):
            continue
        lc = packet_to_alert(packet, with_cutouts=False).light_curve.detections()
        if relabel:
            lc = lc.select(np.isin(lc.band, list(RUBIN_TO_ZTF)))
            lc = LightCurve(lc.object_id, lc.mjd, [RUBIN_TO_ZTF[b] for b in lc.band], lc.flux_ujy, lc.flux_err_ujy,
                            lc.is_detection)
        if len(lc):
            curves.append(lc)
    return curves


def row(name: str, runner, curves: list[LightCurve]) -> str:
    logits, _ = runner.predict(curves)
    usable = ~np.isnan(logits).any(axis=1)
    probs = softmax(logits[usable], runner.temperature)
    entropy = -(probs * np.log(probs + 1e-12)).sum(axis=1)
    top = collections.Counter(runner.class_names[i] for i in probs.argmax(axis=1)).most_common(3)
    n_det = np.median([len(c) for c, ok in zip(curves, usable) if ok])
    flux = np.median([np.median(c.flux_ujy) for c, ok in zip(curves, usable) if ok])
    tops = ", ".join(f"{name} {count / usable.sum():.0%}" for name, count in top)
    return (f"{name:<22} {usable.sum():>6} {n_det:>6.0f} {flux:>10.1f} {probs.max(axis=1).mean():>9.3f} "
            f"{entropy.mean():>8.3f}  {tops}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[1] / "models")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runner = load_runner("photometry", args.models / "photometry")
    rubin = detections([args.data / "alerts_lsst"], relabel=True)
    ztf = detections([args.data / "alerts" / "avro", args.data / "alerts" / "ztf_public_alerts.parquet"], False)
    print(f"{'light curves':<22} {'curves':>6} {'n det':>6} {'flux µJy':>10} {'top prob':>9} {'entropy':>8}  top classes")
    print(row("Rubin, all", runner, rubin))
    print(row("Rubin, >= 2 detections", runner, [c for c in rubin if len(c) >= 2]))
    print(row("ZTF, 1 detection", runner, [c for c in ztf if len(c) == 1]))
    print(row("ZTF, 2-25 detections", runner, [c for c in ztf if 2 <= len(c) <= 25]))
    print(row("ZTF, all", runner, ztf))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
