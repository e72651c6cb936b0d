"""iaf_vae and beta_vae: training, seed independence, bound ordering, flow correctness."""

from __future__ import annotations

import math

import pytest
import torch

import harness.models.iaf  # noqa: F401  (registers iaf_vae and beta_vae)
from harness.models._util import normal_logpdf
from harness.models.iaf import IAFVAE, MADE, BetaVAE
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, noise_for, quick_fit, train_two_seeds

SMALL = {"latent_dim": 4, "hidden": 32, "depth": 1, "flow_hidden": 16, "context_dim": 8}


def test_registered():
    assert MODELS["iaf_vae"] is IAFVAE and MODELS["beta_vae"] is BetaVAE
    assert BetaVAE.Config().posterior == "diagonal" and BetaVAE.Config().beta == 4.0


@pytest.mark.parametrize("posterior", ["diagonal", "linear_iaf", "iaf"])
def test_trains_two_seeds(digits, posterior):
    train_two_seeds(IAFVAE, IAFVAE.Config(posterior=posterior, **SMALL), digits)


def test_other_likelihoods_train(digits, digits_binary):
    train_two_seeds(IAFVAE, IAFVAE.Config(likelihood="bernoulli", **SMALL), digits_binary)
    train_two_seeds(BetaVAE, BetaVAE.Config(likelihood="discretized_gaussian", **SMALL), digits)
    with pytest.raises(ValueError, match="density"):
        IAFVAE(IAFVAE.Config(likelihood="gaussian", **SMALL), digits.shape, digits.levels)


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(IAFVAE, IAFVAE.Config(**SMALL), digits)


def test_made_is_autoregressive():
    torch.manual_seed(0)
    d = 5
    made = MADE(d, hidden=12, context=3)
    z, h = torch.randn(d), torch.randn(3)
    jm, js = torch.autograd.functional.jacobian(lambda v: made(v, h), z)
    # Output i may depend on z_<i only: the Jacobians are strictly lower triangular...
    assert torch.equal(jm.triu(), torch.zeros(d, d)) and torch.equal(js.triu(), torch.zeros(d, d))
    # ...and do depend on earlier inputs (the masks are not all zero).
    assert jm.tril(-1).abs().sum() > 0


def test_iaf_log_q_is_the_change_of_variables_density(digits):
    torch.manual_seed(0)
    model = IAFVAE(IAFVAE.Config(**SMALL, flow_steps=3), digits.shape, digits.levels)
    x = digits.test[:1]
    eps = torch.randn(1, 1, 4)
    _, log_q = model._posterior_sample(x, eps)
    jac = torch.autograd.functional.jacobian(
        lambda e: model._posterior_sample(x, e.view(1, 1, 4))[0].view(4), eps.view(4)
    )
    expected = (
        normal_logpdf(eps, torch.zeros(()), torch.zeros(())).sum() - torch.linalg.slogdet(jac)[1]
    )
    assert log_q.item() == pytest.approx(expected.item(), abs=1e-4)


@pytest.mark.parametrize("posterior", ["linear_iaf", "iaf"])
def test_iwae_below_elbo_and_non_increasing_in_k(digits, posterior):
    torch.manual_seed(0)
    model = quick_fit(
        IAFVAE(IAFVAE.Config(posterior=posterior, **SMALL), digits.shape, digits.levels),
        digits.train[:256],
    )
    x = digits.test[:100]
    with torch.no_grad():
        means = []
        for k in (1, 4, 32):
            m = model.evaluate(x, noise_for(model, "evaluate", x.shape[0], k, seed=k))
            assert (m["iwae_nll"] <= m["neg_elbo"] + 1e-4).all()  # Jensen, per example
            assert torch.allclose(m["neg_elbo"], m["rate"] + m["distortion"], atol=1e-3)
            means.append(m["iwae_nll"].mean().item())
    assert means[0] >= means[1] >= means[2]
    assert math.isclose(m["iwae_bpd"].mean().item(), means[2] / (64 * math.log(2)), rel_tol=1e-5)


def test_beta_weighs_the_training_kl_only(digits):
    torch.manual_seed(0)
    model = BetaVAE(BetaVAE.Config(**SMALL, beta=3.0), digits.shape, digits.levels)
    x = digits.train[:16]
    loss, logs = model.loss(x, noise_for(model, "loss", 16, 1))
    assert loss.item() == pytest.approx((logs["distortion"] + 3.0 * logs["rate"]).item(), rel=1e-5)
    assert logs["neg_elbo"].item() == pytest.approx(
        (logs["distortion"] + logs["rate"]).item(), rel=1e-5
    )
