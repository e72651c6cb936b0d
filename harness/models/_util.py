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


# -- closed-form Gaussian KLs (iaf.py, hierarchical.py, autoencoder.py, diffusion.py) ----------


def diag_normal_kl(
    mu_q: torch.Tensor, log_sigma_q: torch.Tensor, mu_p: torch.Tensor, log_sigma_p: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)); sum over the last axis yourself."""
    ratio = torch.exp(2 * (log_sigma_q - log_sigma_p))
    return 0.5 * (ratio + ((mu_q - mu_p) * torch.exp(-log_sigma_p)) ** 2 - 1) - (
        log_sigma_q - log_sigma_p
    )


def residual_normal_kl(
    dmu: torch.Tensor, log_dsigma: torch.Tensor, log_sigma_p: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL(q || p) for NVAE's residual normal (Vahdat & Kautz 2020, eq. 2).

    p = N(mu_p, sigma_p^2), q = N(mu_p + dmu, (sigma_p * dsigma)^2): the KL depends only on the
    prediction error dmu / sigma_p and dsigma, never on mu_p.
    """
    return 0.5 * ((dmu * torch.exp(-log_sigma_p)) ** 2 + torch.exp(2 * log_dsigma) - 1) - log_dsigma


def std_normal_kl_full(mean: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, L L^T) || N(0, I)) per vector: mean [..., d], scale_tril L [..., d, d] -> [...]."""
    d = mean.shape[-1]
    trace = scale_tril.pow(2).sum((-2, -1))
    log_det = 2 * torch.log(torch.diagonal(scale_tril, dim1=-2, dim2=-1).abs()).sum(-1)
    return 0.5 * (trace + mean.pow(2).sum(-1) - d - log_det)


def unit_lower_triangular(entries: torch.Tensor, d: int) -> torch.Tensor:
    """Identity plus ``entries`` [..., d(d-1)/2] below the diagonal (row-major): [..., d, d]."""
    rows, cols = torch.tril_indices(d, d, offset=-1, device=entries.device)
    flat = entries.new_zeros(*entries.shape[:-1], d * d).index_add(-1, rows * d + cols, entries)
    return flat.view(*entries.shape[:-1], d, d) + torch.eye(
        d, dtype=entries.dtype, device=entries.device
    )


# -- discretised and continuous pixel likelihoods ------------------------------------------------

_SQRT_HALF = math.sqrt(0.5)


def log_ndtr(x: torch.Tensor) -> torch.Tensor:
    """log Phi(x), accurate in both tails, vmap-batched (torch.special.log_ndtr has no vmap rule).

    Lower tail through the scaled erfcx (no underflow), upper tail through log1p; each branch is
    evaluated only on its own half-line so neither can produce inf/NaN gradients through where.
    """
    lo = torch.clamp(x, max=0.0)
    hi = torch.clamp(x, min=0.0)
    lower = math.log(0.5) + torch.log(torch.special.erfcx(-lo * _SQRT_HALF)) - 0.5 * lo**2
    upper = torch.log1p(-0.5 * torch.erfc(hi * _SQRT_HALF))
    return torch.where(x < 0, lower, upper)


def discretized_gaussian_logpmf(
    x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, levels: int
) -> torch.Tensor:
    """log P(x) per element: N(mu, sigma^2) integrated over x's bin (Ho et al. 2020, sec. 3.3).

    x on [0, 1] with ``levels`` levels, bins of width 1/(levels-1) centred on the levels; the
    first and last bins reach to -inf and +inf, so the pmf sums to one exactly. The bin is
    mirrored into the lower tail when x lies above mu, where log Phi differences stay accurate.
    """
    half = 0.5 / (levels - 1)
    inv = torch.exp(-log_sigma)
    big = torch.full_like(x, 1e4)  # "infinity" in standard units: finite, so gradients stay finite
    lo = torch.where(x < half, -big, (x - half - mu) * inv)
    hi = torch.where(x > 1 - half, big, (x + half - mu) * inv)
    flip = x > mu
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    la, lb = log_ndtr(a), log_ndtr(b)
    return lb + torch.log1p(-torch.exp(torch.clamp(la - lb, max=-1e-7)))


# The pixel likelihoods a decoder may use; "gaussian" is a density, for continuous data only.
LIKELIHOOD_CHOICES = ("categorical", "bernoulli", "discretized_gaussian", "gaussian")
MIN_PIXEL_LOG_SIGMA = -7.0  # floor on a decoder's per-pixel log sigma (data on [0, 1])


def check_likelihood(likelihood: str, levels: int | None) -> None:
    """Raise ValueError when ``likelihood`` cannot model data with ``levels`` levels."""
    if likelihood not in LIKELIHOOD_CHOICES:
        raise ValueError(
            f"likelihood must be one of {list(LIKELIHOOD_CHOICES)}, got {likelihood!r}"
        )
    if likelihood in ("categorical", "discretized_gaussian") and not levels:
        raise ValueError(f"the {likelihood} likelihood needs discrete data (a dataset with levels)")
    if likelihood == "bernoulli" and levels not in (None, 2):
        raise ValueError(
            f"the bernoulli likelihood needs binary data (2 levels), got levels={levels}"
        )
    if likelihood == "gaussian" and levels:
        # A density on a discrete set is unbounded (sigma -> 0 on constant pixels).
        raise ValueError(
            "the gaussian likelihood is a density: use it on continuous data, "
            "or 'discretized_gaussian' on data with levels"
        )


def likelihood_width(likelihood: str, levels: int | None) -> int:
    """Decoder outputs per pixel for ``likelihood``."""
    return {"categorical": levels or 0, "bernoulli": 1}.get(likelihood, 2)


def likelihood_logp(
    likelihood: str, out: torch.Tensor, x: torch.Tensor, levels: int | None
) -> torch.Tensor:
    """log p(x | decoder output) summed over pixels: out [..., D * width], x [..., D] -> [...]."""
    dim = x.shape[-1]
    if likelihood == "categorical":
        return categorical_logpmf(out.unflatten(-1, (dim, levels)), x, levels).sum(-1)
    if likelihood == "bernoulli":
        return bernoulli_logpmf(out, x.expand_as(out)).sum(-1)
    mu, log_sigma = out[..., :dim], out[..., dim:].clamp(min=MIN_PIXEL_LOG_SIGMA)
    if likelihood == "discretized_gaussian":
        return discretized_gaussian_logpmf(x.expand_as(mu), mu, log_sigma, levels).sum(-1)
    return normal_logpdf(x, mu, log_sigma).sum(-1)


def likelihood_mean(
    likelihood: str, out: torch.Tensor, dim: int, levels: int | None
) -> torch.Tensor:
    """The decoder's mean image on [0, 1] (the Gaussians' mean parameter, clamped): [..., D]."""
    if likelihood == "categorical":
        return categorical_mean(out.unflatten(-1, (dim, levels)), levels)
    if likelihood == "bernoulli":
        return torch.sigmoid(out)
    return out[..., :dim].clamp(0, 1)


def categorical_from_uniform(log_probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index drawn by inverse CDF: log_probs [..., K] (normalised), u [...] uniform -> long [...].

    Randomness stays in the caller's noise dict (vmap randomness="error" forbids sampling ops).
    """
    cdf = torch.cumsum(torch.softmax(log_probs, dim=-1), dim=-1)
    k = (cdf < u.unsqueeze(-1)).sum(-1)
    return torch.clamp(k, max=log_probs.shape[-1] - 1)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style embedding of (float) timesteps t [...] -> [..., dim] (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.to(torch.float32).unsqueeze(-1) * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return nn.functional.pad(emb, (0, dim - 2 * half))


class TimeMLP(nn.Module):
    """Denoiser MLP on (x_t, t) for the diffusion families: the embedding of t (a fraction of T,
    scaled to 0..1000 like Ho et al.'s integer steps) is added to the input projection, then
    pre-activation residual blocks."""

    def __init__(self, dim: int, out: int, hidden: int, depth: int, time_dim: int):
        super().__init__()
        self.time_dim = time_dim
        self.inp = nn.Linear(dim, hidden)
        self.time = mlp([time_dim, hidden, hidden])
        self.blocks = nn.ModuleList(mlp([hidden, hidden, hidden]) for _ in range(depth))
        self.out = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.time(sinusoidal_embedding(1000 * t_frac, self.time_dim))
        for block in self.blocks:
            h = h + block(nn.functional.silu(h))
        return self.out(nn.functional.silu(h))
