"""``cider export onnx --models DIR --out DIR2 [--quantize ...]``: every model as ONNX with the broker contract.

For each of ``DIR/{photometry,images,spectra}`` the package's inference graph (``applecider_<modality>.export``)
is exported to ``DIR2/<modality>/model.onnx`` (dynamic batch; dynamic sequence length for photometry;
the BOOM interface ``triplet``/``metadata`` → ``fc_out`` for the image model), with ``metadata_props``
carrying everything a broker needs to use it alone: class names, the input layout and metadata feature order,
the config and the fitted preprocessing statistics, the temperature and fusion weight, the survey and bands,
the package, torch and onnx versions and the opset. ``--quantize int8`` adds ``model.int8.onnx`` (dynamic
int8 quantisation); ``--quantize int8-static --calibration ALERTS`` adds ``images/model.int8-static.onnx``
(static int8 of the image graph, calibrated on the first ``--calibration-alerts`` alerts with cutouts read
from ALERTS; ``applecider_core.quantization``). ``fusion.json`` and ``trust.json`` are copied, so
``cider classify --models DIR2 --engine onnxruntime`` runs the exported models with the same fusion and trust
settings (the same records). Each export is checked: onnxruntime against torch on the example batch, max
|Δ logit| ≤ 1e-4.
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
    ONNX_INT8_STATIC_NAME,
    ONNX_NAME,
    EngineError,
    OnnxEngine,
    TorchEngine,
    export_graph,
)
from applecider_core.pretrained import PretrainedError
from applecider_core.quantization import quantize_int8, quantize_int8_static
from applecider_core.records import SURVEY_BANDS, Alert

from .classifier import FUSION_SETTINGS_NAME, read_fusion_settings
from .fusion import MODALITIES, FusionError
from .runners import RUNNER_TYPES
from .trust import TRUST_SETTINGS_NAME

logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
QUANTIZATIONS = ("int8", "int8-static")
STATIC_INT8_MODALITIES = ("images",)  # where it pays: the convolutional image graph (docs/onnx.md)
CALIBRATION_BATCH = 64
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


def export_modality(modality: str, source: Path, out: Path, settings: dict[str, Any], quantize: Sequence[str] = (),
                    calibration: Sequence[Alert] = ()) -> dict:
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
    if "int8" in quantize:
        summary["int8"] = str(quantize_int8(path, out / ONNX_INT8_NAME))
    if "int8-static" in quantize and modality in STATIC_INT8_MODALITIES:
        preparing = runner(model.config, model.preprocessor, engine=None)  # the runner's own preprocessing
        inputs, usable, _ = preparing.prepare([a for a in calibration if preparing.skip_reason(a) is None])
        if not usable:
            raise EngineError(f"{modality}: none of the {len(calibration)} calibration alerts is usable by the model")
        feeds = ({n: v[i : i + CALIBRATION_BATCH] for n, v in inputs.items()}
                 for i in range(0, len(usable), CALIBRATION_BATCH))
        summary["int8-static"] = str(quantize_int8_static(path, out / ONNX_INT8_STATIC_NAME, feeds,
                                                          f"{len(usable)} real alerts"))
    logger.info("%s: %s (max |Δ logit| vs torch %.1e)", modality, path, delta)
    return summary


def export_models(models_dir: str | Path, out_dir: str | Path, quantize: Sequence[str] = (),
                  modalities: Sequence[str] = MODALITIES, calibration: Sequence[Alert] = ()) -> dict[str, dict]:
    """``cider export onnx`` as a function: every present model folder of ``models_dir`` → ``out_dir``.

    ``quantize``: any of ``QUANTIZATIONS``; ``int8-static`` needs ``calibration`` alerts (real ones, with
    cutouts) and quantises the image model."""
    unknown = [q for q in quantize if q not in QUANTIZATIONS]
    if unknown:
        raise EngineError(f"unknown quantisation {unknown}; one of {list(QUANTIZATIONS)}")
    if "int8-static" in quantize and not calibration:
        raise EngineError("int8-static quantisation needs calibration alerts (--calibration ALERTS)")
    models_dir, out_dir = Path(models_dir), Path(out_dir)
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):  # the exporter logs every rewrite pass at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    present = [m for m in modalities if (models_dir / m).is_dir()]
    if not present:
        raise FusionError(f"{models_dir}: no model directories; expected some of {list(MODALITIES)}")
    if "int8-static" in quantize and not set(present) & set(STATIC_INT8_MODALITIES):
        raise EngineError(f"int8-static quantises the image model; {models_dir} has no {STATIC_INT8_MODALITIES[0]}/ "
                          f"among {present}")
    settings = read_fusion_settings(models_dir)
    summary = {m: export_modality(m, models_dir / m, out_dir / m, settings, quantize, calibration) for m in present}
    for name in (FUSION_SETTINGS_NAME, TRUST_SETTINGS_NAME):  # records then match the torch engine's
        if (models_dir / name).is_file() and models_dir.resolve() != out_dir.resolve():
            shutil.copy(models_dir / name, out_dir / name)
    (out_dir / "export.json").write_text(json.dumps(summary, indent=1))
    return summary


def read_calibration_alerts(paths: Sequence[str | Path], limit: int) -> list[Alert]:
    """The first ``limit`` alerts with cutouts among the packets at ``paths`` (as ``cider classify`` reads them)."""
    from applecider_data import AlertParseError, iter_packets, packet_to_alert

    alerts = []
    for packet in iter_packets([Path(p) for p in paths]):
        try:
            alert = packet_to_alert(packet) if isinstance(packet, dict) else None
        except AlertParseError:  # a broken packet is not calibration data
            continue
        if alert is not None and alert.cutouts is not None:
            alerts.append(alert)
            if len(alerts) == limit:
                break
    if not alerts:
        raise ValueError(f"no alert with cutouts in {[str(p) for p in paths]} to calibrate on")
    return alerts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cider export onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models", help="directory with photometry/, images/, spectra/ models")
    parser.add_argument("--out", required=True, help="output directory (may equal --models)")
    parser.add_argument("--quantize", nargs="+", default=[], choices=QUANTIZATIONS,
                        help="also write model.int8.onnx (int8: dynamic) and/or images/model.int8-static.onnx "
                             "(int8-static: static int8 of the image model, calibrated on --calibration alerts)")
    parser.add_argument("--calibration", nargs="+", default=[], metavar="ALERTS",
                        help="real alert packets for int8-static (Avro files or folders, alert parquet)")
    parser.add_argument("--calibration-alerts", type=int, default=512,
                        help="calibrate on the first N alerts with cutouts (default 512)")
    parser.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    args = parser.parse_args(argv)
    if "int8-static" in args.quantize and not args.calibration:
        parser.error("--quantize int8-static needs --calibration ALERTS (real alert packets)")
    try:
        calibration = read_calibration_alerts(args.calibration, args.calibration_alerts) if args.calibration else []
        summary = export_models(args.models, args.out, args.quantize, args.modalities, calibration)
    except (FusionError, PretrainedError, EngineError, OSError, ValueError) as error:
        parser.exit(2, f"cider export onnx: error: {error}\n")
    for modality, item in summary.items():
        extra = "".join(f" + {item[q]}" for q in QUANTIZATIONS if q in item)
        print(f"{modality:10} {item['file']}{extra}  inputs {item['inputs']} → {item['output']}  "
              f"max |Δ logit| vs torch {item['max_abs_delta']:.1e}")
    return 0
