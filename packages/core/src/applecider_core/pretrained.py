"""save_pretrained / from_pretrained: config.json + model.safetensors + preprocessor.json, local paths only.

Loading is strict: the directory must hold a config of the same ``model_type`` and weights whose names and
shapes match the model built from that config exactly; anything else raises PretrainedError saying what
differs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # torch is imported by the models themselves; ONNX-only runs never import it
    import torch
    from torch import nn

from .config import from_dict, to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PREPROCESSOR_NAME = "preprocessor.json"


class PretrainedError(RuntimeError):
    """A model directory that is missing, incomplete, or does not match the requested model."""


@dataclasses.dataclass
class ClassifierOutput:
    """What every model's ``forward`` returns.

    ``logits`` (B, C) (or (B, 1) for regressors); ``loss`` only when labels were given (already including
    ``aux_loss``); ``aux_loss`` is any auxiliary loss the model adds (e.g. MoE load balancing), reported
    separately; ``embedding`` is the ``forward_features`` output.
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


def save_pretrained(
    model: nn.Module, config: Any, directory: str | Path, preprocessor: dict[str, Any] | None = None
) -> Path:
    """Write ``config.json`` (with ``model_type``), ``model.safetensors`` and ``preprocessor.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"model_type": type(config).model_type, **to_dict(config)}
    (directory / CONFIG_NAME).write_text(json.dumps(payload, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    save_file(state, str(directory / WEIGHTS_NAME))
    (directory / PREPROCESSOR_NAME).write_text(json.dumps(preprocessor or {}, indent=2))
    return directory


def read_config(config_cls: type, directory: str | Path) -> Any:
    """Config dataclass stored in ``directory``; checks the model type."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise PretrainedError(f"{directory}: no {CONFIG_NAME}; expected a directory written by save_pretrained")
    data = json.loads(path.read_text())
    stored_type = data.pop("model_type", None)
    if stored_type != config_cls.model_type:
        raise PretrainedError(
            f"{directory}: holds a {stored_type!r} model, cannot load it as {config_cls.model_type!r}"
        )
    return from_dict(config_cls, data)


def load_weights(model: nn.Module, directory: str | Path) -> None:
    """Strictly load ``model.safetensors`` into ``model``; mismatches are listed in the error."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise PretrainedError(f"{directory}: no {WEIGHTS_NAME}")
    from safetensors.torch import load_file

    state = load_file(str(path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        details = [f"missing {missing[:5]}" * bool(missing), f"unexpected {unexpected[:5]}" * bool(unexpected)]
        details += [f"{k}: stored {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong_shape[:5]]
        raise PretrainedError(f"{path} does not match the model: " + "; ".join(d for d in details if d))
    model.load_state_dict(state, strict=True)


def read_preprocessor(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / PREPROCESSOR_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


class PretrainedMixin:
    """Adds ``save_pretrained``/``from_pretrained`` to an ``nn.Module`` built as ``cls(config)``.

    The module keeps ``self.config``; fitted preprocessing statistics travel in ``self.preprocessor`` (a
    JSON-ready dict) and are written to ``preprocessor.json``.
    """

    config_class: ClassVar[type]
    config: Any
    preprocessor: dict[str, Any]

    def save_pretrained(self, directory: str | Path, preprocessor: dict[str, Any] | None = None) -> Path:
        if preprocessor is not None:
            self.preprocessor = preprocessor
        return save_pretrained(self, self.config, directory, getattr(self, "preprocessor", None))  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu"):
        directory = Path(directory)
        if not directory.is_dir():
            raise PretrainedError(f"{directory}: not a directory (only local paths are supported)")
        model = cls(read_config(cls.config_class, directory))  # type: ignore[call-arg]
        load_weights(model, directory)  # type: ignore[arg-type]
        model.preprocessor = read_preprocessor(directory)
        return model.to(map_location).eval()  # type: ignore[attr-defined]
