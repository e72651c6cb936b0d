"""DDPM: Gaussian diffusion with an MLP denoiser (Ho et al. 2020); DDIM sampling (Song et al. 2021).

Data x on [0, 1] are scaled to y0 = 2x - 1. The forward chain q(y_t | y_{t-1}) = N(sqrt(1 -
beta_t) y_{t-1}, beta_t I), t = 1..T, has q(y_t | y0) = N(sqrt(abar_t) y0, (1 - abar_t) I). The
reverse step p(y_{t-1} | y_t) = N(mu(y_t, t), sigma_t^2 I) with mu from the predicted noise.

The variational bound (Ho et al. eq. 5; the VDM view: a hierarchical VAE with a fixed encoder)

  -log p(x) <= L_T + sum_{t=2}^T L_{t-1} + L_0
  L_T     = KL(q(y_T | y0) || N(0, I))
  L_{t-1} = KL(q(y_{t-1} | y_t, y0) || p(y_{t-1} | y_t)),  y_t ~ q(y_t | y0)
  L_0     = -log p(x | y_1), a discretised Gaussian over the data's levels (Ho et al. sec 3.3)

is evaluated per example over ALL T terms, one y_t draw per t, in chunks of t, so the number
is a true discrete NLL bound in nats (for continuous data, a density bound in x's units). With
``loss="simple"`` training minimises Ho's epsilon MSE (eq. 14); ``"vlb"`` the bound itself
(T * L_{t-1} at one uniform t per example, plus L_T); ``"hybrid"`` simple + 0.001 * vlb with
the mean's gradient stopped in the vlb part, which trains a learned variance (Nichol &
Dhariwal 2021, whose cosine schedule and variance interpolation are used too).

Sampling may take fewer steps than training (``sample_steps`` = K < T; Nichol & Dhariwal 2021,
sec. 4): the reverse chain visits K of the T timesteps, evenly spaced and always including the
first and the last, with the step's beta recomputed from the visited abar's,
beta'_j = 1 - abar_{s_j} / abar_{s_{j-1}}, so the respaced chain has the same marginals
q(y_s | y0) as the trained one. The denoiser, its training and the bound are those of T
steps: K changes sampling only, so a K ladder compares few with many denoising steps of ONE
trained network at identical training compute.

``sampler="ddim"`` (Song et al. 2021, eq. 12 with eta = 0) walks the same respaced steps
deterministically: y_{s'} = sqrt(abar_{s'}) y0_hat + sqrt(1 - abar_{s'}) eps_hat, where s' is the
previous visited step (abar = 1 before the first), so a sample is a function of y_T alone.
``parametrisation``: the network predicts the noise ("eps", Ho et al.) or the clean signal
("x0"); either way the other follows from y_t = sqrt(abar) y0 + sqrt(1 - abar) eps, and the
reverse mean, the bound and both samplers use the same (clipped) y0_hat, so the bound is the
same true bound in both. In x0 mode ``loss="simple"`` is the plain x0 MSE, mean over pixels of
(y0 - y0_hat)^2: the eps MSE equals SNR(t) = abar / (1 - abar) times it, and that weight
(~1e4 at small t under the cosine schedule) would make an x0 network's gradients dominated by
the least noisy steps; the plain MSE is the x0 objective as commonly trained (e.g.
denoising-diffusion-pytorch's ``pred_x0``). "vlb" and "hybrid" are the bound in either mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.models._util import (
    TimeMLP,
    bits_per_dim,
    diag_normal_kl,
    discretized_gaussian_logpmf,
    normal_logpdf,
)
from harness.models.base import GenerativeModel
from harness.registry import register_model

SCHEDULES = ("linear", "cosine")
LOSSES = ("simple", "vlb", "hybrid")
VARIANCES = ("beta", "posterior", "learned")
SAMPLERS = ("ancestral", "ddim")
PARAMETRISATIONS = ("eps", "x0")
T_CHUNK = 32  # timesteps evaluated per denoiser call in evaluate(): bounds memory for T = 256+


@dataclass(frozen=True)
class DDPMConfig:
    T: int = 100  # diffusion steps (1 upward)
    schedule: str = "cosine"  # "linear" (Ho et al., rescaled by 1000/T) or "cosine"
    hidden: int = 256  # width of the denoiser MLP
    depth: int = 3  # residual blocks in the denoiser
    time_dim: int = 64  # size of the sinusoidal timestep embedding
    loss: str = "simple"  # "simple" (epsilon MSE), "vlb" (the bound) or "hybrid"
    variance: str = "beta"  # reverse sigma_t^2: "beta" (beta_t), "posterior" (beta~_t), "learned"
    clip_y0: bool = True  # clip the predicted y0 to [-1, 1] in the reverse mean (bound and sampler)
    sample_steps: int = 0  # reverse steps when sampling: 0 = all T, else K <= T respaced steps
    sampler: str = "ancestral"  # "ancestral" (the reverse chain) or "ddim" (deterministic, eta = 0)
    parametrisation: str = "eps"  # the network predicts the noise ("eps") or the clean signal ("x0")

    def __post_init__(self) -> None:
        for name in ("T", "hidden", "depth", "time_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        k = self.sample_steps
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= self.T:
            raise ValueError(f"sample_steps must be an integer from 0 (all T) to T = {self.T}, got {k!r}")
        for name, choices in (("schedule", SCHEDULES), ("loss", LOSSES), ("variance", VARIANCES),
                              ("sampler", SAMPLERS), ("parametrisation", PARAMETRISATIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}"
                )


def beta_schedule(T: int, kind: str) -> torch.Tensor:
    """beta_1..beta_T in float64, clipped to 0.999 (so abar_T > 0 and every step is defined)."""
    if kind == "linear":  # Ho et al.'s 1e-4..0.02 at T = 1000, rescaled to keep abar_T small
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64)
        if T == 1:
            betas = torch.tensor([scale * 0.02], dtype=torch.float64)
    else:  # abar(t) = cos^2(((t/T + s) / (1 + s)) pi/2) / abar(0), s = 0.008
        f = (
            torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + 0.008) / 1.008 * math.pi / 2)
            ** 2
        )
        betas = 1 - f[1:] / f[:-1]
    return betas.clamp(max=0.999)


def _chain(abar: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reverse chain's tables for a decreasing abar_1..abar_K (float64): its betas are
    1 - abar_k / abar_{k-1}, so a subsequence of a schedule gives its respaced chain."""
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    betas = 1 - abar / abar_prev
    post_var = betas * (1 - abar_prev) / (1 - abar)  # beta~_t; 0 at t = 1
    # beta~_1 = 0 is replaced by beta~_2 (Nichol & Dhariwal); T = 1 has no beta~_2: a 1e-4 floor.
    floor = post_var[1] if abar.numel() > 1 else torch.tensor(1e-4, dtype=torch.float64)
    post_var = torch.cat([floor.reshape(1), post_var[1:]])
    return {
        "abar": abar,
        "log_beta": torch.log(betas),
        "log_post_var": torch.log(post_var),
        "coef_y0": abar_prev.sqrt() * betas / (1 - abar),  # posterior mean = coef_y0 y0 + coef_yt y_t
        "coef_yt": (1 - betas).sqrt() * (1 - abar_prev) / (1 - abar),
    }


@register_model("ddpm")
class DDPM(GenerativeModel):
    Config = DDPMConfig
    metrics = ("nll_bound", "bpd", "prior_kl", "decoder_nll")

    def __init__(self, config: DDPMConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        out = self.dim * (2 if c.variance == "learned" else 1)
        self.net = TimeMLP(self.dim, out, c.hidden, c.depth, c.time_dim)
        abar = torch.cumprod(1 - beta_schedule(c.T, c.schedule), 0)
        # The sampler's chain: every step, or K respaced ones (its tables are prefixed "s_").
        k = c.sample_steps or c.T
        visited = torch.linspace(0, c.T - 1, k, dtype=torch.float64).round().long() if k < c.T else torch.arange(c.T)
        tables = {**_chain(abar), **{f"s_{n}": v for n, v in _chain(abar[visited]).items()}}
        tables["s_t"] = visited.double()
        for name, value in tables.items():
            self.register_buffer(name, value.float(), persistent=False)

    # -- pieces -----------------------------------------------------------------------------
    def _reverse(self, y_t: torch.Tensor, t: torch.Tensor, j: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's prediction (noise, or y0 with parametrisation="x0") and log sigma_t^2
        of p(y_{t-1} | y_t); t is 0-based, shaped like y_t[..., 0].
        ``j``: the step's index in the sampler's respaced chain (its own variances), else None."""
        out = self.net(y_t, (t + 1) / self.config.T)
        eps_hat = out[..., : self.dim]  # y0_hat when parametrisation="x0"
        log_beta, log_post_var = ((self.log_beta[t], self.log_post_var[t]) if j is None
                                  else (self.s_log_beta[j], self.s_log_post_var[j]))
        if self.config.variance == "learned":  # interpolate between the two fixed choices
            frac = torch.sigmoid(out[..., self.dim :])
            log_var = frac * log_beta.unsqueeze(-1) + (1 - frac) * log_post_var.unsqueeze(-1)
        else:
            table = log_beta if self.config.variance == "beta" else log_post_var
            log_var = table.unsqueeze(-1).expand_as(y_t)
        return eps_hat, log_var

    def _y0_hat(self, y_t: torch.Tensor, t: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """y0 from the network's prediction ``pred`` (the noise, or y0 itself)."""
        ab = self.abar[t].unsqueeze(-1)
        y0_hat = pred if self.config.parametrisation == "x0" else (y_t - (1 - ab).sqrt() * pred) / ab.sqrt()
        # Clipping is part of the reverse model (a fixed function of y_t), so the bound stays a
        # bound; without it 1/sqrt(abar_t) (~30-300 near t = T) amplifies epsilon errors.
        return y0_hat.clamp(-1, 1) if self.config.clip_y0 else y0_hat

    def _posterior_mean(self, y0: torch.Tensor, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.coef_y0[t].unsqueeze(-1) * y0 + self.coef_yt[t].unsqueeze(-1) * y_t

    def _bound_terms(self, x, y0, y_t, t, y0_hat, log_var):
        """L_{t-1} for every 0-based t (t = 0 is the decoder's L_0), summed over pixels."""
        mean_q = self._posterior_mean(y0, y_t, t)
        mean_p = self._posterior_mean(y0_hat, y_t, t)
        log_sigma_q = 0.5 * self.log_post_var[t].unsqueeze(-1)
        kl = diag_normal_kl(mean_q, log_sigma_q, mean_p, 0.5 * log_var).sum(-1)
        return torch.where(t == 0, self._decoder_nll(x, mean_p, log_var), kl)

    def _decoder_nll(self, x, mean, log_var) -> torch.Tensor:
        """-log p(x | y_1): the mean and sigma mapped from y = 2x - 1 back to x's units."""
        log_sigma_x = 0.5 * log_var - math.log(2)
        if self.levels:
            return -discretized_gaussian_logpmf(
                x.expand_as(mean), (mean + 1) / 2, log_sigma_x, self.levels
            ).sum(-1)
        return -normal_logpdf(x, (mean + 1) / 2, log_sigma_x).sum(-1)

    def _prior_kl(self, y0: torch.Tensor) -> torch.Tensor:
        ab = self.abar[-1]
        return diag_normal_kl(
            ab.sqrt() * y0,
            0.5 * torch.log1p(-ab).expand_as(y0),
            torch.zeros_like(y0),
            torch.zeros_like(y0),
        ).sum(-1)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        T, D = self.config.T, self.dim
        if method == "loss":
            return {
                "t": torch.randint(0, T, (n,), generator=generator, device=device),
                "eps": torch.randn(n, D, generator=generator, device=device),
            }
        if method == "evaluate":  # one y_t per timestep and example: the bound is summed over all t
            return {"eps": torch.randn(T, n, D, generator=generator, device=device)}
        if self.config.sampler == "ddim":  # deterministic: the sample is a function of y_T
            return {"y_T": torch.randn(n, D, generator=generator, device=device)}
        return {
            "y_T": torch.randn(n, D, generator=generator, device=device),
            "z": torch.randn(self.config.sample_steps or T, n, D, generator=generator, device=device),
        }

    def loss(self, x, noise):
        c, t, eps = self.config, noise["t"], noise["eps"]
        y0 = 2 * x - 1
        ab = self.abar[t].unsqueeze(-1)
        y_t = ab.sqrt() * y0 + (1 - ab).sqrt() * eps
        pred, log_var = self._reverse(y_t, t)
        target = y0 if c.parametrisation == "x0" else eps  # plain MSE on what the net predicts
        simple = (target - pred).pow(2).mean(-1)
        # hybrid: the vlb term trains the variance only; the mean learns from the simple term.
        y0_hat = self._y0_hat(y_t, t, pred.detach() if c.loss == "hybrid" else pred)
        vlb = c.T * self._bound_terms(x, y0, y_t, t, y0_hat, log_var) + self._prior_kl(y0)
        total = {"simple": simple, "vlb": vlb, "hybrid": simple + 0.001 * vlb}[c.loss].mean()
        return total, {"simple": simple.mean(), "nll_bound": vlb.mean()}

    def evaluate(self, x, noise):
        T = self.config.T
        y0 = 2 * x - 1
        terms = []
        for start in range(0, T, T_CHUNK):  # static chunks of t: memory stays bounded for large T
            t = torch.arange(start, min(start + T_CHUNK, T), device=x.device)
            ab = self.abar[t].view(-1, 1, 1)
            y_t = ab.sqrt() * y0 + (1 - ab).sqrt() * noise["eps"][start : start + t.numel()]
            tt = t.view(-1, 1).expand(-1, x.shape[0])
            eps_hat, log_var = self._reverse(y_t, tt)
            terms.append(self._bound_terms(x, y0, y_t, tt, self._y0_hat(y_t, tt, eps_hat), log_var))
        terms = torch.cat(terms)  # [T, n]
        prior = self._prior_kl(y0)
        nll = prior + terms.sum(0)
        return {
            "nll_bound": nll,
            "bpd": bits_per_dim(nll, self.dim),
            "prior_kl": prior,
            "decoder_nll": terms[0],
        }

    def sample(self, noise):
        if self.config.sampler == "ddim":
            return self._ddim(noise["y_T"])
        y = noise["y_T"]
        for i in reversed(range(self.s_t.numel())):  # the sampler's chain: all T steps, or K respaced
            j = torch.full(y.shape[:-1], i, dtype=torch.long, device=y.device)
            t = self.s_t[j].long()  # the timestep the denoiser was trained at
            eps_hat, log_var = self._reverse(y, t, j)
            y0_hat = self._y0_hat(y, t, eps_hat)
            y = self.s_coef_y0[j].unsqueeze(-1) * y0_hat + self.s_coef_yt[j].unsqueeze(-1) * y
            if i > 0:
                y = y + torch.exp(0.5 * log_var) * noise["z"][i]
        return self._to_data(y)

    def _ddim(self, y: torch.Tensor) -> torch.Tensor:
        """Song et al. 2021 eq. 12, eta = 0, over the sampler's visited steps."""
        for i in reversed(range(self.s_t.numel())):
            j = torch.full(y.shape[:-1], i, dtype=torch.long, device=y.device)
            t = self.s_t[j].long()
            pred, _ = self._reverse(y, t, j)
            y0_hat = self._y0_hat(y, t, pred)
            if i == 0:  # abar before the first step is 1: the clean estimate itself
                y = y0_hat
                break
            ab = self.s_abar[j].unsqueeze(-1)
            eps_hat = (y - ab.sqrt() * y0_hat) / (1 - ab).sqrt()  # consistent with the clipped y0_hat
            ab_prev = self.s_abar[j - 1].unsqueeze(-1)
            y = ab_prev.sqrt() * y0_hat + (1 - ab_prev).sqrt() * eps_hat
        return self._to_data(y)

    def _to_data(self, y: torch.Tensor) -> torch.Tensor:
        x = ((y + 1) / 2).clamp(0, 1)
        if self.levels:  # the discretised decoder's most likely level
            x = torch.round(x * (self.levels - 1)) / (self.levels - 1)
        return x
