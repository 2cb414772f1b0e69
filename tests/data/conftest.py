"""Fixtures of the data-tools tests: synthetic Avro alerts and tiny public-format tables made here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from applecider_data import synthetic

N_SYNTHETIC = 6


@pytest.fixture(scope="session")
def synthetic_packets() -> list[dict]:
    return synthetic.make_packets(N_SYNTHETIC, seed=7, n_objects=4)


@pytest.fixture(scope="session")
def synthetic_avro_dir(tmp_path_factory, synthetic_packets) -> object:
    folder = tmp_path_factory.mktemp("avro")
    for packet in synthetic_packets:
        synthetic.write_avro(folder / f"{packet['candid']}.avro", [packet])
    return folder


@pytest.fixture(scope="session")
def public_tables(tmp_path_factory, synthetic_packets) -> dict:
    """Tiny spectra parquet, light-curve parquet and label CSV in the shared-data schemas."""
    folder = tmp_path_factory.mktemp("public")
    rng = np.random.default_rng(3)
    ztf_ids = sorted({p["objectId"] for p in synthetic_packets})
    labels = pd.DataFrame({"objectId": [*ztf_ids, "ZTF19zzzzzzz", "ZTF19yyyyyyy"],
                           "label": ["SN Ia", "SN II", "SN Ia", "TDE", "SN Ia", "Iz"],
                           "redshift": [0.05, np.nan, 0.1, 0.02, 0.3, np.nan]})
    labels.to_csv(folder / "labels.csv", index=False)
    wave = np.linspace(3500, 9000, 200).astype(np.float32)
    spectra = []
    names = [("SN2020abc", ztf_ids[0]), ("SN2020abd", ""), ("SN2020abd", ""), ("AT2019xyz", "")]
    for k, (name, alias) in enumerate(names):
        spectra.append({"object": name, "aliases": alias, "raw_type": "Ia", "label": "SN Ia" if k != 3 else "TDE",
                        "redshift": 0.05, "mjd": 59000.0 + k, "instrument": "SEDM", "telescope": "P60",
                        "deredshifted": False, "flux_unit": "Uncalibrated",
                        "wavelength": wave, "flux": rng.normal(1, 0.1, 200).astype(np.float32),
                        "source": "test/osc" if k != 3 else "dlangis/TDECat", "source_file": f"{name}.json",
                        "spectrum_file": f"spec{k}.dat"})
    pd.DataFrame(spectra).to_parquet(folder / "spectra.parquet")
    rows = []
    for name, ztf, label in [("2019xyz", "", "TDE"), (ztf_ids[1], ztf_ids[1], "SN II"), ("2020abd", "", "SN Ia")]:
        for k in range(8):
            rows.append({"object": name, "ztf_id": ztf, "label": label, "redshift": 0.05, "mjd": 59000.0 + 3 * k,
                         "band": "gR"[k % 2], "mag": np.float32(19 + 0.1 * k), "magerr": np.float32(0.05),
                         "is_detection": True, "source": "test/lc"})
    pd.DataFrame(rows).to_parquet(folder / "light_curves.parquet")
    return {"dir": folder, "labels": folder / "labels.csv", "spectra": folder / "spectra.parquet",
            "light_curves": folder / "light_curves.parquet"}
