"""Alert decode throughput on the real alerts, ZTF and Rubin: Avro/parquet parse, cutout decode, features.

Each stage is timed separately on all real packets (ZTF: alerts/ztf_public_alerts.parquet + alerts/avro/;
Rubin: alerts_lsst/fink_v9_0_avro/ + fink_v10_0.parquet), with 1 thread (baseline) and with ``--threads``
threads (default 2) in the same run; the table reports alerts/s and the ratio. The cutout stages are also
timed through ``astropy.io.fits`` (the naive baseline) next to the direct FITS readers that
``packet_triplet`` / ``lsst_triplet`` use. Raw bytes are read into memory first so the parse figure is
decode, not disk. Rubin's anchor: ~10,000 alerts per visit published within 60 s, i.e. ~167 alerts/s per
visit; the last column says how many such streams one thread of the full ``packet_to_alert`` keeps up with.

    .venv/bin/python benchmarks/alert_decode.py [--data ../shared/data] [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastavro
import pyarrow.parquet as pq

from applecider_data.convert import packet_to_alert
from applecider_data.cutouts import (
    LSST_HDUS,
    StampError,
    _astropy_hdus,
    _fits_bytes,
    decode_stamp,
    lsst_triplet,
    packet_triplet,
    stamp_bytes,
)
from applecider_data.readers import iter_alert_parquet

CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
RUBIN_ALERTS_PER_S = 10_000 / 60.0  # one visit's alerts within 60 s


def load_raw(data: Path) -> tuple[list[bytes], list[dict]]:
    """Avro file bytes and parquet rows (JSON strings + stamp bytes, still undecoded)."""
    avro = [p.read_bytes() for p in sorted((data / "alerts" / "avro").glob("*.avro"))]
    rows = pq.read_table(data / "alerts" / "ztf_public_alerts.parquet").to_pylist()
    return avro, rows


def parse_avro(blob: bytes) -> list[dict]:
    return list(fastavro.reader(io.BytesIO(blob)))


def parse_row(row: dict) -> dict:
    packet = dict(row)
    packet["candidate"] = json.loads(row["candidate"])
    packet["prv_candidates"] = json.loads(row["prv_candidates"]) if row["prv_candidates"] else None
    for name in CUTOUTS:
        packet[name] = None if row[name] is None else {"stampData": row[name]}
    return packet


def load_rubin(data: Path) -> tuple[list[bytes], list[dict]]:
    """Rubin Avro container bytes and decoded parquet rows (struct columns are already Python objects)."""
    lsst = data / "alerts_lsst"
    avro = [p.read_bytes() for p in sorted((lsst / "fink_v9_0_avro").glob("*.avro"))]
    rows = [p for _s, _i, p in iter_alert_parquet(lsst / "fink_v10_0.parquet")]
    return avro, rows


def astropy_lsst_triplet(packet: dict) -> list:
    """Rubin's three 3-HDU stamps through astropy.io.fits (the naive baseline of lsst_triplet)."""
    return [_astropy_hdus(_fits_bytes(packet[name]), LSST_HDUS) for name in CUTOUTS]


def astropy_triplet(packet: dict) -> list:
    """The naive path: every stamp through astropy.io.fits (errors counted as decoded, as in packet_triplet)."""
    out = []
    for name in CUTOUTS:
        try:
            out.append(decode_stamp(stamp_bytes(packet[name]), fast=False))
        except StampError:
            out.append(None)
    return out


def timed(fn: Callable, items: Sequence, threads: int, repeat: int) -> float:
    """Best wall time of ``repeat`` runs of ``fn`` over ``items`` with ``threads`` workers."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        if threads == 1:
            for item in items:
                fn(item)
        else:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(fn, items, chunksize=16):
                    pass
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    avro, rows = load_raw(args.data)
    packets = [p for blob in avro for p in parse_avro(blob)] + [parse_row(r) for r in rows]
    with_stamps = [p for p in packets if all(p.get(name) for name in CUTOUTS)]
    n_avro_alerts = sum(len(parse_avro(b)) for b in avro)
    rubin_avro, rubin_rows = load_rubin(args.data)
    rubin = [p for blob in rubin_avro for p in parse_avro(blob)] + rubin_rows
    stages = [
        ("avro parse (fastavro)", parse_avro, avro, n_avro_alerts),
        ("parquet row parse (JSON)", parse_row, rows, len(rows)),
        ("cutout decode, astropy.io.fits (baseline)", astropy_triplet, with_stamps, len(with_stamps)),
        ("cutout decode, packet_triplet", packet_triplet, with_stamps, len(with_stamps)),
        ("features (metadata+light curve)", lambda p: packet_to_alert(p, with_cutouts=False), packets, len(packets)),
        ("full packet_to_alert", packet_to_alert, packets, len(packets)),
        ("Rubin avro parse (fastavro)", parse_avro, rubin_avro, len(rubin_avro)),
        ("Rubin cutouts, astropy.io.fits (baseline)", astropy_lsst_triplet, rubin, len(rubin)),
        ("Rubin cutouts, lsst_triplet", lsst_triplet, rubin, len(rubin)),
        ("Rubin features (metadata+light curve)", lambda p: packet_to_alert(p, with_cutouts=False), rubin, len(rubin)),
        ("Rubin full packet_to_alert", packet_to_alert, rubin, len(rubin)),
    ]
    print(f"ZTF: {len(packets)} real alerts ({n_avro_alerts} from {len(avro)} Avro files, {len(rows)} parquet rows); "
          f"Rubin: {len(rubin)} real alerts ({len(rubin_avro)} Avro files, {len(rubin_rows)} parquet rows); "
          f"best of {args.repeat}")
    header = (f"{'stage':<42} {'alerts':>7} {'1 thread /s':>12} {f'{args.threads} threads /s':>13} {'ratio':>6} "
              f"{'x Rubin visit rate':>18}")
    print(header)
    print("-" * len(header))
    for name, fn, items, n in stages:
        base = timed(fn, items, 1, args.repeat)
        cand = timed(fn, items, args.threads, args.repeat)
        print(f"{name:<42} {n:>7} {n / base:>12.0f} {n / cand:>13.0f} {base / cand:>6.2f} "
              f"{n / base / RUBIN_ALERTS_PER_S:>18.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
