"""SpectraNet `paper` preset: FFT convolution vs direct nn.Conv1d, measured in one run.

    .venv/bin/python benchmarks/spectra_speed.py [--iters 3] [--batch 32] [--threads 2] [--onnx]

Inference (eval, no grad) and training (forward + backward + AdamW step) throughput in spectra/s at batch 32
on 2 CPU threads, for the same weights run with ``conv_impl="direct"`` (every path an ``nn.Conv1d``, the
baseline), ``"fft"`` (every path through the shared FFT, channels-last blocks) and ``"auto"`` (the default:
FFT for kernels ≥ 7, unfold + matmul for k = 3). The variants are timed alternately and the
median is reported, so load from other processes hits all alike. Also prints the max |Δ| of the logits
between the FFT and direct implementations. ``--onnx`` adds inference with ONNX Runtime on the graph
``cider export onnx`` writes (direct ``Conv``), fp32 and dynamic int8, on the same threads.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from applecider_spectra import SpectraNet, SpectraNetConfig


def time_inference(model: SpectraNet, flux: torch.Tensor) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        model(flux)
        return time.perf_counter() - start


def time_training(model: SpectraNet, optimizer: torch.optim.Optimizer, flux: torch.Tensor, labels: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = model(flux, labels=labels).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def onnx_engines(model: SpectraNet, threads: int, folder: Path) -> dict:
    """The exported inference graph (fp32 and dynamic int8) in ONNX Runtime sessions of ``threads`` threads."""
    from applecider_core.engines import OnnxEngine, export_graph
    from applecider_core.quantization import quantize_int8
    from applecider_spectra.export import inference_graph

    path = export_graph(inference_graph(model, for_export=True), folder / "spectranet.onnx",
                        {"modality": "spectra", "model_type": "spectranet"})
    int8 = quantize_int8(path, folder / "spectranet.int8.onnx")
    return {"onnxruntime": OnnxEngine(path, threads=threads), "onnxruntime int8": OnnxEngine(int8, threads=threads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per variant (after 1 warm-up)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--onnx", action="store_true", help="add ONNX Runtime inference (fp32 and int8)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = SpectraNet(SpectraNetConfig.from_preset(args.preset))
    models = {"direct": copy.deepcopy(base).set_conv_impl("direct"), "fft": copy.deepcopy(base).set_conv_impl("fft"),
              "auto": base}
    flux = torch.randn(args.batch, 4096)
    labels = torch.randint(0, base.config.num_outputs, (args.batch,))

    for model in models.values():
        model.eval()
    with torch.no_grad():
        outputs = {name: model(flux).logits for name, model in models.items()}
    max_diff = (outputs["fft"] - outputs["direct"]).abs().max().item()
    scale = outputs["direct"].abs().max().item()

    inference = {name: [] for name in models}
    engines = onnx_engines(base, args.threads, Path(tempfile.mkdtemp())) if args.onnx else {}
    onnx_diff = {name: float(np.abs(engine({"flux": flux.numpy()}) - outputs["direct"].numpy()).max())
                 for name, engine in engines.items()}
    inference.update({name: [] for name in engines})
    for _ in range(args.iters + 1):
        for name, model in models.items():
            inference[name].append(time_inference(model, flux))
        for name, engine in engines.items():
            start = time.perf_counter()
            engine({"flux": flux.numpy()})
            inference[name].append(time.perf_counter() - start)
    training = {name: [] for name in models}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in models.items()}
    for model in models.values():
        model.train()
    for _ in range(args.iters + 1):
        for name, model in models.items():
            training[name].append(time_training(model, optimizers[name], flux, labels))

    def rate(times: list[float]) -> float:
        return args.batch / statistics.median(times[1:])  # first call is the warm-up

    print(f"SpectraNet[{args.preset}] {sum(p.numel() for p in base.parameters()):,} parameters; batch {args.batch}; "
          f"{args.threads} threads; {args.iters} timed iterations (median)")
    print(f"{'':24s}{'direct nn.Conv1d':>18s}{'fft':>16s}{'auto (default)':>18s}")
    for label, times in (("inference spectra/s", inference), ("training spectra/s", training)):
        direct, fft, auto = rate(times["direct"]), rate(times["fft"]), rate(times["auto"])
        print(f"{label:24s}{direct:18.1f}{fft:9.1f} ({fft / direct:.2f}x){auto:10.1f} ({auto / direct:.2f}x)")
    for name in engines:
        rate_name = rate(inference[name])
        print(f"{'inference ' + name:24s}{rate_name:18.1f} spectra/s ({rate_name / rate(inference['direct']):.2f}x "
              f"direct nn.Conv1d); max |Δ logit| vs direct {onnx_diff[name]:.1e}")
    print(f"max |logits_fft - logits_direct| = {max_diff:.2e} (max |logit| {scale:.2f}); "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
