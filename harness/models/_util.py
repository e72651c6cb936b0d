"""Helpers shared by the model families (called, never copied)."""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def mlp(sizes: list[int], act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Linear layers with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def normal_logpdf(x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mu, exp(log_sigma)^2)."""
    return -0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2 - log_sigma - 0.5 * LOG_2PI


def std_normal_logpdf(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * x**2 - 0.5 * LOG_2PI


def categorical_logpmf(logits: torch.Tensor, x: torch.Tensor, levels: int) -> torch.Tensor:
    """log p(x) per element for x on [0, 1] with ``levels`` levels; logits [..., D, levels]."""
    idx = torch.round(x * (levels - 1)).long()
    logp = torch.log_softmax(logits, dim=-1)
    return torch.gather(logp, -1, idx.unsqueeze(-1).expand(*logp.shape[:-1], 1)).squeeze(-1)


def categorical_mean(logits: torch.Tensor, levels: int) -> torch.Tensor:
    """E[x] on [0, 1] under per-element categoricals over ``levels`` levels."""
    grid = torch.linspace(0, 1, levels, dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, dim=-1) * grid).sum(-1)


def bernoulli_logpmf(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")


def bits_per_dim(nats: torch.Tensor, dim: int) -> torch.Tensor:
    return nats / (dim * math.log(2))
