"""MADE: a masked autoencoder for distribution estimation (Germain et al. 2015).

An autoregressive density model p(x) = prod_i p(x_{o_i} | x_{o_<i}) computed in ONE pass of an
MLP whose weights are masked so that output i sees only the inputs before i in the ordering o
(``harness.models.masked.made_masks``). Each pixel's conditional is a categorical over the
dataset's ``levels`` values, so test ``nll`` is the exact negative log-likelihood of the
discrete data in nats (and ``bpd`` the same in bits per dimension).

Orderings (the paper's order-agnostic training, sec. 4.2): with ``orderings`` = M > 1 the model
holds M input orderings (the first is the raster order, the others random permutations drawn
from the seed's init stream) with their masks; each training minibatch uses one of them, chosen
uniformly from the seed's training noise. Evaluation uses the M-component ensemble the paper
evaluates, p(x) = (1/M) sum_m p_m(x): the M exact log-likelihoods are averaged in probability
space, computed in log space as logsumexp_m log p_m(x) - log M. That is again an exact
likelihood (of a uniform mixture of M autoregressive models, which sums to one over all
images), not a bound. Sampling draws the mixture component per sample, then samples ancestrally
in its ordering: D sequential passes, each pixel by inverse CDF from a uniform of the noise.

Deviations from the paper:

- categorical outputs over ``levels`` values per pixel (the paper models binary pixels with
  sigmoid outputs; with levels = 2 this is the same model, parametrised by two logits);
  inputs are the pixel values on [0, 1], not one-hot codes;
- hidden degrees are assigned cyclically (unit k has degree k mod (D-1) + 1, every degree
  equally often) instead of drawn at random, and are the same for every ordering: orderings
  differ in their input degrees only (the paper resamples both per mask);
- no direct input-to-output connections; ReLU hidden units; Adam (the engine's optimiser)
  instead of the paper's SGD with early stopping;
- with M orderings the paper cycles through a fixed set of masks; here each minibatch draws
  one uniformly, and evaluation always averages all M (the paper's ensemble).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.models._util import bits_per_dim, categorical_from_uniform, categorical_logpmf
from harness.models.base import GenerativeModel
from harness.models.masked import MaskedLinear, made_masks
from harness.registry import register_model


@dataclass(frozen=True)
class MADEConfig:
    hidden: int = 512  # units in each masked hidden layer
    depth: int = 2  # masked hidden layers
    orderings: int = 1  # input orderings (order-agnostic training and an M-ordering ensemble)

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "orderings"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")


@register_model("made")
class MADE(GenerativeModel):
    Config = MADEConfig
    metrics = ("nll", "bpd")

    def __init__(self, config: MADEConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        if not levels:
            raise ValueError("made needs discrete data (a dataset with levels): its pixels are categoricals")
        c, D, K = config, self.dim, levels
        # The first ordering is the raster order; the others come from the default RNG, which
        # the engine seeds with the seed's init stream (so they are the seed's own).
        orders = [torch.arange(1, D + 1)] + [torch.randperm(D) + 1 for _ in range(c.orderings - 1)]
        per_order = [made_masks(o, [c.hidden] * c.depth, out_per_input=K) for o in orders]
        self.layers = nn.ModuleList(MaskedLinear(torch.stack(ms)) for ms in zip(*per_order))
        # rank[m, i]: pixel i's position in ordering m (0-based); float so every buffer is float.
        self.register_buffer("rank", torch.stack(orders).float() - 1, persistent=False)

    def logits(self, x: torch.Tensor, which) -> torch.Tensor:
        """Logits [..., D, K] of every pixel's conditional under ordering ``which`` (an int, or
        a long tensor: 0-d, or one ordering per example)."""
        h = x
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h, which))
        return self.layers[-1](h, which).unflatten(-1, (self.dim, self.levels))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) [n] of the M-ordering mixture (one ordering: that model's)."""
        lp = torch.stack([
            categorical_logpmf(self.logits(x, m), x, self.levels).sum(-1)
            for m in range(self.config.orderings)
        ])
        return torch.logsumexp(lp, 0) - math.log(self.config.orderings)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        M = self.config.orderings
        if method == "loss":  # one ordering per minibatch
            return {"order": torch.randint(0, M, (), generator=generator, device=device)}
        if method == "evaluate":  # exact: nothing random
            return {}
        return {
            "order": torch.randint(0, M, (n,), generator=generator, device=device),
            "u": torch.rand(n, self.dim, generator=generator, device=device),
        }

    def loss(self, x, noise):
        nll = -categorical_logpmf(self.logits(x, noise["order"]), x, self.levels).sum(-1).mean()
        return nll, {"nll": nll}

    def evaluate(self, x, noise):
        nll = -self.log_prob(x)
        return {"nll": nll, "bpd": bits_per_dim(nll, self.dim)}

    def sample(self, noise):
        K, M = self.levels, self.config.orderings
        u, order = noise["u"], noise["order"]
        rank = self.rank[order]  # [n, D]: each sample's ordering
        x = torch.zeros_like(u)
        for i in range(self.dim):  # pixel of rank i is drawn given the ones of rank < i
            logits = torch.stack([self.logits(x, m) for m in range(M)])  # [M, n, D, K]
            pick = (order[None, :] == torch.arange(M, device=u.device)[:, None]).to(u.dtype)
            logits = (logits * pick[:, :, None, None]).sum(0)  # each sample's own ordering
            draw = categorical_from_uniform(torch.log_softmax(logits, -1), u).to(u.dtype) / (K - 1)
            x = torch.where(rank == i, draw, x)
        return x
