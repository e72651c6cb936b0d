"""analysis.stats_paired: one test with all its parts, multiplicity, and the docstrings of every stats module."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.stats_inputs import N_PERMUTATIONS
from analysis.stats_mean import t_interval, t_pvalue
from analysis.stats_paired import adjust_pvalues, paired_test
from analysis.stats_ranks import wilcoxon_pvalue

STATS_MODULES = ("stats_inputs", "stats_signflip", "stats_ranks", "stats_mean", "stats_paired", "stats_descriptive")


# --------------------------------------------------------------------------- docstrings
def test_docstring_examples_run():
    results = [doctest.testmod(importlib.import_module(f"analysis.{m}"), raise_on_error=False) for m in STATS_MODULES]
    result = doctest.TestResults(sum(r.failed for r in results), sum(r.attempted for r in results))
    assert result.attempted >= 20 and result.failed == 0


@pytest.mark.parametrize("test", ["permutation", "wilcoxon", "t"])
def test_interval_agrees_with_its_test(test):
    """ci_low > 0 iff superiority p <= alpha; ci_high < effect iff non-superiority p <= alpha."""
    rng = np.random.default_rng(21)
    sizes = [3, 5, 6, 8, 10, 12, 20, 30, 55] if test != "permutation" else [3, 5, 6, 8, 10, 12, 20, 26]
    for n in sizes:
        for _ in range(25 if n < 20 else 4):
            d = rng.normal(rng.normal(0, 0.6), 1, size=n)
            for alpha in (0.05, 0.1):
                r = paired_test(d, test=test, effect=0.3, alpha=alpha, rng=np.random.default_rng(0))
                assert (r.ci_low > 0) == (r.p_superiority <= alpha), (n, r)
                assert (r.ci_high < 0.3) == (r.p_nonsuperiority <= alpha), (n, r)


def test_paired_test_empty_sample():
    r = paired_test([], test="permutation", effect=0.5, alpha=0.05)
    assert r.n == 0 and r.p_superiority == 1.0 and r.p_nonsuperiority == 1.0 and math.isnan(r.estimate)


def test_paired_test_monte_carlo_is_consistent_and_seeded():
    d = np.random.default_rng(2).normal(0.3, 1, size=30)
    a = paired_test(d, test="permutation", effect=0.5, alpha=0.05, rng=np.random.default_rng(1))
    b = paired_test(d, test="permutation", effect=0.5, alpha=0.05, rng=np.random.default_rng(1))
    assert a == b and a.monte_carlo and a.n_resamples == N_PERMUTATIONS
    assert a.estimate == pytest.approx(d.mean())
    assert abs(a.p_superiority - t_pvalue(d)) < 0.02  # the two tests are close at n = 30


# --------------------------------------------------------------------------- multiplicity
@pytest.mark.parametrize("m", [1, 2, 4, 7, 12])
def test_adjust_matches_statsmodels(m):
    rng = np.random.default_rng(m)
    for _ in range(4):  # statsmodels' holm runs gc.collect() on every call: keep this small
        p = rng.uniform(0, 0.2, size=m) ** rng.uniform(0.5, 2)
        if m > 2:
            p[1] = p[0]  # a tie
        for ours, theirs in (("holm", "holm"), ("bh", "fdr_bh")):
            np.testing.assert_allclose(
                adjust_pvalues(p, ours), multipletests(p, method=theirs)[1], atol=1e-12)


def test_adjust_hand_computed_and_batch():
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.04, 0.03], "holm"), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.04, 0.03], "bh"), [0.03, 0.04, 0.04])
    p = np.random.default_rng(0).uniform(size=(5, 4))
    for method in ("holm", "bh"):
        np.testing.assert_array_equal(adjust_pvalues(p, method), [adjust_pvalues(r, method) for r in p])
    with pytest.raises(ValueError, match="'holm' or 'bh'"):
        adjust_pvalues([0.1], "holm-sidak")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([0.1, np.nan], "holm")


def test_argument_checks():
    with pytest.raises(ValueError, match="alpha"):
        t_interval([1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match="test must be one of"):
        paired_test([1.0, 2.0], test="mannwhitney", effect=0.1, alpha=0.05)
    with pytest.raises(ValueError, match="effect"):
        paired_test([1.0, 2.0], test="t", effect=-0.1, alpha=0.05)
    with pytest.raises(ValueError, match="alternative"):
        wilcoxon_pvalue([1.0, 2.0], alternative="two-sided")
