"""SUNDAE: step-unrolled denoising autoencoder on discrete levels (Savinov et al. 2022).

Each pixel is a token in {0..K-1} (K = the dataset's ``levels``). A denoiser f maps a whole
(noisy) image of tokens to per-pixel logits over the K values; it is not conditioned on a
noise level or step.

Training (the paper's sec. 3): corrupt the clean image x0 by drawing a fraction a ~ U[0, 1] per
image and replacing each token, with probability a, by a uniformly random token. Then unroll:
x^(1) is the corrupted image, and x^(s+1) is a sample of the model's own prediction
Cat(softmax f(x^(s))) (no gradient through the sample). The loss is the sum over the
``unroll`` steps of the cross-entropy of f(x^(s)) against x0, summed over pixels. Unrolling
trains the denoiser on the kind of inputs it will meet while sampling: its own outputs.

Sampling: start from uniformly random tokens and apply the denoiser ``sample_steps`` times,
each time drawing every token from softmax(f(x) / ``temperature``); with ``update_fraction``
< 1 only a random subset of tokens (each with that probability, fresh per step) takes its new
draw and the rest keep their value, the paper's "update a random subset" schedule for few-step
sampling. Every draw is an inverse-CDF lookup of a uniform from the noise dict.

The metrics are NOT likelihoods and not bounds: ``denoise_ce`` is the test cross-entropy
(nats per image, summed over pixels) of the first denoising step on freshly corrupted test
images, ``unrolled_ce`` the training objective on the test split (summed over the ``unroll``
steps). SUNDAE defines no tractable likelihood.

Deviations from the paper: an MLP on the flattened one-hot image instead of a Transformer;
images of ``levels``-valued pixels instead of text tokens; the unrolled losses are summed (not
averaged); ``update_fraction`` is one constant for every step (the paper's own proportion and
its annealing were tuned per task); no length prediction, no argmax-unrolled decoding and
no conditioning; Adam with the engine's settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.models._util import categorical_from_uniform, categorical_logpmf, mlp
from harness.models.base import GenerativeModel
from harness.registry import register_model


@dataclass(frozen=True)
class SUNDAEConfig:
    hidden: int = 512  # width of the denoiser MLP
    depth: int = 2  # hidden layers of the denoiser MLP
    unroll: int = 2  # denoising steps unrolled in training (1: a plain denoising autoencoder)
    sample_steps: int = 10  # denoising steps when sampling, from uniformly random tokens
    temperature: float = 1.0  # sampling temperature: tokens drawn from softmax(logits / temperature)
    update_fraction: float = 1.0  # chance that a token takes its new draw at each sampling step
    # (1: every token updates; < 1: the paper's random-subset schedule)

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "unroll", "sample_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if not (isinstance(self.update_fraction, (int, float)) and 0 < self.update_fraction <= 1):
            raise ValueError(f"update_fraction must lie in (0, 1], got {self.update_fraction!r}")


@register_model("sundae")
class SUNDAE(GenerativeModel):
    Config = SUNDAEConfig
    metrics = ("denoise_ce", "unrolled_ce")

    def __init__(self, config: SUNDAEConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        if not levels:
            raise ValueError("sundae needs discrete data (a dataset with levels): its pixels are tokens")
        width = self.dim * levels
        self.net = mlp([width] + [config.hidden] * config.depth + [width])

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Denoiser logits [..., D, K] for tokens [..., D] (long)."""
        # A comparison, not F.one_hot: F.one_hot inspects the data (its max), which vmap forbids.
        one_hot = (tokens.unsqueeze(-1) == torch.arange(self.levels, device=tokens.device)).float()
        return self.net(one_hot.flatten(-2)).unflatten(-1, (self.dim, self.levels))

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * (self.levels - 1)).long()

    def _corrupt(self, tokens, frac, u_keep, u_token):
        """Each token replaced, with probability ``frac`` (per image), by a uniform token."""
        random = torch.clamp((u_token * self.levels).long(), max=self.levels - 1)
        return torch.where(u_keep < frac.unsqueeze(-1), random, tokens)

    def _unrolled(self, x: torch.Tensor, noise: dict) -> torch.Tensor:
        """Cross-entropy [unroll, ...] of each unrolled step (summed over pixels)."""
        x0 = self._tokens(x)
        cur = self._corrupt(x0, noise["frac"], noise["u_keep"], noise["u_token"])
        ces = []
        for s in range(self.config.unroll):
            logits = self.logits(cur)
            ces.append(-categorical_logpmf(logits, x, self.levels).sum(-1))
            if s + 1 < self.config.unroll:  # feed the model's own sample back, no gradient
                cur = categorical_from_uniform(torch.log_softmax(logits.detach(), -1), noise["u_unroll"][s])
        return torch.stack(ces)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        D, c = self.dim, self.config
        if method == "sample":
            return {
                "u_init": torch.rand(n, D, generator=generator, device=device),
                "u_token": torch.rand(c.sample_steps, n, D, generator=generator, device=device),
                "u_update": torch.rand(c.sample_steps, n, D, generator=generator, device=device),
            }
        k = 1 if method == "loss" else k
        return {
            "frac": torch.rand(k, n, generator=generator, device=device),
            "u_keep": torch.rand(k, n, D, generator=generator, device=device),
            "u_token": torch.rand(k, n, D, generator=generator, device=device),
            "u_unroll": torch.rand(max(c.unroll - 1, 1), k, n, D, generator=generator, device=device),
        }

    def loss(self, x, noise):
        ces = self._unrolled(x, noise)  # [unroll, 1, n]
        total = ces.sum(0).mean()
        return total, {"unrolled_ce": total, "denoise_ce": ces[0].mean()}

    def evaluate(self, x, noise):
        ces = self._unrolled(x, noise)  # [unroll, k, n]: k corruptions per test image
        return {"denoise_ce": ces[0].mean(0), "unrolled_ce": ces.sum(0).mean(0)}

    def sample(self, noise):
        c, K = self.config, self.levels
        x = torch.clamp((noise["u_init"] * K).long(), max=K - 1)  # uniformly random tokens
        for s in range(c.sample_steps):
            log_p = torch.log_softmax(self.logits(x) / c.temperature, -1)
            draw = categorical_from_uniform(log_p, noise["u_token"][s])
            x = torch.where(noise["u_update"][s] < c.update_fraction, draw, x)
        return x.to(noise["u_init"].dtype) / (K - 1)
