"""Rubin packets through ``cider classify`` / ``Classifier.stream``: the survey is recorded, ZTF-trained models
are skipped with a reason, a mixed ZTF + Rubin folder classifies both, damaged files become error records."""

from __future__ import annotations

import json
import shutil

import pytest

from applecider_data import iter_packets, synthetic
from applecider_data import wire as wire_module
from applecider_fusion import Classifier
from applecider_fusion.classify import main as classify_main

V9 = "fink_v9_0_avro/169298432598474793_169298432598474793.avro"


@pytest.fixture(autouse=True)
def _without_lsst_package(monkeypatch):
    monkeypatch.setattr(wire_module, "_lsst_package_root", lambda: None)


@pytest.mark.slow
def test_v9_and_v10_packets_through_cider_classify(models_dir, shared_data, tmp_path, capsys):
    lsst = shared_data / "alerts_lsst"
    out = tmp_path / "out.jsonl"
    code = classify_main([str(lsst / V9), str(lsst / "fink_v10_0.parquet"), "--models", str(models_dir),
                          "--out", str(out), "--no-progress"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 1  # nothing the ZTF-trained models may classify
    assert len(records) == 26 and {r["survey"] for r in records} == {"lsst"}
    for record in records:
        assert record["errors"] == [] and record["modalities"] == [] and record["top_class"] is None
        assert set(record["skipped"]) == {"photometry", "images"}
        assert "trained on ztf" in record["skipped"]["images"] and "0.2″/pixel" in record["skipped"]["images"]
        assert "this one is lsst" in record["skipped"]["photometry"]
    assert records[0]["candid"] == 169298432598474793 and records[0]["objectId"] == "169298432598474793"
    assert "skipped (lsst): photometry, images" in capsys.readouterr().err


@pytest.mark.slow
def test_mixed_folder_of_ztf_and_rubin_packets(models_dir, shared_data, tmp_path):
    folder = tmp_path / "night"
    folder.mkdir()
    ztf = synthetic.make_packets(3, seed=4)
    synthetic.write_avro(folder / "ztf.avro", ztf)
    shutil.copy(shared_data / "alerts_lsst" / V9, folder / "rubin.avro")
    (folder / "rubin_truncated.avro").write_bytes((shared_data / "alerts_lsst" / V9).read_bytes()[:9000])
    records = list(Classifier.from_dir(models_dir).stream(iter_packets(folder)))
    by_survey = {s: [r for r in records if r["survey"] == s] for s in ("ztf", "lsst", None)}
    assert len(by_survey["ztf"]) == 3 and all(r["top_class"] for r in by_survey["ztf"])
    assert all(r["skipped"] == {} for r in by_survey["ztf"])
    assert len(by_survey["lsst"]) == 1 and set(by_survey["lsst"][0]["skipped"]) == {"photometry", "images"}
    assert len(by_survey[None]) == 1 and "rubin_truncated.avro" in by_survey[None][0]["errors"][0]


@pytest.mark.slow
def test_every_shared_rubin_packet_gives_a_record(models_dir, shared_data, tmp_path):
    out = tmp_path / "all.jsonl"
    classify_main([str(shared_data / "alerts_lsst"), "--models", str(models_dir), "--out", str(out), "--no-progress"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 126
    errors = [r for r in records if r["errors"]]
    assert len(errors) == 1 and "unknown schema id 900" in errors[0]["errors"][0] and "--schema-dir" in errors[0]["errors"][0]


@pytest.mark.slow
def test_a_rubin_trained_model_runs_on_rubin_and_skips_ztf(models_dir, shared_data, tmp_path):
    """The skip decision follows the config.json declaration, in both directions."""
    rubin_models = tmp_path / "rubin_models"
    shutil.copytree(models_dir / "photometry", rubin_models / "photometry")
    config_path = rubin_models / "photometry" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(survey="lsst", bands=["lsstg", "lsstr", "lssti"])
    config_path.write_text(json.dumps(config))
    preprocessor_path = rubin_models / "photometry" / "preprocessor.json"
    preprocessor = json.loads(preprocessor_path.read_text())
    preprocessor["features"]["bands"] = ["lsstg", "lsstr", "lssti"]
    preprocessor_path.write_text(json.dumps(preprocessor))
    packets = [*iter_packets(shared_data / "alerts_lsst" / V9), *synthetic.make_packets(1, seed=2)]
    rubin, ztf = Classifier.from_dir(rubin_models).classify(packets)
    assert rubin["survey"] == "lsst" and rubin["modalities"] == ["photometry"] and rubin["skipped"] == {}
    assert ztf["survey"] == "ztf" and ztf["modalities"] == [] and "trained on lsst" in ztf["skipped"]["photometry"]
