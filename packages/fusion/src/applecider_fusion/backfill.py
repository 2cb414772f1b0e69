"""Archive backfill on Ray Data: ``cider classify TABLE.parquet --engine ray [--ray-address ADDR]``.

Ray Data reads the alert parquet tables and groups the alerts by object: every alert gets a bucket that is a
function of its ``objectId`` (``crc32 % buckets``), so a group holds complete objects, several hundred alerts
at a time (batched inference stays efficient; one group per object would run the models at batch ~1). Each
of ``workers`` actors loads the models once (``Classifier.from_dir``), sorts a group by object and time and
classifies it with the same ``Classifier.classify`` as the sequential path, so the records are those of the
sequential ``cider classify`` (tested on the shared parquet), yielded group by group.

Without ``--ray-address`` a local Ray with ``workers`` CPUs is started for the run; with ``--ray-address
auto`` (or ``ray://HEAD:10001``) the job joins an existing cluster, whose nodes need this project installed
(the same ``pip install -e ...`` or a runtime environment). Ray is the ``[ray]`` extra of applecider-fusion.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from applecider_data import PacketError, parquet_row_to_packet

RECORD_COLUMN = "record"
BUCKET_COLUMN = "_applecider_bucket"
ALERTS_PER_BUCKET = 2048


class ObjectGroupClassifier:
    """A Ray actor: one Classifier (models loaded once); called with all alerts of one object (pandas)."""

    def __init__(self, models_dir: str, device: str, weights: Mapping[str, float] | None,
                 spectra: Mapping[str, Sequence[Any]], batch_size: int, threads: int | None) -> None:  # fmt: skip
        import torch

        from .classifier import Classifier

        if threads:
            torch.set_num_threads(threads)
        self.classifier = Classifier.from_dir(models_dir, device=device, weights=weights)
        self.spectra, self.batch_size = dict(spectra), batch_size

    def __call__(self, alerts):  # pandas.DataFrame → pandas.DataFrame with one JSON record per alert
        import pandas as pd

        packets = [parquet_row_to_packet(row, "ray", f"candid {row.get('candid')}") for row in alerts.to_dict("records")]
        packets.sort(key=_object_time_order)
        records = self.classifier.classify(packets, spectra=self.spectra, batch_size=self.batch_size)
        return pd.DataFrame({RECORD_COLUMN: [json.dumps(r) for r in records]})


def _object_time_order(packet: dict | PacketError) -> tuple:
    if isinstance(packet, PacketError):
        return ("", -1.0, 0)
    jd = float((packet.get("candidate") or {}).get("jd") or 0.0)
    return (str(packet.get("objectId")), jd, int(packet.get("candid") or 0))


def _with_bucket(alerts, buckets: int):  # pandas.DataFrame → the same with BUCKET_COLUMN
    alerts[BUCKET_COLUMN] = [zlib.crc32(str(o).encode()) % buckets for o in alerts["objectId"]]
    return alerts


def parquet_inputs(paths: Sequence[str]) -> list[str]:
    """The alert parquet files under ``paths`` (files or folders); ValueError for anything else."""
    files: list[str] = []
    for raw in paths:
        path = Path(raw)
        found = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        bad = [str(p) for p in found if p.suffix != ".parquet" or not p.is_file()]
        if bad or not found:
            raise ValueError(f"--engine ray reads alert parquet tables (files or folders of .parquet); got {bad or [raw]}")
        files += [str(p) for p in found]
    return files


def classify_on_ray(paths: Sequence[str], models_dir: str, spectra: Mapping[str, Sequence[Any]] | None = None,
                    batch_size: int = 256, workers: int = 2, address: str | None = None, device: str = "cpu",
                    weights: Mapping[str, float] | None = None, threads: int | None = 1) -> Iterator[dict]:  # fmt: skip
    """Records of every alert in the parquet tables ``paths``, computed on Ray (see the module docstring)."""
    import pyarrow.parquet as pq
    import ray

    files = parquet_inputs(paths)
    started_here = not ray.is_initialized()
    if started_here:
        # a local Ray gets one CPU per actor plus one for reading and grouping (else the actors starve them)
        local = {} if address else {"num_cpus": workers + 1, "_node_ip_address": "127.0.0.1"}
        ray.init(address=address, **local, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        dataset = ray.data.read_parquet(files)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        buckets = max(2 * workers, math.ceil(rows / ALERTS_PER_BUCKET))
        dataset = dataset.map_batches(_with_bucket, batch_format="pandas", fn_kwargs={"buckets": buckets})
        records = dataset.groupby(BUCKET_COLUMN, num_partitions=buckets).map_groups(
            ObjectGroupClassifier, batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
            fn_constructor_kwargs={"models_dir": str(models_dir), "device": device, "weights": dict(weights or {}),
                                   "spectra": dict(spectra or {}), "batch_size": batch_size, "threads": threads},
        )  # fmt: skip
        for row in records.iter_rows():
            yield json.loads(row[RECORD_COLUMN])
    finally:
        if started_here:
            ray.shutdown()
