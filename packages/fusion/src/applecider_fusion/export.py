"""``cider export onnx --models DIR --out DIR2 [--quantize int8]``: every model as ONNX with the broker contract.

For each of ``DIR/{photometry,images,spectra}`` the package's inference graph (``applecider_<modality>.export``)
is exported to ``DIR2/<modality>/model.onnx`` (dynamic batch; dynamic sequence length for photometry;
the BOOM interface ``triplet``/``metadata`` → ``fc_out`` for the image model), with ``metadata_props``
carrying everything a broker needs to use it alone: class names, the input layout and metadata feature order,
the config and the fitted preprocessing statistics, the temperature and fusion weight, the survey and bands,
the package, torch and onnx versions and the opset. ``--quantize int8`` adds ``model.int8.onnx`` (dynamic
int8 quantisation). ``fusion.json`` and ``trust.json`` are copied, so ``cider classify --models DIR2 --engine
onnxruntime`` runs the exported models with the same fusion and trust settings (the same records). Each export is checked: onnxruntime against torch on the example batch, max |Δ logit| ≤ 1e-4.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from applecider_core.config import to_dict
from applecider_core.engines import (
    ONNX_INT8_NAME,
    ONNX_NAME,
    EngineError,
    OnnxEngine,
    TorchEngine,
    export_graph,
    quantize_int8,
)
from applecider_core.pretrained import PretrainedError
from applecider_core.records import SURVEY_BANDS

from .classifier import FUSION_SETTINGS_NAME, read_fusion_settings
from .fusion import MODALITIES, FusionError
from .runners import RUNNER_TYPES
from .trust import TRUST_SETTINGS_NAME

logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
DISTRIBUTIONS = {"photometry": "applecider-photometry", "images": "applecider-images", "spectra": "applecider-spectra"}


def model_metadata(modality: str, model: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """The metadata_props every exported model carries (the graph adds its input layout)."""
    config = model.config
    survey = getattr(config, "survey", "ztf")
    temperature = settings.get("temperatures", {}).get(modality, model.preprocessor.get("temperature", 1.0))
    return {
        "modality": modality, "model_type": type(config).model_type, "class_names": list(config.class_names),
        "config": to_dict(config), "preprocessor": model.preprocessor, "temperature": float(temperature),
        "bias": [float(b) for b in settings.get("biases", {}).get(modality, [0.0] * len(config.class_names))],
        "fusion_weight": float(settings.get("weights", {}).get(modality, 1.0)),
        "unvalidated_classes": list(settings.get("unvalidated", {}).get(modality, [])),
        "survey": survey, "bands": list(getattr(config, "bands", SURVEY_BANDS[survey])),
        "versions": {name: version(name) for name in ("applecider-core", DISTRIBUTIONS[modality], "torch", "onnx",
                                                      "onnxruntime")},
    }  # fmt: skip


def export_modality(modality: str, source: Path, out: Path, settings: dict[str, Any], quantize: bool) -> dict:
    """Export one model folder; returns a summary with the parity measured on the graph's example batch."""
    runner = RUNNER_TYPES[modality]
    model = runner.load_model(source)
    spec = runner.graph(model, for_export=True)
    path = export_graph(spec, out / ONNX_NAME, model_metadata(modality, model, settings))
    expected = TorchEngine(runner.graph(model).module, spec.input_names)(spec.example)
    delta = float(np.abs(OnnxEngine(path)(spec.example) - expected).max())
    if not delta <= PARITY_TOLERANCE:
        raise EngineError(f"{modality}: onnxruntime differs from torch by {delta:.2e} > {PARITY_TOLERANCE} on the example")
    summary = {"file": str(path), "inputs": list(spec.input_names), "output": spec.output_name, "max_abs_delta": delta}
    if quantize:
        summary["int8"] = str(quantize_int8(path, out / ONNX_INT8_NAME))
    logger.info("%s: %s (max |Δ logit| vs torch %.1e)", modality, path, delta)
    return summary


def export_models(models_dir: str | Path, out_dir: str | Path, quantize: bool = False,
                  modalities: Sequence[str] = MODALITIES) -> dict[str, dict]:
    """``cider export onnx`` as a function: every present model folder of ``models_dir`` → ``out_dir``."""
    models_dir, out_dir = Path(models_dir), Path(out_dir)
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):  # the exporter logs every rewrite pass at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    present = [m for m in modalities if (models_dir / m).is_dir()]
    if not present:
        raise FusionError(f"{models_dir}: no model directories; expected some of {list(MODALITIES)}")
    settings = read_fusion_settings(models_dir)
    summary = {m: export_modality(m, models_dir / m, out_dir / m, settings, quantize) for m in present}
    for name in (FUSION_SETTINGS_NAME, TRUST_SETTINGS_NAME):  # records then match the torch engine's
        if (models_dir / name).is_file() and models_dir.resolve() != out_dir.resolve():
            shutil.copy(models_dir / name, out_dir / name)
    (out_dir / "export.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider export onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models", help="directory with photometry/, images/, spectra/ models")
    parser.add_argument("--out", required=True, help="output directory (may equal --models)")
    parser.add_argument("--quantize", choices=("int8",), help="also write model.int8.onnx (dynamic int8)")
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    args = parser.parse_args(argv)
    try:
        summary = export_models(args.models, args.out, args.quantize == "int8", args.modalities)
    except (FusionError, PretrainedError, EngineError, OSError, ValueError) as error:
        parser.exit(2, f"cider export onnx: error: {error}\n")
    for modality, item in summary.items():
        extra = f" + {item['int8']}" if "int8" in item else ""
        print(f"{modality:10} {item['file']}{extra}  inputs {item['inputs']} → {item['output']}  "
              f"max |Δ logit| vs torch {item['max_abs_delta']:.1e}")
    return 0
