"""AstroMiNN (AppleCiDEr paper I §4): metadata towers + split-head ConvNeXt + mixture of fusion experts.

Inputs (built by ``preprocessing``):
- images (B, C, S, S) float32: normalised science/template/difference crops + radial + sky channels;
- metadata (B, M) float32: standardised feature values, then their missing flags (M = 2F, or F);
- coords (B, 2) float32: (RA, Dec) in degrees, used by the coordinate tower's sinusoidal encoding and by
  the image encoder's auxiliary head.

Pipeline: each tower reads the columns of its configured features (and their missing flags) → residual
tower block → (B, tower_out_dim); the split-head ConvNeXt gives (B, image_embed_dim); everything is
concatenated without weighting (the fused embedding, ``forward_features``) → top-k mixture of experts →
logits (B, len(class_names)).
"""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .configuration import COORDINATE_TOWER, MEGA_TOWER, AstroMiNNConfig
from .layers import ResidualTowerBlock, WeightedLossMixin, sine_embedding
from .moe import MixtureOfExperts, specialisation_loss

logger = logging.getLogger(__name__)


class MetadataTowers(nn.Module):
    """One residual tower per configured feature group (paper I §4.1).

    ``feature_columns[name]`` lists the metadata columns the tower reads: the feature values and, with
    missing indicators, their flags. The coordinate tower also reads a sinusoidal encoding of ``coords``.
    """

    def __init__(self, config: AstroMiNNConfig) -> None:
        super().__init__()
        self.tower_names = tuple(config.tower_features)
        n_features = len(config.metadata_features)
        self.feature_columns: dict[str, tuple[int, ...]] = {}
        self.coord_frequencies = config.coord_frequencies
        self.towers = nn.ModuleDict()
        for name, features in config.tower_features.items():
            idx = [config.metadata_features.index(f) for f in features]
            cols = idx + ([n_features + i for i in idx] if config.missing_indicators else [])
            self.feature_columns[name] = tuple(cols)
            self.register_buffer(f"columns_{name}", torch.tensor(cols, dtype=torch.long), persistent=False)
            in_dim = len(cols) + (4 * self.coord_frequencies if name == COORDINATE_TOWER else 0)
            hidden = config.mega_hidden_dim if name == MEGA_TOWER else config.tower_hidden_dim
            self.towers[name] = ResidualTowerBlock(in_dim, hidden, config.tower_out_dim, config.tower_gating,
                                                   config.tower_dropout)
        self.out_dim = config.tower_out_dim * len(self.tower_names)

    def forward(self, metadata: torch.Tensor, coords: torch.Tensor | None) -> list[torch.Tensor]:
        """metadata (B, M), coords (B, 2) degrees → list of (B, tower_out_dim), in ``tower_names`` order."""
        outputs = []
        for name in self.tower_names:
            x = metadata.index_select(1, getattr(self, f"columns_{name}"))  # (B, n_cols)
            if name == COORDINATE_TOWER and self.coord_frequencies > 0:
                if coords is None:
                    raise ValueError("the coordinate tower needs coords (B, 2) = (RA, Dec) in degrees")
                x = torch.cat([x, sine_embedding(coords, self.coord_frequencies).to(x.dtype)], dim=1)
            outputs.append(self.towers[name](x))
        return outputs


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local timm state dict (.safetensors or torch file) into ``backbone``; never downloads.

    The classifier head is dropped; a stem with a different number of input channels is adapted: the
    first min(C_stored, C_model) channels are copied and the extra channels start at zero, so the
    pretrained response to the science/template/difference stamps is kept.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone_weights {path} not found (weights are never downloaded)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state.get("model", state))
    own = backbone.state_dict()
    state = {k: v for k, v in state.items() if k in own and not k.startswith("head.fc")}
    for key, value in list(state.items()):
        if value.ndim == 4 and value.shape != own[key].shape and value.shape[0] == own[key].shape[0]:
            adapted = torch.zeros_like(own[key])
            n = min(value.shape[1], adapted.shape[1])
            adapted[:, :n] = value[:, :n]
            state[key] = adapted
    result = backbone.load_state_dict(state, strict=False)
    logger.info("loaded %s: %d tensors, missing %d", path, len(state), len(result.missing_keys))


class SplitHeadConvNeXt(nn.Module):
    """ConvNeXt backbone with a main projection head and a coordinate-modulated auxiliary head (§4.2).

    f = backbone(x) (B, Fb); main = head_main(f) (B, D);
    m = 2·σ(modulator(sine_embedding(RA, Dec))) (B, Fb), a per-sample channel modulation in (0, 2);
    aux = tanh(head_aux(f ⊙ m)) (B, D); output = main ⊙ (1 + aux).
    With aux = 0 the output is the main head's, so the auxiliary head learns a position-dependent gain
    around the plain image pathway (the reference's main ⊙ tanh(aux) had no such neutral point).
    """

    def __init__(self, config: AstroMiNNConfig) -> None:
        super().__init__()
        self.backbone = timm.create_model(
            config.backbone, pretrained=False, num_classes=0, in_chans=config.image_input.num_channels,
            drop_path_rate=config.drop_path_rate,
        )  # fmt: skip
        if config.backbone_weights:
            load_backbone_weights(self.backbone, config.backbone_weights)
        width = self.backbone.num_features
        self.aux_frequencies = config.aux_frequencies
        self.head_main = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, config.image_head_hidden_dim), nn.GELU(),
            nn.Dropout(config.head_dropout), nn.Linear(config.image_head_hidden_dim, config.image_embed_dim),
        )  # fmt: skip
        pe_dim = 4 * config.aux_frequencies
        self.modulator = nn.Sequential(nn.Linear(pe_dim, 2 * pe_dim), nn.GELU(), nn.Linear(2 * pe_dim, width))
        self.head_aux = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, config.image_embed_dim))
        self.out_dim = config.image_embed_dim

    def forward(self, images: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """images (B, C, S, S), coords (B, 2) degrees → image embedding (B, image_embed_dim)."""
        features = self.backbone(images)  # (B, Fb)
        main = self.head_main(features)  # (B, D)
        pe = sine_embedding(coords, self.aux_frequencies).to(features.dtype)  # (B, 4K)
        modulation = 2.0 * torch.sigmoid(self.modulator(pe))  # (B, Fb)
        aux = torch.tanh(self.head_aux(features * modulation))  # (B, D)
        return main * (1.0 + aux)


class AstroMiNN(WeightedLossMixin, PretrainedMixin, nn.Module):
    """Metadata towers + split-head ConvNeXt + top-k mixture of fusion experts (paper I §4)."""

    config_class = AstroMiNNConfig

    def __init__(self, config: AstroMiNNConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict = {}
        self.towers = MetadataTowers(config)
        self.image_encoder = SplitHeadConvNeXt(config)
        self.fused_dim = self.towers.out_dim + self.image_encoder.out_dim
        self.moe = MixtureOfExperts(
            self.fused_dim, config.expert_hidden_dim, config.num_classes, config.num_experts, config.top_k,
            config.router_dropout, config.tower_dropout,
        )  # fmt: skip
        self._init_criterion(config.focal_gamma, config.label_smoothing)

    def forward_features(self, images: torch.Tensor, metadata: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Fused embedding (B, fused_dim): tower outputs (config order) then the image embedding."""
        self._check_inputs(images, metadata, coords)
        towers = self.towers(metadata, coords)
        return torch.cat([*towers, self.image_encoder(images, coords).to(towers[0].dtype)], dim=1)

    def forward(self, images: torch.Tensor, metadata: torch.Tensor, coords: torch.Tensor,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        """images (B, C, S, S), metadata (B, M), coords (B, 2) deg, labels (B,) → ClassifierOutput.

        ``aux_loss`` = balance_loss_weight · L_balance (+ specialisation_weight · Eq. 3 term with labels);
        ``loss`` = focal/CE + aux_loss. ``extras``: router_probs (B, K), expert_weights (B, K),
        expert_load (K,) share of routing assignments, balance_loss, specialisation_loss (with labels).
        """
        fused = self.forward_features(images, metadata, coords)
        routing = self.moe(fused)
        aux_loss = self.config.balance_loss_weight * routing.balance_loss
        extras = {
            "router_probs": routing.router_probs, "expert_weights": routing.combine_weights,
            "expert_load": (routing.combine_weights > 0).float().mean(dim=0) / self.config.top_k,
            "balance_loss": routing.balance_loss.detach(),
        }  # fmt: skip
        loss = None
        if labels is not None:
            if self.config.specialisation_weight > 0:
                spec = specialisation_loss(routing.router_probs, labels)
                extras["specialisation_loss"] = spec.detach()
                aux_loss = aux_loss + self.config.specialisation_weight * spec
            loss = self.criterion(routing.logits, labels.long()) + aux_loss
        return ClassifierOutput(logits=routing.logits, loss=loss, aux_loss=aux_loss, embedding=fused, extras=extras)

    def _check_inputs(self, images: torch.Tensor, metadata: torch.Tensor, coords: torch.Tensor) -> None:
        channels, size = self.config.image_input.num_channels, self.config.crop_size
        if images.ndim != 4 or images.shape[1:] != (channels, size, size):
            raise ValueError(f"images must be (B, {channels}, {size}, {size}), got {tuple(images.shape)}")
        if metadata.ndim != 2 or metadata.shape[1] != self.config.metadata_dim:
            raise ValueError(f"metadata must be (B, {self.config.metadata_dim}), got {tuple(metadata.shape)}")
        if coords.shape != (images.shape[0], 2):
            raise ValueError(f"coords must be (B, 2) = (RA, Dec) degrees, got {tuple(coords.shape)}")

    def module_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by module for per-module learning rates: image, tower.<name>, experts, router."""
        groups = {"image": list(self.image_encoder.parameters())}
        for name, tower in self.towers.towers.items():
            groups[f"tower.{name}"] = list(tower.parameters())
        groups["experts"] = list(self.moe.experts.parameters())
        groups["router"] = list(self.moe.router.parameters())
        return groups
