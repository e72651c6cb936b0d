"""flow_matching: the analytic velocity of Gaussian data, samplers, seed independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.engine import train_block
from harness.hypothesis import Training
from harness.models import diffusion
from harness.models.flow_matching import FlowMatching
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, assert_vmapped_eval_equals_loop, noise_for, train_two_seeds

SMALL = {"hidden": 32, "depth": 1, "time_dim": 16, "sample_steps": 4}


def test_registered_and_uses_the_ddpm_network():
    assert MODELS["flow_matching"] is FlowMatching
    model = FlowMatching(FlowMatching.Config(**SMALL), (8, 8), 17)
    assert type(model.net) is diffusion.TimeMLP  # the DDPM's denoiser class, imported, not copied


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_trains_two_seeds(digits, sampler):
    train_two_seeds(FlowMatching, FlowMatching.Config(sampler=sampler, **SMALL), digits)


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(FlowMatching, FlowMatching.Config(**SMALL), digits)


def test_vmapped_eval_equals_loop(digits):
    assert_vmapped_eval_equals_loop(FlowMatching, FlowMatching.Config(**SMALL), digits)


def analytic_velocity(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor, s: float) -> torch.Tensor:
    """E[x1 - x0 | x_t = x] for x0 ~ N(0, I), x1 ~ N(m, s^2 I), x_t = (1 - t) x0 + t x1.

    x_t ~ N(t m, var_t I) with var_t = (1 - t)^2 + t^2 s^2, and per dimension
    Cov(x1 - x0, x_t) = t s^2 - (1 - t); the pair is jointly Gaussian, so
    E[x1 - x0 | x_t] = m + (t s^2 - (1 - t)) / var_t * (x_t - t m).
    """
    t = t.unsqueeze(-1)
    var_t = (1 - t) ** 2 + t**2 * s**2
    return m + (t * s**2 - (1 - t)) / var_t * (x - t * m)


def test_learned_velocity_approaches_the_analytic_one_for_gaussian_data():
    torch.manual_seed(0)
    m_x, s_x = torch.tensor([0.7, 0.35]), 0.2  # data units; the model sees 2x - 1
    m, s = 2 * m_x - 1, 2 * s_x
    model = FlowMatching(FlowMatching.Config(hidden=64, depth=2, time_dim=16), (2,), None)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):  # fresh data every step: the population loss, not a fit to one batch
        x = m_x + s_x * torch.randn(256, 2, generator=g)
        opt.zero_grad()
        model.loss(x, model.noise("loss", 256, 1, g, torch.device("cpu")))[0].backward()
        opt.step()
    t = torch.rand(4000, generator=g) * 0.9 + 0.05
    x_t = (1 - t[:, None]) * torch.randn(4000, 2, generator=g) + t[:, None] * (m + s * torch.randn(4000, 2, generator=g))
    with torch.no_grad():
        v = model.velocity(x_t, t)
    v_star = analytic_velocity(x_t, t, m, s)
    # Mean squared error relative to the spread of the true field: 1.2% measured after 300
    # steps (about 1 at initialisation); the tolerance is 3%.
    rel = (v - v_star).pow(2).mean() / (v_star - v_star.mean(0)).pow(2).mean()
    assert rel.item() < 0.03, rel.item()


def test_heun_is_exact_for_a_linear_field_where_euler_is_not():
    # With the network replaced by v(x, t) = x the flow is x(1) = e * x(0) (0.82: inside the
    # clip to [-1, 1]). Heun's local error is O(h^3), Euler's O(h^2).
    model = FlowMatching(FlowMatching.Config(hidden=8, depth=1, time_dim=8, sample_steps=20), (2,), None)
    model.velocity = lambda x, t: x
    x0 = torch.full((1, 2), 0.3)
    out = {}
    for sampler in ("euler", "heun"):
        object.__setattr__(model, "config", FlowMatching.Config(hidden=8, depth=1, time_dim=8, sample_steps=20, sampler=sampler))
        out[sampler] = (model.sample({"x0": x0}) * 2 - 1)[0, 0].item()
    exact = 0.3 * np.e
    assert abs(out["heun"] - exact) < 1e-3 < abs(out["euler"] - exact)


def test_loss_improves_with_training_and_samples_are_on_the_levels(digits):
    cfg = FlowMatching.Config(hidden=64, depth=1, time_dim=16, sample_steps=5)
    out = []
    for steps in (1, 150):
        t = Training(steps=steps, batch_size=64, lr=2e-3, eval_samples=2, n_samples=8, log_every=50)
        (r,) = train_block(FlowMatching, cfg, t, digits, [0], device="cpu")
        out.append(r)
    assert out[1].metrics["fm_loss"] < out[0].metrics["fm_loss"] - 0.2
    s = out[1].samples
    assert np.allclose(s * 16, np.round(s * 16), atol=1e-5) and s.min() >= 0 and s.max() <= 1


def test_evaluate_averages_the_draws():
    torch.manual_seed(2)
    model = FlowMatching(FlowMatching.Config(**SMALL), (3,), None)
    x = torch.rand(5, 3)
    nz = noise_for(model, "evaluate", 5, 4)
    with torch.no_grad():
        whole = model.evaluate(x, nz)["fm_loss"]
        parts = [model.evaluate(x, {"t": nz["t"][j : j + 1], "x0": nz["x0"][j : j + 1]})["fm_loss"] for j in range(4)]
    torch.testing.assert_close(whole, torch.stack(parts).mean(0))


@pytest.mark.parametrize("field, value", [("sample_steps", 0), ("hidden", 0), ("sampler", "rk4"), ("time_dim", 0)])
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        FlowMatching.Config(**{field: value})
