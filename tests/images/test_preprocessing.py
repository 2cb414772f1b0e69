"""Golden values and invariants of the cutout and metadata preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from applecider_core.config import ConfigError
from applecider_core.records import METADATA_FEATURES
from applecider_images.configuration import ImageInputConfig
from applecider_images.preprocessing import (
    MetadataPreprocessor,
    PreprocessingError,
    centre_crop,
    normalise_stamps,
    pad_stamp,
    preprocess_cutouts,
    radial_distance,
    sky_embedding,
)


def test_l2_golden_with_nan_and_inf():
    stamp = np.array([[3.0, 4.0], [np.nan, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(normalise_stamps(stamp, "l2"), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    stamp = np.array([[np.inf, 0.0], [0.0, -2.0]], dtype=np.float32)
    np.testing.assert_allclose(normalise_stamps(stamp, "l2"), [[0.0, 0.0], [0.0, -1.0]])
    assert not normalise_stamps(np.full((2, 2), np.nan), "l2").any()  # fully masked → zeros, no warning


def test_median_mad_golden():
    # median 2, |x - 2| = (1, 0, 1) → MAD 1 → σ = 1.4826
    stamp = np.array([[1.0, 2.0], [3.0, np.nan]])
    expected = np.array([[-1 / 1.4826, 0.0], [1 / 1.4826, 0.0]])
    np.testing.assert_allclose(normalise_stamps(stamp, "median_mad"), expected, rtol=1e-5)
    np.testing.assert_array_equal(normalise_stamps(np.full((2, 2), 7.0), "median_mad"), 0.0)  # constant stamp


def test_crop_matches_reference_slice():
    image = np.arange(63 * 63, dtype=np.float32).reshape(63, 63)
    np.testing.assert_array_equal(centre_crop(image, 49), image[7:56, 7:56])
    with pytest.raises(PreprocessingError):
        centre_crop(image, 64)


def test_radial_and_sky_golden():
    r = radial_distance(3)
    np.testing.assert_allclose(r, [[1, 2**-0.5, 1], [2**-0.5, 0, 2**-0.5], [1, 2**-0.5, 1]], rtol=1e-6)
    np.testing.assert_allclose(sky_embedding([90.0], [0.0], "unit_vector"), [[0, 1, 0]], atol=1e-7)
    np.testing.assert_allclose(sky_embedding([0.0], [90.0], "unit_vector"), [[0, 0, 1]], atol=1e-7)
    np.testing.assert_allclose(sky_embedding([90.0], [0.0], "sincos"), [[1, 0, 0, 1]], atol=1e-7)
    np.testing.assert_array_equal(sky_embedding([np.nan], [10.0], "unit_vector")[0, :2], 0.0)


def test_preprocess_cutouts_channels_and_values():
    rng = np.random.default_rng(0)
    stamps = rng.normal(size=(3, 63, 63)).astype(np.float32)
    stamps[1, 30, 30] = np.nan
    spec = ImageInputConfig(validity_channel=True)
    out = preprocess_cutouts(stamps, 90.0, 0.0, spec)
    assert out.shape == (spec.num_channels, 49, 49) == (8, 49, 49)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out[0], normalise_stamps(stamps[0])[7:56, 7:56])
    np.testing.assert_array_equal(out[3], radial_distance(49))
    np.testing.assert_allclose(out[4:7, 10, 10], [0, 1, 0], atol=1e-7)  # sky planes are constant
    assert out[7, 23, 23] == 0 and out[7].sum() == 49 * 49 - 1  # validity: the NaN pixel at (30, 30)
    batch = preprocess_cutouts(np.stack([stamps, stamps]), [90.0, 90.0], [0.0, 0.0], spec)
    np.testing.assert_array_equal(batch[1], out)  # batched and single paths agree
    with pytest.raises(PreprocessingError):
        preprocess_cutouts(stamps[:2], 0.0, 0.0, spec)


def test_image_config_validation():
    assert ImageInputConfig().num_channels == 7
    assert ImageInputConfig(radial_channel=False, sky_encoding="none").num_channels == 3
    with pytest.raises(ConfigError):
        ImageInputConfig(image_norm="zscore")


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, (3, 9, 9), elements=st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from([np.nan, np.inf, -np.inf]))))
def test_l2_output_finite_and_unit_norm(stamps):
    spec = ImageInputConfig(crop_size=9)
    out = preprocess_cutouts(stamps, 10.0, -5.0, spec)
    assert np.isfinite(out).all()
    norms = np.sqrt((out[:3].astype(np.float64) ** 2).sum(axis=(1, 2)))
    for norm in norms:
        assert norm == pytest.approx(1.0, abs=1e-4) or norm == 0.0


def test_pad_stamp():
    padded = pad_stamp(np.ones((60, 63)))
    assert padded.shape == (63, 63) and np.isnan(padded[60:]).all() and (padded[:60] == 1).all()


# ---- metadata --------------------------------------------------------------------------------------------
def _rows(values: dict[str, list[float]]) -> np.ndarray:
    n = len(next(iter(values.values())))
    out = np.full((n, len(METADATA_FEATURES)), np.nan, dtype=np.float32)
    for name, column in values.items():
        out[:, METADATA_FEATURES.index(name)] = column
    return out


def test_metadata_golden():
    train = _rows({"magpsf": [18.0, 20.0], "ndethist": [0.0, np.e - 1]})
    prep = MetadataPreprocessor.fit(train, ("magpsf", "ndethist"), log_features=("ndethist",))
    np.testing.assert_allclose(prep.mean, [19.0, 0.5])  # log1p(e - 1) = 1
    np.testing.assert_allclose(prep.std, [1.0, 0.5])
    test = _rows({"magpsf": [21.0, np.nan], "ndethist": [-999.0, np.e - 1]})
    out = prep.transform(test)
    # values: (21 - 19)/1 = 2, missing → 0 ; sentinel -999 → missing ; (1 - 0.5)/0.5 = 1 ; flags after
    np.testing.assert_allclose(out, [[2.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(prep.transform(test[0]), out[0])


def test_metadata_round_trip_and_clip():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(50, len(METADATA_FEATURES))).astype(np.float32)
    prep = MetadataPreprocessor.fit(train, clip=3.0)
    again = MetadataPreprocessor.from_dict(prep.to_dict())
    test = rng.normal(scale=100, size=(5, len(METADATA_FEATURES))).astype(np.float32)
    np.testing.assert_array_equal(prep.transform(test), again.transform(test))
    assert np.abs(prep.transform(test)[:, : len(METADATA_FEATURES)]).max() <= 3.0
    all_missing = MetadataPreprocessor.fit(np.full((4, len(METADATA_FEATURES)), np.nan))
    assert np.isfinite(all_missing.transform(train)).all()


def test_metadata_unknown_feature_is_an_error():
    with pytest.raises(ConfigError, match="unknown metadata features"):
        MetadataPreprocessor(feature_names=("magpsf", "rb"), mean=np.zeros(2), std=np.ones(2))
    with pytest.raises(PreprocessingError):
        MetadataPreprocessor().transform(np.zeros((2, 5)))
