import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from applecider_core.records import Spectrum
from applecider_spectra.preprocessing import (
    EdgeMasking,
    PreprocessConfig,
    SpectrumError,
    preprocess_batch,
    preprocess_spectrum,
)

TINY = PreprocessConfig(wavelength_min_aa=4000.0, wavelength_max_aa=4030.0, num_points=4, max_gap_aa=None,
                        min_valid_points=2)


def test_golden_values_hand_checked():
    """Rest frame (z = 0.5): points at 3995 (f=1), 4015 (f=3 = mean of duplicates 2 and 4), 4025 (f=2) Å.
    Grid 4000/4010/4020/4030 Å → interpolated 1.5, 2.5, 2.5, and 4030 is outside the coverage → 0.
    Mean 13/6, std √(2/9): z-scores −√2, 1/√2, 1/√2 and 0 for the uncovered point."""
    observed = np.array([4025.0, 3995.0, 4015.0, 4015.0, 4005.0]) * 1.5  # unsorted, duplicate, one NaN flux
    flux = np.array([2.0, 1.0, 2.0, 4.0, np.nan])
    out, valid = preprocess_spectrum(Spectrum("obj", observed, flux, spectrum_id="s", redshift=0.5), TINY)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-math.sqrt(2), 1 / math.sqrt(2), 1 / math.sqrt(2), 0.0], atol=1e-6)
    np.testing.assert_array_equal(valid, [True, True, True, False])


def test_predicted_redshift_overrides_and_none_mode_skips_correction():
    wavelength = np.linspace(3000, 9000, 600)
    flux = np.exp(-0.5 * ((wavelength - 6000) / 50) ** 2)
    spectrum = Spectrum("o", wavelength, flux, redshift=0.2)
    observer, _ = preprocess_spectrum(spectrum, PreprocessConfig(redshift_mode="none"))
    zero, _ = preprocess_spectrum(spectrum, PreprocessConfig(), redshift=0.0)
    np.testing.assert_array_equal(observer, zero)
    rest, _ = preprocess_spectrum(spectrum, PreprocessConfig())
    grid = PreprocessConfig().grid_aa
    assert abs(grid[np.argmax(rest)] - 5000.0) < 5  # the 6000 Å line at z = 0.2 lands at 5000 Å rest frame


@pytest.mark.parametrize(("wavelength", "flux", "redshift", "reason"), [
    ([], [], 0.1, "empty"),
    ([4000.0, 5000.0], [np.nan, np.nan], 0.1, "no finite points"),
    ([5000.0], [1.0], 0.1, "too short"),
    ([20000.0, 21000.0, 22000.0], [1.0, 2.0, 3.0], 0.0, "too short coverage"),
    (np.linspace(4000, 8000, 100), np.ones(100), 0.0, "constant"),
    (np.linspace(4000, 8000, 100), np.arange(100.0), float("nan"), "redshift"),
])  # fmt: skip
def test_bad_spectra_raise_errors_naming_the_spectrum(wavelength, flux, redshift, reason):
    with pytest.raises(SpectrumError, match=reason) as info:
        preprocess_spectrum(Spectrum("obj", wavelength, flux, spectrum_id="bad-7", redshift=redshift))
    assert info.value.spectrum_id == "bad-7" and "bad-7" in str(info.value)


def test_batch_keeps_good_spectra_and_reports_bad_ones():
    good = Spectrum("a", np.linspace(3500, 9500, 500), np.sin(np.linspace(0, 20, 500)) - 3.0, redshift=0.05)  # negative flux
    bad = [Spectrum("b", [], []), Spectrum("c", [4000.0, 4100.0], [np.inf, np.nan], redshift=0.0),
           Spectrum("d", [5000.0], [1.0], redshift=0.0), Spectrum("e", [1e5, 2e5], [1.0, 2.0], redshift=0.0)]
    batch = preprocess_batch([bad[0], good, *bad[1:], good])
    assert batch.flux.shape == (2, 4096) and batch.flux.dtype == np.float32
    assert batch.indices == [1, 5]
    assert [e.spectrum_id for e in batch.errors] == ["b", "c", "d", "e"]
    assert np.isfinite(batch.flux).all()


def test_gaps_wider_than_max_gap_are_zero():
    wavelength = np.concatenate([np.linspace(4000, 5000, 200), np.linspace(6000, 8000, 400)])
    flux = 1 + np.sin(wavelength / 100.0)
    out, valid = preprocess_spectrum(Spectrum("g", wavelength, flux, redshift=0.0), PreprocessConfig(max_gap_aa=100.0))
    grid = PreprocessConfig().grid_aa
    inside_gap = (grid > 5005) & (grid < 5995)
    assert not valid[inside_gap].any() and (out[inside_gap] == 0).all()
    assert valid[(grid > 4001) & (grid < 4999)].all()


spectra_strategy = st.integers(min_value=70, max_value=300).flatmap(lambda n: st.tuples(
    st.lists(st.floats(3000, 11000, allow_nan=False), min_size=n, max_size=n, unique=True),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=n, max_size=n),
    st.randoms(use_true_random=False),
))  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(spectra_strategy)
def test_properties_order_independent_finite_and_mask_consistent(data):
    wavelength, flux, rnd = data
    wavelength, flux = np.array(wavelength), np.array(flux)
    if np.ptp(flux) < 1e-3:
        flux = flux + np.linspace(0, 1, flux.size)
    config = PreprocessConfig(max_gap_aa=None)
    try:
        out, valid = preprocess_spectrum(Spectrum("p", wavelength, flux, redshift=0.0), config)
    except SpectrumError as error:
        assert "too short coverage" in error.reason or "constant" in error.reason
        return
    order = list(range(wavelength.size))
    rnd.shuffle(order)
    shuffled, valid2 = preprocess_spectrum(Spectrum("p", wavelength[order], flux[order], redshift=0.0), config)
    np.testing.assert_allclose(out, shuffled, atol=1e-5)
    np.testing.assert_array_equal(valid, valid2)
    assert np.isfinite(out).all() and (out[~valid] == 0).all()
    grid = config.grid_aa
    expected_valid = (grid >= wavelength.min()) & (grid <= wavelength.max())
    np.testing.assert_array_equal(valid, expected_valid)
    assert abs(float(out[valid].mean())) < 1e-4 and abs(float(out[valid].std()) - 1) < 1e-3


def test_edge_masking_draws_1_to_1024_points_at_one_end_and_changes_every_call():
    masking = EdgeMasking(PreprocessConfig())
    assert masking.blue_points == 1024 and masking.red_points == 1024  # 3000–4850 and 8550–10400 Å on the grid
    flux = torch.ones(4096)
    torch.manual_seed(0)
    patterns = set()
    for _ in range(50):
        masked = masking(flux)
        zeros = (masked == 0).nonzero().ravel()
        assert 1 <= len(zeros) <= 1024
        assert zeros[0] == 0 or zeros[-1] == 4095  # starts at the blue edge or ends at the red edge
        assert (zeros.diff() == 1).all()  # one contiguous run
        patterns.add((int(zeros[0]), len(zeros)))
    assert len(patterns) > 40 and (flux == 1).all()  # redrawn every call; the input is not modified


@pytest.mark.parametrize("scale", [1e-17, 1e-3, 1e4])
def test_output_is_invariant_to_flux_units(scale):
    """Physical flux units (erg/s/cm²/Å ≈ 1e-16) must not look 'constant'; the z-score removes the scale."""
    wavelength = np.linspace(3500, 9000, 300)
    flux = 1.0 + np.sin(wavelength / 300.0)
    reference, _ = preprocess_spectrum(Spectrum("u", wavelength, flux, redshift=0.01))
    scaled, _ = preprocess_spectrum(Spectrum("u", wavelength, flux * scale, redshift=0.01))
    np.testing.assert_allclose(scaled, reference, atol=1e-5)
