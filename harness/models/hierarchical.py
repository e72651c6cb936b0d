"""Top-down hierarchical VAE with a free or a residual (predictive-coding) posterior.

The generative model is a top-down chain (Ladder VAE, Sønderby et al. 2016; NVAE, Vahdat &
Kautz 2020): a decoder state s_1 (learned), z_1 ~ N(0, I), then for l = 2..L
p(z_l | z_<l) = N(mu_p(s_l), sigma_p(s_l)^2) with s_{l+1} = s_l + f_l(s_l, z_l), and
p(x | z_<=L) from the last state. The posterior q(z_l | x, z_<l) shares the top-down path and
reads bottom-up features of x. H1's two readings of "predictive coding" are Config switches:

* ``posterior="residual"`` (reading 1, NVAE's residual normal): the encoder codes only the
  prior's prediction error, q = N(mu_p + dmu, (sigma_p * dsigma)^2), so its KL depends on
  dmu / sigma_p and dsigma alone. ``"free"``: q = N(mu_q, sigma_q^2) from the encoder directly.
* ``coding="pixel"`` (reading 2, residual pixel coding): every level adds to the prediction,
  out_l = out_{l-1} + g_l(s_{l+1}), in the likelihood's parameter space (pixel means for the
  Gaussian likelihoods, logits for categorical / bernoulli), and level l's encoder sees the
  pixel residual r_l = x - E[x | out_{l-1}] instead of x. ``"latent"``: one decoder on s_{L+1}.

Per-level KLs are closed form given the upper levels' sample (training loss and rate_l). The
neg_elbo and IWAE bound use the Monte Carlo log weights of the same samples, so
iwae_nll <= neg_elbo holds exactly on every example. rate_l1 is the top level; metrics name
four levels, and a level the model does not have reports 0 nats (it carries no information).

Two training/sampling switches, off by default: ``free_bits`` = lambda > 0 trains on
sum_l max(KL_l, lambda) with KL_l the minibatch mean of level l's KL (Kingma et al. 2016's free
bits, one group per level), so no level is pushed below lambda nats and collapses; the metrics
and the reported bound are the true ones. ``sample="draw"`` returns draws from p(x | z) (one
uniform per pixel, inverse CDF; categorical and bernoulli likelihoods) instead of its mean,
which is blurred by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.models._util import (
    bits_per_dim,
    categorical_from_uniform,
    check_likelihood,
    diag_normal_kl,
    likelihood_logp,
    likelihood_mean,
    likelihood_width,
    mlp,
    normal_logpdf,
    residual_normal_kl,
)
from harness.models.base import GenerativeModel
from harness.registry import register_model

MAX_LEVELS = 4
POSTERIORS = ("free", "residual")
CODINGS = ("latent", "pixel")


@dataclass(frozen=True)
class HVAEConfig:
    levels_z: int = 2  # stochastic levels, 1..4 (1 is a plain VAE)
    latent_dim: int = 8  # size of each level's z
    hidden: int = 256  # width of the encoder, the decoder state and every head
    depth: int = 2  # hidden layers of the bottom-up encoder and of the output decoder
    posterior: str = "residual"  # "residual" (NVAE residual normal) or "free"
    coding: str = "latent"  # "latent": encoder sees x; "pixel": residual pixel coding
    likelihood: str = "categorical"  # categorical | bernoulli | discretized_gaussian | gaussian
    min_log_sigma: float = -6.0  # floor on every log sigma (prior, posterior, dsigma)
    free_bits: float = 0.0  # training only: each level's batch-mean KL counts as >= this (nats)
    sample: str = "mean"  # what sample() returns: the likelihood's "mean", or a "draw" from it

    def __post_init__(self) -> None:
        if not (isinstance(self.free_bits, (int, float)) and 0 <= self.free_bits < math.inf):
            raise ValueError(f"free_bits must be a number of nats >= 0, got {self.free_bits!r}")
        if self.sample not in ("mean", "draw"):
            raise ValueError(f"sample must be one of ['mean', 'draw'], got {self.sample!r}")
        if self.sample == "draw" and self.likelihood not in ("categorical", "bernoulli"):
            raise ValueError(f"sample='draw' needs a categorical or bernoulli likelihood, got {self.likelihood!r}")
        if not isinstance(self.levels_z, int) or not 1 <= self.levels_z <= MAX_LEVELS:
            raise ValueError(
                f"levels_z must be an integer in 1..{MAX_LEVELS}, got {self.levels_z!r}"
            )
        for name in ("latent_dim", "hidden", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {list(POSTERIORS)}, got {self.posterior!r}")
        if self.coding not in CODINGS:
            raise ValueError(f"coding must be one of {list(CODINGS)}, got {self.coding!r}")


@register_model("hvae")
class HierarchicalVAE(GenerativeModel):
    Config = HVAEConfig
    metrics = ("neg_elbo", "iwae_nll", "iwae_bpd", "rate", "distortion") + tuple(
        f"rate_l{i + 1}" for i in range(MAX_LEVELS)
    )

    def __init__(self, config: HVAEConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        check_likelihood(c.likelihood, levels)
        H, d, L = c.hidden, c.latent_dim, c.levels_z
        out = self.dim * likelihood_width(c.likelihood, levels)
        self.encoder = mlp([self.dim] + [H] * c.depth)  # bottom-up features of x (or of r_l)
        self.s1 = nn.Parameter(torch.zeros(H))  # the top decoder state
        self.prior = nn.ModuleList(mlp([H, H, 2 * d]) for _ in range(L - 1))  # levels 2..L
        self.post = nn.ModuleList(mlp([2 * H, H, 2 * d]) for _ in range(L))
        self.update = nn.ModuleList(mlp([H + d, H, H]) for _ in range(L))
        if c.coding == "pixel":
            self.heads = nn.ModuleList(mlp([H, H, out]) for _ in range(L))
        else:
            self.heads = nn.ModuleList([mlp([H] + [H] * c.depth + [out])])

    # -- pieces -----------------------------------------------------------------------------
    def _prior(self, level: int, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*s.shape[:-1], self.config.latent_dim)
        if level == 0:
            return s.new_zeros(shape), s.new_zeros(shape)
        mu, log_sigma = self.prior[level - 1](s).chunk(2, dim=-1)
        return mu, log_sigma.clamp(min=self.config.min_log_sigma)

    def _step(self, level: int, s: torch.Tensor, z: torch.Tensor, out: torch.Tensor | None):
        """Advance the top-down state past z_level; in pixel coding, add level's prediction."""
        s = s + self.update[level](torch.cat([s, z], dim=-1))
        if self.config.coding == "pixel":
            out = self.heads[level](s) if out is None else out + self.heads[level](s)
        return s, out

    def _output(self, s: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        return out if self.config.coding == "pixel" else self.heads[0](s)

    def _terms(self, x: torch.Tensor, eps: torch.Tensor):
        """eps [L, K, n, d] -> log p(x|z) [K, n], MC log q/p [K, n], closed-form KL per level [L, K, n]."""
        c = self.config
        K, n = eps.shape[1], x.shape[0]
        s = self.s1.expand(K, n, -1)
        out = None
        feats = self.encoder(x).expand(K, n, -1) if c.coding == "latent" else None
        log_ratio, kls = 0.0, []
        for level in range(c.levels_z):
            mu_p, ls_p = self._prior(level, s)
            if c.coding == "pixel":  # the encoder sees what the levels above failed to explain
                pred = torch.full_like(x, 0.5) if out is None else self._mean(out)
                feats = self.encoder(x - pred).expand(K, n, -1)
            dmu, dls = self.post[level](torch.cat([feats, s], dim=-1)).chunk(2, dim=-1)
            dls = dls.clamp(min=c.min_log_sigma)
            if c.posterior == "residual":
                mu_q, ls_q = mu_p + dmu, ls_p + dls
                kls.append(residual_normal_kl(dmu, dls, ls_p).sum(-1))
            else:
                mu_q, ls_q = dmu, dls
                kls.append(diag_normal_kl(mu_q, ls_q, mu_p, ls_p).sum(-1))
            z = mu_q + torch.exp(ls_q) * eps[level]
            log_ratio = log_ratio + (
                normal_logpdf(z, mu_q, ls_q) - normal_logpdf(z, mu_p, ls_p)
            ).sum(-1)
            s, out = self._step(level, s, z, out)
        log_lik = likelihood_logp(c.likelihood, self._output(s, out), x, self.levels)
        return log_lik, log_ratio, torch.stack(kls)

    def _mean(self, out: torch.Tensor) -> torch.Tensor:
        return likelihood_mean(self.config.likelihood, out, self.dim, self.levels)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        L, d = self.config.levels_z, self.config.latent_dim
        if method == "sample":
            z = {"z": torch.randn(L, n, d, generator=generator, device=device)}
            if self.config.sample == "draw":  # one uniform per pixel: the draw's inverse CDF
                z["u"] = torch.rand(n, self.dim, generator=generator, device=device)
            return z
        return {
            "eps": torch.randn(
                L, 1 if method == "loss" else k, n, d, generator=generator, device=device
            )
        }

    def loss(self, x, noise):
        log_lik, _, kls = self._terms(x, noise["eps"])
        per_level = kls.mean((1, 2))  # [L] batch-mean KL of each level
        rate = per_level.sum()
        neg_elbo = rate - log_lik.mean()  # closed-form KLs: lower-variance gradients
        objective = per_level.clamp(min=self.config.free_bits).sum() - log_lik.mean()
        return objective, {"neg_elbo": neg_elbo, "rate": rate, "distortion": -log_lik.mean()}

    def evaluate(self, x, noise):
        log_lik, log_ratio, kls = self._terms(x, noise["eps"])
        log_w = log_lik - log_ratio
        iwae = -(torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0]))
        rates = kls.mean(1)  # [L, n]
        metrics = {
            "neg_elbo": -log_w.mean(0),
            "iwae_nll": iwae,
            "iwae_bpd": bits_per_dim(iwae, self.dim),
            "rate": rates.sum(0),
            "distortion": -log_lik.mean(0),
        }
        for level in range(MAX_LEVELS):
            metrics[f"rate_l{level + 1}"] = (
                rates[level] if level < self.config.levels_z else torch.zeros_like(iwae)
            )
        return metrics

    def sample(self, noise):
        eps = noise["z"]
        s = self.s1.expand(eps.shape[1], -1)
        out = None
        for level in range(self.config.levels_z):
            mu_p, ls_p = self._prior(level, s)
            s, out = self._step(level, s, mu_p + torch.exp(ls_p) * eps[level], out)
        out = self._output(s, out)
        if self.config.sample == "mean":
            return self._mean(out)
        if self.config.likelihood == "bernoulli":
            return (noise["u"] < torch.sigmoid(out)).to(out.dtype)
        level = categorical_from_uniform(out.unflatten(-1, (self.dim, self.levels)), noise["u"])
        return level.to(out.dtype) / (self.levels - 1)


@dataclass(frozen=True)
class ResidualPixelConfig(HVAEConfig):
    coding: str = "pixel"  # residual pixel coding (H1, reading 2); "latent" is plain hvae


@register_model("residual_pixel_vae")
class ResidualPixelVAE(HierarchicalVAE):
    """hvae with residual pixel coding by default (H1's second reading)."""

    Config = ResidualPixelConfig
