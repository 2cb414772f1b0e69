"""[CLS]-Transformer photometry classifier of AppleCiDEr paper I §3.2.

events (B, L, 7) → Linear(7 → d) + Time2Vec(Δt days) → prepend learned [CLS] → L Transformer layers
(post- or pre-norm, or Informer ProbSparse layers when ``arch == "informer"``) → LayerNorm([CLS]) → Linear(d → C).

Padding: ``mask`` (B, L) is True for real events; the encoder gets ``src_key_padding_mask = ~mask`` with the
[CLS] slot always valid, so a padded row never attends to padding and never becomes all-masked. The same
code path runs in training and inference (the reference padded differently at inference).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.losses import FocalLoss
from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .configuration import PhotometryConfig
from .features import pad_events
from .informer import InformerEncoder


class Time2Vec(nn.Module):
    """Learnable temporal embedding (Kazemi et al. 2019) of Δt in days: (B, L) → (B, L, d).

    Component 0 is linear (``w0 · t/scale + b0``); components 1..d-1 are ``sin(ω_i t + φ_i)`` with ω_i
    initialised to 2π/P_i, periods P_i log-spaced in [min_period, max_period] days, φ_i uniform.
    """

    def __init__(self, d_model: int, time_scale_days: float, min_period_days: float, max_period_days: float) -> None:
        super().__init__()
        self.time_scale_days = time_scale_days
        self.linear = nn.Linear(1, 1)
        periods = torch.logspace(math.log10(min_period_days), math.log10(max_period_days), d_model - 1)
        self.omega = nn.Parameter(2 * math.pi / periods)  # (d-1,) rad/day
        self.phase = nn.Parameter(torch.rand(d_model - 1) * 2 * math.pi)

    def forward(self, times_days: torch.Tensor) -> torch.Tensor:
        t = times_days.unsqueeze(-1)  # (B, L, 1)
        linear = self.linear(t / self.time_scale_days)  # (B, L, 1)
        periodic = torch.sin(t * self.omega + self.phase)  # (B, L, d-1)
        return torch.cat([linear, periodic], dim=-1)


def _relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU as a plain function: identical maths, but keeps nn.TransformerEncoderLayer off its fused path."""
    return F.relu(x)


class EventEncoder(nn.Module):
    """Embedding + [CLS] + Transformer (or Informer) layers; shared by the classifier and pretraining."""

    def __init__(self, config: PhotometryConfig) -> None:
        super().__init__()
        self.config = config
        self.in_proj = nn.Linear(config.n_features, config.d_model)
        self.time2vec = Time2Vec(config.d_model, config.time_scale_days, config.min_period_days, config.max_period_days)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.d_model))
        self.dropout = nn.Dropout(config.dropout)
        if config.arch == "informer":
            self.layers: nn.Module = InformerEncoder(
                config.d_model, config.n_heads, config.d_ff, config.n_layers, config.dropout,
                config.informer_factor, config.informer_distil, max_len=config.max_events + 1,
            )  # fmt: skip
        else:
            # PyTorch uses its fused inference kernel (+ nested tensors) only for the built-in relu/gelu;
            # benchmarks/photometry_speed.py measured it 1.3x (30 events) to 10x (257 events) SLOWER than the
            # standard path on CPU, so by default the same ReLU is passed as a plain function, which opts out.
            activation = F.relu if config.fused_fast_path else _relu
            layer = nn.TransformerEncoderLayer(
                config.d_model, config.n_heads, config.d_ff, config.dropout, activation=activation, batch_first=True,
                norm_first=config.norm_first,
            )  # fmt: skip
            nested = config.fused_fast_path and not config.norm_first
            self.layers = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=nested)
        self.final_norm = nn.LayerNorm(config.d_model) if config.norm_first else nn.Identity()

    def embed(self, events: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, L, 7), (B, L) → (B, L, d) event tokens (no [CLS])."""
        return self.in_proj(events) + self.time2vec(times)

    def forward(self, events: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, L, 7) normalised events, (B, L) bool valid, (B, L) Δt days → (B, 1 + L, d) hidden states."""
        return self.encode_tokens(self.embed(events, times), mask)

    def encode_tokens(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)  # (B, 1+L, d)
        valid = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask.bool()], dim=1)
        x = self.layers(self.dropout(x), src_key_padding_mask=~valid)
        return self.final_norm(x)


class PhotometryClassifier(PretrainedMixin, nn.Module):
    """[CLS]-Transformer (or Informer) light-curve classifier. See module docstring."""

    config_class = PhotometryConfig

    def __init__(self, config: PhotometryConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        self.encoder = EventEncoder(config)
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.num_classes)
        self.loss_fn = FocalLoss(config.focal_gamma, config.class_weights, config.label_smoothing)

    @property
    def num_features(self) -> int:
        return self.config.d_model

    def forward_features(self, events: torch.Tensor, mask: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, L, 7), (B, L), (B, L) → (B, d) LayerNorm-ed [CLS] embedding."""
        return self.norm(self.encoder(events, mask, times)[:, 0])

    def forward_head(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.head(embedding)

    def forward(self, events: torch.Tensor, mask: torch.Tensor, times: torch.Tensor,
                labels: torch.Tensor | None = None) -> ClassifierOutput:
        embedding = self.forward_features(events, mask, times)
        logits = self.forward_head(embedding)  # (B, C)
        loss = self.loss_fn(logits, labels) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss, embedding=embedding)

    def load_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """Load pretrained ``encoder.*`` weights (strict on the encoder; head and norm stay as they are)."""
        encoder_state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        if not encoder_state:
            raise KeyError("state dict has no 'encoder.*' weights")
        self.encoder.load_state_dict(encoder_state, strict=True)


@contextmanager
def fast_inference(fused_fast_path: bool = False) -> Iterator[None]:
    """``torch.inference_mode`` with PyTorch's fused Transformer fast path off (default) or on.

    benchmarks/photometry_speed.py measured the fused CPU kernel (and its nested tensors) *slower* than the
    standard path (which uses scaled_dot_product_attention) for these short sequences. The switch is global
    in PyTorch, so it is restored on exit.
    """
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(fused_fast_path)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def collate_events(items: Sequence[dict[str, Any]], max_events: int | None = None) -> dict[str, torch.Tensor]:
    """Pad items ``{"events": (L, 7), "times": (L,), ["labels": int]}`` to the batch maximum length.

    Returns ``events`` (B, L, 7) float32, ``mask`` (B, L) bool (True = event), ``times`` (B, L) float32 and
    ``labels`` (B,) int64 when every item has one. ``max_events`` truncates (keeping the earliest events).
    """
    batch = {k: torch.from_numpy(v) for k, v in pad_events(items, max_events).items()}
    if all("labels" in item for item in items):
        batch["labels"] = torch.as_tensor([int(item["labels"]) for item in items], dtype=torch.long)
    return batch
