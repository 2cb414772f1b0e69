"""SNIascore configuration (Fremling et al. 2021; no torch).

§3: dropout 0.40 → BiLSTM(32) → dropout 0.45 → GRU(32) → dropout 0.35 → BiLSTM(32) → dropout 0.25 → fully
connected (2 outputs: not SN Ia, SN Ia; or 1 redshift output), dropout kept on at prediction and the score
uncertainty from 100 stochastic passes. Input: 209 SEDM bins (3800–9150 Å, observer frame), continuum
normalised (:mod:`applecider_spectra.sedm`). Redshift regression (§4.2): forward loss √(MBE²), backward the
derivative of the MAE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from applecider_core.config import ConfigError, PresetConfig

from .sedm import SEDMGridConfig

SNIASCORE_TASKS = ("classification", "redshift")
IA_CLASS = "SN Ia"
NOT_IA_CLASS = "not SN Ia"


@dataclass
class SNIascoreConfig(PresetConfig):
    """SNIascore network; ``task="classification"`` (SN Ia vs not) or ``"redshift"`` (trained on SNe Ia)."""

    task: str = "classification"
    class_names: tuple[str, ...] = (NOT_IA_CLASS, IA_CLASS)
    hidden: int = 32
    dropout: tuple[float, ...] = (0.40, 0.45, 0.35, 0.25)  # after the input, BiLSTM, GRU, last BiLSTM
    mc_passes: int = 100  # §3: "We rerun each prediction 100 times"
    grid: SEDMGridConfig = field(default_factory=SEDMGridConfig)

    model_type: ClassVar[str] = "sniascore"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "redshift": {"task": "redshift"},
        "tiny": {"hidden": 4, "mc_passes": 8},
    }

    def __post_init__(self) -> None:
        self.class_names, self.dropout = tuple(self.class_names), tuple(float(p) for p in self.dropout)
        if self.task not in SNIASCORE_TASKS:
            raise ConfigError(f"task must be one of {SNIASCORE_TASKS}, got {self.task!r}")
        if self.class_names != (NOT_IA_CLASS, IA_CLASS):
            raise ConfigError(f"SNIascore is binary: class_names must be {[NOT_IA_CLASS, IA_CLASS]}, got {list(self.class_names)}")
        if len(self.dropout) != 4:
            raise ConfigError(f"dropout needs 4 rates (input, BiLSTM, GRU, BiLSTM), got {self.dropout}")
        if self.mc_passes < 2:
            raise ConfigError(f"mc_passes must be >= 2 for a standard deviation, got {self.mc_passes}")

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "redshift" else 2


__all__ = ["IA_CLASS", "NOT_IA_CLASS", "SNIascoreConfig"]
