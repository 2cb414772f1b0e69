import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from applecider_core.metrics import softmax
from applecider_core.taxonomy import FINE_CLASSES, FUSION, SPECTRA_CLASSES
from applecider_fusion import FusionError, ProbabilityFusion

CLASSES = {"photometry": FINE_CLASSES, "images": FINE_CLASSES, "spectra": SPECTRA_CLASSES}
finite_logits = st.floats(min_value=-20, max_value=20, allow_nan=False)


def test_fine_probabilities_are_summed_into_fusion_classes():
    fusion = ProbabilityFusion({"photometry": FINE_CLASSES})
    logits = np.log(np.array([[0.5, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0 + 1e-12, 0.05, 0.05, 0.0 + 1e-12]]))
    fused = fusion.fuse({"photometry": logits})
    # SN I = Ia + Ib + Ic = 0.7; SN II = II + IIP + IIn + IIb = 0.2; CV 0.05; AGN 0.05; TDE ~0
    np.testing.assert_allclose(fused, [[0.7, 0.2, 0.05, 0.05, 0.0]], atol=1e-9)


def test_missing_modality_is_left_out_of_sum_and_weights():
    fusion = ProbabilityFusion(CLASSES, weights={"spectra": 2.0})
    rng = np.random.default_rng(0)
    logits = {m: rng.normal(size=(3, len(c))) for m, c in CLASSES.items()}
    present = {"photometry": np.array([1, 1, 0], bool), "images": np.array([1, 1, 1], bool),
               "spectra": np.array([1, 0, 0], bool)}
    fused = fusion.fuse(logits, present)
    p = {m: fusion.to_taxonomy(m, logits[m]) for m in CLASSES}
    np.testing.assert_allclose(fused[0], (p["photometry"][0] + p["images"][0] + 2 * p["spectra"][0]) / 4)
    np.testing.assert_allclose(fused[1], (p["photometry"][1] + p["images"][1]) / 2)
    np.testing.assert_allclose(fused[2], p["images"][2])
    nothing = fusion.fuse(logits, {m: np.zeros(3, bool) for m in CLASSES})
    assert np.isnan(nothing).all()


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (4, 10), elements=finite_logits),
    arrays(np.float64, (4, 10), elements=finite_logits),
    arrays(np.float64, (4, 11), elements=finite_logits),
    arrays(np.bool_, (3, 4)),
    st.floats(min_value=0.1, max_value=5.0),
)
def test_fused_is_a_distribution_between_member_extremes(photo, image, spec, present, weight):
    fusion = ProbabilityFusion(CLASSES, weights={"images": weight})
    logits = {"photometry": photo, "images": image, "spectra": spec}
    present_by = {m: present[i] for i, m in enumerate(CLASSES)}
    fused = fusion.fuse(logits, present_by)
    members = np.stack([fusion.to_taxonomy(m, logits[m]) for m in CLASSES])  # (3, 4, 5)
    for row in range(4):
        have = present[:, row]
        if not have.any():
            assert np.isnan(fused[row]).all()
            continue
        assert fused[row].sum() == pytest.approx(1.0)
        assert np.all(fused[row] >= members[have, row].min(axis=0) - 1e-12)
        assert np.all(fused[row] <= members[have, row].max(axis=0) + 1e-12)


def test_inconsistent_inputs_are_refused():
    with pytest.raises(FusionError, match="Nova"):
        ProbabilityFusion({"spectra": ("SN Ia", "Nova")})
    with pytest.raises(FusionError, match="unknown modalities"):
        ProbabilityFusion({"radio": FINE_CLASSES})
    with pytest.raises(FusionError, match="no model"):
        ProbabilityFusion({"photometry": FINE_CLASSES}, weights={"spectra": 1.0})
    fusion = ProbabilityFusion({"photometry": FINE_CLASSES})
    with pytest.raises(FusionError, match="expected logits"):
        fusion.fuse({"photometry": np.zeros((2, 5))})


def test_temperature_fit_recovers_overconfidence():
    rng = np.random.default_rng(1)
    fusion = ProbabilityFusion({"photometry": FINE_CLASSES})
    true_logits = rng.normal(size=(3000, 10)) * 2
    fine_labels = np.array([rng.choice(10, p=p) for p in softmax(true_logits)])
    fusion_labels = (fusion._projections["photometry"][fine_labels]).argmax(axis=1)
    fitted = fusion.fit_calibration({"photometry": (true_logits * 3, fusion_labels)}, fit_bias=False)
    assert fitted["photometry"]["temperature"] == pytest.approx(3.0, rel=0.2)
    assert fusion.temperatures["photometry"] == fitted["photometry"]["temperature"]
    assert fusion.biases["photometry"] == [0.0] * 10


def test_bias_fit_recovers_a_label_shift():
    """A model trained on balanced classes, deployed where they are 70/20/10: the fitted bias is log(prior),
    centred (hand check: log(0.7, 0.2, 0.1) = (-0.357, -1.609, -2.303), mean -1.423 → (1.066, -0.187, -0.880)); the temperature stays 1."""
    rng = np.random.default_rng(2)
    classes = ("SN I", "SN II", "TDE")
    fusion = ProbabilityFusion({"photometry": classes})
    balanced_logits = rng.normal(size=(6000, 3)) * 1.5
    prior = np.array([0.7, 0.2, 0.1])
    shifted = softmax(balanced_logits + np.log(prior))
    labels = np.array([FUSION.index(classes[rng.choice(3, p=p)]) for p in shifted])
    fitted = fusion.fit_calibration({"photometry": (balanced_logits, labels)})["photometry"]
    expected = np.log(prior) - np.log(prior).mean()
    np.testing.assert_allclose(expected, [1.066, -0.187, -0.880], atol=0.001)
    np.testing.assert_allclose(fitted["bias"], expected, atol=0.12)
    assert fitted["temperature"] == pytest.approx(1.0, abs=0.1)
    assert sum(fitted["bias"]) == pytest.approx(0.0, abs=1e-3)
    probs = fusion.member_probabilities("photometry", np.zeros((1, 3)))[0]  # an uninformative input → the prior
    np.testing.assert_allclose(probs, prior, atol=0.04)


def test_calibration_of_a_tiny_separable_validation_stays_near_one():
    """Ten correctly classified cases must not drive T to the edge of its range (the prior keeps it near 1);
    cases of a class the model does not cover are left out of its fit."""
    fusion = ProbabilityFusion({"images": ("SN Ia", "SN II")})
    logits = np.array([[3.0, 0.0]] * 5 + [[0.0, 3.0]] * 5 + [[1.0, 0.0]] * 4)
    labels = np.array([FUSION.index("SN I")] * 5 + [FUSION.index("SN II")] * 5 + [FUSION.index("TDE")] * 4)
    fitted = fusion.fit_calibration({"images": (logits, labels)})["images"]
    assert 0.5 < fitted["temperature"] <= 1.0
    assert np.abs(fitted["bias"]).max() < 0.2
    repeated = np.repeat(logits[:10], 20, axis=0), np.repeat(labels[:10], 20)  # each case seen 20 times
    sharp = ProbabilityFusion({"images": ("SN Ia", "SN II")}).fit_calibration({"images": repeated})["images"]
    once = ProbabilityFusion({"images": ("SN Ia", "SN II")}).fit_calibration(
        {"images": (*repeated, np.full(200, 1 / 20))})["images"]  # weighted: each object counts once
    assert sharp["temperature"] < 0.7 * once["temperature"] and once["temperature"] > 0.5  # 0.41 vs 0.64
    with pytest.raises(FusionError, match="bias must be 2 finite numbers"):
        ProbabilityFusion({"images": ("SN Ia", "SN II")}, biases={"images": [0.0]})


# ---- coverage: a model says nothing about the fusion classes it does not cover --------------------------
# Fine class subsets and the fusion classes they cover (SN I, SN II, CV, AGN, TDE).
SUBSETS = {
    "all": FINE_CLASSES,
    "supernovae": ("SN Ia", "SN Ib", "SN II", "SN IIP"),
    "no_cv_agn": ("SN Ia", "SN Ic", "SN II", "TDE"),
    "nuclear": ("AGN", "TDE", "SN Ia"),
    "one": ("SN Ia", "SN Ib"),
}
subset_names = st.sampled_from(sorted(SUBSETS))


@settings(max_examples=80, deadline=None)
@given(st.lists(subset_names, min_size=1, max_size=3), st.data())
def test_coverage_aware_fusion_is_a_distribution_over_covered_classes(subsets, data):
    modalities = ("photometry", "images", "spectra")[: len(subsets)]
    fusion = ProbabilityFusion({m: SUBSETS[s] for m, s in zip(modalities, subsets)},
                               weights={m: data.draw(st.floats(0.2, 5.0)) for m in modalities})
    logits = {m: data.draw(arrays(np.float64, (3, len(SUBSETS[s])), elements=finite_logits))
              for m, s in zip(modalities, subsets)}
    present = {m: data.draw(arrays(np.bool_, 3)) for m in modalities}
    fused = fusion.fuse(logits, present)
    for row in range(3):
        have = [m for m in modalities if present[m][row]]
        if not have:
            assert np.isnan(fused[row]).all()
            continue
        covered = set().union(*(fusion.covered(m) for m in have))
        assert fused[row].sum() == pytest.approx(1.0)
        assert np.all(fused[row] >= -1e-12)
        for c, name in enumerate(fusion.classes):
            if name not in covered:
                assert fused[row, c] == 0.0  # nobody present can say anything about it


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 10), elements=finite_logits), st.data(), st.floats(0.2, 5.0))
def test_a_partial_model_leaves_the_classes_it_does_not_cover_alone(full_logits, data, weight):
    subset = data.draw(subset_names.filter(lambda s: s != "all"))
    partial_logits = data.draw(arrays(np.float64, (4, len(SUBSETS[subset])), elements=finite_logits))
    fusion = ProbabilityFusion({"photometry": FINE_CLASSES, "images": SUBSETS[subset]}, weights={"images": weight})
    alone = fusion.to_taxonomy("photometry", full_logits)
    fused = fusion.fuse({"photometry": full_logits, "images": partial_logits})
    covered = np.isin(fusion.classes, fusion.covered("images"))
    np.testing.assert_allclose(fused[:, ~covered], alone[:, ~covered], atol=1e-9)
    # within its classes the partial model only redistributes the mass the full model gave them
    np.testing.assert_allclose(fused[:, covered].sum(axis=1), alone[:, covered].sum(axis=1), atol=1e-9)
    partial = fusion.to_taxonomy("images", partial_logits)
    expected = (alone + weight * partial * alone[:, covered].sum(axis=1, keepdims=True)) / (1 + weight)
    np.testing.assert_allclose(fused[:, covered], expected[:, covered], atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (3, 10), elements=finite_logits), arrays(np.float64, (3, 4), elements=finite_logits))
def test_a_model_covering_one_class_changes_nothing(full_logits, partial_logits):
    fusion = ProbabilityFusion({"photometry": FINE_CLASSES, "spectra": ("SN Ia", "SN Ib", "SN Ic", "SLSN-I")})
    assert fusion.covered("spectra") == ("SN I",)
    fused = fusion.fuse({"photometry": full_logits, "spectra": partial_logits})
    np.testing.assert_allclose(fused, fusion.to_taxonomy("photometry", full_logits), atol=1e-9)


def test_coverage_aware_fusion_reaches_its_fixed_point_with_overlapping_partial_models():
    fusion = ProbabilityFusion({"photometry": ("SN Ia", "SN II", "TDE"), "images": ("SN II", "CV", "AGN")})
    logits = {"photometry": np.log([[0.6, 0.3, 0.1]]), "images": np.log([[0.2, 0.5, 0.3]])}
    q = fusion.fuse(logits)[0]
    for m in logits:
        p = fusion.to_taxonomy(m, logits[m])  # q = mean of e_m(q), e_m as in the module docstring
        covered = np.isin(fusion.classes, fusion.covered(m))
        e = np.where(covered, p[0] * q[covered].sum(), q)
        if m == "photometry":
            total = e
        else:
            np.testing.assert_allclose(q, (total + e) / 2, atol=1e-9)
    assert q.sum() == pytest.approx(1.0) and np.all(q > 0)


# ---- validation: a model speaks at fusion only for the classes it was validated on ----------------------
@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 10), elements=finite_logits), arrays(np.float64, (4, 10), elements=finite_logits),
       st.sets(st.sampled_from(FUSION.classes), max_size=4), st.floats(0.2, 5.0))
def test_unvalidated_classes_are_uncovered_and_the_rest_renormalised(full_logits, image_logits, unvalidated, weight):
    fusion = ProbabilityFusion({"photometry": FINE_CLASSES, "images": FINE_CLASSES}, weights={"images": weight},
                               unvalidated={"images": sorted(unvalidated)})
    assert set(fusion.covered("images")) == set(FUSION.classes) - unvalidated
    assert fusion.covered("images", validated=False) == FUSION.classes
    spoken = ~np.isin(FUSION.classes, list(unvalidated))
    full = ProbabilityFusion({"images": FINE_CLASSES}).to_taxonomy("images", image_logits)
    expected = full * spoken / (full * spoken).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(fusion.to_taxonomy("images", image_logits), expected, atol=1e-9)
    # the images model leaves the classes it is not validated on as the photometry model has them
    reference = ProbabilityFusion({"photometry": FINE_CLASSES}).to_taxonomy("photometry", full_logits)
    fused = fusion.fuse({"photometry": full_logits, "images": image_logits})
    np.testing.assert_allclose(fused[:, ~spoken], reference[:, ~spoken], atol=1e-9)
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-9)


def test_a_model_validated_on_no_class_does_not_vote_and_bad_settings_are_refused():
    fusion = ProbabilityFusion({"photometry": ("SN Ia", "SN II", "TDE"), "images": ("SN Ia", "SN II")},
                               unvalidated={"images": ["SN I", "SN II"]})
    logits = {"photometry": np.log([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]), "images": np.log([[0.9, 0.1], [0.1, 0.9]])}
    np.testing.assert_allclose(fusion.fuse(logits), fusion.to_taxonomy("photometry", logits["photometry"]), atol=1e-12)
    only_images = fusion.fuse(logits, {"photometry": np.zeros(2, bool), "images": np.ones(2, bool)})
    assert np.isnan(only_images).all()  # nothing validated speaks for these alerts
    with pytest.raises(FusionError, match="not fusion classes"):
        ProbabilityFusion({"images": ("SN Ia", "SN II")}, unvalidated={"images": ["SN Ia"]})
    with pytest.raises(FusionError, match="which has no model"):
        ProbabilityFusion({"images": ("SN Ia", "SN II")}, unvalidated={"spectra": ["SN I"]})
