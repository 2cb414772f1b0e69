"""int8 versions of an exported ONNX model (``onnxruntime.quantization``), metadata_props kept.

- :func:`quantize_int8`: dynamic quantisation (int8 weights per tensor, activations quantised per batch at run
  time); no calibration, but every MatMul pays for the run-time quantisation and convolutions stay fp32.
- :func:`quantize_int8_static`: static QDQ quantisation of the convolutions and (N-d) matrix products: int8
  weights per output channel (symmetric), uint8 activations with fixed ranges calibrated (min/max) on real
  inputs. ONNX Runtime then runs them as integer kernels (VNNI: four times the multiply-adds of fp32 per
  instruction); normalisations, GELU, the 2-D ``Gemm`` layers (metadata towers, heads, experts: little
  arithmetic, and quantising them raised the share of changed top classes of the released image model
  0.23 % → 1.7 %) and everything else stay fp32.

The accuracy change of each is measured on real data (docs/onnx.md); ``applecider.quantization`` records
which one a file holds.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

STATIC_OP_TYPES = ("Conv", "MatMul")


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs one line per tensor on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)


def _copy_metadata(source: str | Path, out: str | Path, quantization: str) -> Path:
    import onnx

    source_model, model = onnx.load(str(source)), onnx.load(str(out))
    del model.metadata_props[:]
    for prop in source_model.metadata_props:
        model.metadata_props.add(key=prop.key, value=prop.value)
    model.metadata_props.add(key="applecider.quantization", value=quantization)
    onnx.save(model, str(out))
    return Path(out)


def quantize_int8(path: str | Path, out: str | Path) -> Path:
    """Dynamic int8 quantisation (weights int8, activations quantised per batch) of an exported model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    return _copy_metadata(path, out, "dynamic int8 (onnxruntime.quantization)")


class _Feeds:
    """``onnxruntime.quantization.CalibrationDataReader`` over an iterable of input feeds."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self.feeds, None)
        return None if feed is None else {name: np.ascontiguousarray(v) for name, v in feed.items()}


def quantize_int8_static(path: str | Path, out: str | Path, feeds: Iterable[Mapping[str, np.ndarray]],
                         description: str) -> Path:
    """Static QDQ int8 of ``Conv``/``MatMul`` (per-channel symmetric int8 weights, uint8 activations
    with min/max ranges over the calibration ``feeds``: batches of real inputs by input name).

    ``description`` says what the calibration data were (stored in ``applecider.quantization``).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as folder, _quiet_root_logger():
        prepared = Path(folder) / "prepared.onnx"  # constant folding and shapes, as onnxruntime recommends
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(out), _Feeds(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=list(STATIC_OP_TYPES),
            calibrate_method=CalibrationMethod.MinMax, extra_options={"WeightSymmetric": True},
        )  # fmt: skip
    return _copy_metadata(path, out, f"static int8 QDQ (onnxruntime.quantization): per-channel int8 weights of "
                                     f"{'/'.join(STATIC_OP_TYPES)}, uint8 activations calibrated (min/max) on {description}")


__all__ = ["STATIC_OP_TYPES", "quantize_int8", "quantize_int8_static"]
