"""gan: two optimisers through the groups contract; R1's hand-written input gradient; mode
coverage on an 8-mode ring; divergence is a FAILED member, never a crash; no likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness import DeclarationError, Hypothesis, Prediction, Training
from harness.data import Dataset
from harness.engine import train_block
from harness.models.gan import GAN
from harness.registry import DATASETS, register_dataset

from .helpers import FAST, assert_seed_equivalence, noise_for, train_two_seeds

SMALL = {"latent_dim": 4, "hidden": 32, "depth": 1}

# 8 Gaussians on a ring inside [0, 1]^2 (the GAN's sigmoid output range).
CENTRES = np.array(
    [[0.5 + 0.35 * math.cos(2 * math.pi * k / 8), 0.5 + 0.35 * math.sin(2 * math.pi * k / 8)] for k in range(8)],
    dtype=np.float32,
)
SIGMA = 0.02


@register_dataset("test_ring8")
def ring8(root=None) -> Dataset:
    rng = np.random.default_rng(0)

    def draw(n):
        x = CENTRES[rng.integers(0, 8, n)] + rng.normal(0, SIGMA, (n, 2))
        return torch.from_numpy(x.astype(np.float32))

    return Dataset("test_ring8", draw(4000), draw(1000), (2,), None)


def test_trains_stacked_with_r1_and_two_d_steps(digits):
    res = train_two_seeds(GAN, GAN.Config(d_steps=2, r1_gamma=1.0, **SMALL), digits)
    assert set(res[0].history) >= {"d_loss", "g_loss", "r1"}


def test_a_seed_alone_equals_the_same_seed_in_a_block(digits):
    assert_seed_equivalence(GAN, GAN.Config(d_steps=2, r1_gamma=1.0, **SMALL), digits)


def test_loop_mode_matches_vmap(digits):
    cfg = GAN.Config(d_steps=2, **SMALL)
    a = train_block(GAN, cfg, FAST, digits, [0, 1], device="cpu", mode="vmap")
    b = train_block(GAN, cfg, FAST, digits, [0, 1], device="cpu", mode="loop")
    for x, y in zip(a, b):
        for k, v in x.metrics.items():
            assert y.metrics[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k


def test_r1_input_gradient_matches_autograd(digits):
    torch.manual_seed(0)
    model = GAN(GAN.Config(**SMALL), digits.shape, digits.levels)
    x = digits.train[:5].clone().requires_grad_(True)
    d, grad = model._d_and_input_grad(x)
    (ref,) = torch.autograd.grad(model.disc(x).sum(), x)
    assert torch.allclose(d, model.disc(x).squeeze(-1)) and torch.allclose(grad, ref, atol=1e-6)


def test_d_steps_updates_use_fresh_batches_and_change_the_run(digits):
    one = train_block(GAN, GAN.Config(d_steps=1, **SMALL), FAST, digits, [0], device="cpu")[0]
    two = train_block(GAN, GAN.Config(d_steps=2, **SMALL), FAST, digits, [0], device="cpu")[0]
    assert one.metrics != two.metrics


def test_covers_the_modes_of_a_ring():
    ds = DATASETS["test_ring8"]()
    cfg = GAN.Config(latent_dim=4, hidden=64, lr_g=2e-3, lr_d=2e-3, r1_gamma=0.01)
    training = Training(steps=1500, batch_size=128, eval_samples=1, n_samples=1000, log_every=500)
    res = train_block(GAN, cfg, training, ds, [0], device="cpu")[0]
    assert res.status == "FINISHED", res.error
    d = np.linalg.norm(res.samples[:, None, :] - CENTRES[None], axis=-1)
    near = d.min(1) < 3 * SIGMA
    covered = len(set(d.argmin(1)[near].tolist()))
    assert covered >= 6, covered
    assert near.mean() >= 0.5, near.mean()  # most samples within 3 sigma of a mode
    assert res.metrics["nn_dist"] < 0.01


def test_an_absurd_learning_rate_fails_that_member_only(digits):
    sane, absurd = GAN.Config(**SMALL), GAN.Config(**{**SMALL, "lr_d": 1e12, "lr_g": 1e12})
    training = Training(steps=30, batch_size=32, eval_samples=2, n_samples=4, log_every=10)
    res = train_block(GAN, sane, training, digits, [0, 1], device="cpu", members=[(sane, training), (absurd, training)])
    assert res[0].status == "FINISHED" and all(math.isfinite(v) for v in res[0].metrics.values())
    assert res[1].status == "FAILED" and "diverged" in res[1].error
    assert all(math.isnan(v) for v in res[1].metrics.values())


@pytest.mark.parametrize(
    "field, value", [("d_steps", 0), ("latent_dim", -1), ("lr_d", 0.0), ("beta1", 1.0), ("r1_gamma", -1.0), ("output", "tanh")]
)
def test_invalid_config_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        GAN.Config(**{field: value})


def test_a_likelihood_prediction_is_refused_with_what_it_reports():
    with pytest.raises(DeclarationError) as info:
        Hypothesis(
            claim="c", model="gan", dataset="digits", ablate={"d_steps": [1, 2]},
            prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.5), seeds=2,
        )
    assert info.value.field == "prediction.metric"
    assert "d_loss" in str(info.value) and "nn_dist" in str(info.value) and "fid" in str(info.value)
    with pytest.raises(DeclarationError) as info:  # a bad Config value is located too
        Hypothesis(
            claim="c", model="gan", dataset="digits", ablate={"d_steps": [0, 2]},
            prediction=Prediction(metric="nn_dist", direction="lower", effect=0.01), seeds=2,
        )
    assert "d_steps" in str(info.value)


def test_noise_is_the_models_only_randomness(digits):
    model = GAN(GAN.Config(**SMALL), digits.shape, digits.levels)
    assert set(noise_for(model, "loss", 3, 1)) == {"z"}
    assert noise_for(model, "evaluate", 3, 1)["pool"].shape == (512, 4)
