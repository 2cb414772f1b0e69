"""Masked event modelling (paper I §3.3 "Self-Supervised Pretraining").

About 30 % of the real events of each light curve are masked (band-stratified: an equal share from every
band present, the rest uniformly). A masked event loses δt, flux, σ_logf and band (every channel after Δt is
zeroed and a learned mask embedding is added) and its own time (:func:`hide_masked_events`: it takes the Δt of the
last visible event before it, and the next event's δt is zeroed), so its gap is not readable from the
visible neighbours. Heads on the encoder output reconstruct, at masked positions only:

- flux: the normalised log10 flux (MSE),
- band: one of the encoder's bands, e.g. ZTF g/r/i or the alert-like g/r (cross-entropy),
- relative timing: the normalised log1p δt, the gap to the previous event (MSE).

The loss is the weighted SUM ``λ_f L_f + λ_b L_b + λ_dt L_dt`` (the reference multiplied them), and all
targets are read from the input before masking (the reference read them after zeroing).

For validation with the core loop, ``logits`` carries per-sample sums (B, 4):
``[Σ flux SE, Σ band CE, Σ δt SE, n_masked]``; :func:`reconstruction_metrics` turns them into losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from applecider_core.config import PresetConfig
from applecider_core.pretrained import ClassifierOutput, PretrainedMixin

from .features import N_CONTINUOUS
from .modeling import EventEncoder, PhotometryConfig

HIDDEN_CHANNELS = slice(1, None)  # δt, log f, σ_logf, one-hot band


@dataclass
class MaskedEventConfig(PresetConfig):
    """Masked-event pretraining model: an encoder config plus masking and loss weights."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"encoder": PhotometryConfig.PRESETS["small"]},
        "tiny": {"encoder": PhotometryConfig.PRESETS["tiny"]},
    }
    model_type: ClassVar[str] = "applecider_photometry_masked_event"

    encoder: PhotometryConfig = field(default_factory=PhotometryConfig)
    mask_fraction: float = 0.3
    lambda_flux: float = 5.0
    lambda_band: float = 3.0
    lambda_dt: float = 5.0
    eval_seed: int = 0  # masks drawn in eval mode come from this seed (stable validation losses)
    class_names: tuple[str, ...] = ("flux_se", "band_ce", "dt_se", "n_masked")  # names of the logits columns

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_fraction < 1.0:
            raise ValueError(f"mask_fraction must be in (0, 1), got {self.mask_fraction}")
        if self.encoder.arch == "informer" and self.encoder.informer_distil:
            raise ValueError("masked-event pretraining needs one output per event: set informer_distil false")


def sample_event_mask(band_index: torch.Tensor, valid: torch.Tensor, fraction: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Band-stratified choice of events to mask: (B, L) band ids, (B, L) bool valid → (B, L) bool masked.

    Per row with n valid events: k = max(1, round(fraction · n)); ⌊k / n_bands⌋ events from each band
    present (fewer if a band has fewer), the remainder uniformly among the other valid events.
    """
    masked = torch.zeros_like(valid)
    for row in range(valid.shape[0]):
        idx = torch.nonzero(valid[row]).squeeze(1)
        n = idx.numel()
        if n == 0:
            continue
        k = max(1, round(fraction * n))
        bands = band_index[row, idx]
        present = torch.unique(bands)
        chosen = []
        for band in present:
            members = idx[bands == band]
            take = min(k // len(present), members.numel())
            chosen.append(members[torch.randperm(members.numel(), generator=generator)[:take]])
        picked = torch.cat(chosen) if chosen else idx[:0]
        rest = idx[~torch.isin(idx, picked)]
        extra = rest[torch.randperm(rest.numel(), generator=generator)[: k - picked.numel()]]
        masked[row, torch.cat([picked, extra])] = True
    return masked


def hide_masked_events(events: torch.Tensor, times: torch.Tensor, masked: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Encoder inputs with the masked events hidden: (B, L, F) events, (B, L) Δt days, (B, L) bool masked.

    A masked event loses δt, flux, σ_logf and band (zeroed) and its own time: its Δt (channel 0 and the
    Time2Vec input) becomes that of the last visible event before it, so the model knows *where* in the
    sequence something is missing but not *when*. The δt channel of the event after a masked one is zeroed
    too (it is the gap from the masked event). Otherwise the δt target would be readable from the visible
    neighbours: Δt_i − Δt_{i−1}, or the bracket minus the next event's δt.
    """
    positions = torch.arange(events.shape[1], device=events.device).expand_as(masked)
    last_visible = torch.where(masked, torch.full_like(positions, -1), positions).cummax(dim=1).values
    anchor = torch.where(last_visible < 0, positions, last_visible)  # (B, L); a masked first event keeps its own
    hide = torch.zeros(events.shape[-1], dtype=torch.bool, device=events.device)
    hide[HIDDEN_CHANNELS] = True
    inputs = events.masked_fill(masked[..., None] & hide, 0.0)  # a new tensor; events is not modified
    inputs[..., 0] = events[..., 0].gather(1, anchor)
    after_masked = torch.zeros_like(masked)
    after_masked[:, 1:] = masked[:, :-1]
    inputs[..., 1] = inputs[..., 1].masked_fill(after_masked, 0.0)
    return inputs, times.gather(1, anchor)


class MaskedEventModel(PretrainedMixin, nn.Module):
    """Encoder + reconstruction heads; ``encoder.*`` weights transfer to :class:`PhotometryClassifier`."""

    config_class = MaskedEventConfig

    def __init__(self, config: MaskedEventConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor: dict[str, Any] = {}
        d_model = config.encoder.d_model
        self.encoder = EventEncoder(config.encoder)
        self.mask_embedding = nn.Parameter(torch.zeros(d_model))
        self.flux_head = nn.Linear(d_model, 1)
        self.band_head = nn.Linear(d_model, len(config.encoder.bands))
        self.dt_head = nn.Linear(d_model, 1)

    def forward(self, events: torch.Tensor, mask: torch.Tensor, times: torch.Tensor,
                labels: torch.Tensor | None = None, masked: torch.Tensor | None = None) -> ClassifierOutput:
        """(B, L, F) normalised events, (B, L) valid, (B, L) Δt days; ``masked`` (B, L) overrides sampling."""
        cfg = self.config
        # Targets first, from the untouched input.
        target_flux = events[..., 2].detach().clone()  # (B, L)
        target_band = events[..., N_CONTINUOUS:].argmax(-1)  # (B, L)
        target_dt = events[..., 1].detach().clone()  # (B, L)
        if masked is None:
            generator = None if self.training else torch.Generator().manual_seed(cfg.eval_seed)
            masked = sample_event_mask(target_band.cpu(), mask.bool().cpu(), cfg.mask_fraction, generator)
        masked = masked.to(events.device) & mask.bool()
        inputs, times_in = hide_masked_events(events, times, masked)
        tokens = self.encoder.embed(inputs, times_in) + masked[..., None] * self.mask_embedding
        hidden = self.encoder.encode_tokens(tokens, mask)[:, 1:]  # (B, L, d), [CLS] dropped
        pred_flux = self.flux_head(hidden).squeeze(-1)  # (B, L)
        band_logits = self.band_head(hidden)  # (B, L, n_bands)
        pred_dt = self.dt_head(hidden).squeeze(-1)  # (B, L)
        se_flux = (pred_flux - target_flux) ** 2
        ce_band = F.cross_entropy(band_logits.transpose(1, 2), target_band, reduction="none")
        se_dt = (pred_dt - target_dt) ** 2
        weight = masked.to(se_flux.dtype)
        sums = torch.stack([(se_flux * weight).sum(1), (ce_band * weight).sum(1), (se_dt * weight).sum(1),
                            weight.sum(1)], dim=1)  # (B, 4)
        loss = None
        if labels is not None:  # the core loop passes (dummy) labels in training; the loss needs none
            loss = (cfg.lambda_flux * sums[:, 0].sum() + cfg.lambda_band * sums[:, 1].sum()
                    + cfg.lambda_dt * sums[:, 2].sum()) / weight.sum().clamp(min=1)
        return ClassifierOutput(logits=sums, loss=loss, extras={
            "masked": masked, "flux": pred_flux, "band_logits": band_logits, "dt": pred_dt})


def reconstruction_metrics(config: MaskedEventConfig):
    """``compute_metrics`` for the core loop: mean losses per masked event and their weighted sum."""

    def compute(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        totals = np.asarray(logits, dtype=np.float64).sum(axis=0)
        n = max(totals[3], 1.0)
        flux, band, dt = totals[:3] / n
        total = config.lambda_flux * flux + config.lambda_band * band + config.lambda_dt * dt
        return {"loss_flux": float(flux), "loss_band": float(band), "loss_dt": float(dt),
                "reconstruction_loss": float(total), "n_masked": int(totals[3])}

    return compute
