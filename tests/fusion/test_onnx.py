"""`cider export onnx` and the onnxruntime engine: metadata_props, parity with torch, records, GPU path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from applecider_core.engines import EngineError, OnnxEngine, onnx_providers, read_onnx_metadata
from applecider_core.records import METADATA_FEATURES
from applecider_data import packet_to_alert, synthetic
from applecider_fusion import Classifier
from applecider_fusion.classify import main as classify_main
from applecider_fusion.export import main as export_main
from applecider_fusion.runners import load_runner
from applecider_fusion.trust import TrustSettings

HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def tuned_models(models_dir, tmp_path_factory):
    """The tiny models with fusion settings, as ``cider evaluate`` leaves them."""
    tuned = tmp_path_factory.mktemp("tuned") / "models"
    shutil.copytree(models_dir, tuned)
    (tuned / "fusion.json").write_text(json.dumps({"weights": {"spectra": 2.0}, "temperatures": {"images": 1.5}}))
    classes = list(Classifier.from_dir(tuned).fusion.classes)
    TrustSettings(classes, 0.9, {"all": dict.fromkeys(classes, 0.3)}, abstain_below=0.5, min_detections=2,
                  metadata_ranges={"magpsf": [14.0, 21.0]}, fitted_on="val").save(tuned / "trust.json")
    return tuned


@pytest.fixture(scope="module")
def onnx_dir(tuned_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    assert export_main(["--models", str(tuned_models), "--out", str(out), "--quantize", "int8"]) == 0
    return out


def test_export_writes_self_describing_models(onnx_dir, tuned_models):
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["export.json", "fusion.json", "images", "photometry",
                                                           "spectra", "trust.json"]
    images = read_onnx_metadata(onnx_dir / "images" / "model.onnx")
    saved = json.loads((tuned_models / "images" / "preprocessor.json").read_text())
    assert images["inputs"] == ["triplet", "metadata"] and images["output"] == "fc_out"
    assert images["metadata_features"] == list(METADATA_FEATURES) and images["preprocessor"] == saved
    assert images["class_names"][0] == "SN Ia" and images["temperature"] == 1.5 and images["opset"] == 20
    assert images["survey"] == "ztf" and images["bands"] == ["ztfg", "ztfr", "ztfi"]
    assert {"applecider-core", "applecider-images", "torch", "onnx", "onnxruntime"} <= set(images["versions"])
    spectra = read_onnx_metadata(onnx_dir / "spectra" / "model.int8.onnx")
    assert spectra["fusion_weight"] == 2.0 and spectra["quantization"].startswith("dynamic int8")
    session = ort.InferenceSession(str(onnx_dir / "images" / "model.onnx"), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["triplet"][1:] == [63, 63, 3] and shapes["metadata"][1:] == [len(METADATA_FEATURES)]
    summary = json.loads((onnx_dir / "export.json").read_text())
    assert max(item["max_abs_delta"] for item in summary.values()) <= 1e-4


def test_each_runner_gives_the_same_logits_on_both_engines(onnx_dir, models_dir):
    alerts = [packet_to_alert(p) for p in synthetic.make_packets(12, seed=4)]  # light curves of varied length
    items = {"photometry": [a.light_curve for a in alerts], "images": alerts}
    for modality, batch in items.items():
        torch_logits, _ = load_runner(modality, models_dir / modality).predict(batch)
        onnx_runner = load_runner(modality, onnx_dir / modality, engine="onnxruntime")
        onnx_logits, _ = onnx_runner.predict(batch)
        assert np.abs(onnx_logits - torch_logits).max() <= 1e-4
        assert (onnx_logits.argmax(1) == torch_logits.argmax(1)).all()
        for size in (1, 5):  # dynamic batch
            np.testing.assert_allclose(onnx_runner.predict(batch[:size])[0], torch_logits[:size], atol=1e-4)


def test_records_do_not_depend_on_the_engine(onnx_dir, tuned_models, tmp_path):
    packets = synthetic.make_packets(10, seed=7, n_objects=4)
    by_torch = Classifier.from_dir(tuned_models).classify(packets)
    by_onnx = Classifier.from_dir(onnx_dir, engine="onnxruntime").classify(packets)
    for a, b in zip(by_torch, by_onnx):
        assert a.keys() == b.keys() and a["candid"] == b["candid"] and a["top_class"] == b["top_class"]
        assert max(abs(a["fused"][k] - b["fused"][k]) for k in a["fused"]) <= 1e-5
        trust_fields = ("prediction_set", "abstain", "ood", "ood_reasons", "notes")
        assert [a[k] for k in trust_fields] == [b[k] for k in trust_fields] and a["abstain"] is not None
    out = tmp_path / "out.jsonl"
    avro = synthetic.write_avro(tmp_path / "alerts.avro", packets)
    assert classify_main([str(avro), "--models", str(onnx_dir), "--engine", "onnxruntime-int8", "--out", str(out),
                          "--no-progress"]) == 0
    assert len(out.read_text().splitlines()) == len(packets)


def test_onnx_engine_errors_are_clear(models_dir, tmp_path):
    with pytest.raises(EngineError, match="cider export onnx"):
        Classifier.from_dir(models_dir, engine="onnxruntime")
    with pytest.raises(SystemExit) as stop:
        classify_main(["x.avro", "--models", str(models_dir), "--engine", "onnxruntime", "--no-progress"])
    assert stop.value.code == 2


@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime has a CUDA execution provider")
def test_cuda_asked_for_and_unavailable_fails_loudly(onnx_dir):
    with pytest.raises(EngineError, match="CUDAExecutionProvider"):
        onnx_providers("cuda")
    with pytest.raises(EngineError, match="CUDAExecutionProvider"):
        OnnxEngine(onnx_dir / "images" / "model.onnx", device="cuda:0")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA_EP, reason="needs onnxruntime-gpu with a CUDA device")
def test_cuda_engine_runs_on_the_gpu_with_the_same_records(onnx_dir):
    packets = synthetic.make_packets(6, seed=2)
    gpu = Classifier.from_dir(onnx_dir, device="cuda", engine="onnxruntime")
    assert all(r.engine.session.get_providers()[0] == "CUDAExecutionProvider" for r in gpu.runners.values())
    cpu = Classifier.from_dir(onnx_dir, engine="onnxruntime").classify(packets)
    for a, b in zip(gpu.classify(packets), cpu):
        assert a["top_class"] == b["top_class"]
        assert max(abs(a["fused"][k] - b["fused"][k]) for k in a["fused"]) <= 1e-4


def test_onnx_classify_imports_neither_torch_nor_timm(onnx_dir, tmp_path):
    """The start-up of `cider classify --engine onnxruntime` stays light: no torch, timm or transformers import."""
    avro = synthetic.write_avro(tmp_path / "alerts.avro", synthetic.make_packets(3, seed=2))
    script = ("import sys; from applecider_fusion.classify import main; "
              f"rc = main([{str(avro)!r}, '--models', {str(onnx_dir)!r}, '--engine', 'onnxruntime', '--no-progress', "
              f"'--out', {str(tmp_path / 'out.jsonl')!r}]); "
              "print(rc, sorted(m for m in ('torch', 'timm', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
