"""RealNVP: a normalising flow of affine coupling layers (Dinh et al. 2017).

Discrete data k in {0..L-1}^D (x = k / (L-1), L = the dataset's ``levels``) are dequantised
uniformly, y = (k + u) / L with u ~ U[0, 1)^D, and mapped to the real line by the paper's logit
pre-transform (sec. 4.1) z0 = logit(a + (1 - 2a) y), a = ``alpha``. A stack of ``layers``
affine couplings follows: with a fixed 0/1 mask b,

  z' = b * z + (1 - b) * (z * exp(s(b * z)) + t(b * z)),   log|det| = sum((1 - b) * s),

with s = scale * tanh(raw) (bounded, as the paper's tanh-based scale), the masks alternating
between a checkerboard and its complement (on the last two axes of an image; even / odd
indices for flat data). The base density is N(0, I). The exact log-density of y is

  log p(y) = log N(f(y); 0, I) + log|det df/dy|  (coupling dets + the logit's log-det).

The metric. Under uniform dequantisation P(k) = L^-D E_u[p((k + u)/L)], so with K = the
evaluation's importance samples,

  -log P(k) <= -log (1/K) sum_j p(y_j) + D log L     (Jensen; the uniform-dequantisation
                                                      variational bound, Theis et al. 2016;
                                                      K > 1: its importance-weighted form,
                                                      Ho et al. 2019 sec. 3.1)

The logit pre-transform maps y on (0, 1) onto (logit a, logit(1 - a)) only, so the flow's
mass outside that box is lost and the P(k) sum to slightly less than one: -log P(k) is then
an upper bound on the NLL of the renormalised model too (as in the paper).
``nll_bound`` is that bound in nats of the discrete data, ``bpd`` the same in bits per
dimension. On continuous data (no levels) nothing is dequantised and ``nll_bound`` is the
exact NLL of the density in the data's units. Samples are z ~ N(0, I) through the inverse flow,
mapped back through the sigmoid and quantised to the level whose bin they fall in.

Deviations from the paper:

- the coupling networks s, t are MLPs on the flattened image (hidden ``hidden``, ``depth``
  layers) instead of deep ResNets on the image grid; only checkerboard masks, no channel-wise
  masks, no squeeze operations and no multi-scale architecture (no factoring out of half the
  variables): every layer acts on all D dimensions;
- no batch normalisation (the engine's vmap forbids running statistics) and no weight
  normalisation; the last layer of each coupling network starts at zero so every coupling
  starts as the identity; Adam with the engine's settings, no L2 regularisation;
- the bound above with K importance samples at evaluation (the paper reports the K = 1 form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.models._util import bits_per_dim, mlp, std_normal_logpdf
from harness.models.base import GenerativeModel
from harness.registry import register_model


@dataclass(frozen=True)
class RealNVPConfig:
    layers: int = 8  # affine coupling layers (masks alternate between a checkerboard and its complement)
    hidden: int = 256  # width of each coupling's s/t MLP
    depth: int = 2  # hidden layers of each coupling's s/t MLP
    alpha: float = 0.05  # logit pre-transform: logit(alpha + (1 - 2 alpha) y), Dinh et al. sec. 4.1

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {self.alpha!r}")


def checkerboard(shape: tuple[int, ...]) -> torch.Tensor:
    """A 0/1 checkerboard over the last two axes of ``shape`` (index parity for 1-d), flat [D]."""
    if len(shape) < 2:
        return (torch.arange(math.prod(shape)) % 2).float()
    rows, cols = torch.meshgrid(torch.arange(shape[-2]), torch.arange(shape[-1]), indexing="ij")
    board = ((rows + cols) % 2).float()
    return board.expand(*shape).reshape(-1)


class Coupling(nn.Module):
    """One affine coupling: the masked half conditions the other half's scale and shift."""

    def __init__(self, mask: torch.Tensor, hidden: int, depth: int):
        super().__init__()
        d = mask.numel()
        self.register_buffer("mask", mask, persistent=False)
        self.net = mlp([d] + [hidden] * depth + [2 * d], act=nn.ReLU)
        self.scale = nn.Parameter(torch.ones(d))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _st(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(z * self.mask).chunk(2, dim=-1)
        free = 1 - self.mask
        return free * self.scale * torch.tanh(raw_s), free * t

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._st(z)
        return z * torch.exp(s) + t, s.sum(-1)  # s and t are 0 on the masked half

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        s, t = self._st(z)  # the masked half is unchanged, so s, t are recomputed exactly
        return (z - t) * torch.exp(-s)


@register_model("realnvp")
class RealNVP(GenerativeModel):
    Config = RealNVPConfig
    metrics = ("nll_bound", "bpd")

    def __init__(self, config: RealNVPConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        board = checkerboard(self.shape)
        self.couplings = nn.ModuleList(
            # a copy each: one tensor shared by two modules' buffers breaks the engine's
            # functional_call ("Tensor on device meta"), as tied buffers do
            Coupling((board if i % 2 == 0 else 1 - board).clone(), config.hidden, config.depth)
            for i in range(config.layers)
        )

    # -- the flow: y on (0, 1)^D <-> z in R^D -------------------------------------------------
    def forward_flow(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f(y) and log|det df/dy| [...] (the logit pre-transform included)."""
        a = self.config.alpha
        p = a + (1 - 2 * a) * y
        z = torch.log(p) - torch.log1p(-p)
        log_det = (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).sum(-1)
        for c in self.couplings:
            z, ld = c(z)
            log_det = log_det + ld
        return z, log_det

    def inverse_flow(self, z: torch.Tensor) -> torch.Tensor:
        """y = f^-1(z) on (0, 1)^D."""
        for c in reversed(self.couplings):
            z = c.inverse(z)
        return (torch.sigmoid(z) - self.config.alpha) / (1 - 2 * self.config.alpha)

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) [...] of (dequantised) data y on (0, 1)^D."""
        z, log_det = self.forward_flow(y)
        return std_normal_logpdf(z).sum(-1) + log_det

    def _dequantise(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if not self.levels:  # nothing to dequantise: one "sample", the data themselves
            return x.unsqueeze(0)
        L = self.levels
        return (torch.round(x * (L - 1)) + u) / L

    def _nll(self, log_p: torch.Tensor) -> torch.Tensor:
        """log densities [K, n] -> the (importance-weighted) bound on -log P(k) [n]."""
        log_mean = torch.logsumexp(log_p, 0) - math.log(log_p.shape[0])
        return -log_mean + (self.dim * math.log(self.levels) if self.levels else 0.0)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        D = self.dim
        if method == "sample":
            return {"z": torch.randn(n, D, generator=generator, device=device)}
        # The dequantisation noise (drawn for continuous data too: unused there, same contract).
        return {"u": torch.rand(1 if method == "loss" else k, n, D, generator=generator, device=device)}

    def loss(self, x, noise):
        nll = self._nll(self.log_density(self._dequantise(x, noise["u"]))).mean()
        return nll, {"nll_bound": nll}

    def evaluate(self, x, noise):
        nll = self._nll(self.log_density(self._dequantise(x, noise["u"])))
        return {"nll_bound": nll, "bpd": bits_per_dim(nll, self.dim)}

    def sample(self, noise):
        y = self.inverse_flow(noise["z"])
        if not self.levels:
            return y.clamp(0, 1)
        L = self.levels
        k = torch.clamp(torch.floor(y * L), 0, L - 1)  # the level whose dequantisation bin holds y
        return k / (L - 1)
