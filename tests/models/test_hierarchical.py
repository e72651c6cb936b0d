"""hvae and residual_pixel_vae: training, seed independence, bound ordering, per-level rates."""

from __future__ import annotations

import pytest
import torch

import harness.models.hierarchical  # noqa: F401  (registers hvae, residual_pixel_vae)
from harness.models.hierarchical import HierarchicalVAE, ResidualPixelVAE
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, noise_for, train_two_seeds

SMALL = {"latent_dim": 4, "hidden": 32, "depth": 1}


def test_registered():
    assert MODELS["hvae"] is HierarchicalVAE and MODELS["residual_pixel_vae"] is ResidualPixelVAE
    assert ResidualPixelVAE.Config().coding == "pixel"


@pytest.mark.parametrize(
    "posterior, coding", [("free", "latent"), ("residual", "latent"), ("residual", "pixel")]
)
def test_trains_two_seeds(digits, posterior, coding):
    train_two_seeds(
        HierarchicalVAE,
        HierarchicalVAE.Config(levels_z=3, posterior=posterior, coding=coding, **SMALL),
        digits,
    )


def test_bernoulli_pixel_coding_trains(digits_binary):
    train_two_seeds(
        ResidualPixelVAE,
        ResidualPixelVAE.Config(levels_z=2, likelihood="bernoulli", **SMALL),
        digits_binary,
    )


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(HierarchicalVAE, HierarchicalVAE.Config(levels_z=2, **SMALL), digits)


@pytest.mark.parametrize("posterior, coding", [("free", "latent"), ("residual", "pixel")])
def test_iwae_below_elbo_and_non_increasing_in_k(digits, posterior, coding):
    torch.manual_seed(0)
    cfg = HierarchicalVAE.Config(levels_z=3, posterior=posterior, coding=coding, **SMALL)
    model = HierarchicalVAE(cfg, digits.shape, digits.levels)
    with torch.no_grad():  # move q off the prior (small models collapse early in training)
        for head in model.post:
            head[-1].bias[: cfg.latent_dim] += 1.0
    x = digits.test[:100]
    means = []
    with torch.no_grad():
        for k in (1, 4, 32):
            m = model.evaluate(x, noise_for(model, "evaluate", x.shape[0], k, seed=k))
            assert (m["iwae_nll"] <= m["neg_elbo"] + 1e-4).all()  # Jensen, per example
            means.append(m["iwae_nll"].mean().item())
    assert means[0] >= means[1] >= means[2]


def test_per_level_rates_sum_to_the_rate_and_absent_levels_are_zero(digits):
    torch.manual_seed(0)
    model = HierarchicalVAE(
        HierarchicalVAE.Config(levels_z=2, **SMALL), digits.shape, digits.levels
    )
    x = digits.test[:50]
    with torch.no_grad():
        m = model.evaluate(x, noise_for(model, "evaluate", 50, 64))
    assert torch.allclose(m["rate_l1"] + m["rate_l2"], m["rate"], atol=1e-4)
    assert (m["rate_l1"] > 0).all() and (m["rate_l2"] > 0).all()
    assert torch.equal(m["rate_l3"], torch.zeros(50)) and torch.equal(m["rate_l4"], torch.zeros(50))
    # The closed-form KLs are the expectation of the Monte Carlo log q - log p (within 4 s.e.).
    with torch.no_grad():
        _, log_ratio, kls = model._terms(x, noise_for(model, "evaluate", 50, 400)["eps"])
    diff = log_ratio - kls.sum(0)  # [K, n]
    assert diff.mean().abs() < 4 * diff.std() / diff.numel() ** 0.5


def test_residual_and_free_posteriors_agree_at_one_level(digits):
    # With one level the prior is N(0, I), so NVAE's residual normal *is* the free posterior.
    results = []
    for posterior in ("free", "residual"):
        torch.manual_seed(0)
        model = HierarchicalVAE(
            HierarchicalVAE.Config(levels_z=1, posterior=posterior, **SMALL),
            digits.shape,
            digits.levels,
        )
        with torch.no_grad():
            results.append(model.evaluate(digits.test[:20], noise_for(model, "evaluate", 20, 4)))
    for name in ("neg_elbo", "rate", "iwae_nll"):
        assert torch.allclose(results[0][name], results[1][name], atol=1e-5)


def test_pixel_coding_encoder_sees_the_residual(digits):
    # Level 2's posterior must change when level 1's prediction changes, with x held fixed.
    torch.manual_seed(0)
    model = ResidualPixelVAE(
        ResidualPixelVAE.Config(levels_z=2, **SMALL), digits.shape, digits.levels
    )
    x = digits.test[:8]
    nz = noise_for(model, "evaluate", 8, 1)
    with torch.no_grad():
        before = model.evaluate(x, nz)["rate_l2"]
        model.heads[0][-1].bias.add_(torch.randn(model.heads[0][-1].bias.shape))  # level 1 only
        after = model.evaluate(x, nz)["rate_l2"]
    assert not torch.allclose(before, after)


def test_free_bits_hold_each_level_in_training_but_not_in_the_metrics(digits):
    x = digits.train[:64]
    torch.manual_seed(0)
    plain = HierarchicalVAE(HierarchicalVAE.Config(levels_z=2, **SMALL), digits.shape, digits.levels)
    held = HierarchicalVAE(HierarchicalVAE.Config(levels_z=2, free_bits=50.0, **SMALL), digits.shape, digits.levels)
    held.load_state_dict(plain.state_dict())
    noise = noise_for(plain, "loss", 64, 1)
    (obj_p, logs_p), (obj_h, logs_h) = plain.loss(x, noise), held.loss(x, noise)
    assert logs_h["rate"] == logs_p["rate"] and logs_p["rate"] < 100.0  # the true KL is logged
    # at init every level's KL is below 50 nats: the objective counts 50 for each of the 2
    assert obj_h.item() == pytest.approx(logs_h["distortion"].item() + 2 * 50.0, rel=1e-6)
    assert obj_p.item() == pytest.approx(logs_p["neg_elbo"].item(), rel=1e-6)


def test_draws_are_on_the_level_grid_and_train_in_a_block(digits):
    cfg = HierarchicalVAE.Config(levels_z=2, sample="draw", **SMALL)
    train_two_seeds(HierarchicalVAE, cfg, digits)
    model = HierarchicalVAE(cfg, digits.shape, digits.levels)
    with torch.no_grad():
        x = model.sample(noise_for(model, "sample", 20, 1))
    grid = x * (digits.levels - 1)
    assert torch.allclose(grid, grid.round()) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="draw"):
        HierarchicalVAE.Config(sample="draw", likelihood="gaussian")
    with pytest.raises(ValueError, match="free_bits"):
        HierarchicalVAE.Config(free_bits=-1.0)
