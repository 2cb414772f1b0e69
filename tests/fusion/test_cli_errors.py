"""Every user mistake the issue listed, through the real ``cider`` main: exit 2, one line saying what is
wrong and what to do, no traceback; and what a run that works reports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from applecider_core.cli import main as cider
from applecider_data import synthetic

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def alerts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("alerts")
    synthetic.write_alert_files(folder, 4, seed=5)
    return folder


def test_evaluate_before_a_data_build(tmp_path, models_dir, capsys, error_line):
    (tmp_path / "fusion.yaml").write_text(f"dataset: {tmp_path / 'not_built'}\nmodels: {models_dir}\n")
    assert cider(["evaluate", "--config", str(tmp_path / "fusion.yaml")]) == 2
    line = error_line()
    assert "no manifest.json" in line and "cider data build --config" in line


@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "photometry", "--config", "configs/photometry.yaml", "--set", "train.epocs=1"],
     "unknown keys ['epocs'] (did you mean 'epochs'?)"),
    (["train", "images", "--config", "configs/images.yaml", "--set", "train.epochs=abc"],
     "TrainingConfig.epochs must be int, got 'abc'"),
    (["train", "spectra", "--config", "configs/absent.yaml"], "config file configs/absent.yaml not found"),
    (["pretrain", "photometry", "--config", "configs/photometry_pretrain.yaml", "--set", "train.epochs"],
     "must look like key.path=value"),
    (["evaluate", "--config", "configs/fusion.yaml", "--set", "splits=[tset]"],
     "splits: unknown ['tset'] (did you mean 'test'?)"),
    (["train", "images"], "the following arguments are required: --config"),
    (["evaluate", "spectra", "--config", "configs/spectra.yaml"], "the following arguments are required: --model"),
])  # fmt: skip
def test_config_and_argument_mistakes(argv, expected, capsys, monkeypatch, error_line):
    monkeypatch.chdir(REPO)
    assert cider(argv) == 2
    assert expected in error_line()


def test_data_build_unknown_key_and_broken_yaml(tmp_path, capsys, error_line):
    (tmp_path / "keys.yaml").write_text("output_dirr: somewhere\n")
    assert cider(["data", "build", "--config", str(tmp_path / "keys.yaml")]) == 2
    assert "unknown keys ['output_dirr'] (did you mean 'output_dir'?)" in error_line()
    (tmp_path / "broken.yaml").write_text("sources:\n  alerts: [a.avro\n  labels: x.csv\n")
    assert cider(["data", "build", "--config", str(tmp_path / "broken.yaml")]) == 2
    assert "broken.yaml: not valid YAML at line 3" in error_line()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_classify_on_a_gpu_that_is_not_there(alerts, models_dir, capsys, error_line):
    assert cider(["classify", str(alerts), "--models", str(models_dir), "--device", "cuda"]) == 2
    assert "torch sees no CUDA GPU here; use --device cpu" in error_line()


def test_classify_missing_models_and_wrong_spectra_table(alerts, models_dir, tmp_path, capsys, error_line):
    assert cider(["classify", str(alerts), "--models", str(tmp_path / "none")]) == 2
    assert "no model directories" in error_line()
    light_curves = tmp_path / "lightcurves.parquet"
    pd.DataFrame({"objectId": ["ZTF1"], "mjd": [1.0], "band": ["ztfg"], "mag": [18.0]}).to_parquet(light_curves)
    assert cider(["classify", str(alerts), "--models", str(models_dir), "--spectra", str(light_curves)]) == 2
    line = error_line()
    assert "not a spectra table" in line and "['object', 'wavelength', 'flux']" in line


def test_output_folders_are_created_and_the_summary_says_what_ran(alerts, models_dir, tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "predictions.jsonl"
    assert cider(["classify", str(alerts), "--models", str(models_dir), "--out", str(out), "--no-progress"]) == 0
    assert len(out.read_text().splitlines()) == 4
    err = capsys.readouterr().err
    assert "alerts classified with: photometry 4/4, images 4/4, spectra 0/4 (no --spectra given)" in err
    spectra = synthetic_spectra(alerts, tmp_path)
    assert cider(["classify", str(alerts), "--models", str(models_dir), "--spectra", str(spectra), "--no-progress",
                  "--out", str(out)]) == 0
    assert "spectra 1/4 (spectra given for 1 objects)" in capsys.readouterr().err


def synthetic_spectra(alerts: Path, tmp_path: Path) -> Path:
    from applecider_fusion.examples import write_spectra_csv

    return write_spectra_csv(tmp_path / "spectra.csv", sorted(alerts.glob("*.avro"))[:1], seed=0)


def test_report_of_a_file_that_is_not_predictions(tmp_path, capsys, error_line):
    (tmp_path / "p.jsonl").write_text(json.dumps({"objectId": "ZTF1", "fused": {}}) + "\n{oops\n")
    assert cider(["report", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "r.html")]) == 2
    assert "p.jsonl: line 2 is not JSON" in error_line()
    assert cider(["report", str(tmp_path / "absent.jsonl"), "--out", str(tmp_path / "r.html")]) == 2
    assert "predictions file not found: " in error_line()
