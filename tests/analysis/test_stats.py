"""analysis.stats against scipy / statsmodels on identical arrays, and hand-computed cases."""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

import analysis.stats as S


def _mean_diff(a, b, axis=-1):
    return np.mean(a - b, axis=axis)


def scipy_paired_perm(control, treatment, alternative):
    """scipy's exact paired permutation test of mean(treatment - control)."""
    return sps.permutation_test(
        (treatment, control), _mean_diff, permutation_type="samples", n_resamples=np.inf,
        alternative=alternative, vectorized=True,
    ).pvalue


# --------------------------------------------------------------------------- docstrings
def test_docstring_examples_run():
    result = doctest.testmod(S, raise_on_error=False)
    assert result.attempted >= 20 and result.failed == 0


# --------------------------------------------------------------------------- differences
def test_paired_differences_direction_and_checks():
    c, t = np.array([10.0, 12.0, 8.0]), np.array([9.0, 12.5, 8.0])
    np.testing.assert_array_equal(S.paired_differences(c, t, "lower"), [1.0, -0.5, 0.0])
    np.testing.assert_array_equal(S.paired_differences(c, t, "higher"), [-1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="direction"):
        S.paired_differences(c, t, "down")
    with pytest.raises(ValueError, match="equal length"):
        S.paired_differences(c, t[:2], "lower")


def test_nan_differences_are_refused_with_a_hint():
    with pytest.raises(ValueError, match="failed-run policy"):
        S.t_pvalue([1.0, np.nan, 2.0])


# --------------------------------------------------------------------------- sign-flip test
@pytest.mark.parametrize("n", [2, 3, 5, 8, 11, 14])
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_exact_sign_flip_matches_scipy_permutation_test(n, alternative):
    rng = np.random.default_rng(100 + n)
    control = rng.normal(10, 1, size=n)
    treatment = control + rng.normal(0.4, 1, size=n)
    d = treatment - control
    ours = S.sign_flip_pvalue(d, alternative=alternative)
    assert ours == pytest.approx(scipy_paired_perm(control, treatment, alternative), abs=1e-12)


def test_exact_sign_flip_matches_scipy_with_ties_and_zeros():
    control = np.array([3.0, 5.0, 4.0, 6.0, 2.0, 7.0, 4.0])
    treatment = np.array([4.0, 5.0, 6.0, 7.0, 1.0, 9.0, 4.0])  # zeros and tied |d|
    for alt in ("greater", "less"):
        assert S.sign_flip_pvalue(treatment - control, alternative=alt) == pytest.approx(
            scipy_paired_perm(control, treatment, alt), abs=1e-12)


def test_sign_flip_nonsuperiority_is_the_shifted_test():
    rng = np.random.default_rng(7)
    control = rng.normal(size=9)
    treatment = control + rng.normal(0.3, 0.5, size=9)
    effect = 0.8
    ours = S.sign_flip_pvalue(treatment - control, null=effect, alternative="less")
    # H1: mean(treatment - control) < effect  <=>  mean((treatment - effect) - control) < 0
    assert ours == pytest.approx(scipy_paired_perm(control, treatment - effect, "less"), abs=1e-12)


def test_sign_flip_hand_computed():
    # d = (1, 2, 3): the 8 sign patterns give sums 6, 4, 2, 0, 0, -2, -4, -6
    assert S.sign_flip_pvalue([1.0, 2.0, 3.0]) == 1 / 8
    assert S.sign_flip_pvalue([1.0, -2.0, 3.0]) == 3 / 8  # sums >= 2: 6, 4, 2 (|d| the same)
    assert S.sign_flip_pvalue([0.0, 0.0]) == 1.0
    assert S.sign_flip_pvalue([1.0, 2.0, 3.0], alternative="less") == 1.0


def test_exact_sign_flip_at_the_largest_exact_size():
    """n = 20 (the largest enumerated size): meet-in-the-middle count = all 2^20 subset sums."""
    d = np.random.default_rng(12).normal(0.4, 1, size=20)
    all_sums = S._subset_sums(d)  # sum over the flipped subset A; T* >= T iff sum_A d <= 0
    assert S.sign_flip_pvalue(d) == np.mean(all_sums <= 0)
    assert S.sign_flip_pvalue(d, null=0.6, alternative="less") == np.mean(S._subset_sums(0.6 - d) <= 0)


def test_sign_flip_batch_equals_rows():
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1, size=(6, 9))
    np.testing.assert_array_equal(S.sign_flip_pvalue(d), [S.sign_flip_pvalue(r) for r in d])


def test_monte_carlo_sign_flip_agrees_with_exact_and_is_reproducible():
    rng = np.random.default_rng(11)
    d = rng.normal(0.35, 1, size=14)
    exact = S.sign_flip_pvalue(d)
    b = 20000
    mc = S.sign_flip_pvalue(d, rng=np.random.default_rng(5), n_resamples=b, max_exact=0)
    se = math.sqrt(exact * (1 - exact) / b)
    assert abs(mc - exact) <= 4 * se + 1 / b, (mc, exact)
    again = S.sign_flip_pvalue(d, rng=np.random.default_rng(5), n_resamples=b, max_exact=0)
    assert mc == again
    assert 1 / (b + 1) <= mc <= 1


def test_monte_carlo_needs_a_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        S.sign_flip_pvalue(np.ones(25))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        S.sign_flip_pvalue(np.ones(25), rng=np.random.RandomState(0))


def test_sign_flip_interval_hand_computed():
    # n = 5: 1/32 <= 0.05 < 2/32, so the bounds are the smallest and largest subset means
    assert S.sign_flip_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05) == (1.0, 5.0)
    # n = 4: 2^-4 > 0.05, nothing can be rejected
    assert S.sign_flip_interval([1.0, 2.0, 3.0, 4.0], 0.05) == (-math.inf, math.inf)
    # n = 3, alpha = 0.3: 2/8 <= 0.3 < 3/8 -> 2nd smallest / largest of the subset means
    # {1, 2, 3, 1.5, 2, 2.5, 2}
    assert S.sign_flip_interval([1.0, 2.0, 3.0], 0.3) == (1.5, 2.5)


def _brute_force_interval(d, alpha):
    """Scan centres c on a fine grid of subset means; keep those neither side rejects."""
    n = len(d)
    means = sorted({np.mean([d[i] for i in s]) for k in range(1, n + 1)
                    for s in itertools.combinations(range(n), k)})
    keep = [c for c in means
            if S.sign_flip_pvalue(d, null=c) > alpha and S.sign_flip_pvalue(d, null=c, alternative="less") > alpha]
    return keep[0], keep[-1]


def test_sign_flip_interval_is_the_inverted_test():
    rng = np.random.default_rng(8)
    for n in (5, 6, 7):
        d = rng.normal(1, 1, size=n)
        low, high = S.sign_flip_interval(d, 0.1)
        assert (low, high) == pytest.approx(_brute_force_interval(list(d), 0.1), abs=1e-9)


@pytest.mark.parametrize("test", ["permutation", "wilcoxon", "t"])
def test_interval_agrees_with_its_test(test):
    """ci_low > 0 iff superiority p <= alpha; ci_high < effect iff non-superiority p <= alpha."""
    rng = np.random.default_rng(21)
    sizes = [3, 5, 6, 8, 10, 12, 20, 30, 55] if test != "permutation" else [3, 5, 6, 8, 10, 12, 20, 26]
    for n in sizes:
        for _ in range(25 if n < 20 else 4):
            d = rng.normal(rng.normal(0, 0.6), 1, size=n)
            for alpha in (0.05, 0.1):
                r = S.paired_test(d, test=test, effect=0.3, alpha=alpha, rng=np.random.default_rng(0))
                assert (r.ci_low > 0) == (r.p_superiority <= alpha), (n, r)
                assert (r.ci_high < 0.3) == (r.p_nonsuperiority <= alpha), (n, r)


# --------------------------------------------------------------------------- Wilcoxon
def test_wilcoxon_matches_scipy_and_hand_computed():
    rng = np.random.default_rng(4)
    for n in (4, 9, 15, 30, 60):
        c, t = rng.normal(size=n), rng.normal(0.3, 1, size=n)
        # exact null for every n (scipy switches to the normal approximation above 50)
        assert S.wilcoxon_pvalue(c - t) == pytest.approx(
            sps.wilcoxon(c, t, alternative="greater", method="exact").pvalue, abs=1e-12)
        assert S.wilcoxon_pvalue(c - t, null=0.2, alternative="less") == pytest.approx(
            sps.wilcoxon(c - t - 0.2, alternative="less", method="exact").pvalue, abs=1e-12)
    # ranks of |d| = 2, 3, 4, 5, 1 -> W+ = 14; P(W+ >= 14) = 2/32
    assert S.wilcoxon_pvalue([0.5, 1.0, 1.5, 2.0, -0.2]) == pytest.approx(2 / 32, abs=1e-12)
    assert S.wilcoxon_pvalue([0.0, 0.0, 0.0]) == 1.0


def test_wilcoxon_batch_equals_rows_even_with_ties():
    rng = np.random.default_rng(9)
    d = np.round(rng.normal(0.3, 1, size=(3, 12)), 1)  # ties and zeros likely
    d[0, :3] = 0.0
    np.testing.assert_allclose(S.wilcoxon_pvalue(d), [S.wilcoxon_pvalue(r) for r in d], atol=1e-14)
    d2 = rng.normal(size=(5, 12))
    np.testing.assert_allclose(S.wilcoxon_pvalue(d2), [S.wilcoxon_pvalue(r) for r in d2], atol=1e-14)


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
            assert S.wilcoxon_pvalue(d, alternative=alt) == pytest.approx(ref, abs=1e-12)


def test_wilcoxon_interval_agrees_with_the_test_under_zeros_and_ties():
    # issue 12, defect 3: the test dropped zeros while the interval used every pair, so this
    # d gave p = 0.047 ("supported") with ci_low = 0.000.
    d = np.array([1, 0, -1, 1.5, 1, 1, 0, 1.5, 0.5])
    r = S.paired_test(d, test="wilcoxon", effect=1.0, alpha=0.05)
    assert (r.ci_low > 0) == (r.p_superiority <= 0.05)
    assert (r.ci_high < 1.0) == (r.p_nonsuperiority <= 0.05)
    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(6, 16))
        d = np.round(rng.normal(rng.normal(0.5, 0.5), 1, size=n) * 2) / 2
        d[rng.random(n) < 0.2] = 0.0  # the 'worst' policy makes exact zeros
        for alpha in (0.05, 0.1):
            r = S.paired_test(d, test="wilcoxon", effect=0.5, alpha=alpha)
            assert (r.ci_low > 0) == (r.p_superiority <= alpha), (d, r)
            assert (r.ci_high < 0.5) == (r.p_nonsuperiority <= alpha), (d, r)


@pytest.mark.parametrize("n", range(1, 11))
def test_signed_rank_critical_by_enumeration(n):
    ranks = np.arange(1, n + 1)
    w = np.array([ranks[list(s)].sum() for k in range(n + 1) for s in itertools.combinations(range(n), k)])
    for alpha in (0.01, 0.05, 0.1, 0.25):
        c = S.signed_rank_critical(n, alpha)
        assert c == n * (n + 1) // 2 + 1 or np.mean(w >= c) <= alpha
        assert np.mean(w >= c - 1) > alpha


def test_hodges_lehmann_hand_computed():
    assert S.hodges_lehmann([1.0, 2.0, 9.0]) == 3.5  # Walsh averages 1, 1.5, 2, 5, 5.5, 9
    assert S.hodges_lehmann_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05) == (1.0, 5.0)
    assert S.hodges_lehmann_interval([1.0, 2.0, 3.0], 0.05) == (-math.inf, math.inf)
    low, high = S.hodges_lehmann_interval(np.array([[1.0, 2, 3, 4, 5], [2.0, 3, 4, 5, 6]]), 0.05)
    np.testing.assert_array_equal(low, [1.0, 2.0])
    np.testing.assert_array_equal(high, [5.0, 6.0])


# --------------------------------------------------------------------------- t
def test_t_matches_scipy_paired_t_and_interval():
    rng = np.random.default_rng(5)
    for n in (2, 3, 7, 20):
        c, t = rng.normal(5, 1, size=n), rng.normal(4.6, 1, size=n)
        d = c - t
        assert S.t_pvalue(d) == pytest.approx(sps.ttest_rel(c, t, alternative="greater").pvalue, abs=1e-12)
        assert S.t_pvalue(d, null=0.3, alternative="less") == pytest.approx(
            sps.ttest_1samp(d, 0.3, alternative="less").pvalue, abs=1e-12)
        ci = sps.ttest_1samp(d, 0.0).confidence_interval(confidence_level=0.9)
        assert S.t_interval(d, 0.05) == pytest.approx((ci.low, ci.high), abs=1e-10)


def test_t_nonsuperiority_matches_statsmodels_ttost_paired():
    rng = np.random.default_rng(6)
    for n, effect in ((5, 0.5), (12, 1.0), (30, 0.2)):
        control, treatment = rng.normal(10, 1, size=n), rng.normal(9.5, 1, size=n)
        d = S.paired_differences(control, treatment, "lower")
        # ttost_paired tests low < mean(x1 - x2) < upp; its second part is H1: mean < upp
        _, _, (_, p_upper, _) = ttost_paired(control, treatment, effect - 1e6, effect)
        ours = S.paired_test(d, test="t", effect=effect, alpha=0.05).p_nonsuperiority
        assert ours == pytest.approx(p_upper, abs=1e-10)


def test_t_hand_computed_and_degenerate_cases():
    # d = (1, 2, 3): t = 2 * sqrt(3), df = 2, and for df = 2: P(T > t) = 1/2 - t / (2 sqrt(2 + t^2))
    t = 2 * math.sqrt(3)
    assert S.t_pvalue([1.0, 2.0, 3.0]) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert S.t_pvalue([1.0, 1.0, 1.0]) == 0.0  # zero variance, all beyond the null: the limit
    assert S.t_pvalue([0.0, 0.0, 0.0]) == 1.0
    assert S.t_pvalue([1.0, 1.0, 1.0], alternative="less") == 1.0
    assert S.t_pvalue([2.5]) == 1.0  # one pair: no test
    assert S.t_interval([2.5], 0.05) == (-math.inf, math.inf)


def test_paired_test_empty_sample():
    r = S.paired_test([], test="permutation", effect=0.5, alpha=0.05)
    assert r.n == 0 and r.p_superiority == 1.0 and r.p_nonsuperiority == 1.0 and math.isnan(r.estimate)


def test_paired_test_monte_carlo_is_consistent_and_seeded():
    d = np.random.default_rng(2).normal(0.3, 1, size=30)
    a = S.paired_test(d, test="permutation", effect=0.5, alpha=0.05, rng=np.random.default_rng(1))
    b = S.paired_test(d, test="permutation", effect=0.5, alpha=0.05, rng=np.random.default_rng(1))
    assert a == b and a.monte_carlo and a.n_resamples == S.N_PERMUTATIONS
    assert a.estimate == pytest.approx(d.mean())
    assert abs(a.p_superiority - S.t_pvalue(d)) < 0.02  # the two tests are close at n = 30


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
                S.adjust_pvalues(p, ours), multipletests(p, method=theirs)[1], atol=1e-12)


def test_adjust_hand_computed_and_batch():
    np.testing.assert_allclose(S.adjust_pvalues([0.01, 0.04, 0.03], "holm"), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(S.adjust_pvalues([0.01, 0.04, 0.03], "bh"), [0.03, 0.04, 0.04])
    p = np.random.default_rng(0).uniform(size=(5, 4))
    for method in ("holm", "bh"):
        np.testing.assert_array_equal(S.adjust_pvalues(p, method), [S.adjust_pvalues(r, method) for r in p])
    with pytest.raises(ValueError, match="'holm' or 'bh'"):
        S.adjust_pvalues([0.1], "holm-sidak")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.adjust_pvalues([0.1, np.nan], "holm")


# --------------------------------------------------------------------------- descriptive
def test_prob_better_and_interval():
    assert S.prob_better([1.0, -1.0, 0.0, 2.0]) == 0.625
    d = np.random.default_rng(1).normal(0.5, 1, size=12)
    lo, hi = S.prob_better_interval(d, 0.05, np.random.default_rng(3))
    assert 0 <= lo <= S.prob_better(d) <= hi <= 1
    assert (lo, hi) == S.prob_better_interval(d, 0.05, np.random.default_rng(3))


def test_iqm_matches_trim_mean_and_interval_is_seeded():
    x = np.random.default_rng(2).normal(size=13)
    assert S.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25), abs=1e-15)
    assert S.iqm([1.0, 2.0, 3.0, 100.0]) == 2.5
    a = S.iqm_interval(x, 0.05, np.random.default_rng(4))
    assert a == S.iqm_interval(x, 0.05, np.random.default_rng(4))
    assert a[0] <= S.iqm(x) <= a[1]


def test_resampling_uses_only_the_given_generator():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    d = np.random.default_rng(0).normal(size=25)
    S.sign_flip_pvalue(d, rng=np.random.default_rng(1))
    S.sign_flip_interval(d, 0.05, rng=np.random.default_rng(1))
    S.prob_better_interval(d, 0.05, np.random.default_rng(1))
    S.iqm_interval(d, 0.05, np.random.default_rng(1))
    S.paired_test(d, test="wilcoxon", effect=0.1, alpha=0.05)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


# --------------------------------------------------------------------------- power
@pytest.mark.parametrize("effect,sd,n,alpha", [
    (0.5, 1.0, 10, 0.05), (1.0, 0.4, 5, 0.05), (0.2, 1.0, 40, 0.01), (2.0, 3.0, 3, 0.1), (0.0, 1.0, 10, 0.05),
])
def test_power_matches_statsmodels(effect, sd, n, alpha):
    theirs = TTestPower().power(effect_size=effect / sd, nobs=n, alpha=alpha, alternative="larger")
    assert S.power_paired_t(effect, sd, n, alpha) == pytest.approx(theirs, abs=1e-6)


@pytest.mark.parametrize("es,alpha", [(0.3, 0.05), (0.5, 0.05), (0.8, 0.05), (1.2, 0.0125), (0.25, 0.1)])
def test_seeds_for_power_matches_statsmodels(es, alpha):
    n = TTestPower().solve_power(effect_size=es, alpha=alpha, power=0.8, alternative="larger")
    assert S.seeds_for_power(es * 2.0, 2.0, alpha) == math.ceil(n)


def test_power_edge_cases():
    assert math.isnan(S.power_paired_t(0.5, 1.0, 1, 0.05))
    assert math.isnan(S.power_paired_t(0.5, math.nan, 5, 0.05))
    assert S.power_paired_t(0.5, 0.0, 5, 0.05) == 1.0
    assert S.power_paired_t(0.0, 0.0, 5, 0.05) == 0.05
    assert S.seeds_for_power(0.5, 0.0, 0.05) == 2
    assert S.seeds_for_power(0.0, 1.0, 0.05) == math.inf
    assert math.isnan(S.seeds_for_power(0.5, math.nan, 0.05))
    assert S.seeds_for_power(10.0, 1.0, 0.05) == 2


def test_argument_checks():
    with pytest.raises(ValueError, match="alpha"):
        S.t_interval([1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match="test must be one of"):
        S.paired_test([1.0, 2.0], test="mannwhitney", effect=0.1, alpha=0.05)
    with pytest.raises(ValueError, match="effect"):
        S.paired_test([1.0, 2.0], test="t", effect=-0.1, alpha=0.05)
    with pytest.raises(ValueError, match="alternative"):
        S.wilcoxon_pvalue([1.0, 2.0], alternative="two-sided")


def test_interval_bisection_beyond_many_breaks_equals_the_full_scan(monkeypatch):
    rng = np.random.default_rng(21)
    samples = []
    for n in (45, 60):
        d = rng.normal(0.3, 1, n)
        d[:4] = 0.0
        samples.append(d)
    fast = [S.hodges_lehmann_interval(d, 0.05) for d in samples]
    full = S._first_accepted
    monkeypatch.setattr(S, "_first_accepted", lambda pts, acc, scan=10**9: full(pts, acc, scan=10**9))
    assert fast == [S.hodges_lehmann_interval(d, 0.05) for d in samples]
