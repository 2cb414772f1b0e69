"""A deep ensemble of photometry classifiers: ``size`` members of one architecture, averaged in probability.

Members differ only in their random initial weights (and dropout draws); they are trained together on the
same batches, each with its own loss (the ensemble's loss is their mean), so no member depends on another.
The ensemble's ``logits`` are ``log(mean_k softmax(z_k))``: their softmax is the members' mean probability, so
temperature scaling, fusion and every metric read them like one model's logits. Why: on the public light
curves one training of the recipe moves by ±0.06 in balanced accuracy at 10 d with the seed alone
(docs/BENCHMARKS.md); the mean of several members removes most of that variance (Lakshminarayanan et al.
2017), at ``size``× the compute of one small model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from applecider_core.pretrained import CONFIG_NAME, ClassifierOutput, PretrainedError, PretrainedMixin

from .configuration import PhotometryEnsembleConfig
from .modeling import PhotometryClassifier


class PhotometryEnsemble(PretrainedMixin, nn.Module):
    """Members ``PhotometryClassifier(config.member)``; forward as one classifier (module docstring)."""

    config_class = PhotometryEnsembleConfig

    def __init__(self, config: PhotometryEnsembleConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        self.members = nn.ModuleList(PhotometryClassifier(config.member) for _ in range(config.size))

    @property
    def num_features(self) -> int:
        return self.config.member.d_model

    def forward(self, events: torch.Tensor, mask: torch.Tensor, times: torch.Tensor,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        outputs = [member(events, mask, times, labels) for member in self.members]
        log_probs = torch.stack([out.logits.log_softmax(dim=-1) for out in outputs])  # (K, B, C)
        logits = torch.logsumexp(log_probs, dim=0) - math.log(len(outputs))  # (B, C) log mean probability
        loss = torch.stack([out.loss for out in outputs]).mean() if labels is not None else None
        embedding = torch.stack([out.embedding for out in outputs]).mean(dim=0)  # (B, d)
        return ClassifierOutput(logits=logits, loss=loss, embedding=embedding)

    def load_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """The same pretrained encoder in every member (heads stay as initialised: members still differ)."""
        for member in self.members:
            member.load_encoder(state)


MODEL_CLASSES = (PhotometryClassifier, PhotometryEnsemble)


def load_photometry_model(directory: str | Path) -> PhotometryClassifier | PhotometryEnsemble:
    """The photometry model saved in ``directory``, single or ensemble (chosen by config.json's model_type)."""
    config_path = Path(directory) / CONFIG_NAME
    if not config_path.is_file():
        raise PretrainedError(f"{directory}: no {CONFIG_NAME}; expected a model directory written by training")
    model_type = json.loads(config_path.read_text()).get("model_type")
    for cls in MODEL_CLASSES:
        if cls.config_class.model_type == model_type:
            return cls.from_pretrained(directory)
    known = [cls.config_class.model_type for cls in MODEL_CLASSES]
    raise PretrainedError(f"{directory}: model_type {model_type!r} is not a photometry model (one of {known})")


__all__ = ["MODEL_CLASSES", "PhotometryEnsemble", "load_photometry_model"]
