"""SpectraNet `paper` preset: FFT convolution vs direct nn.Conv1d, measured in one run.

    .venv/bin/python benchmarks/spectra_speed.py [--iters 3] [--batch 32] [--threads 2] [--bf16] [--onnx] [--profile]

Inference (eval, no grad) and training (forward + backward + AdamW step) throughput in spectra/s at batch 32
on 2 CPU threads, for the same weights run with ``conv_impl="direct"`` (every path an ``nn.Conv1d``, the
baseline), ``"fft"`` (every path through the shared FFT, channels-last blocks) and ``"auto"`` (the default:
FFT for kernels ≥ 7, unfold + matmul for k = 3). The variants are timed alternately and the median is
reported, so load from other processes hits all alike; each inference row gives its max |Δ logit| against
direct fp32 on the same random spectra. ``--bf16`` adds auto and direct under bfloat16 autocast (what the
``torch-bf16`` engine runs: matmuls and convolutions in bf16, the FFT and its channel mixing in fp32).
``--onnx`` adds ONNX Runtime on the graph ``cider export onnx`` writes (direct ``Conv``): fp32, dynamic int8
and static int8 (calibrated on random spectra: a speed figure; no spectra engine uses it). ``--profile``
prints milliseconds per spectrum of each block for auto in fp32 and bf16, and the part no convolution
algorithm removes: the inverse FFTs, LayerNorm and GELU over every block's (n, 3C) output, against the
budget of 10× direct.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from applecider_spectra import SpectraNet, SpectraNetConfig
from applecider_spectra.fftconv import transform_length


def time_training(model: SpectraNet, optimizer: torch.optim.Optimizer, flux: torch.Tensor, labels: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = model(flux, labels=labels).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def onnx_engines(model: SpectraNet, threads: int, folder: Path, batch: int) -> dict:
    """The exported inference graph (fp32, dynamic and static int8) in ONNX Runtime sessions of ``threads``
    threads, as callables flux (B, L) → logits."""
    from applecider_core.engines import OnnxEngine, export_graph
    from applecider_core.quantization import quantize_int8, quantize_int8_static
    from applecider_spectra.export import inference_graph

    path = export_graph(inference_graph(model, for_export=True), folder / "spectranet.onnx",
                        {"modality": "spectra", "model_type": "spectranet"})
    files = {"onnxruntime (Conv graph)": path,
             "onnxruntime dynamic int8": quantize_int8(path, folder / "spectranet.int8.onnx"),
             "onnxruntime static int8": quantize_int8_static(
                 path, folder / "spectranet.int8-static.onnx",
                 [{"flux": torch.randn(batch, model.config.input_length).numpy()} for _ in range(2)], "random spectra")}
    engines = {name: OnnxEngine(file, threads=threads) for name, file in files.items()}
    return {name: (lambda flux, e=engine: torch.from_numpy(e({"flux": flux.numpy()}))) for name, engine in engines.items()}


def torch_inference(model: SpectraNet, bf16: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(flux: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return model(flux).logits.float()

    return run


def block_profile(model: SpectraNet, flux: torch.Tensor, bf16: bool, repeats: int) -> list[float]:
    """Best-of-``repeats`` ms per spectrum of each block (batch pieces as ``forward_trunk`` runs them: ``SpectraNet.batch_pieces``), then of
    the head (pool, MLP, classifier)."""
    best = [float("inf")] * (len(model.blocks) + 1)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        for _ in range(repeats + 1):
            h = flux[:, :, None]  # channels-last (B, L, 1)
            for i, block in enumerate(model.blocks):
                start = time.perf_counter()
                h = torch.cat([block(part) for part in model.batch_pieces(h, h.shape[1])])
                best[i] = min(best[i], 1000 * (time.perf_counter() - start) / len(flux))
            start = time.perf_counter()
            model.fc(model.head(model.pool(h.transpose(1, 2)).flatten(1)))
            best[-1] = min(best[-1], 1000 * (time.perf_counter() - start) / len(flux))
    return best


def memory_bound_floor(model: SpectraNet, batch: int, repeats: int) -> float:
    """ms per spectrum of the inverse FFTs, LayerNorm and GELU over each block's (n, P·C) output (fp32, in the
    batch pieces of ``forward_trunk``), the work of the FFT route that no convolution algorithm or number
    format of the matmuls removes."""
    total, length = 0.0, model.config.input_length
    for block in model.blocks:
        conv = block.multiscale
        n = transform_length(length, conv.kernel_sizes, 1 if block.last else model.config.downsample)
        channels = sum(c.out_channels for c in conv.convs)
        spectrum = torch.randn(batch, n // 2 + 1, channels, dtype=torch.complex64)
        norm = torch.nn.LayerNorm(channels)
        best = float("inf")
        with torch.inference_mode():
            for _ in range(repeats + 1):
                start = time.perf_counter()
                for part in model.batch_pieces(spectrum, length):
                    torch.nn.functional.gelu(norm(torch.fft.irfft(part, n=n, dim=1)))
                best = min(best, time.perf_counter() - start)
        total += 1000 * best / batch
        length //= 1 if block.last else model.config.downsample
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per variant (after 1 warm-up)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--bf16", action="store_true", help="add auto and direct under bfloat16 autocast")
    parser.add_argument("--onnx", action="store_true", help="add ONNX Runtime inference (fp32, dynamic and static int8)")
    parser.add_argument("--profile", action="store_true", help="per-block times and the memory-bound floor")
    parser.add_argument("--no-training", action="store_true", help="skip the training comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = SpectraNet(SpectraNetConfig.from_preset(args.preset))
    models = {"direct": copy.deepcopy(base).set_conv_impl("direct"), "fft": copy.deepcopy(base).set_conv_impl("fft"),
              "auto": base}
    for model in models.values():
        model.eval()
    flux = torch.randn(args.batch, base.config.input_length)
    labels = torch.randint(0, base.config.num_outputs, (args.batch,))

    variants = {"torch direct nn.Conv1d (baseline)": torch_inference(models["direct"]),
                "torch FFT": torch_inference(models["fft"]), "torch auto (the default)": torch_inference(base)}
    if args.bf16:
        variants["torch auto, bf16 autocast (engine torch-bf16)"] = torch_inference(base, bf16=True)
        variants["torch direct, bf16 autocast"] = torch_inference(models["direct"], bf16=True)
    if args.onnx:
        variants.update(onnx_engines(base, args.threads, Path(tempfile.mkdtemp()), args.batch))
    reference = variants["torch direct nn.Conv1d (baseline)"](flux)
    deltas = {name: (run(flux) - reference).abs().max().item() for name, run in variants.items()}
    inference = {name: [] for name in variants}
    for _ in range(args.iters + 1):
        for name, run in variants.items():
            start = time.perf_counter()
            run(flux)
            inference[name].append(time.perf_counter() - start)

    def rate(times: list[float]) -> float:
        return args.batch / statistics.median(times[1:])  # first call is the warm-up

    print(f"SpectraNet[{args.preset}] {sum(p.numel() for p in base.parameters()):,} parameters; batch {args.batch}; "
          f"{args.threads} threads; {args.iters} timed iterations (median); load average {os.getloadavg()[0]:.1f} "
          "at the start")
    print("| variant | inference spectra/s | ms/spectrum | × direct nn.Conv1d | max abs Δ logit vs direct |")
    print("|---|---|---|---|---|")
    direct = rate(inference["torch direct nn.Conv1d (baseline)"])
    for name, times in inference.items():
        print(f"| {name} | {rate(times):.1f} | {1000 / rate(times):.1f} | {rate(times) / direct:.2f} | "
              f"{'—' if name.endswith('(baseline)') else f'{deltas[name]:.1e}'} |")
    print(f"(max |logit| of the baseline {reference.abs().max().item():.2f})")
    if args.profile:
        names = [f"block {i + 1}" for i in range(len(base.blocks))] + ["head"]
        print("| ms/spectrum | " + " | ".join(names) + " | total |")
        print("|---|" + "---|" * (len(names) + 1))
        for label, bf16 in (("auto fp32", False), ("auto bf16 autocast", True)):
            times = block_profile(base, flux, bf16, args.iters)
            print(f"| {label} | " + " | ".join(f"{t:.2f}" for t in times) + f" | {sum(times):.1f} |")
        print(f"inverse FFTs + LayerNorm + GELU of the five blocks alone (fp32): "
              f"{memory_bound_floor(base, args.batch, args.iters):.1f} ms/spectrum; 10x direct needs the whole "
              f"network in {100 / direct:.1f} ms/spectrum")
    if not args.no_training:
        training = {name: [] for name in models}
        optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in models.items()}
        for model in models.values():
            model.train()
        for _ in range(args.iters + 1):
            for name, model in models.items():
                training[name].append(time_training(model, optimizers[name], flux, labels))
        direct_t, fft_t, auto_t = (rate(training[k]) for k in ("direct", "fft", "auto"))
        print(f"training spectra/s: direct {direct_t:.1f}, fft {fft_t:.1f} ({fft_t / direct_t:.2f}x), "
              f"auto {auto_t:.1f} ({auto_t / direct_t:.2f}x)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
