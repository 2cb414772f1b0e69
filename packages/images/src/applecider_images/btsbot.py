"""BTSbot-style multi-input CNN baseline (Rehemtulla et al. 2024), the comparison model of paper I Table 6.

Image branch on the (3, 63, 63) triplet: two blocks of [Conv(k) → ReLU → Conv(k) → ReLU], the first
followed by MaxPool 2, the second by MaxPool 4, each by dropout; flattened (c2 × 7 × 7 for 63 pixels).
Metadata branch: Linear → ReLU → Dropout → Linear → ReLU. The two are concatenated (the embedding) and a
dense head maps them to the class logits. Same inputs and loss handling as AstroMiNN (coords unused).
"""

from __future__ import annotations

import torch
from torch import nn

from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .configuration import BTSbotConfig
from .layers import WeightedLossMixin


def _conv_block(in_ch: int, out_ch: int, kernel: int, pool: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding="same"), nn.ReLU(),
        nn.Conv2d(out_ch, out_ch, kernel, padding="same"), nn.ReLU(),
        nn.MaxPool2d(pool), nn.Dropout(dropout),
    )  # fmt: skip


class BTSbotClassifier(WeightedLossMixin, PretrainedMixin, nn.Module):
    """Conv branch on the cutout triplet + MLP on metadata → dense head."""

    config_class = BTSbotConfig

    def __init__(self, config: BTSbotConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict = {}
        c1, c2 = config.conv_channels
        d1, d2 = config.image_dropout
        self.image_branch = nn.Sequential(
            _conv_block(config.image_input.num_channels, c1, config.conv_kernel, 2, d1),
            _conv_block(c1, c2, config.conv_kernel, 4, d2),
            nn.Flatten(),
        )  # fmt: skip
        side = (config.crop_size // 2) // 4
        if side < 1:
            raise ValueError(f"crop_size {config.crop_size} too small for the BTSbot pooling (needs >= 8)")
        self.meta_branch = nn.Sequential(
            nn.Linear(config.metadata_dim, config.meta_hidden_dim), nn.ReLU(), nn.Dropout(config.meta_dropout),
            nn.Linear(config.meta_hidden_dim, config.meta_hidden_dim), nn.ReLU(),
        )  # fmt: skip
        self.embed_dim = c2 * side * side + config.meta_hidden_dim
        self.head = nn.Sequential(
            nn.Linear(self.embed_dim, config.head_hidden_dim), nn.ReLU(), nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden_dim, config.num_classes),
        )  # fmt: skip
        self._init_criterion(config.focal_gamma, config.label_smoothing)

    def forward_features(self, images: torch.Tensor, metadata: torch.Tensor,
                         coords: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, C, S, S), metadata (B, M) → embedding (B, embed_dim) = [image features, metadata]."""
        channels, size = self.config.image_input.num_channels, self.config.crop_size
        if images.ndim != 4 or images.shape[1:] != (channels, size, size):
            raise ValueError(f"images must be (B, {channels}, {size}, {size}), got {tuple(images.shape)}")
        if metadata.ndim != 2 or metadata.shape[1] != self.config.metadata_dim:
            raise ValueError(f"metadata must be (B, {self.config.metadata_dim}), got {tuple(metadata.shape)}")
        return torch.cat([self.image_branch(images), self.meta_branch(metadata)], dim=1)

    def forward(self, images: torch.Tensor, metadata: torch.Tensor, coords: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        embedding = self.forward_features(images, metadata, coords)
        logits = self.head(embedding)  # (B, C)
        loss = self.criterion(logits, labels.long()) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss, embedding=embedding)

    def module_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"image": list(self.image_branch.parameters()), "tower.mega": list(self.meta_branch.parameters()),
                "experts": list(self.head.parameters())}
