"""Fusion mixture of experts of paper I §4.3–4.4: top-k router, load balancing, expert specialisation.

The router gives a softmax distribution over K experts; each sample uses its top-k experts (k = 2 in the
paper), whose probabilities are renormalised to sum to one; the output is the weighted sum of the selected
experts' logits. The experts are computed densely and combined with a (B, K) weight matrix that is zero for
the unselected experts: with K = 4 small MLPs this costs less than gathering, and unselected experts receive
no gradient from that sample, exactly as with sparse dispatch.

Load balancing (Switch Transformer, Fedus et al. 2022; GShard, Lepikhin et al. 2020):
``L_balance = K · Σ_i f_i · P_i`` with ``f_i`` the fraction of the B·k routing assignments that went to
expert i (not differentiable) and ``P_i`` the mean router probability of expert i. It is 1 for a perfectly
uniform router and grows as the routing collapses; its gradient w.r.t. the router probability p_{b,i} is
K·f_i / B.

Expert specialisation (Eq. 3): ``λ · MSE(router probabilities, one_hot(label mod K))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ResidualTowerBlock


def load_balancing_loss(router_probs: torch.Tensor, expert_index: torch.Tensor, num_experts: int) -> torch.Tensor:
    """Switch/GShard auxiliary loss. router_probs (B, K) softmax; expert_index (B, k) selected experts → scalar."""
    assignments = F.one_hot(expert_index, num_experts).to(router_probs.dtype).sum(dim=1)  # (B, K) 0/1
    fraction = assignments.mean(dim=0) / expert_index.shape[1]  # (K,) f_i, sums to 1
    mean_prob = router_probs.mean(dim=0)  # (K,) P_i
    return num_experts * torch.sum(fraction.detach() * mean_prob)


def specialisation_loss(router_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE between router probabilities (B, K) and the ideal assignment one_hot(label mod K) (Eq. 3)."""
    num_experts = router_probs.shape[1]
    ideal = F.one_hot(labels.long() % num_experts, num_experts).to(router_probs.dtype)
    return F.mse_loss(router_probs, ideal)


@dataclass
class RoutingOutput:
    logits: torch.Tensor  # (B, C) aggregated expert predictions
    router_probs: torch.Tensor  # (B, K) softmax over experts
    expert_index: torch.Tensor  # (B, k) selected experts
    combine_weights: torch.Tensor  # (B, K) renormalised weights, zero for unselected experts
    balance_loss: torch.Tensor  # scalar


class TopKRouter(nn.Module):
    """Router MLP: Linear(F → F/2) → Tanh → Dropout → Linear(F/2 → K); returns logits (B, K)."""

    def __init__(self, in_dim: int, num_experts: int, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(in_dim // 2, num_experts)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, num_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MixtureOfExperts(nn.Module):
    """K fusion experts (residual MLP classifiers over the full fused embedding) and a top-k router."""

    def __init__(self, in_dim: int, hidden_dim: int, num_classes: int, num_experts: int = 4, top_k: int = 2,
                 router_dropout: float = 0.0, expert_dropout: float = 0.0) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, {num_experts}], got {top_k}")
        self.num_experts, self.top_k = num_experts, top_k
        self.router = TopKRouter(in_dim, num_experts, router_dropout)
        self.experts = nn.ModuleList(
            ResidualTowerBlock(in_dim, hidden_dim, num_classes, gated=True, dropout=expert_dropout)
            for _ in range(num_experts)
        )

    def forward(self, x: torch.Tensor) -> RoutingOutput:
        """x (B, F) fused embedding → RoutingOutput (logits (B, C), routing tensors, balance loss)."""
        router_probs = torch.softmax(self.router(x).float(), dim=-1)  # (B, K)
        top_probs, expert_index = router_probs.topk(self.top_k, dim=-1)  # (B, k)
        weights = top_probs / top_probs.sum(dim=-1, keepdim=True)
        combine = torch.zeros_like(router_probs).scatter(1, expert_index, weights)  # (B, K)
        expert_logits = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, K, C)
        logits = torch.einsum("bk,bkc->bc", combine.to(expert_logits.dtype), expert_logits)
        balance = load_balancing_loss(router_probs, expert_index, self.num_experts)
        return RoutingOutput(logits, router_probs, expert_index, combine, balance)
