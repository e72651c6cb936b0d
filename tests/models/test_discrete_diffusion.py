"""multinomial_diffusion: training, seed independence, and its bound against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import harness.models.discrete_diffusion  # noqa: F401  (registers multinomial_diffusion)
from harness.models.discrete_diffusion import MultinomialDiffusion
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, noise_for, train_two_seeds

SMALL = {"hidden": 32, "depth": 1, "time_dim": 16}


def test_registered():
    assert MODELS["multinomial_diffusion"] is MultinomialDiffusion


@pytest.mark.parametrize("T, schedule", [(1, "cosine"), (6, "linear"), (10, "cosine")])
def test_trains_two_seeds_on_binary_digits(digits_binary, T, schedule):
    results = train_two_seeds(
        MultinomialDiffusion,
        MultinomialDiffusion.Config(T=T, schedule=schedule, **SMALL),
        digits_binary,
    )
    assert set(np.unique(results[0].samples)) <= {0.0, 1.0}


def test_trains_on_17_level_digits(digits):
    results = train_two_seeds(
        MultinomialDiffusion, MultinomialDiffusion.Config(T=4, aux_weight=0.01, **SMALL), digits
    )
    assert np.allclose(results[0].samples * 16, np.round(results[0].samples * 16))


def test_seed_alone_equals_seed_in_block(digits_binary):
    assert_seed_equivalence(
        MultinomialDiffusion, MultinomialDiffusion.Config(T=6, **SMALL), digits_binary
    )


def _brute_force(model: MultinomialDiffusion, D: int, K: int, T: int):
    """Exact log p(x0) and the exact expected bound for every x0, enumerating every trajectory."""
    states = torch.tensor(list(itertools.product(range(K), repeat=D)))  # [S, D]
    S = states.shape[0]
    same = (states[:, None, :] == states[None, :, :]).float()  # [S, S, D]
    log_P, log_Q = {}, {}
    with torch.no_grad():
        for t in range(1, T + 1):
            lp = model.reverse_log_probs(states, torch.full((S,), t))  # [S, D, K]: p(x_{t-1} | x_t)
            log_P[t] = (
                torch.gather(
                    lp[:, None].expand(S, S, D, K), -1, states[None, :, :, None].expand(S, S, D, 1)
                )
                .squeeze(-1)
                .sum(-1)
                .double()
            )
            alpha = model.log_alpha[t].exp().double()
            log_Q[t] = torch.log(alpha * same.double() + (1 - alpha) / K).sum(
                -1
            )  # q(x_t = j | x_{t-1} = i)
    log_prior = torch.full((S,), -np.log(S), dtype=torch.float64)
    # Exact marginal by the forward algorithm over the reverse chain.
    alpha_msg = log_prior
    for t in range(T, 0, -1):
        alpha_msg = torch.logsumexp(alpha_msg[:, None] + log_P[t], dim=0)
    log_px = alpha_msg
    # Exact expected bound: sum over all x_{1:T} of q(x_{1:T}|x0) [log q(x_{1:T}|x0) - log p(x_{0:T})].
    bound = torch.zeros(S, dtype=torch.float64)
    for x0 in range(S):
        for traj in itertools.product(range(S), repeat=T):
            path = (x0, *traj)
            log_q = sum(log_Q[t][path[t - 1], path[t]] for t in range(1, T + 1))
            log_p = log_prior[path[T]] + sum(
                log_P[t][path[t], path[t - 1]] for t in range(1, T + 1)
            )
            bound[x0] += log_q.exp() * (log_q - log_p)
    return states, log_px, bound


@pytest.mark.parametrize("K, schedule", [(2, "cosine"), (3, "linear")])
def test_bound_matches_brute_force_and_bounds_the_exact_nll(K, schedule):
    D, T = 2, 3
    torch.manual_seed(0)
    model = MultinomialDiffusion(
        MultinomialDiffusion.Config(T=T, schedule=schedule, hidden=16, depth=1, time_dim=8), (D,), K
    )
    with torch.no_grad():  # a sharper, non-trivial reverse model than the near-uniform init
        model.net.out.weight.mul_(20)
    states, log_px, exact_bound = _brute_force(model, D, K, T)
    assert torch.logsumexp(log_px, 0).item() == pytest.approx(0.0, abs=1e-5)  # p sums to one
    assert (exact_bound >= -log_px - 1e-6).all()  # the ELBO is a bound...
    assert (exact_bound + log_px).max() > 1e-3  # ...and not trivially tight here
    # The model's per-example Monte Carlo bound is unbiased for the exact one.
    reps = 3000
    x = (states.float() / (K - 1)).repeat(reps, 1)
    with torch.no_grad():
        mc = (
            model.evaluate(x, noise_for(model, "evaluate", x.shape[0], 1))["nll_bound"]
            .view(reps, -1)
            .double()
        )
    se = mc.std(0) / reps**0.5
    assert ((mc.mean(0) - exact_bound).abs() <= 5 * se + 1e-4).all(), (mc.mean(0), exact_bound)
