"""Trust settings: conformal sets, abstention, out-of-distribution reasons, storage, and their use in records."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applecider_core.taxonomy import FUSION_CLASSES
from applecider_data import synthetic
from applecider_fusion import Classifier, FusionError
from applecider_fusion.classify import main as classify_main
from applecider_fusion.trust import (
    NO_TRUST_NOTE,
    TRUST_SETTINGS_NAME,
    TrustFitConfig,
    TrustSettings,
    conformal_sets,
    conformal_threshold,
    energy_score,
    fit_abstain_threshold,
    fit_class_thresholds,
    fit_trust,
    trust_report,
)


def _calibrated(rng: np.random.Generator, n: int, sharpness: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities over the 5 fusion classes with labels drawn from them (exchangeable, calibrated)."""
    logits = rng.normal(size=(n, 5)) * sharpness + np.array([2.0, 1.0, 0.0, 0.0, 0.5])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return probs, labels


def test_conformal_threshold_is_the_right_order_statistic():
    p = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.6, 0.4])  # n = 9
    assert conformal_threshold(p, 0.8) == 0.2  # ⌈10·0.8⌉ = 8th largest
    assert conformal_threshold(p, 0.5) == 0.5  # 5th largest
    assert conformal_threshold(p, 0.95) is None  # needs ⌈10·0.95⌉ = 10 > 9 items


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.8, 0.9, 0.95]))
def test_class_conditional_coverage_holds_on_exchangeable_data(seed, coverage):
    rng = np.random.default_rng(seed)
    calibration, test = _calibrated(rng, 10_000), _calibrated(rng, 10_000)
    thresholds, pooled = fit_class_thresholds(*calibration, FUSION_CLASSES, coverage)
    assert not pooled
    report = trust_report(TrustSettings(list(FUSION_CLASSES), coverage, {"all": thresholds}), *test)
    variance = 0.0  # of the marginal coverage: class-weighted sum of the per-class sampling variances
    for c, block in enumerate(report["per_class_coverage"].values()):
        n_calibration = (calibration[1] == c).sum()
        # coverage ≥ target in expectation; allow 4 standard errors of calibration and test sampling
        class_variance = coverage * (1 - coverage) * (1 / n_calibration + 1 / block["n"])
        assert block["coverage"] >= coverage - 4 * np.sqrt(class_variance)
        variance += (block["n"] / len(test[1])) ** 2 * class_variance
    noise = 4 * np.sqrt(variance)
    assert coverage - noise <= report["coverage"] <= coverage + 0.03 + noise


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000))
def test_conformal_sets_are_the_thresholded_sets_with_empty_ones_given_their_top_class(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(5), size=40)
    thresholds = rng.uniform(0.1, 0.9, size=(40, 5))
    in_set, filled = conformal_sets(probs, thresholds)
    assert np.array_equal(filled, ~(probs >= thresholds).any(axis=1))
    assert np.array_equal(in_set[~filled], (probs >= thresholds)[~filled])  # non-empty sets untouched
    assert np.array_equal(in_set[filled], np.eye(5, dtype=bool)[probs[filled].argmax(axis=1)])
    report = trust_report(_settings(group_thresholds={"all": dict(zip(FUSION_CLASSES, thresholds[0]))}),
                          probs, rng.integers(0, 5, 40))
    assert report["filled_sets"] == conformal_sets(probs, np.tile(thresholds[0], (40, 1)))[1].mean()


def test_a_class_too_small_to_calibrate_takes_the_pooled_threshold():
    rng = np.random.default_rng(0)
    probs, labels = _calibrated(rng, 500)
    labels[labels == 2] = 0
    labels[:3] = 2  # 3 CV items: fewer than the 9 a 90 % quantile needs
    thresholds, pooled = fit_class_thresholds(probs, labels, FUSION_CLASSES, 0.9)
    assert pooled == ["CV"]
    assert thresholds["CV"] == conformal_threshold(probs[np.arange(500), labels], 0.9)
    with pytest.raises(FusionError, match="too few"):
        fit_class_thresholds(probs[:5], labels[:5], FUSION_CLASSES, 0.9)


def test_abstain_threshold_keeps_the_confident_items_at_the_target_accuracy():
    rng = np.random.default_rng(1)
    probs, labels = _calibrated(rng, 4000)
    threshold = fit_abstain_threshold(probs, labels, 0.8)
    kept = probs.max(axis=1) >= threshold
    assert 0 < kept.mean() < 1
    assert (probs[kept].argmax(axis=1) == labels[kept]).mean() >= 0.8
    assert fit_abstain_threshold(probs, labels, 0.0001) == probs.max(axis=1).min()  # keep everything


def _settings(**overrides) -> TrustSettings:
    values = dict(classes=list(FUSION_CLASSES), coverage=0.9,
                  group_thresholds={"all": {"SN I": 0.3, "SN II": 0.3, "CV": 0.5, "AGN": 0.5, "TDE": 0.2},
                                    "photometry": {"SN I": 0.3, "SN II": 0.3, "CV": 0.5, "AGN": 0.5, "TDE": 0.2}},
                  abstain_below=0.6, min_detections=2, metadata_ranges={"magpsf": [14.0, 21.0]},
                  energy_limits={"photometry": -3.0}, fitted_on="test")
    return TrustSettings(**{**values, **overrides})


def test_assess_gives_sets_abstention_and_every_ood_reason():
    trust = _settings()
    confident = trust.assess(np.array([0.9, 0.05, 0.0, 0.0, 0.05]), {"photometry": np.array([8.0, 0.0])}, {})
    assert confident == {"prediction_set": ["SN I"], "abstain": False, "ood": False, "ood_reasons": [], "notes": []}
    torn = trust.assess(np.array([0.45, 0.4, 0.0, 0.0, 0.15]), {"images": np.zeros(3)}, {})
    assert torn["prediction_set"] == ["SN I", "SN II"] and torn["abstain"]
    assert torn["notes"] == ["prediction_set: no validation calibration for images inputs; thresholds of all "
                             "inputs used, coverage not guaranteed"]
    other = trust.assess(np.array([0.25, 0.2, 0.2, 0.1, 0.25]), {}, {})  # set {TDE} is not the top class
    assert other["abstain"]
    empty = trust.assess(np.array([0.28, 0.27, 0.2, 0.1, 0.15]), {"photometry": np.array([8.0, 0.0])}, {})
    assert empty["prediction_set"] == ["SN I"] and empty["abstain"]  # no class reached its threshold
    assert empty["notes"] == ["prediction_set: no class reached its threshold; the top class SN I is given"]
    strange = trust.assess(np.array([0.9, 0.05, 0.0, 0.0, 0.05]), {"photometry": np.array([0.1, 0.0])}, {},
                           detections=1, metadata={"magpsf": 22.5, "sgscore1": 0.5})
    assert strange["ood"] and not strange["abstain"]
    reasons = " | ".join(strange["ood_reasons"])
    assert "1 detection(s), fewer than any training light curve (2)" in reasons
    assert "magpsf=22.5 outside the training range [14, 21]" in reasons
    assert "photometry: energy" in reasons and "sgscore1" not in reasons
    e = energy_score(np.array([[0.1, 0.0]]))[0]
    assert e == pytest.approx(-np.log(np.exp(0.1) + 1.0))


def test_trust_settings_round_trip_and_bad_files_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    probs, labels = _calibrated(rng, 800)
    energies = rng.normal(size=100)
    ages = rng.choice([3.0, 10.0, 30.0, np.nan], size=len(labels))
    patterns = np.where(np.arange(len(labels)) % 4 == 0, "photometry+images", "photometry")
    patterns[:40] = "spectra"  # 40 items: some class calibrated, others borrowed from "all"
    fitted = fit_trust(TrustFitConfig(), FUSION_CLASSES, probs, labels, patterns, ages, {"spectra": energies}, 3,
                       {"magpsf": (15.0, 20.5)}, "synthetic", age_edges_days=[3, 10, 30, 100])
    groups = fitted.group_thresholds
    assert fitted.age_edges_days == [3, 10, 30, 100]
    young = (ages == 3.0) & (patterns == "photometry")
    assert groups["photometry@3"] == fit_class_thresholds(probs[young], labels[young], FUSION_CLASSES, 0.9,
                                                          fallback=groups["photometry"])[0]
    assert fitted.group(["photometry"], 2.0) == "photometry@3"
    assert fitted.group(["photometry"], 365.0) == "photometry"  # no item that old: the pattern's thresholds
    assert fitted.group(["photometry"], float("nan")) == "photometry"
    assert fitted.group(["images", "photometry"], 10.0) == "photometry+images@10"
    assert fitted.group(["images"], 3.0) == "all"
    rare = [c for c in FUSION_CLASSES if (labels[:40] == FUSION_CLASSES.index(c)).sum() < 9]
    assert rare and all(groups["spectra"][c] == groups["all"][c] for c in rare)
    assert fitted.energy_limits["spectra"] == pytest.approx(np.percentile(energies, 99))
    assert fitted.min_detections == 3 and fitted.metadata_ranges == {"magpsf": [15.0, 20.5]}
    path = fitted.save(tmp_path / TRUST_SETTINGS_NAME)
    assert TrustSettings.load(path) == fitted
    bad = json.loads(path.read_text()) | {"threshold": 1}
    path.write_text(json.dumps(bad))
    with pytest.raises(FusionError, match="unknown keys"):
        TrustSettings.load(path)
    with pytest.raises(FusionError, match="coverage"):
        TrustFitConfig(coverage=1.2)


def test_records_without_trust_settings_say_so_and_with_them_carry_the_fields(models_dir, tmp_path, capsys):
    packets = synthetic.make_packets(4, seed=8, n_objects=2)
    plain = Classifier.from_dir(models_dir).classify(packets)
    for record in plain:
        assert record["prediction_set"] is None and record["abstain"] is None and record["ood"] is None
        assert NO_TRUST_NOTE in record["notes"] and not record["errors"]
    trusted_dir = tmp_path / "models"
    shutil.copytree(models_dir, trusted_dir)
    _settings(abstain_below=0.0, group_thresholds={"all": dict.fromkeys(FUSION_CLASSES, 0.0)},
              energy_limits={}).save(trusted_dir / TRUST_SETTINGS_NAME)
    trusted = Classifier.from_dir(trusted_dir).classify(packets)
    for record in trusted:
        assert record["prediction_set"] == list(FUSION_CLASSES) and record["abstain"] is True
        assert isinstance(record["ood"], bool) and NO_TRUST_NOTE not in record["notes"]
        assert any("no validation calibration for photometry+images" in n for n in record["notes"])
    paths = synthetic.write_alert_files(tmp_path / "night", 3, seed=9)
    assert classify_main([str(p) for p in paths] + ["--models", str(trusted_dir), "--out",
                                                    str(tmp_path / "o.jsonl"), "--no-progress"]) == 0
    assert "abstained 100.0%, out of distribution" in capsys.readouterr().err
    assert classify_main([str(p) for p in paths] + ["--models", str(models_dir), "--out",
                                                    str(tmp_path / "o.csv"), "--no-progress"]) == 0
    assert "trust not assessed" in capsys.readouterr().err


def test_an_object_first_detected_in_an_earlier_episode_is_classified_and_flagged(models_dir, tmp_path):
    """jdstarthist 800 d before the packet's history: photometry still runs (Δt from the curve's first point),
    the record says why in notes and, with trust settings, among ood_reasons."""
    packets = synthetic.make_packets(1, seed=8, n_objects=1)
    candidate = packets[0]["candidate"]
    history_start = min([candidate["jd"]] + [p["jd"] for p in packets[0]["prv_candidates"] or [] if p.get("magpsf")])
    candidate["jdstarthist"] = history_start - 800.0
    trusted_dir = tmp_path / "models"
    shutil.copytree(models_dir, trusted_dir)
    _settings(energy_limits={}).save(trusted_dir / TRUST_SETTINGS_NAME)
    (record,) = Classifier.from_dir(trusted_dir).classify(packets)
    assert "photometry" in record["modalities"] and not record["errors"]
    restart = [n for n in record["notes"] if n.startswith("photometry: first detection 800 d before")]
    assert restart and restart[0].endswith("an earlier episode); Δt counted from the first point")
    assert record["ood"] and restart[0] in record["ood_reasons"]
