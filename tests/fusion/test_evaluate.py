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


def test_conformal_scores_are_cross_fitted_so_no_object_calibrates_its_own_probabilities():
    import dataclasses
    from functools import partial
    from types import SimpleNamespace

    import numpy as np

    from applecider_fusion import ProbabilityFusion
    from applecider_fusion.evaluate import _cross_fitted, _fit_calibration

    rng = np.random.default_rng(0)
    objects = np.repeat(np.array([f"o{i}" for i in range(40)], dtype=object), 3)  # 3 cases (horizons) per object
    labels = np.repeat(rng.integers(0, 2, 40), 3)
    logits = {"photometry": rng.normal(size=(120, 2)) + 2.0 * np.eye(2)[labels]}
    fusion = ProbabilityFusion({"photometry": ("SN Ia", "SN II")})
    calibrate = partial(_fit_calibration, labels=labels, logits=logits, objects=objects, fit_bias=True)
    fused = _cross_fitted(SimpleNamespace(fusion=fusion), calibrate, logits, objects)
    assert fusion.temperatures == {} and fusion.biases == {}  # the deployed fusion is left alone
    names = np.unique(objects.astype(str))
    side = dict(zip(names, np.random.default_rng(0).permutation(len(names)) % 2))
    halves = np.array([side[o] for o in objects])
    assert {tuple(set(halves[objects == o])) for o in names} <= {(0,), (1,)}  # an object's cases stay together
    for k in (0, 1):  # each half fused with the calibration fitted on the other half only
        other = dataclasses.replace(fusion)
        calibrate(other, halves != k)
        np.testing.assert_allclose(fused[halves == k], other.fuse({"photometry": logits["photometry"][halves == k]}))
    own = dataclasses.replace(fusion)
    calibrate(own, np.ones(120, bool))
    assert not np.allclose(fused, own.fuse(logits))  # not the probabilities of the calibration fitted on everything
