"""Parity of the exported released models with torch on real alerts and spectra of the shared bundle, and the
accuracy change of the lossy engines (torch-bf16, the static int8 image model) on them."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from applecider_core.engines import native_bf16
from applecider_core.metrics import softmax
from applecider_fusion.export import export_models
from applecider_fusion.runners import load_runner

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def released(shared_data, tmp_path_factory):
    """The released models, their ONNX export, and real items: alerts (with cutouts) and labelled spectra."""
    from applecider_data import iter_packets, packet_to_alert
    from applecider_data.importers import SourcedSpectrum, iter_spectra

    onnx = tmp_path_factory.mktemp("released_onnx")
    parquet = shared_data / "alerts" / "ztf_public_alerts.parquet"
    later = [packet_to_alert(p) for p in islice(iter_packets([parquet]), 1800, None) if isinstance(p, dict)]
    calibration = [a for a in later if a.cutouts is not None][:256]  # not among the alerts compared below
    export_models(REPO_ROOT / "models", onnx, quantize=("int8-static",), calibration=calibration)
    packets = islice(iter_packets([parquet]), 160)
    alerts = [packet_to_alert(p) for p in packets if isinstance(p, dict)]
    spectra = [s.spectrum for s in islice(iter_spectra(shared_data / "spectra" / "osc_spectra.parquet"), 40)
               if isinstance(s, SourcedSpectrum)]
    return onnx, {"photometry": [a.light_curve for a in alerts], "images": alerts, "spectra": spectra}


@pytest.mark.parametrize("modality", ["photometry", "images", "spectra"])
def test_onnxruntime_matches_torch_on_real_data(released, modality):
    onnx, items = released
    expected, _ = load_runner(modality, REPO_ROOT / "models" / modality).predict(items[modality])
    got, _ = load_runner(modality, onnx / modality, engine="onnxruntime").predict(items[modality])
    usable = ~np.isnan(expected).any(axis=1)
    assert usable.sum() > 20 and (np.isnan(got) == np.isnan(expected)).all()
    assert np.abs(got[usable] - expected[usable]).max() <= 1e-4
    assert (got[usable].argmax(1) == expected[usable].argmax(1)).all()


def test_boom_fed_image_model_gives_the_projects_probabilities(released):
    """Inputs built as BOOM builds them (NaN → 0, each stamp / its L2 norm, NHWC; raw metadata in the order of
    the model's metadata_features prop), run by a bare onnxruntime session."""
    onnx, items = released
    alerts = [a for a in items["images"] if a.cutouts is not None]
    session = ort.InferenceSession(str(onnx / "images" / "model.onnx"), providers=["CPUExecutionProvider"])
    features = json.loads(session.get_modelmeta().custom_metadata_map["applecider.metadata_features"])
    stamps = np.nan_to_num(np.stack([a.cutouts.stack() for a in alerts]).astype(np.float64), nan=0.0)
    norms = np.linalg.norm(stamps, axis=(2, 3), keepdims=True)
    triplet = np.divide(stamps, norms, out=np.zeros_like(stamps), where=norms > 0).transpose(0, 2, 3, 1)
    metadata = np.array([[a.metadata_dict()[f] for f in features] for a in alerts], dtype=np.float32)
    fc_out = session.run(["fc_out"], {"triplet": triplet.astype(np.float32), "metadata": metadata})[0]
    expected, _ = load_runner("images", REPO_ROOT / "models" / "images").predict(alerts)
    np.testing.assert_allclose(softmax(fc_out), softmax(expected), atol=1e-5)
    assert (fc_out.argmax(1) == expected.argmax(1)).all()


def agreement(got: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(share of usable items with the same top class, max |Δ probability|) of two logit arrays."""
    usable = ~np.isnan(expected).any(axis=1)
    same = (got[usable].argmax(1) == expected[usable].argmax(1)).mean()
    return same, np.abs(softmax(got[usable]) - softmax(expected[usable])).max()


def test_static_int8_image_model_stays_close_on_real_alerts(released):
    """Measured on 1,704 real alerts (benchmarks/onnx_parity_speed.py): 99.77 % same top class, max |Δp| 0.13."""
    onnx, items = released
    expected, _ = load_runner("images", onnx / "images", engine="onnxruntime").predict(items["images"])
    got, _ = load_runner("images", onnx / "images", engine="onnxruntime-int8-static").predict(items["images"])
    same, delta = agreement(got, expected)
    assert same >= 0.98 and delta <= 0.3


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no native bfloat16")
@pytest.mark.parametrize("modality", ["photometry", "images", "spectra"])
def test_torch_bf16_stays_close_on_real_data(released, modality):
    """Measured (benchmarks/onnx_parity_speed.py): same top class 99.78 / 99.94 / 100 %, max |Δp| 0.008 / 0.12 /
    0.003 for photometry / images / spectra."""
    _, items = released
    expected, _ = load_runner(modality, REPO_ROOT / "models" / modality).predict(items[modality])
    got, _ = load_runner(modality, REPO_ROOT / "models" / modality, engine="torch-bf16").predict(items[modality])
    same, delta = agreement(got, expected)
    assert same >= 0.98 and delta <= 0.25
