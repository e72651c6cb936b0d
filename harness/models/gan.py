"""GAN: an MLP generator and discriminator, each with its own Adam. No likelihood.

Goodfellow et al. 2014 ("Generative Adversarial Nets"), with the non-saturating generator
loss of their section 3 (G maximises log D(G(z)) instead of minimising log(1 - D(G(z)))), and
optionally the R1 penalty of Mescheder et al. 2018 ("Which Training Methods for GANs do
actually Converge?"): gamma / 2 * E_real ||grad_x D(x)||^2 on the discriminator.

A GAN has no likelihood: it reports no NLL, and a prediction on one fails at ``harness check``
with the list of what it does report. Its metrics (test split, all lower is better):

- ``d_loss``: the discriminator's loss, softplus(-D(x)) + softplus(D(G(z))), one fresh z per
  test example (log 4 = 1.386 is the loss of a D that cannot tell real from fake);
- ``g_loss``: the non-saturating generator loss softplus(-D(G(z))) on those z;
- ``nn_dist``: squared distance from each test example to its nearest of ``eval_pool``
  generated samples (a coverage reading: a dropped mode leaves its test points far away);
  it is per dimension (divided by D) so image and 2-D sizes compare.
The D/G losses are diagnostics, not sample quality (they are relative to that run's own D);
``Training(sample_metrics=True)`` adds FID & co. from the samples.

Training: each step runs ``d_steps`` discriminator updates (each on its own minibatch and
noise from the seed's streams) and then one generator update (harness/models/groups.py).

Deviations from the papers: MLPs (LeakyReLU 0.2) on flattened data instead of their
architectures; Adam with per-network learning rates (Config ``lr_g``, ``lr_d``; Training.lr is
not used) where Goodfellow et al. used SGD with momentum; a sigmoid output puts samples on
[0, 1] (``output="linear"`` for unbounded data: the engine then clamps the sample grid, not
the metrics); R1 is off by default (``r1_gamma=0``); ``d_steps`` counts updates on fresh
minibatches, as their Algorithm 1's k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.base import GenerativeModel
from harness.models.groups import Group, Stage, Update
from harness.registry import register_model

OUTPUTS = ("sigmoid", "linear")
LEAK = 0.2  # LeakyReLU slope, in the networks and in R1's input gradient


def _leaky_mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(LEAK))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class GANConfig:
    latent_dim: int = 16  # size of the generator's input z ~ N(0, I)
    hidden: int = 128  # width of each hidden layer, generator and discriminator alike
    depth: int = 2  # hidden layers in each network
    lr_g: float = 2e-4  # the generator's Adam learning rate (Training.lr is not used)
    lr_d: float = 2e-4  # the discriminator's Adam learning rate
    beta1: float = 0.5  # Adam beta1 of both networks (0.5: the usual GAN setting)
    beta2: float = 0.999  # Adam beta2 of both networks
    d_steps: int = 1  # discriminator updates per generator update (Goodfellow et al.'s k)
    r1_gamma: float = 0.0  # R1 penalty weight on real data (Mescheder et al. 2018); 0 = off
    output: str = "sigmoid"  # generator output: "sigmoid" (data on [0, 1]) or "linear"
    eval_pool: int = 512  # generated samples each test example's nn_dist searches

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden", "depth", "d_steps", "eval_pool"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.r1_gamma >= 0:
            raise ValueError(f"r1_gamma must be >= 0, got {self.r1_gamma!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}, got {self.output!r}")


@register_model("gan")
class GAN(GenerativeModel):
    Config = GANConfig
    metrics = ("d_loss", "g_loss", "nn_dist")
    # Trials differing only in the learning rates share one block (r1_gamma switches code on,
    # so it is not per member).
    hyper = ("lr_g", "lr_d")
    groups = {
        "generator": Group(("gen.",), lr="lr_g", betas=("beta1", "beta2")),
        "discriminator": Group(("disc.",), lr="lr_d", betas=("beta1", "beta2")),
    }
    stages = (
        Stage("adversarial", (Update("discriminator", "d_loss", repeat="d_steps"), Update("generator", "g_loss"))),
    )

    def __init__(self, config: GANConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        self.gen = _leaky_mlp([c.latent_dim] + [c.hidden] * c.depth + [self.dim])
        self.disc = _leaky_mlp([self.dim] + [c.hidden] * c.depth + [1])

    # -- pieces -----------------------------------------------------------------------------
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        out = self.gen(z)
        return torch.sigmoid(out) if self.config.output == "sigmoid" else out

    def _d_and_input_grad(self, x: torch.Tensor):
        """D(x) [n] and grad_x D(x) [n, D] by hand (backprop through the MLP's layers): plain
        ops, so it vmaps and the engine's autograd differentiates it (R1's double backward)."""
        h, slopes = x, []
        for layer in self.disc:
            if isinstance(layer, nn.Linear):
                h = layer(h)
            else:
                slopes.append(torch.where(h > 0, 1.0, LEAK).to(h.dtype))
                h = layer(h)
        linears = [m for m in self.disc if isinstance(m, nn.Linear)]
        g = linears[-1].weight.expand(x.shape[0], -1)  # [n, hidden]
        for lin, s in zip(reversed(linears[:-1]), reversed(slopes)):
            g = (g * s) @ lin.weight
        return h.squeeze(-1), g

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        z = {"z": torch.randn(n, self.config.latent_dim, generator=generator, device=device)}
        if method == "evaluate":
            z["pool"] = torch.randn(self.config.eval_pool, self.config.latent_dim, generator=generator, device=device)
        return z

    def d_loss(self, x, noise):
        fake = self.generate(noise["z"])
        if self.config.r1_gamma > 0:
            d_real, grad = self._d_and_input_grad(x)
            r1 = grad.pow(2).sum(-1).mean()
        else:
            d_real, r1 = self.disc(x).squeeze(-1), x.new_zeros(())
        d_fake = self.disc(fake).squeeze(-1)
        adv = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        loss = adv + 0.5 * self.config.r1_gamma * r1
        return loss, {"d_loss": adv, "r1": r1, "d_real": torch.sigmoid(d_real).mean(), "d_fake": torch.sigmoid(d_fake).mean()}

    def g_loss(self, x, noise):
        loss = F.softplus(-self.disc(self.generate(noise["z"])).squeeze(-1)).mean()
        return loss, {"g_loss": loss}

    def evaluate(self, x, noise):
        d_real = self.disc(x).squeeze(-1)
        d_fake = self.disc(self.generate(noise["z"])).squeeze(-1)
        pool = self.generate(noise["pool"])
        d2 = (x.pow(2).sum(-1, keepdim=True) - 2 * x @ pool.T + pool.pow(2).sum(-1)).clamp(min=0)
        return {
            "d_loss": F.softplus(-d_real) + F.softplus(d_fake),
            "g_loss": F.softplus(-d_fake),
            "nn_dist": d2.min(-1).values / self.dim,
        }

    def sample(self, noise):
        return self.generate(noise["z"])
