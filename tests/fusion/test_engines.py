"""The lossy engines (torch-bf16, onnxruntime-int8-static) and per-modality engine choices, on tiny models.

Their accuracy on real alerts with the released models is checked in tests/fusion/test_onnx_real.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import applecider_core.engines as engines
from applecider_core.engines import EngineError, parse_engines, read_onnx_metadata, set_torch_threads
from applecider_data import synthetic
from applecider_fusion import Classifier
from applecider_fusion.classify import main as classify_main
from applecider_fusion.export import main as export_main

PACKETS = synthetic.make_packets(24, seed=11, n_objects=8)


@pytest.fixture(scope="module")
def static_dir(models_dir, tmp_path_factory):
    """The tiny models exported with a static int8 image model calibrated on synthetic alerts."""
    folder = tmp_path_factory.mktemp("static")
    avro = synthetic.write_avro(folder / "calibration.avro", synthetic.make_packets(32, seed=5))
    out = folder / "onnx"
    assert export_main(["--models", str(models_dir), "--out", str(out), "--quantize", "int8-static",
                        "--calibration", str(avro)]) == 0
    return out


def fused(records: list[dict]) -> np.ndarray:
    return np.array([[r["fused"][k] for k in sorted(r["fused"])] for r in records])


def test_engine_choices_parse_per_modality():
    assert parse_engines("onnxruntime") == ("onnxruntime", {})
    assert parse_engines("onnxruntime, images=onnxruntime-int8-static") == ("onnxruntime",
                                                                            {"images": "onnxruntime-int8-static"})
    assert parse_engines("images=torch-bf16") == ("torch", {"images": "torch-bf16"})
    assert parse_engines({"spectra": "onnxruntime"}) == ("torch", {"spectra": "onnxruntime"})
    for bad, reason in (("fast", "unknown engine 'fast'"), ("torch,onnxruntime", "MODALITY=ENGINE pairs"),
                        ("images=int4", "unknown engine 'int4'"), ("", "empty engine choice")):
        with pytest.raises(EngineError, match=reason):
            parse_engines(bad)


def test_torch_threads_are_set_only_when_a_modality_runs_in_torch():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        set_torch_threads("onnxruntime", 1)  # onnxruntime sessions take their own threads
        assert torch.get_num_threads() == 2
        set_torch_threads("onnxruntime,spectra=torch-bf16", 0)  # 0: torch's default left alone
        assert torch.get_num_threads() == 2
        set_torch_threads("onnxruntime,spectra=torch-bf16", 1)
        assert torch.get_num_threads() == 1
        with pytest.raises(EngineError, match="unknown engine 'fast'"):
            set_torch_threads("fast", 1)
    finally:
        torch.set_num_threads(before)


def test_static_int8_image_model_is_written_with_its_calibration(static_dir):
    meta = read_onnx_metadata(static_dir / "images" / "model.int8-static.onnx")
    assert meta["quantization"].startswith("static int8 QDQ") and "real alerts" in meta["quantization"]
    assert meta["class_names"] == read_onnx_metadata(static_dir / "images" / "model.onnx")["class_names"]
    assert not (static_dir / "photometry" / "model.int8-static.onnx").exists()  # fp32 there (docs/onnx.md)


def test_static_int8_runs_per_modality_beside_fp32(static_dir):
    fp32 = Classifier.from_dir(static_dir, engine="onnxruntime")
    mixed = Classifier.from_dir(static_dir, engine="onnxruntime,images=onnxruntime-int8-static")
    assert mixed.runners["images"].engine.path.name == "model.int8-static.onnx"
    assert mixed.runners["photometry"].engine.path.name == "model.onnx"
    a, b = fp32.classify(PACKETS), mixed.classify(PACKETS)
    assert [r["candid"] for r in a] == [r["candid"] for r in b]
    # tiny random models on synthetic stamps: a loose bound; the released models' is in test_onnx_real.py
    assert np.abs(fused(a) - fused(b)).max() <= 0.02  # measured 0.005


def test_unavailable_engines_fail_with_one_line(static_dir, models_dir, monkeypatch, capsys):
    with pytest.raises(EngineError, match="--quantize int8-static --calibration ALERTS"):
        Classifier.from_dir(static_dir, engine="onnxruntime-int8-static")  # photometry has no static file
    with pytest.raises(EngineError, match="unknown modalities"):
        Classifier.from_dir(static_dir, engine="onnxruntime,imgs=onnxruntime-int8-static")
    with pytest.raises(SystemExit) as stop:
        classify_main(["x.avro", "--models", str(static_dir), "--engine", "onnxruntime,torch", "--no-progress"])
    assert stop.value.code == 2 and "MODALITY=ENGINE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        export_main(["--models", str(models_dir), "--out", str(static_dir / "x"), "--quantize", "int8-static"])
    assert stop.value.code == 2 and "needs --calibration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        export_main(["--models", str(models_dir), "--out", str(static_dir / "x"), "--modalities", "photometry",
                     "--quantize", "int8-static", "--calibration", str(static_dir.parent / "calibration.avro")])
    assert stop.value.code == 2 and "quantises the image model" in capsys.readouterr().err
    monkeypatch.setattr(engines, "native_bf16", lambda device: False)  # a CPU without AVX512-BF16 or AMX
    with pytest.raises(EngineError, match="no native bfloat16") as error:
        Classifier.from_dir(models_dir, engine="torch-bf16")
    assert "\n" not in str(error.value)


@pytest.mark.skipif(not engines.native_bf16("cpu"), reason="this CPU has no native bfloat16")
def test_torch_bf16_gives_records_close_to_fp32(models_dir):
    a = Classifier.from_dir(models_dir).classify(PACKETS)
    b = Classifier.from_dir(models_dir, engine="torch-bf16").classify(PACKETS)
    assert [r["candid"] for r in a] == [r["candid"] for r in b]
    assert np.abs(fused(a) - fused(b)).max() <= 0.005  # measured 0.0008
    assert np.mean([x["top_class"] == y["top_class"] for x, y in zip(a, b)]) >= 0.9
