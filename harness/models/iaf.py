"""VAE with an inverse autoregressive flow (IAF) posterior, and the beta-VAE.

Kingma et al. 2016 (IAF): the encoder gives a diagonal Gaussian z0 = mu + sigma * eps and a
context h; each flow step is a MADE (Germain et al. 2015) that reads z and h and outputs (m, s)
with output i depending on z_<i only, and updates z <- sig(s) * z + (1 - sig(s)) * m (the
paper's numerically stable "LSTM-style" step). The Jacobian is triangular, so
log q(z_T|x) = log q(z0|x) - sum_t sum_i log sig(s_t,i). The variable order is reversed between
steps so that every dimension eventually conditions on every other.

One Config covers H2's three posteriors, so a single hypothesis can ablate them: "diagonal",
"linear_iaf" (z = L(x) y, L unit lower-triangular: full covariance, log det = 0) and "iaf".
``beta`` weighs the KL in the training loss only (Higgins et al. 2017); the metrics are always
the true (beta = 1) bound. Rate is the Monte Carlo E_q[log q(z|x) - log p(z)] (no closed form
once a flow is applied), measured on the same samples as the bound, as in vae.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.models._util import (
    bits_per_dim,
    check_likelihood,
    likelihood_logp,
    likelihood_mean,
    likelihood_width,
    mlp,
    normal_logpdf,
    std_normal_logpdf,
    unit_lower_triangular,
)
from harness.models.base import GenerativeModel
from harness.registry import register_model

POSTERIORS = ("diagonal", "linear_iaf", "iaf")


@dataclass(frozen=True)
class IAFVAEConfig:
    latent_dim: int = 8  # size of z
    hidden: int = 256  # width of each hidden layer of the encoder and decoder
    depth: int = 2  # hidden layers in the encoder and in the decoder
    posterior: str = "iaf"  # "diagonal", "linear_iaf" (full covariance) or "iaf" (MADE flow)
    flow_steps: int = 2  # IAF steps (posterior="iaf"); the variable order flips between steps
    flow_hidden: int = 64  # hidden units of each MADE (one masked hidden layer per step)
    context_dim: int = 16  # size of the encoder's context h fed to every MADE
    likelihood: str = "categorical"  # categorical | bernoulli | discretized_gaussian | gaussian
    beta: float = 1.0  # weight on the KL in the training loss only; metrics always use beta = 1
    min_log_sigma: float = -6.0  # floor on the encoder's log sigma: keeps early training finite

    def __post_init__(self) -> None:
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {list(POSTERIORS)}, got {self.posterior!r}")
        for name in ("latent_dim", "hidden", "depth", "flow_steps", "flow_hidden", "context_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """z [.., d], h [.., c] -> (m, s) [.., d] with output i a function of z_<i and h only.

    Degrees (Germain et al. 2015): inputs 1..d, hidden units cycle through 1..d-1; a hidden unit
    sees inputs of degree <= its own, output i sees hidden units of degree < i.
    """

    def __init__(self, d: int, hidden: int, context: int):
        super().__init__()
        deg_in = torch.arange(1, d + 1)
        deg_h = torch.arange(hidden) % max(d - 1, 1) + 1
        self.inp = MaskedLinear((deg_h[:, None] >= deg_in[None, :]).float())
        self.ctx = nn.Linear(context, hidden)  # the context may reach every unit
        out_mask = (deg_in[:, None] > deg_h[None, :]).float()
        self.out = MaskedLinear(torch.cat([out_mask, out_mask]))
        with torch.no_grad():
            # Bias s up so sig(s) ~ 0.88 and each step starts near the identity (IAF paper, sec. 4).
            self.out.bias[d:].fill_(2.0)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = nn.functional.silu(self.inp(z) + self.ctx(h))
        return self.out(a).chunk(2, dim=-1)


@register_model("iaf_vae")
class IAFVAE(GenerativeModel):
    Config = IAFVAEConfig
    metrics = ("neg_elbo", "iwae_nll", "iwae_bpd", "rate", "distortion")
    hyper = ("beta",)  # a loss weight only: tuning trials with different beta stack in one block

    def __init__(self, config: IAFVAEConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        check_likelihood(c.likelihood, levels)
        d = c.latent_dim
        extra = {"diagonal": 0, "linear_iaf": d * (d - 1) // 2, "iaf": c.context_dim}[c.posterior]
        self.encoder = mlp([self.dim] + [c.hidden] * c.depth + [2 * d + extra])
        self.decoder = mlp(
            [d] + [c.hidden] * c.depth + [self.dim * likelihood_width(c.likelihood, levels)]
        )
        n_steps = c.flow_steps if c.posterior == "iaf" else 0
        self.flows = nn.ModuleList(MADE(d, c.flow_hidden, c.context_dim) for _ in range(n_steps))

    # -- pieces -----------------------------------------------------------------------------
    def _posterior_sample(
        self, x: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ q(z|x) as a function of eps [K, n, d], and log q(z|x) [K, n]."""
        c, d = self.config, self.config.latent_dim
        out = self.encoder(x)
        mu, log_sigma = out[..., :d], out[..., d : 2 * d].clamp(min=c.min_log_sigma)
        z = mu + torch.exp(log_sigma) * eps
        log_q = normal_logpdf(z, mu, log_sigma).sum(-1)
        if c.posterior == "linear_iaf":
            z = torch.einsum(
                "nij,knj->kni", unit_lower_triangular(out[..., 2 * d :], d), z
            )  # det 1
        for made in self.flows:
            m, s = made(z, out[..., 2 * d :])
            gate = torch.sigmoid(s)
            z = gate * z + (1 - gate) * m
            log_q = log_q - nn.functional.logsigmoid(s).sum(-1)
            z = z.flip(-1)  # reverse the order for the next step (a permutation: log det 0)
        return z, log_q

    def _terms(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(x|z) and log q(z|x) - log p(z), each [K, n]."""
        z, log_q = self._posterior_sample(x, eps)
        log_lik = likelihood_logp(self.config.likelihood, self.decoder(z), x, self.levels)
        return log_lik, log_q - std_normal_logpdf(z).sum(-1)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        d = self.config.latent_dim
        if method == "sample":
            return {"z": torch.randn(n, d, generator=generator, device=device)}
        return {
            "eps": torch.randn(
                1 if method == "loss" else k, n, d, generator=generator, device=device
            )
        }

    def loss(self, x, noise):
        log_lik, kl = self._terms(x, noise["eps"])
        objective = -(log_lik - self.hp("beta") * kl).mean()
        neg_elbo = -(log_lik - kl).mean()
        return objective, {"neg_elbo": neg_elbo, "rate": kl.mean(), "distortion": -log_lik.mean()}

    def evaluate(self, x, noise):
        log_lik, kl = self._terms(x, noise["eps"])
        log_w = log_lik - kl
        iwae = -(torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0]))
        return {
            "neg_elbo": -log_w.mean(0),
            "iwae_nll": iwae,
            "iwae_bpd": bits_per_dim(iwae, self.dim),
            "rate": kl.mean(0),
            "distortion": -log_lik.mean(0),
        }

    def sample(self, noise):
        return likelihood_mean(
            self.config.likelihood, self.decoder(noise["z"]), self.dim, self.levels
        )


@dataclass(frozen=True)
class BetaVAEConfig(IAFVAEConfig):
    posterior: str = "diagonal"  # the beta-VAE of Higgins et al. 2017 has a diagonal posterior
    beta: float = 4.0  # KL weight in training (beta > 1: a tighter bottleneck); metrics use 1


@register_model("beta_vae")
class BetaVAE(IAFVAE):
    """The same family with beta-VAE defaults: diagonal posterior, beta = 4."""

    Config = BetaVAEConfig
