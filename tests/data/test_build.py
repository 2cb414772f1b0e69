"""``cider data build`` on synthetic inputs (fast) and on the public bundle (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from applecider_core.records import METADATA_FEATURES
from applecider_data import open_dataset
from applecider_data.build import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path, public_tables, avro_dir, **extra) -> Path:
    config = {"output_dir": str(tmp_path / "ds"),
              "sources": {"alerts": [str(avro_dir)], "labels": str(public_tables["labels"]),
                          "spectra": str(public_tables["spectra"]), "light_curves": str(public_tables["light_curves"])},
              "split": {"seed": 3}, **extra}
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_build_synthetic_dataset(tmp_path, public_tables, synthetic_avro_dir, synthetic_packets, capsys):
    config = _config(tmp_path, public_tables, synthetic_avro_dir)
    assert main(["--config", str(config)]) == 0
    assert "counts as train/val/test" in capsys.readouterr().out
    ds = open_dataset(tmp_path / "ds")
    objects = ds.objects
    assert objects["object_id"].is_unique
    # the spectrum with a ZTF alias and the alerts of that ZTF id are one object
    ztf0 = sorted({p["objectId"] for p in synthetic_packets})[0]
    row = objects.set_index("object_id").loc[ztf0]
    assert row["has_alerts"] and row["has_spectrum"] and row["label"] == "SN Ia" and row["redshift"] == 0.05
    # "2019xyz" (light curve) and "AT2019xyz" (spectrum) matched by name; "2020abd" likewise (two spectra)
    names = set(objects["object_id"])
    assert {"AT2019xyz", "SN2020abd"} <= names and "2019xyz" not in names and "2020abd" not in names
    assert objects.set_index("object_id").loc["AT2019xyz", "has_light_curve"]
    alerts = ds.alerts()
    assert len(alerts) == len(synthetic_packets) and alerts.metadata.shape == (len(synthetic_packets), len(METADATA_FEATURES))
    first = alerts.cutouts(0)
    assert first.shape == (3, 63, 63) and first.dtype == np.float32
    frame = pd.read_parquet(tmp_path / "ds" / "alerts.parquet")
    assert list(frame.columns[:7]) == ["object_id", "candid", "mjd", "band", "ra_deg", "dec_deg", "cutout_index"]
    assert all(frame[c].dtype == np.float32 for c in METADATA_FEATURES)
    # alert light curves merged over the object's alerts, de-duplicated on candid
    lcs = pd.read_parquet(tmp_path / "ds" / "light_curves.parquet")
    alert_rows = lcs[lcs["source"] == "alerts"]
    assert not alert_rows.duplicated(["object_id", "mjd", "band"]).any()
    assert set(alert_rows["object_id"]) == {p["objectId"] for p in synthetic_packets}
    # the alert-like stage: detections only, g/r, per-band gaps >= 2.5 d; Δt origin per object from jdstarthist
    assert lcs["is_detection"].all() and set(lcs["band"]) <= {"ztfg", "ztfr"}
    gaps = lcs.sort_values("mjd").groupby(["object_id", "band"])["mjd"].diff().dropna()
    assert (gaps >= 2.5 - 1e-9).all()
    manifest_counts = json.loads((tmp_path / "ds" / "manifest.json").read_text())["stages"]["alert_like"]
    assert manifest_counts["points_out"] == len(lcs) < manifest_counts["points_in"]
    first = objects.set_index("object_id")["first_detection_mjd"]
    jdstarthist = min(p["candidate"]["jdstarthist"] for p in synthetic_packets if p["objectId"] == ztf0) - 2400000.5
    assert first[ztf0] == pytest.approx(jdstarthist) and ds.light_curve(ztf0).first_detection_mjd == first[ztf0]
    assert (first[lcs["object_id"].unique()] <= lcs.groupby("object_id")["mjd"].min() + 1e-9).all()
    spectra = pd.read_parquet(tmp_path / "ds" / "spectra.parquet")
    assert spectra["spectrum_id"].is_unique and "dlangis/TDECat" in set(spectra["source"])
    # all spectra of an object in one split; every object in exactly one split
    merged = spectra.merge(objects, on="object_id")
    assert merged.groupby("object_id")["split"].nunique().max() == 1
    skipped = pd.read_csv(tmp_path / "ds" / "skipped.csv")
    assert any("'Iz' not mapped" in r for r in skipped["reason"])
    assert any("no alert, light curve or spectrum" in r for r in skipped["reason"])
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["counts"]["alerts"] == len(synthetic_packets)


def test_rerun_is_idempotent_and_resumes(tmp_path, public_tables, synthetic_avro_dir, caplog):
    config = _config(tmp_path, public_tables, synthetic_avro_dir)
    main(["--config", str(config)])
    before = {name: (tmp_path / "ds" / name).read_bytes() for name in
              ("objects.parquet", "alerts.parquet", "light_curves.parquet", "spectra.parquet", "skipped.csv", "cutouts.npy")}
    stamp = (tmp_path / "ds" / "_stages" / "alerts" / "alerts.parquet").stat().st_mtime_ns
    caplog.set_level("INFO")
    main(["--config", str(config)])
    assert "stage alerts: already done" in caplog.text
    assert (tmp_path / "ds" / "_stages" / "alerts" / "alerts.parquet").stat().st_mtime_ns == stamp
    for name, data in before.items():
        assert (tmp_path / "ds" / name).read_bytes() == data, name
    # an interrupted stage (no done marker) is redone; changing the exclusion list redoes the spectra stage
    (tmp_path / "ds" / "_stages" / "labels" / "done.json").unlink()
    main(["--config", str(config), "--set", "exclude_sources=[dlangis/TDECat]"])
    spectra = pd.read_parquet(tmp_path / "ds" / "spectra.parquet")
    assert "dlangis/TDECat" not in set(spectra["source"])
    assert not list((tmp_path / "ds").glob(".*.tmp-*"))


def test_unknown_config_key_fails(tmp_path, public_tables, synthetic_avro_dir):
    config = _config(tmp_path, public_tables, synthetic_avro_dir, colour="blue")
    with pytest.raises(ValueError, match="unknown keys"):
        main(["--config", str(config)])


@pytest.mark.slow
def test_public_build(shared_data, tmp_path):
    """configs/data_public.yaml on ../shared/data: complete, consistent, fast."""
    start = time.perf_counter()
    assert main(["--config", str(REPO_ROOT / "configs" / "data_public.yaml"), "--set", f"output_dir={tmp_path / 'pub'}"]) == 0
    assert time.perf_counter() - start < 600
    ds = open_dataset(tmp_path / "pub")
    objects = ds.objects
    assert objects["object_id"].is_unique and set(objects["split"]) == {"train", "val", "test"}
    alerts = ds.alerts()
    skipped = pd.read_csv(tmp_path / "pub" / "skipped.csv")
    n_skipped_alerts = skipped["reason"].str.startswith("duplicate candid").sum()
    assert len(alerts) == 2095 + 58 - n_skipped_alerts  # every alert kept once (avro files repeat parquet rows)
    assert (alerts.frame["cutout_index"] >= 0).sum() >= 1900
    assert len(ds.spectra()) == 2949
    cutouts = np.load(tmp_path / "pub" / "cutouts.npy", mmap_mode="r")
    assert cutouts.shape == ((alerts.frame["cutout_index"] >= 0).sum(), 3, 63, 63) and cutouts.dtype == np.float32
    assert sorted(alerts.frame.loc[alerts.frame["cutout_index"] >= 0, "cutout_index"]) == list(range(len(cutouts)))


@pytest.mark.parametrize("name", ["data.yaml", "data_public.yaml"])
def test_shipped_configs_parse(name):
    from applecider_core.config import load_yaml
    from applecider_data.build import BuildConfig

    config = load_yaml(REPO_ROOT / "configs" / name, BuildConfig)
    assert config.split.train + config.split.val + config.split.test == pytest.approx(1.0)


def test_kowalski_build_without_token_fails_clearly(tmp_path, monkeypatch):
    from applecider_data.errors import SourceError

    monkeypatch.delenv("KOWALSKI_TOKEN", raising=False)
    with pytest.raises(SourceError, match="KOWALSKI_TOKEN"):
        main(["--config", str(REPO_ROOT / "configs" / "data.yaml"), "--set", f"output_dir={tmp_path}",
              "--set", "sources.labels=null", "--set", "skyportal.enabled=false", "--set", "kowalski.object_ids=[ZTF1]"])
