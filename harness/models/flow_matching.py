"""Flow matching with the linear (optimal-transport) path (Lipman et al. 2023; rectified flow,
Liu et al. 2023).

Data x on [0, 1] are scaled to x1 = 2x - 1 (as the DDPM does). With x0 ~ N(0, I) and
t ~ U[0, 1], the conditional path x_t = (1 - t) x0 + t x1 has the conditional velocity
x1 - x0, and the network v(x_t, t) is trained by conditional flow matching,

  L = E_{t, x0, x1} || v(x_t, t) - (x1 - x0) ||^2   (mean over pixels),

whose minimiser is the marginal velocity E[x1 - x0 | x_t] (Lipman et al. thm. 2). Sampling
integrates dx/dt = v(x, t) from x0 ~ N(0, I) at t = 0 to t = 1 with ``sample_steps`` fixed
steps of Euler or Heun (2nd order: two network calls per step); samples are mapped
back to [0, 1], clipped, and for discrete data rounded to the nearest level.

The network is the DDPM's time-conditioned MLP (``harness.models._util.TimeMLP``, the class
``harness.models.diffusion.DDPM`` uses), with t on [0, 1] in place of the DDPM's t / T.

The metric. ``fm_loss`` is the training objective on the test split (``eval_samples`` draws
of (t, x0) per image, averaged). It is NOT a likelihood and not a bound: its minimum is the
irreducible conditional variance of x1 - x0 given x_t, which is not zero, and it measures how
well the velocity field is fit, not sample quality. This model reports no likelihood (the ODE's
instantaneous change-of-variables likelihood with a Hutchinson trace estimator is left out).

Deviations from the papers: an MLP on flattened images (the papers use U-Nets); fixed-step
Euler / Heun instead of the adaptive dopri5 solver the papers sample with; t ~ U[0, 1] with no
time reweighting; no likelihood; rectified flow's reflow (re-training on the model's own
couplings) is not done: this is 1-rectified flow, i.e. plain conditional flow matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.models._util import TimeMLP
from harness.models.base import GenerativeModel
from harness.registry import register_model

SAMPLERS = ("euler", "heun")


@dataclass(frozen=True)
class FlowMatchingConfig:
    hidden: int = 256  # width of the velocity MLP (the DDPM's denoiser network)
    depth: int = 3  # residual blocks in the velocity MLP
    time_dim: int = 64  # size of the sinusoidal time embedding
    sampler: str = "heun"  # ODE solver for sampling: "euler" (1st order) or "heun" (2nd order)
    sample_steps: int = 25  # fixed solver steps from t = 0 to 1 (Heun: 2 network calls per step)

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "time_dim", "sample_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}")


@register_model("flow_matching")
class FlowMatching(GenerativeModel):
    Config = FlowMatchingConfig
    metrics = ("fm_loss",)

    def __init__(self, config: FlowMatchingConfig, shape: tuple[int, ...], levels: int | None):
        super().__init__(config, shape, levels)
        c = config
        self.net = TimeMLP(self.dim, self.dim, c.hidden, c.depth, c.time_dim)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v(x, t) [..., D] in the scaled units (x1 = 2 * data - 1); t [...] on [0, 1]."""
        return self.net(x, t)

    def _fm_loss(self, x: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Per-draw loss [...]: x [n, D], t [..., n], x0 [..., n, D]."""
        x1 = 2 * x - 1
        x_t = (1 - t.unsqueeze(-1)) * x0 + t.unsqueeze(-1) * x1
        return (self.velocity(x_t, t) - (x1 - x0)).pow(2).mean(-1)

    # -- the contract -----------------------------------------------------------------------
    def noise(self, method, n, k, generator, device):
        D = self.dim
        if method == "sample":
            return {"x0": torch.randn(n, D, generator=generator, device=device)}
        k = 1 if method == "loss" else k
        return {
            "t": torch.rand(k, n, generator=generator, device=device),
            "x0": torch.randn(k, n, D, generator=generator, device=device),
        }

    def loss(self, x, noise):
        loss = self._fm_loss(x, noise["t"], noise["x0"]).mean()
        return loss, {"fm_loss": loss}

    def evaluate(self, x, noise):
        return {"fm_loss": self._fm_loss(x, noise["t"], noise["x0"]).mean(0)}

    def sample(self, noise):
        c = self.config
        x = noise["x0"]
        h = 1.0 / c.sample_steps
        for i in range(c.sample_steps):
            t = torch.full(x.shape[:-1], i * h, dtype=x.dtype, device=x.device)
            v = self.velocity(x, t)
            if c.sampler == "heun":
                x_next = x + h * v
                x = x + 0.5 * h * (v + self.velocity(x_next, t + h))
            else:
                x = x + h * v
        x = ((x + 1) / 2).clamp(0, 1)
        if self.levels:  # the nearest level: samples on the data's grid
            x = torch.round(x * (self.levels - 1)) / (self.levels - 1)
        return x
