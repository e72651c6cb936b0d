"""analysis.stats_signflip against scipy's permutation test on identical arrays, and hand-computed cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

import analysis.stats_signflip as signflip
from analysis.stats_signflip import sign_flip_interval, sign_flip_pvalue


def _mean_diff(a, b, axis=-1):
    return np.mean(a - b, axis=axis)


def scipy_paired_perm(control, treatment, alternative):
    """scipy's exact paired permutation test of mean(treatment - control)."""
    return sps.permutation_test(
        (treatment, control), _mean_diff, permutation_type="samples", n_resamples=np.inf,
        alternative=alternative, vectorized=True,
    ).pvalue


# --------------------------------------------------------------------------- sign-flip test
@pytest.mark.parametrize("n", [2, 3, 5, 8, 11, 14])
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_exact_sign_flip_matches_scipy_permutation_test(n, alternative):
    rng = np.random.default_rng(100 + n)
    control = rng.normal(10, 1, size=n)
    treatment = control + rng.normal(0.4, 1, size=n)
    d = treatment - control
    ours = sign_flip_pvalue(d, alternative=alternative)
    assert ours == pytest.approx(scipy_paired_perm(control, treatment, alternative), abs=1e-12)


def test_exact_sign_flip_matches_scipy_with_ties_and_zeros():
    control = np.array([3.0, 5.0, 4.0, 6.0, 2.0, 7.0, 4.0])
    treatment = np.array([4.0, 5.0, 6.0, 7.0, 1.0, 9.0, 4.0])  # zeros and tied |d|
    for alt in ("greater", "less"):
        assert sign_flip_pvalue(treatment - control, alternative=alt) == pytest.approx(
            scipy_paired_perm(control, treatment, alt), abs=1e-12)


def test_sign_flip_nonsuperiority_is_the_shifted_test():
    rng = np.random.default_rng(7)
    control = rng.normal(size=9)
    treatment = control + rng.normal(0.3, 0.5, size=9)
    effect = 0.8
    ours = sign_flip_pvalue(treatment - control, null=effect, alternative="less")
    # H1: mean(treatment - control) < effect  <=>  mean((treatment - effect) - control) < 0
    assert ours == pytest.approx(scipy_paired_perm(control, treatment - effect, "less"), abs=1e-12)


def test_sign_flip_hand_computed():
    # d = (1, 2, 3): the 8 sign patterns give sums 6, 4, 2, 0, 0, -2, -4, -6
    assert sign_flip_pvalue([1.0, 2.0, 3.0]) == 1 / 8
    assert sign_flip_pvalue([1.0, -2.0, 3.0]) == 3 / 8  # sums >= 2: 6, 4, 2 (|d| the same)
    assert sign_flip_pvalue([0.0, 0.0]) == 1.0
    assert sign_flip_pvalue([1.0, 2.0, 3.0], alternative="less") == 1.0


def test_exact_sign_flip_at_the_largest_exact_size():
    """n = 20 (the largest enumerated size): meet-in-the-middle count = all 2^20 subset sums."""
    d = np.random.default_rng(12).normal(0.4, 1, size=20)
    all_sums = signflip._subset_sums(d)  # sum over the flipped subset A; T* >= T iff sum_A d <= 0
    assert sign_flip_pvalue(d) == np.mean(all_sums <= 0)
    assert sign_flip_pvalue(d, null=0.6, alternative="less") == np.mean(signflip._subset_sums(0.6 - d) <= 0)


def test_sign_flip_batch_equals_rows():
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1, size=(6, 9))
    np.testing.assert_array_equal(sign_flip_pvalue(d), [sign_flip_pvalue(r) for r in d])


def test_monte_carlo_sign_flip_agrees_with_exact_and_is_reproducible():
    rng = np.random.default_rng(11)
    d = rng.normal(0.35, 1, size=14)
    exact = sign_flip_pvalue(d)
    b = 20000
    mc = sign_flip_pvalue(d, rng=np.random.default_rng(5), n_resamples=b, max_exact=0)
    se = math.sqrt(exact * (1 - exact) / b)
    assert abs(mc - exact) <= 4 * se + 1 / b, (mc, exact)
    again = sign_flip_pvalue(d, rng=np.random.default_rng(5), n_resamples=b, max_exact=0)
    assert mc == again
    assert 1 / (b + 1) <= mc <= 1


def test_monte_carlo_needs_a_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        sign_flip_pvalue(np.ones(25))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        sign_flip_pvalue(np.ones(25), rng=np.random.RandomState(0))


def test_sign_flip_interval_hand_computed():
    # n = 5: 1/32 <= 0.05 < 2/32, so the bounds are the smallest and largest subset means
    assert sign_flip_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05) == (1.0, 5.0)
    # n = 4: 2^-4 > 0.05, nothing can be rejected
    assert sign_flip_interval([1.0, 2.0, 3.0, 4.0], 0.05) == (-math.inf, math.inf)
    # n = 3, alpha = 0.3: 2/8 <= 0.3 < 3/8 -> 2nd smallest / largest of the subset means
    # {1, 2, 3, 1.5, 2, 2.5, 2}
    assert sign_flip_interval([1.0, 2.0, 3.0], 0.3) == (1.5, 2.5)


def _brute_force_interval(d, alpha):
    """Scan centres c on a fine grid of subset means; keep those neither side rejects."""
    n = len(d)
    means = sorted({np.mean([d[i] for i in s]) for k in range(1, n + 1)
                    for s in itertools.combinations(range(n), k)})
    keep = [c for c in means
            if sign_flip_pvalue(d, null=c) > alpha and sign_flip_pvalue(d, null=c, alternative="less") > alpha]
    return keep[0], keep[-1]


def test_sign_flip_interval_is_the_inverted_test():
    rng = np.random.default_rng(8)
    for n in (5, 6, 7):
        d = rng.normal(1, 1, size=n)
        low, high = sign_flip_interval(d, 0.1)
        assert (low, high) == pytest.approx(_brute_force_interval(list(d), 0.1), abs=1e-9)
