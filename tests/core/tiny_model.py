"""A tiny classifier and dataset used by the core tests (also run under `accelerate launch`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from applecider_core.config import PresetConfig
from applecider_core.pretrained import ClassifierOutput, PretrainedMixin


@dataclasses.dataclass
class TinyConfig(PresetConfig):
    PRESETS = {"tiny": {}}
    model_type = "tiny-test-mlp"
    class_names: tuple[str, ...] = ("a", "b")
    hidden: int = 8


class TinyClassifier(PretrainedMixin, nn.Module):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.body = nn.Sequential(nn.Linear(4, config.hidden), nn.GELU())
        self.head = nn.Linear(config.hidden, len(config.class_names))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> ClassifierOutput:
        embedding = self.forward_features(x)
        logits = self.head(embedding)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return ClassifierOutput(logits=logits, loss=loss, embedding=embedding)


class SeparableDataset(torch.utils.data.Dataset):
    """Label = sign of the first feature."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, 4)).astype(np.float32)
        self.y = (self.x[:, 0] > 0).astype(np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": torch.from_numpy(self.x[i]), "labels": torch.tensor(self.y[i])}
