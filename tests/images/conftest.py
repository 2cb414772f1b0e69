"""Fixtures of the images tests: a tiny shared dataset written in the core on-disk format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from applecider_core.records import METADATA_FEATURES

LABELS = ("SN Ia", "SN II", "CV", "AGN", "TDE")


def write_tiny_dataset(root: Path, n_objects: int = 20, alerts_per_object: int = 2, seed: int = 0) -> Path:
    """Objects of five classes with alerts (metadata with NaNs, Gaussian-blob cutouts), split 12/4/4."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    splits = np.array(["train"] * 12 + ["val"] * 4 + ["test"] * 4)[:n_objects]
    objects = pd.DataFrame({
        "object_id": [f"ZTF21obj{i:04d}" for i in range(n_objects)],
        "label": [LABELS[i % len(LABELS)] for i in range(n_objects)],
        "redshift": np.nan, "split": splits, "has_alerts": True, "has_light_curve": False, "has_spectrum": False,
    })  # fmt: skip
    rows, cutouts = [], []
    yy, xx = np.mgrid[:63, :63]
    for i, object_id in enumerate(objects["object_id"]):
        cls = i % len(LABELS)
        ra, dec = rng.uniform(0, 360), rng.uniform(-30, 80)
        for j in range(alerts_per_object):
            width = 1.5 + cls
            blob = np.exp(-((yy - 31) ** 2 + (xx - 31) ** 2) / (2 * width**2)).astype(np.float32)
            stamps = np.stack([blob * 100 + rng.normal(0, 1, blob.shape), rng.normal(10, 1, blob.shape),
                               blob * 90 + rng.normal(0, 1, blob.shape)]).astype(np.float32)
            stamps[0, :3, :3] = np.nan  # masked corner, as on CCD edges
            cutouts.append(stamps)
            meta = rng.normal(cls, 1.0, len(METADATA_FEATURES)).astype(np.float32)
            meta[rng.random(len(meta)) < 0.1] = np.nan
            rows.append({"object_id": object_id, "candid": 1000 * i + j, "mjd": 59000.0 + j, "band": "ztfg",
                         "ra_deg": ra, "dec_deg": dec, "cutout_index": len(cutouts) - 1,
                         **dict(zip(METADATA_FEATURES, meta.tolist()))})
    pd.DataFrame(rows).to_parquet(root / "alerts.parquet")
    objects.to_parquet(root / "objects.parquet")
    np.save(root / "cutouts.npy", np.stack(cutouts))
    pd.DataFrame({"object_id": pd.Series([], dtype=str), "mjd": pd.Series([], dtype=float)}).to_parquet(
        root / "light_curves.parquet")
    pd.DataFrame({"spectrum_id": pd.Series([], dtype=str)}).to_parquet(root / "spectra.parquet")
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "counts": {"objects": n_objects}}))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("images_data") / "dataset")
