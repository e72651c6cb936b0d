"""An autoencoder whose evaluation channel is set by a distortion, not by a constant ("matched_ae").

``ae`` evaluates its code through a Gaussian channel z~ = z + sigma n with a FIXED sigma
(``channel_sigma``), so its rate is set by that constant relative to the code's scale: rescaling
the codes by 0.1x or 10x (and the decoder's input by the inverse) leaves every reconstruction
identical but moves the rate (``tests/models/test_matched_ae.py`` shows it). A deterministic
code has no rate of its own; what is well defined is the rate the code needs to reach a given
distortion. So here sigma is SOLVED per evaluation chunk: the largest sigma (bisection in
log sigma, a fixed number of vmap-safe steps) at which the mean distortion through the channel,
E -log p(x | z + sigma n), equals ``target_distortion``; the rate is then

  rate = E_x KL(N(z(x), sigma^2 I) || r),   r = N(mean z, diag(var z + sigma^2))

over the chunk (the moment-matched Gaussian; for any r this bounds the channel's I(x; z~),
Hoffman & Johnson 2016). Rescaling the code by a rescales the solved sigma and r by a: the
rate and the distortion are unchanged, so neither depends on the code's arbitrary scale. Set
``target_distortion`` to the distortion of the model being compared (a VAE's test distortion)
and the two rates are compared at matched distortion; ``distortion`` is reported beside the
rate (it equals the target up to the bisection's resolution unless the target is out of reach:
below the clean distortion, sigma hits its floor and the rate its ceiling).

The engine evaluates in chunks of the test split (``harness.engine.eval_chunk``: about 2^22
numbers per chunk, eval_samples x examples x decoder outputs), and sigma is solved per chunk;
a chunk whose clean distortion is above the target cannot reach it (sigma at its floor, the
rate at its ceiling). To solve on the whole split keep it one chunk (digits with a categorical
likelihood: eval_samples <= 12).

Training is the plain AE's (clean codes, no channel); the metrics add ``channel_sigma`` (the
solved sigma, in code units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.models._util import diag_normal_kl, normal_logpdf
from harness.models.autoencoder import Autoencoder
from harness.registry import register_model

LOG_SIGMA_RANGE = (math.log(1e-5), math.log(1e4))  # bisection bracket, code units
BISECTION_STEPS = 40  # bracket width / 2^40: far below any distortion that matters


@dataclass(frozen=True)
class MatchedAEConfig:
    latent_dim: int = 8  # code size d
    hidden: int = 256  # width of each hidden layer, encoder and decoder alike
    depth: int = 2  # hidden layers in the encoder and in the decoder
    likelihood: str = "categorical"  # a _util likelihood, or "mse" (summed squared error)
    target_distortion: float = 100.0  # nats per example: the channel is solved to this distortion

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden", "depth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.target_distortion, (int, float)) and math.isfinite(self.target_distortion)
                and self.target_distortion > 0):
            raise ValueError(f"target_distortion must be a positive number of nats, got {self.target_distortion!r}")


@register_model("matched_ae")
class MatchedChannelAE(Autoencoder):
    Config = MatchedAEConfig
    metrics = ("distortion", "clean_distortion", "mse", "rate", "channel_sigma")

    def _channel_distortion(self, z, x, n, log_sigma) -> torch.Tensor:
        return self._recon_loss(self.decoder(z + log_sigma.exp() * n), x).mean(0)  # [n]

    def solve_log_sigma(self, z, x, n) -> torch.Tensor:
        """log sigma at which the chunk's mean channel distortion equals the target."""
        lo = z.new_tensor(LOG_SIGMA_RANGE[0])
        hi = z.new_tensor(LOG_SIGMA_RANGE[1])
        target = self.config.target_distortion
        for _ in range(BISECTION_STEPS):  # fixed count, torch.where: no data-dependent branching
            mid = (lo + hi) / 2
            too_noisy = self._channel_distortion(z, x, n, mid).mean() > target
            hi, lo = torch.where(too_noisy, mid, hi), torch.where(too_noisy, lo, mid)
        return (lo + hi) / 2

    def evaluate(self, x, noise):
        z = self.encode(x)
        n = noise["n"]  # [K, n, d]
        log_sigma = self.solve_log_sigma(z, x, n)
        sigma2 = (2 * log_sigma).exp()
        r_mu = z.mean(0)
        r_log_sigma = 0.5 * torch.log(z.var(0, unbiased=False) + sigma2)
        rate = diag_normal_kl(z, log_sigma.expand_as(z), r_mu, r_log_sigma).sum(-1)
        clean = self.decoder(z)
        return {
            "distortion": self._channel_distortion(z, x, n, log_sigma),
            "clean_distortion": self._recon_loss(clean, x),
            "mse": (self._mean(clean) - x).pow(2).mean(-1),
            "rate": rate,
            "channel_sigma": log_sigma.exp().expand(x.shape[0]),
        }

    def loss(self, x, noise):
        z = self.encode(x)
        recon = self._recon_loss(self.decoder(z), x)
        # r (prior_mu, prior_log_sigma) is fitted to the detached codes by maximum likelihood:
        # it is what sample() draws codes from, never part of the metrics (they solve their own).
        code_nll = -normal_logpdf(z.detach(), self.prior_mu, self.prior_log_sigma).sum(-1)
        return (recon + code_nll).mean(), {"distortion": recon.mean(), "code_nll": code_nll.mean()}
