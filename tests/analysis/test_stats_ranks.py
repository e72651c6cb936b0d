"""analysis.stats_ranks (signed-rank, sign test, Hodges-Lehmann) against scipy, and hand-computed cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

import analysis.stats_ranks as ranks
from analysis.stats_paired import paired_test
from analysis.stats_ranks import hodges_lehmann, hodges_lehmann_interval, signed_rank_critical, wilcoxon_pvalue


# --------------------------------------------------------------------------- Wilcoxon
def test_wilcoxon_matches_scipy_and_hand_computed():
    rng = np.random.default_rng(4)
    for n in (4, 9, 15, 30, 60):
        c, t = rng.normal(size=n), rng.normal(0.3, 1, size=n)
        # exact null for every n (scipy switches to the normal approximation above 50)
        assert wilcoxon_pvalue(c - t) == pytest.approx(
            sps.wilcoxon(c, t, alternative="greater", method="exact").pvalue, abs=1e-12)
        assert wilcoxon_pvalue(c - t, null=0.2, alternative="less") == pytest.approx(
            sps.wilcoxon(c - t - 0.2, alternative="less", method="exact").pvalue, abs=1e-12)
    # ranks of |d| = 2, 3, 4, 5, 1 -> W+ = 14; P(W+ >= 14) = 2/32
    assert wilcoxon_pvalue([0.5, 1.0, 1.5, 2.0, -0.2]) == pytest.approx(2 / 32, abs=1e-12)
    assert wilcoxon_pvalue([0.0, 0.0, 0.0]) == 1.0


def test_wilcoxon_batch_equals_rows_even_with_ties():
    rng = np.random.default_rng(9)
    d = np.round(rng.normal(0.3, 1, size=(3, 12)), 1)  # ties and zeros likely
    d[0, :3] = 0.0
    np.testing.assert_allclose(wilcoxon_pvalue(d), [wilcoxon_pvalue(r) for r in d], atol=1e-14)
    d2 = rng.normal(size=(5, 12))
    np.testing.assert_allclose(wilcoxon_pvalue(d2), [wilcoxon_pvalue(r) for r in d2], atol=1e-14)


def _pratt_w(x, axis):
    r = sps.rankdata(np.abs(x), axis=axis)
    return (r * (x > 0)).sum(axis=axis)


def test_wilcoxon_with_zeros_and_ties_is_the_exact_pratt_permutation_test():
    rng = np.random.default_rng(12)
    for _ in range(6):
        d = np.round(rng.normal(0.4, 1, size=9), 0) / 2  # many zeros and ties
        for alt in ("greater", "less"):
            ref = sps.permutation_test((d,), _pratt_w, permutation_type="samples",
                                       alternative=alt, n_resamples=np.inf).pvalue
            assert wilcoxon_pvalue(d, alternative=alt) == pytest.approx(ref, abs=1e-12)


def test_wilcoxon_interval_agrees_with_the_test_under_zeros_and_ties():
    # issue 12, defect 3: the test dropped zeros while the interval used every pair, so this
    # d gave p = 0.047 ("supported") with ci_low = 0.000.
    d = np.array([1, 0, -1, 1.5, 1, 1, 0, 1.5, 0.5])
    r = paired_test(d, test="wilcoxon", effect=1.0, alpha=0.05)
    assert (r.ci_low > 0) == (r.p_superiority <= 0.05)
    assert (r.ci_high < 1.0) == (r.p_nonsuperiority <= 0.05)
    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(6, 16))
        d = np.round(rng.normal(rng.normal(0.5, 0.5), 1, size=n) * 2) / 2
        d[rng.random(n) < 0.2] = 0.0  # the 'worst' policy makes exact zeros
        for alpha in (0.05, 0.1):
            r = paired_test(d, test="wilcoxon", effect=0.5, alpha=alpha)
            assert (r.ci_low > 0) == (r.p_superiority <= alpha), (d, r)
            assert (r.ci_high < 0.5) == (r.p_nonsuperiority <= alpha), (d, r)


@pytest.mark.parametrize("n", range(1, 11))
def test_signed_rank_critical_by_enumeration(n):
    ranks = np.arange(1, n + 1)
    w = np.array([ranks[list(s)].sum() for k in range(n + 1) for s in itertools.combinations(range(n), k)])
    for alpha in (0.01, 0.05, 0.1, 0.25):
        c = signed_rank_critical(n, alpha)
        assert c == n * (n + 1) // 2 + 1 or np.mean(w >= c) <= alpha
        assert np.mean(w >= c - 1) > alpha


def test_hodges_lehmann_hand_computed():
    assert hodges_lehmann([1.0, 2.0, 9.0]) == 3.5  # Walsh averages 1, 1.5, 2, 5, 5.5, 9
    assert hodges_lehmann_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05) == (1.0, 5.0)
    assert hodges_lehmann_interval([1.0, 2.0, 3.0], 0.05) == (-math.inf, math.inf)
    low, high = hodges_lehmann_interval(np.array([[1.0, 2, 3, 4, 5], [2.0, 3, 4, 5, 6]]), 0.05)
    np.testing.assert_array_equal(low, [1.0, 2.0])
    np.testing.assert_array_equal(high, [5.0, 6.0])


def test_interval_bisection_beyond_many_breaks_equals_the_full_scan(monkeypatch):
    rng = np.random.default_rng(21)
    samples = []
    for n in (45, 60):
        d = rng.normal(0.3, 1, n)
        d[:4] = 0.0
        samples.append(d)
    fast = [hodges_lehmann_interval(d, 0.05) for d in samples]
    full = ranks._first_accepted
    monkeypatch.setattr(ranks, "_first_accepted", lambda pts, acc, scan=10**9: full(pts, acc, scan=10**9))
    assert fast == [hodges_lehmann_interval(d, 0.05) for d in samples]
