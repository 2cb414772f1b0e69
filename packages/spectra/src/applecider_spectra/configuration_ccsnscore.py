"""CCSNscore configuration (Sharma et al. 2025; no torch).

CCSNscore is 8 parallel one-vs-rest binary classifiers in hierarchical layers (§3): layer 1 H-rich / H-poor,
layer 2a II / IIb-H / IIn, layer 2b Ib / Ic / Ic-BL. One :class:`CCSNscoreConfig` is one binary model
(``layer``, ``target``). Inputs (§2.1): the spectrum (required; deredshifted, 4200–9200 Å, 256 points), the
GP-interpolated g/r light curves (200 one-day bins, flux and error) and their δm–δt histograms (24×24).

Classes of the public labels (the data bundle's taxonomy): IIb-H and IIb-noH are not told apart (every SN IIb
counts as IIb-H, in H-rich); Ic-BL is folded into SN Ic by the bundle, so layer 2b trains Ib and Ic only; SN
Ibn and SN Ib/c count as H-poor in layer 1 only; SLSNe are left out (not CCSNscore classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from applecider_core.config import ConfigError, PresetConfig

from .sedm import SEDMGridConfig

# layer → target → the normalised labels it absorbs (first-level names as in the paper)
CCSN_LAYERS: dict[str, dict[str, tuple[str, ...]]] = {
    "1": {"H-rich": ("SN II", "SN IIP", "SN IIn", "SN IIb"), "H-poor": ("SN Ib", "SN Ibn", "SN Ic", "SN Ib/c")},
    "2a": {"II": ("SN II", "SN IIP"), "IIb-H": ("SN IIb",), "IIn": ("SN IIn",)},
    "2b": {"Ib": ("SN Ib",), "Ic": ("SN Ic",)},
}
UNTRAINABLE = {"2a": ("IIb-noH",), "2b": ("Ic-BL",)}  # paper classes the public labels cannot separate
SUBLAYER_OF = {"H-rich": "2a", "H-poor": "2b"}
INPUTS = ("spectrum", "lightcurve", "dmdt")
DMDT_MAG_EDGES = (-4.5, -3, -2.5, -2, -1.5, -1.25, -0.75, -0.5, -0.3, -0.2, -0.1, -0.05, 0, 0.05, 0.1, 0.2, 0.3,
                  0.5, 0.75, 1.25, 1.5, 2, 2.5, 3, 4.5)  # fmt: skip
DMDT_DAY_EDGES = (0, 1 / 24, 4 / 24, 0.25, 0.5, 0.75, 1, 2, 3, 6, 9, 12, 15, 24, 33, 48, 63, 72, 96, 126, 153, 180,
                  216, 255, 300)  # fmt: skip


@dataclass
class CCSNscoreConfig(PresetConfig):
    """One CCSNscore binary classifier. Architecture (Fig. 3): spectrum → 2 BiLSTM; each light-curve band →
    3 LSTM; each δm–δt band → 2 Conv2D (+ max pool); concatenated → dropout → Dense(ReLU) → 1 sigmoid output.
    Unit counts are inside the paper's tuning ranges (Table 2: BiLSTM/LSTM 4–24, Conv2D 16–64 and 8–32,
    Dense 8–64, dropout 0.1–0.9); the figure with the chosen values is not in the text we have."""

    layer: str = "1"
    target: str = "H-rich"
    inputs: tuple[str, ...] = ("spectrum",)  # case S; ("spectrum", "lightcurve", "dmdt") is case SLD
    class_names: tuple[str, ...] = ()  # (f"not {target}", target), filled in
    spectrum_points: int = 256
    rest_wavelength_aa: tuple[float, float] = (4200.0, 9200.0)
    median_filter: int = 5
    bands: tuple[str, ...] = ("ztfg", "ztfr")
    lightcurve_days: int = 200
    spectrum_units: tuple[int, ...] = (16, 16)
    lightcurve_units: tuple[int, ...] = (16, 16, 8)
    dmdt_channels: tuple[int, int] = (32, 16)
    dense_units: int = 32
    dropout: float = 0.5  # "favors high dropout rates similar to SNIascore"
    mc_passes: int = 100
    confident_probability: float = 0.8  # Fig. 5b / §6 reporting cut: P > 0.8 and uncertainty < 0.05
    confident_uncertainty: float = 0.05
    grid: SEDMGridConfig = field(default_factory=SEDMGridConfig)

    model_type: ClassVar[str] = "ccsnscore"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "lightcurves": {"inputs": INPUTS},
        "tiny": {"spectrum_units": (4, 4), "lightcurve_units": (4, 4, 4), "dmdt_channels": (4, 4), "dense_units": 8,
                 "mc_passes": 8},
    }  # fmt: skip

    def __post_init__(self) -> None:
        self.inputs, self.bands = tuple(self.inputs), tuple(self.bands)
        self.spectrum_units, self.lightcurve_units = tuple(self.spectrum_units), tuple(self.lightcurve_units)
        self.dmdt_channels, self.rest_wavelength_aa = tuple(self.dmdt_channels), tuple(self.rest_wavelength_aa)
        if self.layer not in CCSN_LAYERS:
            raise ConfigError(f"layer must be one of {sorted(CCSN_LAYERS)}, got {self.layer!r}")
        if self.target not in CCSN_LAYERS[self.layer]:
            raise ConfigError(f"layer {self.layer} targets are {sorted(CCSN_LAYERS[self.layer])}, got {self.target!r}")
        if "spectrum" not in self.inputs or set(self.inputs) - set(INPUTS):
            raise ConfigError(f"inputs must include 'spectrum' and be among {INPUTS}, got {self.inputs}")
        self.class_names = (f"not {self.target}", self.target)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mc_passes < 2:
            raise ConfigError(f"mc_passes must be >= 2 for a standard deviation, got {self.mc_passes}")

    @property
    def positive_labels(self) -> tuple[str, ...]:
        return CCSN_LAYERS[self.layer][self.target]

    @property
    def layer_labels(self) -> tuple[str, ...]:
        """Every label the layer trains on (positives of this model and of its parallel models)."""
        return tuple(label for labels in CCSN_LAYERS[self.layer].values() for label in labels)

    @property
    def case(self) -> str:
        """The paper's input case: S, SL, SD or SLD."""
        return "S" + ("L" if "lightcurve" in self.inputs else "") + ("D" if "dmdt" in self.inputs else "")

    @property
    def folder_name(self) -> str:
        """Folder of this model inside a CCSNscore system directory, e.g. ``layer1_H-rich_S``."""
        return f"layer{self.layer}_{self.target}_{self.case}"


__all__ = ["CCSN_LAYERS", "DMDT_DAY_EDGES", "DMDT_MAG_EDGES", "INPUTS", "SUBLAYER_OF", "UNTRAINABLE", "CCSNscoreConfig"]
