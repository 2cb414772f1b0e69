"""Fixtures of the spectra tests: a tiny shared-format dataset of synthetic spectra (written by the test)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

# rest-frame line centres (Å) that make the three synthetic classes separable
CLASS_LINES = {"SN Ia": 6150.0, "SN II": 6563.0, "TDE": 4686.0}


def synthetic_spectrum(rng: np.random.Generator, label: str, z: float, n: int = 400):
    """Observer-frame wavelengths (unsorted tail, a duplicate) and a flux with one class-specific line."""
    rest = np.linspace(3200.0, 9800.0, n)
    centre = CLASS_LINES[label]
    flux = 1.0 + 0.3 * rng.standard_normal(n) * 0.1 + (-1 if label == "SN Ia" else 1) * np.exp(-0.5 * ((rest - centre) / 60.0) ** 2)
    return rest * (1 + z), flux


def write_spectra_dataset(root, n_per_class: int = 8, seed: int = 0):
    """objects.parquet + spectra.parquet (+ empty other tables) in the core dataset format; splits 4/2/2."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    objects, spectra = [], []
    for label in CLASS_LINES:
        for i in range(n_per_class):
            object_id = f"ZTF{label.replace(' ', '')}{i:02d}"
            z = float(rng.uniform(0.01, 0.2))
            split = "train" if i < n_per_class // 2 else ("val" if i < 3 * n_per_class // 4 else "test")
            objects.append({"object_id": object_id, "label": label, "redshift": z, "split": split,
                            "has_alerts": False, "has_light_curve": False, "has_spectrum": True})
            for j in range(2):
                wavelength, flux = synthetic_spectrum(rng, label, z)
                spectra.append({"spectrum_id": f"{object_id}_{j}", "object_id": object_id, "redshift": z,
                                "mjd": 59000.0 + j, "label": label, "flux_unit": "Uncalibrated", "instrument": "SEDM",
                                "source": "test", "wavelength_aa": wavelength.tolist(), "flux": flux.tolist()})
    # one bad spectrum (one point) that must be reported, not crash the run
    spectra.append({**spectra[0], "spectrum_id": "bad_one_point", "wavelength_aa": [5000.0], "flux": [1.0]})
    pd.DataFrame(objects).to_parquet(root / "objects.parquet")
    pd.DataFrame(spectra).to_parquet(root / "spectra.parquet")
    pd.DataFrame({"object_id": pd.Series(dtype=str), "candid": pd.Series(dtype="int64")}).to_parquet(root / "alerts.parquet")
    pd.DataFrame({"object_id": pd.Series(dtype=str), "mjd": pd.Series(dtype=float)}).to_parquet(root / "light_curves.parquet")
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "counts": {}}))
    return root


@pytest.fixture
def spectra_dataset(tmp_path):
    return write_spectra_dataset(tmp_path / "dataset")
