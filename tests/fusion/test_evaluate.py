"""Joint evaluation end to end on the shared dataset built from the public bundle (configs/data_public.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from applecider_data.build import main as build_main
from applecider_fusion.evaluate import main as evaluate_main
from applecider_fusion.trust import TrustSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_joint_evaluation_on_the_public_dataset(models_dir, shared_data, tmp_path, capsys):
    config = yaml.safe_load((REPO / "configs" / "data_public.yaml").read_text())
    config["output_dir"] = str(tmp_path / "dataset")
    def located(path: str) -> str:  # the config's ../shared/data paths → the bundle the fixture found
        return str(shared_data / Path(path).relative_to("../shared/data"))

    config["sources"] = {key: ([located(p) for p in value] if isinstance(value, list) else located(value))
                         for key, value in config["sources"].items()}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(config))
    assert build_main(["--config", str(tmp_path / "data.yaml")]) == 0
    out = tmp_path / "fusion"
    evaluate_yaml = tmp_path / "fusion.yaml"
    evaluate_yaml.write_text(yaml.safe_dump({"dataset": str(tmp_path / "dataset"), "models": str(models_dir),
                                             "output_dir": str(out)}))
    assert evaluate_main(["--config", str(evaluate_yaml)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == ["SN I", "SN II", "CV", "AGN", "TDE"]
    assert report["horizon_days"] == 10 and set(report["horizons"]) == {"3", "10", "30", "100"}
    for split in ("val", "test"):
        block = report["splits"][split]
        assert block == report["horizons"]["10"]["per_object"][split]
        assert block["n_labelled"] > 100
        assert "n" in block["common_set"]  # the common set is tiny on public data, but reported
        assert block["by_pattern"], "every missing-modality pattern gets its own block"
        fused = block["all_objects"]["fused"]
        assert fused["n"] == sum(b["fused"]["n"] for b in block["by_pattern"].values() if "fused" in b)
        for modality in ("photometry", "images", "spectra"):
            assert modality in block["all_objects"]
        assert (out / f"confusion_{split}.png").stat().st_size > 1000
        for horizon in ("3", "100"):  # per alert: one case per alert before the horizon
            alerts = report["horizons"][horizon]["per_alert"][split]["all_objects"]
            assert alerts["n"] <= report["horizons"]["100"]["per_alert"][split]["all_objects"]["n"]
        coverage = report["trust"][split]["per_object"]["10"]
        assert coverage["target_coverage"] == 0.9 and 0 <= coverage["coverage"] <= 1
    calibration = report["calibration"]
    assert set(calibration["fitted"]) <= {"photometry", "images", "spectra"}
    settings = json.loads((out / "fusion.json").read_text())
    for modality, fitted in calibration["fitted"].items():
        assert settings["temperatures"][modality] == fitted["temperature"]
        assert settings["biases"][modality] == fitted["bias"]
    # a class with fewer validation objects than the minimum (10) is unvalidated for that model, and only those
    counts, minimum = calibration["validation_objects"], calibration["min_validation_objects"]
    assert minimum == 10 and counts["photometry"]["SN I"] > 100
    assert settings["unvalidated"] == calibration["unvalidated"] == {
        m: [c for c, n in by_class.items() if n < minimum] for m, by_class in counts.items()
        if any(n < minimum for n in by_class.values())}
    trust = TrustSettings.load(out / "trust.json")
    assert trust.classes == report["classes"] and trust.min_detections >= 1 and trust.metadata_ranges
    assert "fused" in capsys.readouterr().out


def test_unusable_evaluation_config_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "fusion.yaml").write_text("dataset: x\nmodelz: y\n")
    for config in (tmp_path / "fusion.yaml", tmp_path / "absent.yaml"):
        with pytest.raises(SystemExit) as exit_info:
            evaluate_main(["--config", str(config)])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith("cider evaluate: error:")
