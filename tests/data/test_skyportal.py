"""SkyPortal source against a loopback server replaying recorded-shaped responses (incl. 429 and 503)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from applecider_data.errors import SourceError
from applecider_data.skyportal import SkyPortalClient, classifications_stage

SPECTRA = {"status": "success", "data": {"obj_id": "ZTF20abcdefg", "spectra": [{
    "id": 123, "obj_id": "ZTF20abcdefg", "observed_at": "2020-06-01T00:00:00", "wavelengths": [4000.0, 4001.0, 4002.0],
    "fluxes": [1.0, 2.0, 3.0], "units": "erg/s/cm/cm/AA", "instrument_name": "SEDM", "origin": "", "type": "source"}]}}
CLASSES = {"status": "success", "data": [
    {"classification": "Ia", "probability": 1.0, "ml": False}, {"classification": "Ia-91T", "probability": 0.9, "ml": False},
    {"classification": "AGN", "probability": 0.99, "ml": True}, {"classification": "II", "probability": 0.1, "ml": False}]}


def _ok(body):
    return {"status": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def test_spectra_and_classifications_with_rate_limit(recorded_server, tmp_path):
    url, log = recorded_server({
        "GET /api/sources/ZTF20abcdefg/spectra": [
            {"status": 429, "headers": {"Retry-After": "2"}, "body": "slow down"}, _ok(SPECTRA)],
        "GET /api/sources/ZTF20abcdefg/classifications": [{"status": 503, "body": "busy"}, _ok(CLASSES)],
    })
    client = SkyPortalClient(url, token="tok", backoff_s=0.01)
    delays = []
    client.sleep = delays.append
    spectra = client.spectra("ZTF20abcdefg")
    assert delays == [2.0]  # Retry-After honoured
    assert len(spectra) == 1 and spectra[0].spectrum.spectrum_id == "skyportal:123"
    np.testing.assert_array_equal(spectra[0].spectrum.wavelength_aa, [4000.0, 4001.0, 4002.0])
    assert spectra[0].spectrum.mjd == pytest.approx(59001.0)  # 2020-06-01T00:00 UTC
    assert client.classification("ZTF20abcdefg") == "SN Ia"  # ML and low-probability claims ignored
    assert delays == [2.0, 0.01]  # exponential backoff on 503 (attempt 0: backoff_s * 2**0)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(line["headers"]["Authorization"] == "token tok" for line in lines) and len(lines) == 4
    summary = classifications_stage(client, ["ZTF20abcdefg", "ZTF20missing"], tmp_path)
    assert summary == {"labels": 1, "skipped": 1}


def test_gives_up_after_retries(recorded_server):
    url, _ = recorded_server({"GET /api/sources/X/spectra": [{"status": 500, "body": "down"}]})
    client = SkyPortalClient(url, token="t", max_retries=2, backoff_s=0.0)
    client.sleep = lambda s: None
    with pytest.raises(SourceError, match="HTTP 500"):
        client.spectra("X")
    items = list(client.iter_spectra(["X"]))
    assert items == [("skyportal spectra X", items[0][1])] and "HTTP 500" in items[0][1]


def test_built_fritz_spectra_take_the_object_label(recorded_server, tmp_path, monkeypatch):
    """A build from the recorded SkyPortal server: its spectra carry no type, the object's classification is theirs."""
    import pandas as pd
    import yaml

    from applecider_data.build import main as build_main

    spectra = json.loads(json.dumps(SPECTRA))
    item = spectra["data"]["spectra"][0]
    item["wavelengths"] = np.linspace(4000.0, 9000.0, 400).tolist()
    item["fluxes"] = np.ones(400).tolist()
    url, _ = recorded_server({"GET /api/sources/ZTF20abcdefg/spectra": [_ok(spectra)],
                              "GET /api/sources/ZTF20abcdefg/classifications": [_ok(CLASSES)]})
    monkeypatch.setenv("SKYPORTAL_TOKEN", "tok")
    config = {"output_dir": str(tmp_path / "ds"),
              "skyportal": {"enabled": True, "base_url": url, "object_ids": ["ZTF20abcdefg"]}}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(config))
    assert build_main(["--config", str(tmp_path / "data.yaml")]) == 0
    built = pd.read_parquet(tmp_path / "ds" / "spectra.parquet")
    assert built["source"].str.startswith("skyportal").all() and built["label"].tolist() == ["SN Ia"]
