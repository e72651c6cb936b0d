"""Deterministic autoencoders: plain ("ae"), sparse ("sparse_ae") and linear ("linear_ae").

An AE has no KL term, so its code can carry unbounded information (H3: it "can cheat"). To put
it on a VAE's rate-distortion plane we evaluate it through a Gaussian noise channel
z~ = z + sigma * n, n ~ N(0, I), with sigma = ``channel_sigma`` fixed by the Config:

  rate = E_x KL(N(z(x), sigma^2 I) || r),   r = N(m, diag s^2)

For ANY r this is an upper bound on the channel's mutual information I(x; z~), since
E_x KL(p(z~|x) || r) = I(x; z~) + KL(p(z~) || r) (Hoffman & Johnson 2016). r's (m, s) are
parameters fitted by maximum likelihood on the detached training codes (a loss term that moves
r only, never the AE), which tightens the bound towards the moment-matched Gaussian
(m = E z, s^2 = Var z + sigma^2); with few training steps r is less fitted and the rate is a
looser but still valid bound. The rate depends on the code's scale relative to sigma: an AE
that shrinks its codes buys a low rate with a high ``distortion``, because distortion is
measured through the same channel, exactly as a VAE's distortion is measured at z ~ q(z|x).

Metrics (per example):
  distortion        -log p(x | z~) averaged over channel noise (nats; for likelihood="mse" the
                    summed squared error over pixels instead)
  clean_distortion  the same at the noiseless code z: what the AE was trained to minimise
  mse               mean over pixels of (x - mean reconstruction from z)^2
  rate              the channel rate above (nats)
  l0                (sparse_ae only) number of non-zero code units

linear_ae (Baldi & Hornik 1989): linear encoder and decoder trained on squared error; its
optimum spans the top principal subspace of the data; ``decoder_weight()`` exposes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.models._util import (
    check_likelihood,
    diag_normal_kl,
    likelihood_logp,
    likelihood_mean,
    likelihood_width,
    mlp,
)
from harness.models.base import GenerativeModel
from harness.registry import register_model

SPARSITIES = ("l1", "topk")


@dataclass(frozen=True)
class AEConfig:
    latent_dim: int = 8  # code size d
    hidden: int = 256  # width of each hidden layer, encoder and decoder alike
    depth: int = 2  # hidden layers in the encoder and in the decoder
    likelihood: str = "categorical"  # a _util likelihood, or "mse" (summed squared error)
    channel_sigma: float = 0.1  # std of the evaluation channel's noise, z~ = z + sigma * n

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.channel_sigma > 0:
            raise ValueError(f"channel_sigma must be > 0, got {self.channel_sigma!r}")


@register_model("ae")
class Autoencoder(GenerativeModel):
    Config = AEConfig
    metrics = ("distortion", "clean_distortion", "mse", "rate")

    def __init__(self, config: AEConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        self.likelihood = getattr(c, "likelihood", "mse")  # linear_ae: squared error by design
        if self.likelihood != "mse":
            check_likelihood(self.likelihood, levels)
        width = 1 if self.likelihood == "mse" else likelihood_width(self.likelihood, levels)
        self.encoder, self.decoder = self._networks(c, width)
        # r = N(prior_mu, exp(prior_log_sigma)^2): the channel rate's reference distribution.
        self.prior_mu = nn.Parameter(torch.zeros(c.latent_dim))
        self.prior_log_sigma = nn.Parameter(torch.zeros(c.latent_dim))

    def _networks(self, c, width: int) -> tuple[nn.Module, nn.Module]:
        return (
            mlp([self.dim] + [c.hidden] * c.depth + [c.latent_dim]),
            mlp([c.latent_dim] + [c.hidden] * c.depth + [self.dim * width]),
        )

    # -- pieces -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        """Code regulariser added to the training loss, per example (none for a plain AE)."""
        return z.new_zeros(z.shape[:-1])

    def _recon_loss(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "mse":
            return (out - x).pow(2).sum(-1)
        return -likelihood_logp(self.likelihood, out, x, self.levels)

    def _mean(self, out: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "mse":
            return out
        return likelihood_mean(self.likelihood, out, self.dim, self.levels)

    def _rate(self, z: torch.Tensor) -> torch.Tensor:
        log_sigma = torch.full_like(z, math.log(self.config.channel_sigma))
        return diag_normal_kl(z, log_sigma, self.prior_mu, self.prior_log_sigma).sum(-1)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        d = self.config.latent_dim
        if method == "sample":
            return {"z": torch.randn(n, d, generator=generator, device=device)}
        if method == "evaluate":
            return {"n": torch.randn(k, n, d, generator=generator, device=device)}
        return {}  # training is deterministic

    def loss(self, x, noise):
        z = self.encode(x)
        recon = self._recon_loss(self.decoder(z), x)
        penalty = self.penalty(z)
        rate = self._rate(z.detach())  # fits r only: the AE itself never sees the channel
        total = (recon + penalty + rate).mean()
        return total, {"distortion": recon.mean(), "penalty": penalty.mean(), "rate": rate.mean()}

    def evaluate(self, x, noise):
        z = self.encode(x)
        clean = self.decoder(z)
        noisy = self.decoder(z + self.config.channel_sigma * noise["n"])  # [K, n, D * width]
        return {
            "distortion": self._recon_loss(noisy, x).mean(0),
            "clean_distortion": self._recon_loss(clean, x),
            "mse": (self._mean(clean) - x).pow(2).mean(-1),
            "rate": self._rate(z),
        }

    def sample(self, noise):
        # An AE has no prior of its own: decode draws from the fitted aggregate Gaussian r.
        z = self.prior_mu + torch.exp(self.prior_log_sigma) * noise["z"]
        return self._mean(self.decoder(z)).clamp(0, 1)


@dataclass(frozen=True)
class SparseAEConfig(AEConfig):
    latent_dim: int = 32  # code size d (sparse codes are usually wider than dense ones)
    sparsity: str = "topk"  # "l1": ReLU code + L1 penalty; "topk": keep the k largest (k-sparse)
    l1_weight: float = 0.01  # weight of the L1 penalty sum_j |z_j| (sparsity="l1")
    k: int = 4  # active units kept per example (sparsity="topk")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sparsity not in SPARSITIES:
            raise ValueError(f"sparsity must be one of {list(SPARSITIES)}, got {self.sparsity!r}")
        if not isinstance(self.k, int) or not 1 <= self.k <= self.latent_dim:
            raise ValueError(
                f"k must be an integer in [1, latent_dim={self.latent_dim}], got {self.k!r}"
            )
        if not self.l1_weight >= 0:
            raise ValueError(f"l1_weight must be >= 0, got {self.l1_weight!r}")


@register_model("sparse_ae")
class SparseAutoencoder(Autoencoder):
    """ReLU code made sparse by an L1 penalty (Ng 2011) or top-k selection (Makhzani & Frey 2014;
    Gao et al. 2024 use ReLU then top-k, as here)."""

    Config = SparseAEConfig
    metrics = Autoencoder.metrics + ("l0",)
    hyper = ("l1_weight",)  # a penalty weight only: trials with different weights stack

    def encode(self, x):
        z = torch.relu(self.encoder(x))
        if self.config.sparsity == "topk":
            # Threshold at the k-th largest value: a mask, no data-dependent Python branching.
            kth = torch.topk(z, self.config.k, dim=-1).values[..., -1:]
            z = z * (z >= kth).to(z.dtype)
        return z

    def penalty(self, z):
        if self.config.sparsity == "l1":
            return self.hp("l1_weight") * z.abs().sum(-1)
        return z.new_zeros(z.shape[:-1])

    def evaluate(self, x, noise):
        out = super().evaluate(x, noise)
        out["l0"] = (self.encode(x) > 0).to(x.dtype).sum(-1)
        return out


@dataclass(frozen=True)
class LinearAEConfig:
    latent_dim: int = 8  # code size d (the PCA subspace dimension it should recover)
    bias: bool = True  # biases let the AE centre the data (PCA of centred data); False: uncentred
    channel_sigma: float = 0.1  # std of the evaluation channel's noise, z~ = z + sigma * n

    def __post_init__(self) -> None:
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        if not self.channel_sigma > 0:
            raise ValueError(f"channel_sigma must be > 0, got {self.channel_sigma!r}")


@register_model("linear_ae")
class LinearAE(Autoencoder):
    """x -> W_e x + b_e -> W_d z + b_d, squared error: the PCA subspace (Baldi & Hornik 1989)."""

    Config = LinearAEConfig

    def _networks(self, c, width):
        return nn.Linear(self.dim, c.latent_dim, bias=c.bias), nn.Linear(
            c.latent_dim, self.dim, bias=c.bias
        )

    def decoder_weight(self) -> torch.Tensor:
        """The decoder's weight [D, d]: its column span is the learned subspace."""
        return self.decoder.weight
