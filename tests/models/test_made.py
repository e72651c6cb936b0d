"""made: exact autoregressive likelihood, masks, orderings, sampling, seed independence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from harness.engine import train_block
from harness.hypothesis import Training
from harness.models.made import MADE
from harness.registry import MODELS

from .helpers import (
    assert_seed_equivalence,
    assert_vmapped_eval_equals_loop,
    noise_for,
    quick_fit,
    train_two_seeds,
)

SMALL = {"hidden": 32, "depth": 2}


def test_registered():
    assert MODELS["made"] is MADE


@pytest.mark.parametrize("orderings", [1, 3])
def test_trains_two_seeds(digits, orderings):
    train_two_seeds(MADE, MADE.Config(orderings=orderings, **SMALL), digits)


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(MADE, MADE.Config(orderings=3, **SMALL), digits)


def test_vmapped_eval_equals_loop(digits_binary):
    assert_vmapped_eval_equals_loop(MADE, MADE.Config(orderings=2, **SMALL), digits_binary)


@pytest.mark.parametrize("orderings", [1, 3])
def test_output_i_depends_only_on_inputs_before_i(orderings):
    torch.manual_seed(0)
    d, K = 6, 3
    model = MADE(MADE.Config(hidden=16, depth=2, orderings=orderings), (d,), K)
    with torch.no_grad():  # random weights everywhere, so no allowed path is zero by chance
        for p in model.parameters():
            p.normal_()
    x = torch.rand(d)
    for m in range(orderings):
        jac = torch.autograd.functional.jacobian(lambda v, m=m: model.logits(v, m), x)  # [d, K, d]
        depends = jac.abs().amax(1) > 0  # [output pixel, input pixel]
        rank = model.rank[m]
        allowed = rank[None, :] < rank[:, None]  # input j comes before output i
        assert not (depends & ~allowed).any()
        assert depends[allowed].float().mean() > 0.9  # and the allowed ones are really used
    if orderings > 1:
        assert not torch.equal(model.rank[0], model.rank[1])


@pytest.mark.parametrize("d, K, orderings", [(5, 2, 1), (4, 2, 3), (3, 3, 2)])
def test_probabilities_of_all_images_sum_to_one(d, K, orderings):
    torch.manual_seed(1)
    model = MADE(MADE.Config(hidden=16, depth=2, orderings=orderings), (d,), K)
    quick_fit(model, torch.randint(0, K, (20, d)).float() / (K - 1), steps=20)  # not uniform
    images = torch.tensor(list(itertools.product(range(K), repeat=d))).float() / (K - 1)
    with torch.no_grad():
        nll = model.evaluate(images, noise_for(model, "evaluate", len(images), 1))["nll"]
    assert nll.std() > 0.01
    assert torch.exp(-nll.double()).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_ensemble_is_the_mean_of_the_orderings_probabilities():
    torch.manual_seed(2)
    model = MADE(MADE.Config(hidden=16, depth=1, orderings=3), (4,), 2)
    x = torch.randint(0, 2, (7, 4)).float()
    with torch.no_grad():
        per = torch.stack([
            torch.distributions.Categorical(logits=model.logits(x, m)).log_prob(x.long()).sum(-1).exp()
            for m in range(3)
        ])
        nll = model.evaluate(x, {})["nll"]
    torch.testing.assert_close(nll, -per.mean(0).log())


def test_ancestral_samples_follow_the_model():
    # On d = 3 binary pixels the sample frequencies of the 8 images match exp(-nll).
    torch.manual_seed(3)
    model = MADE(MADE.Config(hidden=16, depth=1, orderings=2), (3,), 2)
    quick_fit(model, (torch.rand(50, 3) < torch.tensor([0.2, 0.5, 0.9])).float(), steps=40)
    images = torch.tensor(list(itertools.product(range(2), repeat=3))).float()
    with torch.no_grad():
        p = torch.exp(-model.evaluate(images, {})["nll"])
        s = model.sample(noise_for(model, "sample", 20_000, 1))
    freq = torch.stack([(s == img).all(-1).float().mean() for img in images])
    assert torch.allclose(freq, p, atol=0.015)


def test_nll_improves_with_training_and_bpd_is_consistent(digits):
    cfg = MADE.Config(hidden=64, depth=1)
    out = []
    for steps in (1, 150):
        t = Training(steps=steps, batch_size=64, lr=2e-3, n_samples=8, log_every=50)
        (r,) = train_block(MADE, cfg, t, digits, [0], device="cpu")
        out.append(r)
    assert out[1].metrics["nll"] < out[0].metrics["nll"] - 20
    m = out[1].metrics
    assert m["bpd"] == pytest.approx(m["nll"] / (64 * np.log(2)), rel=1e-5)
    s = out[1].samples
    assert np.allclose(s * 16, np.round(s * 16), atol=1e-5)  # on the data's 17 levels


def test_needs_discrete_data():
    with pytest.raises(ValueError, match="discrete"):
        MADE(MADE.Config(), (2,), None)


@pytest.mark.parametrize("field, value", [("orderings", 0), ("hidden", 0), ("depth", -1), ("orderings", True)])
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        MADE.Config(**{field: value})
