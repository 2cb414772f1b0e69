"""Informer encoder (Zhou et al. 2021) as the AstroM³ photometry baseline: ProbSparse self-attention.

ProbSparse attention: for each query, the sparsity score ``M = max_j q·k_j − mean_j q·k_j`` is estimated
on ``U = factor · ceil(ln n)`` sampled keys; only the top-``u`` queries (``u = factor · ceil(ln n)``) attend
over all keys, the others output the mean of the values (over valid keys). Our additions: ``n`` is each
sequence's own number of valid tokens and keys are sampled among its valid keys only, so the output of a
sequence does not depend on the padding of its batch; padded queries are never selected, and the [CLS]
query (position 0) is always selected so the classification token gets full attention. Sampling is random
in training and uses a fixed generator in eval (deterministic inference). Optional distilling (Conv1d + ELU + MaxPool(stride 2) between layers) halves
the event tokens; [CLS] is kept aside and the padding mask is pooled with the same window.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ProbSparseSelfAttention(nn.Module):
    """Multi-head ProbSparse self-attention over (B, L, d) with a key padding mask (B, L), True = pad.

    Everything is computed from each sequence's own valid length ``n`` (never the padded length), so a
    sequence gives the same output alone or in any batch: ``u = min(n, factor · ceil(ln(n + 1)))`` active
    queries and as many sampled keys, drawn among its valid keys from uniforms of a fixed shape
    ``(max_len, max_sampled)``.
    """

    def __init__(self, d_model: int, n_heads: int, factor: int = 5, dropout: float = 0.0, eval_seed: int = 0,
                 max_len: int = 258) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.factor = factor
        self.eval_seed = eval_seed
        self.max_len = max_len
        self.max_sampled = factor * math.ceil(math.log(max_len + 1))
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def _sampled_keys(self, valid: torch.Tensor, n_valid: torch.Tensor) -> torch.Tensor:
        """(B, L, U) indices of valid keys: the i-th valid key for i = floor(uniform · n)."""
        length = valid.shape[1]
        generator = None if self.training else torch.Generator(device=valid.device).manual_seed(self.eval_seed)
        uniform = torch.rand(max(self.max_len, length), self.max_sampled, device=valid.device, generator=generator)
        rank = (uniform[:length][None] * n_valid[:, None, None]).long().clamp(max=length - 1)  # (B, L, U)
        valid_first = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices  # (B, L) valid positions first
        return valid_first.gather(1, rank.flatten(1)).view_as(rank)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        heads, dim = self.n_heads, d_model // self.n_heads
        q, k, v = self.qkv(x).view(batch, length, 3, heads, dim).permute(2, 0, 3, 1, 4)  # each (B, H, L, E)
        valid = ~key_padding_mask  # (B, L)
        n_valid = valid.sum(1)  # (B,)
        n_top = torch.minimum(n_valid, self.factor * torch.ceil(torch.log(n_valid.double() + 1)).long())  # (B,)
        n_top = n_top.clamp(max=self.max_sampled)
        sample = self._sampled_keys(valid, n_valid)  # (B, L, U)
        used = torch.arange(self.max_sampled, device=x.device)[None, None] < n_top[:, None, None]  # (B, 1, U)
        k_sample = k.gather(2, sample.flatten(1)[:, None, :, None].expand(-1, heads, -1, dim))
        qk_sample = (q[:, :, :, None] * k_sample.view(batch, heads, length, -1, dim)).sum(-1)  # (B, H, L, U)
        neg = torch.finfo(qk_sample.dtype).min
        q_max = qk_sample.masked_fill(~used[:, None], neg).amax(-1)
        q_mean = (qk_sample * used[:, None]).sum(-1) / n_top.clamp(min=1)[:, None, None]
        sparsity = (q_max - q_mean).masked_fill(~valid[:, None], neg)  # (B, H, L)
        sparsity[..., 0] = torch.finfo(sparsity.dtype).max  # [CLS] always attends fully
        k_top = int(n_top.max())
        top = sparsity.topk(k_top, dim=-1).indices  # (B, H, u_max)
        active = (torch.arange(k_top, device=x.device)[None] < n_top[:, None])[:, None, :, None]  # (B, 1, u_max, 1)
        q_top = q.gather(2, top[..., None].expand(-1, -1, -1, dim))  # (B, H, u_max, E)
        scores = (q_top @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dim))  # (B, H, u_max, L)
        scores = scores.masked_fill(key_padding_mask[:, None, None], float("-inf"))
        attn = self.dropout(scores.softmax(-1))
        weights = valid[:, None, :, None].to(v.dtype)
        mean_v = (v * weights).sum(2, keepdim=True) / weights.sum(2, keepdim=True).clamp(min=1)  # (B, H, 1, E)
        context = mean_v.expand(-1, -1, length, -1).clone()
        attended = torch.where(active, attn @ v, mean_v)  # queries past a sequence's own u keep the mean
        context.scatter_(2, top[..., None].expand(-1, -1, -1, dim), attended)
        return self.out(context.transpose(1, 2).reshape(batch, length, d_model))


class InformerLayer(nn.Module):
    """Post-norm encoder layer: ProbSparse attention + position-wise feed-forward (Informer's Conv1d(k=1) ≡ Linear)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, factor: int, max_len: int = 258) -> None:
        super().__init__()
        self.attention = ProbSparseSelfAttention(d_model, n_heads, factor, dropout, max_len=max_len)
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
        # A sequence of n events pools to (n - 1) // 2 + 1 tokens, as it would alone: a window that only
        # reaches its last event from the padding side of a longer batch is not a token of it.
        n_out = (valid.sum(1).long() - 1).div(2, rounding_mode="floor") + 1
        pooled_valid = torch.arange(h.shape[1], device=x.device)[None] < n_out[:, None]  # (B, L')
        h = h.masked_fill(~pooled_valid[..., None], 0.0)
        new_mask = torch.cat([key_padding_mask[:, :1], ~pooled_valid], dim=1)
        return torch.cat([cls, h], dim=1), new_mask


class InformerEncoder(nn.Module):
    """Stack of Informer layers, optionally with distilling between them; same call as nn.TransformerEncoder."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_layers: int, dropout: float, factor: int,
                 distil: bool, max_len: int = 258) -> None:
        super().__init__()
        self.layers = nn.ModuleList(InformerLayer(d_model, n_heads, d_ff, dropout, factor, max_len)
                                    for _ in range(n_layers))
        self.distil = nn.ModuleList(DistilLayer(d_model) for _ in range(n_layers - 1)) if distil else None

    def forward(self, x: torch.Tensor, src_key_padding_mask: torch.Tensor) -> torch.Tensor:
        mask = src_key_padding_mask
        for i, layer in enumerate(self.layers):
            x = layer(x, mask)
            if self.distil is not None and i < len(self.distil):
                x, mask = self.distil[i](x, mask)
        return x
