"""Inference engines behind one interface: ``engine(inputs) -> logits``, torch or ONNX Runtime.

Every model package defines one *inference graph* per model (an ``nn.Module`` taking named numpy-ready
tensors and returning logits; see ``applecider_<modality>.export``). The torch engine runs that module; the
ONNX Runtime engine runs the same module exported to ONNX. The runners prepare the inputs once, whichever
engine runs, so records never depend on the engine.

Engines (``ENGINES``): ``torch`` (fp32), ``torch-bf16`` (the same module under bfloat16 autocast: matmuls and
convolutions in bf16, normalisations and the FFT in fp32; needs native bf16, e.g. AVX512-BF16 or AMX),
``onnxruntime`` (``model.onnx``), ``onnxruntime-int8`` (``model.int8.onnx``, dynamic int8) and
``onnxruntime-int8-static`` (``model.int8-static.onnx``, static int8 calibrated on real inputs; see
``quantization``). The lossy ones have their measured accuracy change in docs/onnx.md.

Thread policy (benchmarks/classify_throughput.py --busy, docs/BENCHMARKS.md): one intra-op thread per
process by default for both engines. On a shared or loaded CPU a second thread contends with the other
processes: two torch threads were slower than one, two onnxruntime threads no faster. Scale out with more
processes (more consumers in the group), not more threads.

The ONNX side also writes and reads the model's ``metadata_props`` (the self-description BOOM-style brokers
read: class names, feature order, normalisation statistics, temperature, survey, versions, opset).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CiderError

logger = logging.getLogger(__name__)

ENGINES = ("torch", "torch-bf16", "onnxruntime", "onnxruntime-int8", "onnxruntime-int8-static")
TORCH_ENGINES = ("torch", "torch-bf16")
ONNX_NAME = "model.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
ONNX_INT8_STATIC_NAME = "model.int8-static.onnx"
ONNX_FILES = {"onnxruntime": ONNX_NAME, "onnxruntime-int8": ONNX_INT8_NAME, "onnxruntime-int8-static": ONNX_INT8_STATIC_NAME}
EXPORT_FLAGS = {"onnxruntime": "", "onnxruntime-int8": " --quantize int8",
                "onnxruntime-int8-static": " --quantize int8-static --calibration ALERTS"}
ONNX_FORMAT = "applecider-onnx/1"
OPSET = 20
DEFAULT_THREADS = 1


class EngineError(CiderError, RuntimeError):
    """An engine that cannot run as asked (unknown name, missing ONNX file, unavailable device, provider or
    number format); ``cider`` reports it as one line."""


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; one of {list(ENGINES)}")
    return engine


def parse_engines(spec: str | Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """An engine choice → (default engine, {modality: engine} overrides).

    ``spec``: ``"NAME"`` (every modality), ``"NAME,images=NAME2"`` (a default and per-modality overrides),
    ``"images=NAME2"`` (torch for the others), or a mapping {modality: NAME} (torch for the others).
    Engine names are checked here; modality names by the caller.
    """
    if isinstance(spec, Mapping):
        default, overrides = "torch", dict(spec)
    else:
        parts = [part.strip() for part in spec.split(",") if part.strip()]
        if not parts:
            raise EngineError(f"empty engine choice {spec!r}; one of {list(ENGINES)}, optionally with MODALITY=ENGINE")
        default = "torch" if "=" in parts[0] else parts.pop(0)
        if any("=" not in part for part in parts):
            raise EngineError(f"engine choice {spec!r}: after the default engine give MODALITY=ENGINE pairs")
        overrides = dict(part.split("=", 1) for part in parts)
    for engine in (default, *overrides.values()):
        check_engine(engine)
    return default, overrides


def set_torch_threads(engine: str | Mapping[str, str], threads: int | None) -> None:
    """Give torch ``threads`` intra-op threads when the engine choice (:func:`parse_engines`) runs any modality in
    torch; onnxruntime sessions get theirs per session, and torch is not even imported otherwise. 0 or None:
    torch's default."""
    default, overrides = parse_engines(engine)
    if threads and {default, *overrides.values()} & set(TORCH_ENGINES):
        import torch

        torch.set_num_threads(threads)


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX; CUDA: compute capability ≥ 8)."""
    import torch

    if device == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class GraphSpec:
    """An inference graph and how to export it.

    ``module``: an ``nn.Module`` whose ``forward`` takes ``input_names`` positionally and returns logits.
    ``example``: one example input per name (numpy, the dtypes the runner feeds); ``dynamic``: per input,
    the axes (index → name) that vary; ``output_name``: the graph's output; ``metadata``: what the graph
    adds to the metadata_props (its input layout, feature order).
    """

    module: Any
    input_names: tuple[str, ...]
    example: dict[str, np.ndarray]
    dynamic: dict[str, dict[int, str]]
    output_name: str = "logits"
    metadata: dict[str, Any] = field(default_factory=dict)


class TorchEngine:
    """Runs an inference graph module in torch (eval, inference mode); ``bf16``: under bfloat16 autocast."""

    name = "torch"

    def __init__(self, module: Any, input_names: Sequence[str], device: str = "cpu", bf16: bool = False) -> None:
        import torch

        self.device = torch.device(device)
        if bf16 and not native_bf16(self.device.type):
            raise EngineError(f"torch-bf16: device {device!r} has no native bfloat16 (CPU: AVX512-BF16 or AMX; "
                              "CUDA: compute capability 8+), where bf16 is emulated: slower and no more exact; use torch")
        self.module = module.to(self.device).eval()
        self.input_names = tuple(input_names)
        self.bf16 = bf16
        self.name = "torch-bf16" if bf16 else "torch"

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            tensors = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in self.input_names]
            return self.module(*tensors).float().cpu().numpy()


def onnx_providers(device: str) -> list:
    """ONNX Runtime providers for ``device`` ('cpu', 'cuda', 'cuda:N'); fails loudly when CUDA is asked for and
    this onnxruntime has no CUDA execution provider (never a silent fall-back to the CPU)."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or device.startswith("cuda:"):
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise EngineError(
                f"device {device!r} asked for, but onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                f"(available: {available}); install onnxruntime-gpu, or use --device cpu"
            )
        device_id = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    raise EngineError(f"unknown device {device!r}; use cpu, cuda or cuda:N")


class OnnxEngine:
    """Runs an exported ``model.onnx`` with ONNX Runtime; its inputs are the graph's input names."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = DEFAULT_THREADS) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            flags = next((f for e, f in EXPORT_FLAGS.items() if ONNX_FILES[e] == path.name), "")
            raise EngineError(f"{path}: no ONNX model; write it with `cider export onnx --models DIR --out DIR{flags}`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's choice (all cores)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=onnx_providers(device))
        if device != "cpu" and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise EngineError(f"{path}: CUDA asked for but the session runs on {self.session.get_providers()}")
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.metadata = read_onnx_metadata(self.session)

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        feed = {n: np.ascontiguousarray(inputs[n]) for n in self.input_names}
        return self.session.run(None, feed)[0].astype(np.float64, copy=False)


def read_onnx_metadata(source: Any) -> dict[str, Any]:
    """``metadata_props`` of an ONNX file or session, JSON values decoded."""
    if not hasattr(source, "get_modelmeta"):
        import onnxruntime as ort

        source = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    props = source.get_modelmeta().custom_metadata_map
    if props.get("applecider.format") != ONNX_FORMAT:
        raise EngineError(f"not an AppleCiDEr ONNX model (applecider.format {props.get('applecider.format')!r})")
    return {k.removeprefix("applecider."): _json_or_text(v) for k, v in props.items()}


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def export_graph(spec: GraphSpec, path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Export ``spec`` to ``path`` (torch.export → ONNX, opset ``OPSET``) with ``metadata`` as metadata_props.

    Values that are not strings are stored as JSON. Checks the file with ``onnx.checker``.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = tuple(torch.from_numpy(spec.example[n]) for n in spec.input_names)
    dims: dict[str, Any] = {}
    dynamic_shapes = tuple(
        {axis: dims.setdefault(name, torch.export.Dim(name, min=1)) for axis, name in spec.dynamic.get(n, {}).items()}
        or None
        for n in spec.input_names
    )
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            spec.module.eval(), example, input_names=list(spec.input_names), output_names=[spec.output_name],
            dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=OPSET, verbose=False,
        )  # fmt: skip
    model = program.model_proto
    values = {"format": ONNX_FORMAT, "opset": OPSET, "inputs": list(spec.input_names), "output": spec.output_name,
              **spec.metadata, **metadata}
    props = {f"applecider.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_path(directory: str | Path, engine: str) -> Path:
    """The ONNX file ``engine`` runs in a model folder."""
    return Path(directory) / ONNX_FILES[engine]


__all__ = [
    "DEFAULT_THREADS", "ENGINES", "ONNX_FILES", "ONNX_INT8_NAME", "ONNX_INT8_STATIC_NAME", "ONNX_NAME", "OPSET",
    "TORCH_ENGINES", "EngineError", "GraphSpec", "OnnxEngine", "TorchEngine", "check_engine", "export_graph",
    "native_bf16", "onnx_path", "onnx_providers", "parse_engines", "read_onnx_metadata", "set_torch_threads",
]  # fmt: skip
