"""Closed-form KLs and likelihood helpers in harness.models._util against Monte Carlo / scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import MultivariateNormal, Normal

from harness.models import _util as u

MC = 200_000  # Monte Carlo draws: standard error ~ 0.01 nats for these KLs


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_diag_normal_kl_matches_monte_carlo():
    g = _gen()
    mu_q, mu_p = torch.randn(5, generator=g), torch.randn(5, generator=g)
    ls_q, ls_p = 0.3 * torch.randn(5, generator=g), 0.3 * torch.randn(5, generator=g)
    q, p = Normal(mu_q, ls_q.exp()), Normal(mu_p, ls_p.exp())
    z = mu_q + ls_q.exp() * torch.randn(MC, 5, generator=g)
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    closed = u.diag_normal_kl(mu_q, ls_q, mu_p, ls_p)
    assert torch.allclose(closed, mc, atol=0.02)
    assert torch.allclose(closed, torch.distributions.kl_divergence(q, p), atol=1e-5)


def test_residual_normal_kl_matches_monte_carlo_and_ignores_the_prior_mean():
    g = _gen(1)
    mu_p, ls_p = 3 * torch.randn(6, generator=g), 0.5 * torch.randn(6, generator=g)
    dmu, log_ds = 0.5 * torch.randn(6, generator=g), 0.3 * torch.randn(6, generator=g)
    mu_q, ls_q = mu_p + dmu, ls_p + log_ds  # q = N(mu_p + dmu, (sigma_p * dsigma)^2)
    z = mu_q + ls_q.exp() * torch.randn(MC, 6, generator=g)
    mc = (u.normal_logpdf(z, mu_q, ls_q) - u.normal_logpdf(z, mu_p, ls_p)).mean(0)
    closed = u.residual_normal_kl(dmu, log_ds, ls_p)
    assert torch.allclose(closed, mc, atol=0.02)
    assert torch.allclose(closed, u.diag_normal_kl(mu_q, ls_q, mu_p, ls_p), atol=1e-5)


def test_full_covariance_kl_matches_monte_carlo():
    g = _gen(2)
    d = 4
    entries = 0.7 * torch.randn(d * (d - 1) // 2, generator=g)
    L = u.unit_lower_triangular(entries, d)
    assert torch.equal(torch.diagonal(L), torch.ones(d)) and torch.equal(
        L.triu(1), torch.zeros(d, d)
    )
    # The linear-IAF posterior: z = L y, y ~ N(mu, diag sigma^2) -> N(L mu, L diag(sigma^2) L^T).
    mu, sigma = torch.randn(d, generator=g), 0.5 + torch.rand(d, generator=g)
    mean, scale = L @ mu, L * sigma
    q = MultivariateNormal(mean, scale_tril=scale)
    z = mean + torch.randn(MC, d, generator=g) @ scale.T
    prior = MultivariateNormal(torch.zeros(d), torch.eye(d))
    mc = (q.log_prob(z) - prior.log_prob(z)).mean()
    closed = u.std_normal_kl_full(mean, scale)
    assert closed.item() == pytest.approx(mc.item(), abs=0.03)
    assert closed.item() == pytest.approx(
        torch.distributions.kl_divergence(q, prior).item(), abs=1e-4
    )


def test_log_ndtr_matches_scipy_in_both_tails():
    x = torch.linspace(-60, 12, 301, dtype=torch.float64)
    assert np.allclose(u.log_ndtr(x).numpy(), stats.norm.logcdf(x.numpy()), rtol=1e-10, atol=1e-14)
    grad = torch.func.vmap(torch.func.grad(lambda a: u.log_ndtr(a)))(x.float())
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_discretized_gaussian_is_a_pmf_with_finite_gradients(levels):
    x = torch.linspace(0, 1, levels)
    for mu, sigma in [(0.3, 0.1), (2.0, 0.01), (-1.0, 0.5), (0.5, 3.0), (0.51, 1e-4)]:
        mu_t = torch.tensor(mu, requires_grad=True)
        ls_t = torch.tensor(math.log(sigma), requires_grad=True)
        logp = u.discretized_gaussian_logpmf(x, mu_t, ls_t, levels)
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
        logp.logsumexp(0).backward()
        assert torch.isfinite(mu_t.grad) and torch.isfinite(ls_t.grad)
    # Matches the CDF difference computed by scipy in float64.
    mu, sigma, half = 0.37, 0.2, 0.5 / (levels - 1)
    edges_lo = np.where(x.numpy() < half, -np.inf, x.numpy() - half)
    edges_hi = np.where(x.numpy() > 1 - half, np.inf, x.numpy() + half)
    ref = np.log(stats.norm.cdf(edges_hi, mu, sigma) - stats.norm.cdf(edges_lo, mu, sigma))
    got = u.discretized_gaussian_logpmf(x, torch.tensor(mu), torch.tensor(math.log(sigma)), levels)
    keep = ref > -50
    assert np.allclose(got.numpy()[keep], ref[keep], atol=1e-4)


def test_categorical_from_uniform_has_the_right_frequencies():
    probs = torch.tensor([0.1, 0.6, 0.3])
    idx = u.categorical_from_uniform(
        probs.log().expand(100_000, 3), torch.rand(100_000, generator=_gen(3))
    )
    freq = torch.bincount(idx, minlength=3).float() / idx.numel()
    assert torch.allclose(freq, probs, atol=0.01)
    assert idx.min() >= 0 and idx.max() <= 2


def test_check_likelihood_rejects_mismatched_data():
    u.check_likelihood("categorical", 17)
    u.check_likelihood("gaussian", None)
    for name, levels in [
        ("categorical", None),
        ("gaussian", 17),
        ("bernoulli", 17),
        ("poisson", 2),
    ]:
        with pytest.raises(ValueError):
            u.check_likelihood(name, levels)
