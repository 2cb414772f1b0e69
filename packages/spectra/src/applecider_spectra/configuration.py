"""Model configs of the spectra package (no torch): SpectraNet, GalSpecNet, SNIascore-style RNN.

The dataclass defaults are the paper sizes (SpectraNet: AppleCiDEr II §3.1); ``PRESETS`` hold the named
variants. Class names are stored by name (default: the core ``SPECTRA`` taxonomy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from applecider_core.config import ConfigError, PresetConfig
from applecider_core.taxonomy import SPECTRA

TASKS = ("classification", "redshift")
VARIANTS = ("paper", "appleCiDEr-I")
NORMS = ("layernorm", "batchnorm")
REDSHIFT_LOSSES = ("mse", "huber", "l1")

PAPER_KERNELS = ((3, 61, 1021), (3, 31, 251), (3, 15, 61), (3, 11, 31), (3, 7, 13))


def _check_task(task: str, class_names: tuple[str, ...]) -> None:
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    if task == "classification" and len(class_names) < 2:
        raise ConfigError(f"classification needs at least 2 class names, got {list(class_names)}")


@dataclass
class SpectraNetConfig(PresetConfig):
    """SpectraNet architecture (defaults: paper II §3.1, the ``paper`` preset).

    ``variant="paper"``: block = 3 parallel Conv1d → concat (3C) → norm → GELU → 1×1 projection (3C→C) →
    MaxPool(``downsample``); the last block keeps 3C channels and does not pool. Head = adaptive max pool to
    ``head_pool`` positions (16: the 3072×16 map of the paper, kept for any input length) → flatten →
    [Linear → LayerNorm → GELU → Dropout]×len(head_hidden) → Linear.
    ``variant="appleCiDEr-I"`` (paper I §5): after norm+GELU, TriPool1D (max/avg/min, concatenated, 9C) →
    sigmoid channel gate → 1×1 projection (9C→C) plus a 1×1 skip projection of the pooled block input.
    ``conv_impl`` chooses FFT/direct convolution (identical parameters either way).
    """

    class_names: tuple[str, ...] = SPECTRA.classes
    task: str = "classification"  # classification | redshift (single Softplus output)
    variant: str = "paper"
    input_length: int = 4096
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    kernel_sizes: tuple[tuple[int, ...], ...] = PAPER_KERNELS
    norm: tuple[str, ...] = ("layernorm",) * 5  # per block: layernorm | batchnorm (Table 5 ablation)
    downsample: int = 4
    head_pool: int = 16  # adaptive max pool length before flattening: 16 → 3072×16 features (paper II §3.1);
    # 1 → global max pool, 3072 features (the public reference code; preset "paper-globalpool")
    head_hidden: tuple[int, ...] = (384,)
    head_dropout: tuple[float, ...] = (0.5,)
    gate_reduction: int = 8  # appleCiDEr-I channel gate bottleneck
    conv_impl: str = "auto"  # auto | fft | direct
    fft_min_kernel: int = 7  # auto: kernels at least this long use the FFT
    fft_all_paths_kernel: int = 128  # auto: blocks with a kernel this long run all their paths in one FFT
    inference_chunk: int = 4  # without autograd, run blocks on inputs >= 1024 long this many spectra at a time
    focal_gamma: float = 2.0
    class_balance_beta: float = 0.9999
    class_counts: tuple[int, ...] | None = None  # training counts per class → class-balanced focal α
    label_smoothing: float = 0.0
    redshift_loss: str = "mse"  # mse | huber | l1 (paper II names no loss; the reference trains with MSE)
    huber_delta: float = 0.05

    model_type: ClassVar[str] = "spectranet"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "paper-batchnorm": {"norm": ("batchnorm",) * 5},
        "paper-globalpool": {"head_pool": 1},
        "appleCiDEr-I": {
            "variant": "appleCiDEr-I", "widths": (32, 64, 128, 256, 512),
            "norm": ("batchnorm",) * 4 + ("layernorm",), "head_pool": 16,
            "head_hidden": (2048, 256), "head_dropout": (0.5, 0.3),
        },
        "small": {"widths": (16, 32, 64, 128, 256)},
        "tiny": {
            "widths": (4, 8, 8, 16, 16), "kernel_sizes": ((3, 9, 33), (3, 7, 17), (3, 5, 9), (3, 5, 7), (3, 3, 5)),
            "head_hidden": (32,), "head_dropout": (0.1,), "fft_min_kernel": 5, "fft_all_paths_kernel": 33,
        },
        "tiny-appleCiDEr-I": {
            "variant": "appleCiDEr-I", "widths": (4, 8, 8, 16, 16),
            "kernel_sizes": ((3, 9, 33), (3, 7, 17), (3, 5, 9), (3, 5, 7), (3, 3, 5)),
            "norm": ("batchnorm",) * 4 + ("layernorm",), "head_pool": 16, "head_hidden": (32, 16),
            "head_dropout": (0.1, 0.1), "gate_reduction": 4, "fft_min_kernel": 5,
        },
    }  # fmt: skip

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.kernel_sizes = tuple(tuple(int(k) for k in ks) for ks in self.kernel_sizes)
        self.widths, self.norm = tuple(self.widths), tuple(self.norm)
        self.head_hidden, self.head_dropout = tuple(self.head_hidden), tuple(float(p) for p in self.head_dropout)
        if self.class_counts is not None:
            self.class_counts = tuple(int(c) for c in self.class_counts)
        _check_task(self.task, self.class_names)
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not len(self.widths) == len(self.kernel_sizes) == len(self.norm):
            raise ConfigError(
                f"widths ({len(self.widths)}), kernel_sizes ({len(self.kernel_sizes)}) and norm ({len(self.norm)})"
                " need one entry per block"
            )
        if bad := sorted(set(self.norm) - set(NORMS)):
            raise ConfigError(f"norm entries must be in {NORMS}, got {bad}")
        if len(self.head_hidden) != len(self.head_dropout):
            raise ConfigError("head_hidden and head_dropout need the same length")
        if self.redshift_loss not in REDSHIFT_LOSSES:
            raise ConfigError(f"redshift_loss must be one of {REDSHIFT_LOSSES}, got {self.redshift_loss!r}")
        if self.class_counts is not None and len(self.class_counts) != len(self.class_names):
            raise ConfigError(f"class_counts has {len(self.class_counts)} entries for {len(self.class_names)} classes")
        final_length = self.input_length // self.downsample ** (len(self.widths) - 1)
        if final_length < self.head_pool:
            raise ConfigError(f"input_length {self.input_length} leaves {final_length} positions < head_pool {self.head_pool}")

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "redshift" else len(self.class_names)

    def block_lengths(self) -> list[int]:
        """Sequence length after every block: 4096 → 1024 → 256 → 64 → 16 → 16 for the paper config."""
        lengths, length = [], self.input_length
        for i in range(len(self.widths)):
            if i < len(self.widths) - 1:
                length //= self.downsample
            lengths.append(length)
        return lengths


@dataclass
class GalSpecNetConfig(PresetConfig):
    """GalSpecNet (Wu et al. 2024) as configured in the AppleCiDEr reference: unpadded Conv1d(k)+ReLU layers
    with MaxPool between them, dropout, flatten → Linear."""

    class_names: tuple[str, ...] = SPECTRA.classes
    task: str = "classification"
    input_length: int = 4096
    channels: tuple[int, ...] = (1, 64, 64, 32, 32)
    kernel_size: int = 3
    pool: int = 4
    dropout: float = 0.2
    focal_gamma: float = 2.0
    class_balance_beta: float = 0.9999
    class_counts: tuple[int, ...] | None = None
    redshift_loss: str = "mse"

    model_type: ClassVar[str] = "galspecnet"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "tiny": {"channels": (1, 4, 4, 4, 4)}}

    def __post_init__(self) -> None:
        self.class_names, self.channels = tuple(self.class_names), tuple(self.channels)
        if self.class_counts is not None:
            self.class_counts = tuple(int(c) for c in self.class_counts)
        _check_task(self.task, self.class_names)

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "redshift" else len(self.class_names)


@dataclass
class SpectraRNNConfig(PresetConfig):
    """SNIascore-style recurrent classifier (Fremling et al. 2021): dropout 0.40 → BiLSTM(32) → 0.45 → GRU(32)
    → 0.35 → BiLSTM(32) → 0.25 → Linear. The 4096-point grid is average-binned to ``input_bins`` steps
    (SNIascore used 209 bins of 25.6 Å); the classifier reads the last BiLSTM's final states."""

    class_names: tuple[str, ...] = SPECTRA.classes
    task: str = "classification"
    input_length: int = 4096
    input_bins: int = 256
    hidden: int = 32
    dropout: tuple[float, ...] = field(default=(0.40, 0.45, 0.35, 0.25))
    focal_gamma: float = 2.0
    class_balance_beta: float = 0.9999
    class_counts: tuple[int, ...] | None = None
    redshift_loss: str = "mse"

    model_type: ClassVar[str] = "spectra_rnn"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "tiny": {"input_bins": 32, "hidden": 4}}

    def __post_init__(self) -> None:
        self.class_names, self.dropout = tuple(self.class_names), tuple(float(p) for p in self.dropout)
        if self.class_counts is not None:
            self.class_counts = tuple(int(c) for c in self.class_counts)
        _check_task(self.task, self.class_names)
        if len(self.dropout) != 4:
            raise ConfigError(f"dropout needs 4 rates (input, after each recurrent layer), got {self.dropout}")
        if self.input_length % self.input_bins:
            raise ConfigError(f"input_length {self.input_length} must be a multiple of input_bins {self.input_bins}")

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "redshift" else len(self.class_names)


__all__ = ["TASKS", "GalSpecNetConfig", "SpectraNetConfig", "SpectraRNNConfig"]
