"""Multinomial diffusion on K-level data (Hoogeboom et al. 2021; binomial: Sohl-Dickstein 2015).

Each pixel is a category x in {0..K-1} (K = the dataset's levels: 2 for binarized data, where
this is Sohl-Dickstein's binomial diffusion). The forward chain resamples uniformly with
probability beta_t: q(x_t | x_{t-1}) = Cat((1 - beta_t) x_{t-1} + beta_t / K), so
q(x_t | x_0) = Cat(abar_t x_0 + (1 - abar_t) / K) and the posterior is

  q(x_{t-1} | x_t, x_0) ∝ (alpha_t x_t + (1 - alpha_t)/K) ⊙ (abar_{t-1} x_0 + (1 - abar_{t-1})/K).

The reverse step plugs the network's prediction x0_hat = softmax(f(x_t, t)) in for x_0 (the
paper's parametrisation), and the bound is exact in its terms:

  -log p(x_0) <= KL(q(x_T|x_0) || uniform) + sum_{t=2}^T KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))
                 - log p(x_0 | x_1),

with one x_t ~ q(x_t | x_0) per t per example and all T terms summed (evaluate); training
uses T times one uniform t per example, plus L_T. Everything is in log space; every
categorical draw is an inverse-CDF lookup of a uniform from the noise dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.models._util import TimeMLP, bits_per_dim, categorical_from_uniform
from harness.models.base import GenerativeModel
from harness.registry import register_model

SCHEDULES = ("cosine", "linear")
T_CHUNK = 32  # timesteps per network call in evaluate(): bounds memory for large T
LOG_ZERO = -1e4  # log of an exact zero (one-hot entries): finite, so no inf - inf anywhere


@dataclass(frozen=True)
class MultinomialDiffusionConfig:
    T: int = 50  # diffusion steps (1 upward)
    schedule: str = "cosine"  # "cosine" abar_t (Hoogeboom et al.) or "linear": abar_t = 1 - t/T
    hidden: int = 256  # width of the denoiser MLP
    depth: int = 3  # residual blocks in the denoiser
    time_dim: int = 64  # size of the sinusoidal timestep embedding
    aux_weight: float = 0.0  # weight of an auxiliary -log x0_hat(x_0) term (Austin et al. 2021)

    def __post_init__(self) -> None:
        for name in ("T", "hidden", "depth", "time_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if not self.aux_weight >= 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight!r}")


def alpha_schedule(T: int, kind: str) -> torch.Tensor:
    """alpha_1..alpha_T = 1 - beta_t in float64, clipped to >= 0.001 as Hoogeboom et al. do."""
    t = torch.arange(T + 1, dtype=torch.float64)
    if kind == "cosine":
        abar = torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    else:  # beta_t = 1 / (T - t + 1): abar_t = 1 - t/T, uniform information loss per step
        abar = 1 - t / T
    alphas = abar[1:] / abar[:-1].clamp(min=1e-300)
    return alphas.clamp(min=0.001, max=1.0)


@register_model("multinomial_diffusion")
class MultinomialDiffusion(GenerativeModel):
    Config = MultinomialDiffusionConfig
    metrics = ("nll_bound", "bpd", "prior_kl", "decoder_nll")

    def __init__(
        self, config: MultinomialDiffusionConfig, shape: tuple[int, ...], levels: int | None
    ):
        super().__init__(config, shape, levels)
        if not levels:
            raise ValueError("multinomial diffusion needs discrete data (a dataset with levels)")
        c, K = config, levels
        self.net = TimeMLP(self.dim * K, self.dim * K, c.hidden, c.depth, c.time_dim)
        alphas = alpha_schedule(c.T, c.schedule)
        abar = torch.cat(
            [torch.ones(1, dtype=torch.float64), torch.cumprod(alphas, 0)]
        )  # index t = 0..T
        alphas = torch.cat([torch.ones(1, dtype=torch.float64), alphas])
        tables = {
            "log_alpha": alphas,
            "log_1m_alpha": 1 - alphas,
            "log_abar": abar,
            "log_1m_abar": 1 - abar,
        }
        for name, value in tables.items():
            self.register_buffer(
                name, torch.log(value).clamp(min=LOG_ZERO).float(), persistent=False
            )

    # -- pieces (t is the 1-based step, a long tensor shaped like the batch) ----------------------
    def _one_hot(self, idx: torch.Tensor) -> torch.Tensor:
        # A comparison, not F.one_hot: F.one_hot inspects the data (its max), which vmap forbids.
        return (idx.unsqueeze(-1) == torch.arange(self.levels, device=idx.device)).float()

    def _one_hot_log(self, idx: torch.Tensor) -> torch.Tensor:
        return (self._one_hot(idx) - 1) * -LOG_ZERO

    def _mix(
        self, log_x: torch.Tensor, log_keep: torch.Tensor, log_resample: torch.Tensor
    ) -> torch.Tensor:
        """log(keep * x + resample / K) for a distribution x [..., D, K] and per-batch tables."""
        return torch.logaddexp(
            log_keep[..., None, None] + log_x, log_resample[..., None, None] - math.log(self.levels)
        )

    def _q_t(self, log_x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log q(x_t | x_0) for t in 0..T."""
        return self._mix(log_x0, self.log_abar[t], self.log_1m_abar[t])

    def _posterior(self, x_t: torch.Tensor, log_x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log q(x_{t-1} | x_t, x_0) with x_0 a (log) distribution: the true one-hot or x0_hat."""
        forward = self._mix(self._one_hot_log(x_t), self.log_alpha[t], self.log_1m_alpha[t])
        return torch.log_softmax(forward + self._q_t(log_x0, t - 1), dim=-1)

    def _x0_hat(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log x0_hat [..., D, K] from the network on the one-hot x_t."""
        inp = self._one_hot(x_t).flatten(-2)
        logits = self.net(inp, t / self.config.T).unflatten(-1, (self.dim, self.levels))
        return torch.log_softmax(logits, dim=-1)

    def reverse_log_probs(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log p(x_{t-1} | x_t) [..., D, K] for categories x_t [..., D] (long) and step t [...]."""
        return self._posterior(x_t, self._x0_hat(x_t, t), t)

    def _index(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * (self.levels - 1)).long()

    def _terms(self, x0: torch.Tensor, u: torch.Tensor, t: torch.Tensor):
        """L_{t-1} per example (t = 1: the decoder's -log p(x_0|x_1)) and log x0_hat, for x_t ~ q."""
        log_x0 = self._one_hot_log(x0)
        x_t = categorical_from_uniform(self._q_t(log_x0, t), u)
        log_x0_hat = self._x0_hat(x_t, t)
        log_p = self._posterior(x_t, log_x0_hat, t)
        log_q = self._posterior(x_t, log_x0, t)
        kl = (log_q.exp() * (log_q - log_p)).sum((-2, -1))
        decoder = -(log_p * self._one_hot(x0)).sum((-2, -1))
        return torch.where(t == 1, decoder, kl), log_x0_hat

    def _prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """KL(q(x_T | x_0) || uniform), summed over pixels."""
        log_q = self._q_t(self._one_hot_log(x0), torch.tensor(self.config.T, device=x0.device))
        return (log_q.exp() * (log_q + math.log(self.levels))).sum((-2, -1))

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        T, D = self.config.T, self.dim
        if method == "loss":
            return {
                "t": torch.randint(1, T + 1, (n,), generator=generator, device=device),
                "u": torch.rand(n, D, generator=generator, device=device),
            }
        if method == "evaluate":  # one x_t per step and example: the bound sums all T terms
            return {"u": torch.rand(T, n, D, generator=generator, device=device)}
        return {
            "u_T": torch.rand(n, D, generator=generator, device=device),
            "u": torch.rand(T, n, D, generator=generator, device=device),
        }

    def loss(self, x, noise):
        x0, t = self._index(x), noise["t"]
        term, log_x0_hat = self._terms(x0, noise["u"], t)
        bound = self.config.T * term + self._prior_kl(x0)
        aux = -(log_x0_hat * self._one_hot(x0)).sum((-2, -1))
        total = (bound + self.config.aux_weight * aux).mean()
        return total, {"nll_bound": bound.mean(), "aux": aux.mean()}

    def evaluate(self, x, noise):
        x0, T = self._index(x), self.config.T
        terms = []
        for start in range(1, T + 1, T_CHUNK):  # static chunks of t
            t = torch.arange(start, min(start + T_CHUNK, T + 1), device=x.device)
            u = noise["u"][start - 1 : start - 1 + t.numel()]
            terms.append(self._terms(x0, u, t.view(-1, 1).expand(-1, x.shape[0]))[0])
        terms = torch.cat(terms)  # [T, n], row 0 is t = 1
        prior = self._prior_kl(x0)
        nll = prior + terms.sum(0)
        return {
            "nll_bound": nll,
            "bpd": bits_per_dim(nll, self.dim),
            "prior_kl": prior,
            "decoder_nll": terms[0],
        }

    def sample(self, noise):
        K = self.levels
        x_t = torch.clamp((noise["u_T"] * K).long(), max=K - 1)  # x_T ~ uniform
        for step in range(self.config.T, 0, -1):
            t = torch.full(x_t.shape[:-1], step, dtype=torch.long, device=x_t.device)
            x_t = categorical_from_uniform(self.reverse_log_probs(x_t, t), noise["u"][step - 1])
        return x_t.to(noise["u"].dtype) / (K - 1)
