"""AppleCiDEr spectra: rest-frame preprocessing, SpectraNet (classifier and redshift regressor) with exact FFT
convolutions, and the GalSpecNet and SNIascore-style baselines."""

from .baselines import GalSpecNet, SpectraRNN
from .configuration import GalSpecNetConfig, SpectraNetConfig, SpectraRNNConfig
from .fftconv import FFTConv1d, MultiScaleConv1d, fft_conv1d_same
from .modeling import SpectraNet
from .preprocessing import (
    EdgeMasking,
    PreprocessConfig,
    SpectrumError,
    model_preprocess_config,
    preprocess_batch,
    preprocess_for_model,
    preprocess_spectrum,
)

ARCHITECTURES = {"spectranet": (SpectraNet, SpectraNetConfig), "galspecnet": (GalSpecNet, GalSpecNetConfig),
                 "rnn": (SpectraRNN, SpectraRNNConfig)}


def build_model(arch: str, preset: str = "paper", **overrides):
    """``build_model("spectranet", "small", class_names=...)`` → model; ``arch`` in ``ARCHITECTURES``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; allowed: {sorted(ARCHITECTURES)}")
    model_cls, config_cls = ARCHITECTURES[arch]
    return model_cls(config_cls.from_preset(preset, **overrides))


__all__ = [
    "ARCHITECTURES", "EdgeMasking", "FFTConv1d", "GalSpecNet", "GalSpecNetConfig", "MultiScaleConv1d",
    "PreprocessConfig", "SpectraNet", "SpectraNetConfig", "SpectraRNN", "SpectraRNNConfig", "SpectrumError",
    "build_model", "fft_conv1d_same", "model_preprocess_config", "preprocess_batch", "preprocess_for_model",
    "preprocess_spectrum",
]  # fmt: skip
