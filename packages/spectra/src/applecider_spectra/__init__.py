"""AppleCiDEr spectra: rest-frame preprocessing, SpectraNet (classifier and redshift regressor) with exact FFT
convolutions, and the GalSpecNet and SNIascore-style baselines.

The models (torch) load on first use, so configs and the numpy preprocessing import without torch."""

from __future__ import annotations

from applecider_core.lazy import lazy_exports

from .configuration import GalSpecNetConfig, SpectraNetConfig, SpectraRNNConfig
from .configuration_ccsnscore import CCSNscoreConfig
from .configuration_sniascore import SNIascoreConfig
from .preprocessing import EdgeMasking, PreprocessConfig, SpectrumError, preprocess_batch, preprocess_spectrum
from .sedm import SEDMGridConfig

CONFIGS = {"spectranet": SpectraNetConfig, "galspecnet": GalSpecNetConfig, "rnn": SpectraRNNConfig}
_MODEL_NAMES = {"spectranet": "SpectraNet", "galspecnet": "GalSpecNet", "rnn": "SpectraRNN"}
_lazy = lazy_exports(__name__, {
    "SpectraNet": ".modeling", "GalSpecNet": ".baselines", "SpectraRNN": ".baselines", "FFTConv1d": ".fftconv",
    "MultiScaleConv1d": ".fftconv", "fft_conv1d_same": ".fftconv", "SNIascore": ".modeling_sniascore",
    "CCSNscoreClassifier": ".modeling_ccsnscore", "SNIascoreSystem": ".seed_systems", "CCSNscoreSystem": ".seed_systems",
})  # fmt: skip


def __getattr__(name: str):
    if name == "ARCHITECTURES":  # arch → (model class, config class)
        return {arch: (_lazy(_MODEL_NAMES[arch]), config) for arch, config in CONFIGS.items()}
    return _lazy(name)


def build_model(arch: str, preset: str = "paper", **overrides):
    """``build_model("spectranet", "small", class_names=...)`` → model; ``arch`` in ``ARCHITECTURES``."""
    if arch not in CONFIGS:
        raise ValueError(f"unknown arch {arch!r}; allowed: {sorted(CONFIGS)}")
    model_cls, config_cls = __getattr__("ARCHITECTURES")[arch]
    return model_cls(config_cls.from_preset(preset, **overrides))


__all__ = [
    "ARCHITECTURES",
    "CONFIGS",
    "CCSNscoreClassifier",
    "CCSNscoreConfig",
    "CCSNscoreSystem",
    "EdgeMasking",
    "FFTConv1d",
    "GalSpecNet",
    "GalSpecNetConfig",
    "MultiScaleConv1d",
    "PreprocessConfig",
    "SEDMGridConfig",
    "SNIascore",
    "SNIascoreConfig",
    "SNIascoreSystem",
    "SpectraNet",
    "SpectraNetConfig",
    "SpectraRNN",
    "SpectraRNNConfig",
    "SpectrumError",
    "build_model",
    "fft_conv1d_same",
    "preprocess_batch",
    "preprocess_spectrum",
]  # fmt: skip
