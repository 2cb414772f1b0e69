"""Informer encoder (Zhou et al. 2021) as the AstroM³ photometry baseline: ProbSparse self-attention.

ProbSparse attention: for each query, the sparsity score ``M = max_j q·k_j − mean_j q·k_j`` is estimated
on ``U = factor · ceil(ln L)`` sampled keys; only the top-``u`` queries (``u = factor · ceil(ln L)``) attend
over all keys, the others output the mean of the values (over valid keys). Our additions: padded keys get no
weight, padded queries are never selected, and the [CLS] query (position 0) is always selected so the
classification token gets full attention. Sampling is random in training and uses a fixed generator in
eval (deterministic inference). Optional distilling (Conv1d + ELU + MaxPool(stride 2) between layers) halves
the event tokens; [CLS] is kept aside and the padding mask is pooled with the same window.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ProbSparseSelfAttention(nn.Module):
    """Multi-head ProbSparse self-attention over (B, L, d) with a key padding mask (B, L), True = pad."""

    def __init__(self, d_model: int, n_heads: int, factor: int = 5, dropout: float = 0.0, eval_seed: int = 0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.factor = factor
        self.eval_seed = eval_seed
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        heads, dim = self.n_heads, d_model // self.n_heads
        q, k, v = self.qkv(x).view(batch, length, 3, heads, dim).permute(2, 0, 3, 1, 4)  # each (B, H, L, E)
        valid = ~key_padding_mask  # (B, L)
        n_top = min(length, self.factor * math.ceil(math.log(length + 1)))
        scale = 1.0 / math.sqrt(dim)
        if n_top >= length:  # short sequences: ProbSparse would select everything; use full attention
            top = torch.arange(length, device=x.device).expand(batch, heads, length)
        else:
            generator = None
            if not self.training:
                generator = torch.Generator(device=x.device).manual_seed(self.eval_seed)
            sample = torch.randint(length, (length, n_top), device=x.device, generator=generator)  # (L, U)
            k_sample = k[:, :, sample]  # (B, H, L, U, E)
            qk_sample = torch.einsum("bhle,bhlue->bhlu", q, k_sample)  # (B, H, L, U)
            sample_valid = valid[:, sample][:, None]  # (B, 1, L, U)
            neg = torch.finfo(qk_sample.dtype).min
            q_max = qk_sample.masked_fill(~sample_valid, neg).amax(-1)
            q_mean = (qk_sample * sample_valid).sum(-1) / sample_valid.sum(-1).clamp(min=1)
            sparsity = (q_max - q_mean).masked_fill(~valid[:, None], neg)  # (B, H, L)
            sparsity[..., 0] = torch.finfo(sparsity.dtype).max  # [CLS] always attends fully
            top = sparsity.topk(n_top, dim=-1).indices  # (B, H, u)
        q_top = q.gather(2, top[..., None].expand(-1, -1, -1, dim))  # (B, H, u, E)
        scores = (q_top @ k.transpose(-2, -1)) * scale  # (B, H, u, L)
        scores = scores.masked_fill(key_padding_mask[:, None, None], float("-inf"))
        attn = self.dropout(scores.softmax(-1))
        weights = valid[:, None, :, None].to(v.dtype)
        mean_v = (v * weights).sum(2, keepdim=True) / weights.sum(2, keepdim=True).clamp(min=1)  # (B, H, 1, E)
        context = mean_v.expand(-1, -1, length, -1).clone()
        context.scatter_(2, top[..., None].expand(-1, -1, -1, dim), attn @ v)
        return self.out(context.transpose(1, 2).reshape(batch, length, d_model))


class InformerLayer(nn.Module):
    """Post-norm encoder layer: ProbSparse attention + position-wise feed-forward (Informer's Conv1d(k=1) ≡ Linear)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, factor: int) -> None:
        super().__init__()
        self.attention = ProbSparseSelfAttention(d_model, n_heads, factor, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.attention(x, key_padding_mask)))
        return self.norm2(x + self.dropout(self.ff(x)))


class DistilLayer(nn.Module):
    """Distilling: Conv1d(k=3) + LayerNorm + ELU + MaxPool(3, stride 2) over the event tokens; [CLS] passes through.

    (Informer uses BatchNorm; LayerNorm keeps padded rows out of the statistics.)
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls, events = x[:, :1], x[:, 1:]
        if events.shape[1] < 2:
            return x, key_padding_mask
        valid = (~key_padding_mask[:, 1:]).to(x.dtype)  # (B, L)
        h = self.conv((events * valid[..., None]).transpose(1, 2))  # (B, d, L)
        h = F.elu(self.norm(h.transpose(1, 2))).transpose(1, 2)
        h = h.masked_fill(valid[:, None] == 0, float("-inf"))
        h = F.max_pool1d(h, kernel_size=3, stride=2, padding=1).transpose(1, 2)  # (B, L', d)
        pooled_valid = F.max_pool1d(valid[:, None], kernel_size=3, stride=2, padding=1)[:, 0] > 0  # (B, L')
        h = h.masked_fill(~pooled_valid[..., None], 0.0)
        new_mask = torch.cat([key_padding_mask[:, :1], ~pooled_valid], dim=1)
        return torch.cat([cls, h], dim=1), new_mask


class InformerEncoder(nn.Module):
    """Stack of Informer layers, optionally with distilling between them; same call as nn.TransformerEncoder."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_layers: int, dropout: float, factor: int,
                 distil: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(InformerLayer(d_model, n_heads, d_ff, dropout, factor) for _ in range(n_layers))
        self.distil = nn.ModuleList(DistilLayer(d_model) for _ in range(n_layers - 1)) if distil else None

    def forward(self, x: torch.Tensor, src_key_padding_mask: torch.Tensor) -> torch.Tensor:
        mask = src_key_padding_mask
        for i, layer in enumerate(self.layers):
            x = layer(x, mask)
            if self.distil is not None and i < len(self.distil):
                x, mask = self.distil[i](x, mask)
        return x
