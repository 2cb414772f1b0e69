"""ConvNeXt on spectra rendered as images (AppleCiDEr paper I, Appendix A; the rendering is
``applecider_spectra.spectrum_images``): a timm ConvNeXt backbone on the (3, H, W) raw + LOESS channels, then
fully connected layers with dropout and the class logits. The appendix starts from ImageNet weights; here
``pretrained=False`` or a local ``backbone_weights`` file (never downloaded), as everywhere in this package.

(B, 3, H, W) → [1 − x] → backbone (B, F) → Linear(F, hidden) → GELU → Dropout → Linear(hidden, classes).

``invert_input`` (default on) feeds the backbone 1 − image: the curve as 1 on a 0 background. Trained from
scratch on the white-background renders (background 1, ink 0) the model stayed near chance on the public
spectra (64 px, 6 epochs: training loss 0.692 at lr 1e-3, 0.663 at 1e-4, validation ROC-AUC ≤ 0.65); inverted it
learned (validation ROC-AUC 0.85 at lr 1e-4, 0.89 at 3e-4). With ImageNet weights (the appendix) leave it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import timm
import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.config import ConfigError, PresetConfig
from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .modeling import load_backbone_weights


@dataclass
class SpectrumConvNeXtConfig(PresetConfig):
    class_names: tuple[str, ...] = ("not SN Ia", "SN Ia")
    backbone: str = "convnext_atto"
    in_channels: int = 3  # raw, LOESS 0.05, LOESS 0.1
    image_size: int = 288
    head_hidden: int = 256
    head_dropout: float = 0.3
    backbone_weights: str | None = None  # local timm state dict; never downloaded
    invert_input: bool = True  # the backbone sees 1 − image (ink 1 on 0): from scratch the white renders stay at chance

    model_type: ClassVar[str] = "spectrum_convnext"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "tiny": {"image_size": 32, "head_hidden": 16}}

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        if len(self.class_names) < 2:
            raise ConfigError(f"need at least 2 class names, got {list(self.class_names)}")


class SpectrumConvNeXt(PretrainedMixin, nn.Module):
    """``forward(images (B, 3, H, W), labels=None)`` → ClassifierOutput(logits (B, C), loss, embedding (B, hidden))."""

    config_class = SpectrumConvNeXtConfig

    def __init__(self, config: SpectrumConvNeXtConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0, in_chans=config.in_channels)
        if config.backbone_weights:
            load_backbone_weights(self.backbone, config.backbone_weights)
        self.head = nn.Sequential(nn.Linear(self.backbone.num_features, config.head_hidden), nn.GELU(),
                                  nn.Dropout(config.head_dropout))
        self.num_features = config.head_hidden
        self.fc = nn.Linear(config.head_hidden, len(config.class_names))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(1 - images if self.config.invert_input else images))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> ClassifierOutput:
        embedding = self.forward_features(images)
        logits = self.fc(embedding)
        loss = None if labels is None else F.cross_entropy(logits, labels.long())
        return ClassifierOutput(logits=logits, loss=loss, embedding=embedding)


__all__ = ["SpectrumConvNeXt", "SpectrumConvNeXtConfig"]
