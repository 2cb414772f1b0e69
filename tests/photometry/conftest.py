"""A tiny shared dataset (applecider_core.dataset format) with synthetic light curves, written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from applecider_core.records import METADATA_FEATURES

LABELS = ("SN Ia", "SN II", "TDE")
# rise (d), decline (d), peak flux (µJy) per class: well separated so a few steps can learn something.
SHAPES = {"SN Ia": (15.0, 30.0, 300.0), "SN II": (8.0, 90.0, 120.0), "TDE": (30.0, 150.0, 200.0)}


def synthetic_rows(object_id: str, label: str, rng: np.random.Generator) -> list[dict]:
    rise, decline, peak = SHAPES[label]
    n = int(rng.integers(4, 40))
    mjd = 59000 + np.sort(rng.uniform(0, 120, n))
    t = mjd - mjd[0] - rise
    flux = peak * np.where(t < 0, np.exp(t / (rise / 3)), np.exp(-t / decline))
    err = 0.05 * flux + 3.0
    rows = []
    for i in range(n):
        detected = bool(flux[i] > 10) or i == 0
        rows.append({
            "object_id": object_id, "mjd": float(mjd[i]), "band": ["ztfg", "ztfr"][i % 2],
            "flux_ujy": float(flux[i] + err[i] * rng.normal()), "flux_err_ujy": float(err[i]) if detected else np.nan,
            "is_detection": detected, "source": "synthetic",
        })  # fmt: skip
    return rows


def write_dataset(root: Path, n_per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    objects, lc_rows = [], []
    for label in LABELS:
        for i in range(n_per_class):
            object_id = f"ZTF{label.replace(' ', '')}{i:03d}"
            split = "train" if i < n_per_class * 0.6 else ("val" if i < n_per_class * 0.8 else "test")
            objects.append({"object_id": object_id, "label": label, "redshift": np.nan, "split": split,
                            "has_alerts": False, "has_light_curve": True, "has_spectrum": False})
            lc_rows += synthetic_rows(object_id, label, rng)
    # one unlabelled object (pretraining only) and one all-upper-limit object (skipped everywhere)
    objects.append({"object_id": "ZTFunlabelled", "label": None, "redshift": np.nan, "split": "train",
                    "has_alerts": False, "has_light_curve": True, "has_spectrum": False})
    lc_rows += synthetic_rows("ZTFunlabelled", "SN Ia", rng)
    objects.append({"object_id": "ZTFlimits", "label": "SN Ia", "redshift": np.nan, "split": "train",
                    "has_alerts": False, "has_light_curve": True, "has_spectrum": False})
    lc_rows += [{"object_id": "ZTFlimits", "mjd": 59000.0 + k, "band": "ztfg", "flux_ujy": 20.0,
                 "flux_err_ujy": np.nan, "is_detection": False, "source": "synthetic"} for k in range(3)]
    return write_light_curve_dataset(root, objects, lc_rows)


def write_light_curve_dataset(root: Path, objects: list[dict], lc_rows: list[dict]) -> Path:
    """A shared dataset directory with these objects and light-curve rows and empty alert/spectra tables."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(objects).to_parquet(root / "objects.parquet")
    pd.DataFrame(lc_rows).to_parquet(root / "light_curves.parquet")
    alert_columns = ["object_id", "candid", "mjd", "band", "ra_deg", "dec_deg", "cutout_index", *METADATA_FEATURES]
    pd.DataFrame({c: pd.Series(dtype="float64") for c in alert_columns}).to_parquet(root / "alerts.parquet")
    spectra_columns = ["spectrum_id", "object_id", "redshift", "mjd", "label", "flux_unit", "instrument", "source"]
    pd.DataFrame({c: pd.Series(dtype="object") for c in spectra_columns}).to_parquet(root / "spectra.parquet")
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "created": "test", "build_config": {},
                                                    "counts": {"objects": len(objects)}}))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("photometry_dataset") / "dataset")
