"""VAE with an MLP encoder/decoder and a diagonal or linear-IAF (full-covariance) posterior.

Kingma & Welling 2014 for the VAE; Kingma et al. 2016 (IAF) for the linear IAF: the encoder
also outputs a unit lower-triangular L(x) and z = L(x) y with y ~ N(mu, diag sigma^2). The
Jacobian of y -> z has determinant 1, so log q(z|x) = log N(y; mu, sigma) while q(z|x) is a
full-covariance Gaussian N(L mu, L diag(sigma^2) L^T).

The likelihood is exact for discrete data: a categorical over the dataset's intensity levels
per pixel (digits: 17), or Bernoulli for binarized data, so the NLL is a true discrete NLL in
nats and needs no dequantisation correction.

Samples decode z ~ N(0, I) to the likelihood's mean (``sample="mean"``, the usual VAE figure),
or draw x ~ p(x | z) itself (``sample="draw"``, by the inverse CDF of one uniform per pixel):
a mean is blurred by construction, a draw carries the likelihood's pixel noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.models._util import (
    bernoulli_logpmf,
    bits_per_dim,
    categorical_logpmf,
    categorical_mean,
    mlp,
    normal_logpdf,
    std_normal_logpdf,
)
from harness.models.base import GenerativeModel
from harness.registry import register_model

POSTERIORS = ("diagonal", "linear_iaf")
LIKELIHOODS = ("categorical", "bernoulli")
SAMPLES = ("mean", "draw")


@dataclass(frozen=True)
class VAEConfig:
    latent_dim: int = 8  # size of z
    hidden: int = 256  # width of each hidden layer, encoder and decoder alike
    depth: int = 2  # hidden layers in the encoder and in the decoder
    posterior: str = "diagonal"  # "diagonal" Gaussian or "linear_iaf" (full covariance)
    likelihood: str = "categorical"  # "categorical" over the data's levels, or "bernoulli"
    min_log_sigma: float = -6.0  # floor on the encoder's log sigma: keeps early training finite
    sample: str = "mean"  # what sample() returns: the decoder's "mean", or a "draw" from p(x | z)

    def __post_init__(self) -> None:
        if self.sample not in SAMPLES:
            raise ValueError(f"sample must be one of {list(SAMPLES)}, got {self.sample!r}")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {list(POSTERIORS)}, got {self.posterior!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {list(LIKELIHOODS)}, got {self.likelihood!r}")
        for name in ("latent_dim", "hidden", "depth"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


@register_model("vae")
class VAE(GenerativeModel):
    Config = VAEConfig
    metrics = ("neg_elbo", "iwae_nll", "iwae_bpd", "rate", "distortion")

    def __init__(self, config: VAEConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        if c.likelihood == "categorical" and not levels:
            raise ValueError("the categorical likelihood needs discrete data (a dataset with levels)")
        d = c.latent_dim
        self.n_tri = d * (d - 1) // 2 if c.posterior == "linear_iaf" else 0
        self.out_per_pixel = levels if c.likelihood == "categorical" else 1
        self.encoder = mlp([self.dim] + [c.hidden] * c.depth + [2 * d + self.n_tri])
        self.decoder = mlp([d] + [c.hidden] * c.depth + [self.dim * self.out_per_pixel])
        if self.n_tri:
            rows, cols = torch.tril_indices(d, d, offset=-1)
            self.register_buffer("tri_rows", rows, persistent=False)
            self.register_buffer("tri_cols", cols, persistent=False)

    # -- pieces -----------------------------------------------------------------------------
    def _posterior(self, x: torch.Tensor):
        h = self.encoder(x)
        d = self.config.latent_dim
        mu, log_sigma = h[..., :d], h[..., d : 2 * d].clamp(min=self.config.min_log_sigma)
        L = None
        if self.n_tri:
            # Unit lower-triangular L(x): identity plus the strictly-lower entries.
            flat = h.new_zeros(*h.shape[:-1], d * d)
            flat = flat.index_add(-1, self.tri_rows * d + self.tri_cols, h[..., 2 * d :])
            L = flat.view(*h.shape[:-1], d, d) + torch.eye(d, dtype=h.dtype, device=h.device)
        return mu, log_sigma, L

    def _log_weights(self, x: torch.Tensor, eps: torch.Tensor):
        """log p(x, z) - log q(z|x) for z = f(eps); eps [K, n, d], x [n, D] -> three [K, n]."""
        mu, log_sigma, L = self._posterior(x)
        y = mu + torch.exp(log_sigma) * eps
        z = y if L is None else torch.einsum("nij,knj->kni", L, y)
        log_q = normal_logpdf(y, mu, log_sigma).sum(-1)  # |det dz/dy| = 1
        log_prior = std_normal_logpdf(z).sum(-1)
        log_lik = self._log_likelihood(self.decoder(z), x)
        return log_lik + log_prior - log_q, log_lik, log_q - log_prior

    def _log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.config.likelihood == "categorical":
            logits = out.view(*out.shape[:-1], self.dim, self.levels)
            return categorical_logpmf(logits, x, self.levels).sum(-1)
        return bernoulli_logpmf(out, x.expand_as(out)).sum(-1)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        d = self.config.latent_dim
        if method == "sample":
            z = {"z": torch.randn(n, d, generator=generator, device=device)}
            if self.config.sample == "draw":  # one uniform per pixel: the draw's inverse CDF
                z["u"] = torch.rand(n, self.dim, generator=generator, device=device)
            return z
        kk = 1 if method == "loss" else k
        return {"eps": torch.randn(kk, n, d, generator=generator, device=device)}

    def loss(self, x, noise):
        log_w, log_lik, kl = self._log_weights(x, noise["eps"])
        neg_elbo = -log_w.mean()
        return neg_elbo, {"neg_elbo": neg_elbo, "rate": kl.mean(), "distortion": -log_lik.mean()}

    def evaluate(self, x, noise):
        log_w, log_lik, kl = self._log_weights(x, noise["eps"])
        k = log_w.shape[0]
        iwae = -(torch.logsumexp(log_w, dim=0) - math.log(k))
        return {
            "neg_elbo": -log_w.mean(0),
            "iwae_nll": iwae,
            "iwae_bpd": bits_per_dim(iwae, self.dim),
            "rate": kl.mean(0),
            "distortion": -log_lik.mean(0),
        }

    def sample(self, noise):
        out = self.decoder(noise["z"])
        draw = self.config.sample == "draw"
        if self.config.likelihood == "categorical":
            logits = out.view(*out.shape[:-1], self.dim, self.levels)
            if not draw:
                return categorical_mean(logits, self.levels)
            cdf = torch.softmax(logits, -1).cumsum(-1)
            level = (cdf < noise["u"].unsqueeze(-1)).sum(-1).clamp(max=self.levels - 1)
            return level.to(out.dtype) / (self.levels - 1)
        p = torch.sigmoid(out)
        return (noise["u"] < p).to(out.dtype) if draw else p
