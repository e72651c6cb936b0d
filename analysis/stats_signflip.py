"""The sign-flip (paired permutation) test of the mean and the subset-means interval that
inverts it (Hartigan 1969): exact over all 2^n sign patterns up to ``MAX_EXACT`` pairs, else
over random patterns drawn from the caller's ``numpy.random.Generator``. Pure: arrays in,
numbers out."""

from __future__ import annotations

import math

import numpy as np

from analysis.stats_inputs import (
    MAX_EXACT,
    N_PERMUTATIONS,
    REL_TOL,
    as_pairs,
    check_alpha,
    check_alternative,
    check_count,
    check_rng,
    scalar_or_array,
)

__all__ = ["sign_flip_interval", "sign_flip_pvalue", "sign_flip_resampled"]


# --------------------------------------------------------------------------- sign-flip test
def _subset_sums(x: np.ndarray) -> np.ndarray:
    """All 2^n subset sums of a 1-D array; bit i of the index says whether x[i] is in."""
    s = np.zeros(1)
    for v in x:
        s = np.concatenate([s, s + v])
    return s


def _exact_count_le(x: np.ndarray, tol: float) -> int:
    """#{subsets A of x : sum_A x <= tol}, by meet in the middle (2 * 2^(n/2) sums)."""
    h = x.size // 2
    left = _subset_sums(x[:h])
    right = np.sort(_subset_sums(x[h:]))
    return int(np.searchsorted(right, tol - left, side="right").sum())


def _draw_masks(rng: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """``n_resamples`` random sign patterns as a boolean (n_resamples, n) array: True = flipped."""
    rows = max(1, (1 << 20) // max(n, 1))
    blocks = [rng.random((min(rows, n_resamples - i), n)) < 0.5 for i in range(0, n_resamples, rows)]
    return np.concatenate(blocks, axis=0)


def _mask_sums(masks: np.ndarray, x: np.ndarray) -> np.ndarray:
    rows = max(1, (1 << 20) // max(x.size, 1))
    return np.concatenate(
        [masks[i : i + rows].astype(np.float64) @ x for i in range(0, masks.shape[0], rows)]
    )


def _tol(x: np.ndarray) -> float:
    return REL_TOL * float(np.abs(x).sum())


def _mask_pvalue(x: np.ndarray, masks: np.ndarray) -> float:
    """Monte Carlo p for H1: mean(x) > 0: (1 + #{flipped sum >= observed sum}) / (1 + B).

    Flipping the signs of the subset A changes sum(x) by -2 sum_A x, so "flipped >= observed"
    is "sum_A x <= 0".
    """
    count = int((_mask_sums(masks, x) <= _tol(x)).sum())
    return (1 + count) / (1 + masks.shape[0])


def sign_flip_pvalue(
    d: object,
    *,
    null: float = 0.0,
    alternative: str = "greater",
    rng: np.random.Generator | None = None,
    n_resamples: int = N_PERMUTATIONS,
    max_exact: int = MAX_EXACT,
):
    """One-sided sign-flip (paired permutation) p-value for the mean of ``d``.

    H0: the differences are symmetric about ``null``; H1 (``alternative="greater"``): their
    centre is above ``null`` (``"less"``: below). Statistic T = mean(d - null). With
    n <= ``max_exact`` pairs all 2^n sign patterns are enumerated and
    p = #{T* >= T} / 2^n, which is what ``scipy.stats.permutation_test(...,
    permutation_type="samples", n_resamples=np.inf)`` computes; otherwise ``n_resamples``
    random patterns are drawn from ``rng`` and p = (1 + #{T* >= T}) / (1 + n_resamples).
    2-D input: one p per row.

    >>> round(sign_flip_pvalue([1.0, 2.0, 3.0]), 4)  # only the identity reaches T: 1/8
    0.125
    >>> round(sign_flip_pvalue([1.0, 2.0, 3.0], null=2.5, alternative="less"), 4)
    0.375
    """
    x = as_pairs(d) - null
    check_alternative(alternative)
    if x.shape[-1] == 0:
        raise ValueError("sign_flip_pvalue needs at least one pair; got an empty array")
    n_resamples = check_count(n_resamples, "n_resamples")
    if alternative == "less":
        x = -x
    one_d = x.ndim == 1
    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[1]
    out = np.empty(rows.shape[0])
    if n <= max_exact:
        for i, row in enumerate(rows):
            out[i] = _exact_count_le(row, _tol(row)) / 2.0**n
    else:
        rng = check_rng(rng)
        for i, row in enumerate(rows):
            out[i] = _mask_pvalue(row, _draw_masks(rng, n_resamples, n))
    return scalar_or_array(out.reshape(x.shape[:-1]), one_d)


def _interval_from_patterns(
    sums: np.ndarray, sizes: np.ndarray, extra: int, alpha: float
) -> tuple[float, float]:
    """Invert the sign-flip test: the set of centres c not rejected at ``alpha`` on either side.

    For a centre c the "greater" p-value is (extra + #{A : sum_A (d - c) <= 0}) / (extra + N)
    over the N patterns A; #{A nonempty : mean_A(d) <= c} is a step function of c, so the lower
    bound is the j-th smallest subset mean, j = (smallest count with p > alpha) - (patterns that
    always count). The upper bound is the j-th largest, by symmetry.
    """
    total = sums.size + extra
    nonempty = sizes > 0
    means = sums[nonempty] / sizes[nonempty]
    always = extra + int((~nonempty).sum())
    needed = math.floor(alpha * total + 1e-9) + 1  # smallest count c with c / total > alpha
    j = needed - always
    if j <= 0:
        return (-math.inf, math.inf)
    low = float(np.partition(means, j - 1)[j - 1])
    high = float(-np.partition(-means, j - 1)[j - 1])
    return (low, high)


def sign_flip_interval(
    d: object,
    alpha: float,
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = N_PERMUTATIONS,
    max_exact: int = MAX_EXACT,
) -> tuple[float, float]:
    """Two-sided (1 - 2 alpha) interval for the centre of ``d`` that inverts the sign-flip test.

    The lower bound is the smallest centre c that the one-sided test of H1: centre > c does
    not reject at ``alpha``; the upper bound likewise for H1: centre < c. For the mean
    statistic these are order statistics of the subset means (Hartigan 1969): exact over all
    2^n - 1 subsets for n <= ``max_exact``, else over ``n_resamples`` random subsets drawn from
    ``rng``. Coverage is at least 1 - 2 alpha when d is symmetric about its centre; the
    interval excludes 0 from below exactly when :func:`sign_flip_pvalue` <= alpha.
    ``(-inf, inf)`` when n is too small for any centre to be rejected (2^n * alpha < 1).

    >>> sign_flip_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05)  # 1/32 <= 0.05 < 2/32
    (1.0, 5.0)
    """
    x = as_pairs(d, max_ndim=1)
    alpha = check_alpha(alpha)
    if x.size == 0:
        return (math.nan, math.nan)
    if x.size <= max_exact:
        return _interval_from_patterns(_subset_sums(x), _subset_sums(np.ones_like(x)), 0, alpha)
    masks = _draw_masks(check_rng(rng), check_count(n_resamples, "n_resamples"), x.size)
    return _interval_from_patterns(_mask_sums(masks, x), masks.sum(axis=1), 1, alpha)


def sign_flip_resampled(x: np.ndarray, rng: np.random.Generator | None, n_resamples: int):
    """The test and its interval beyond the exact size, both from ONE set of random patterns.

    Returns ``(pvalue(centre, alternative), interval(alpha), patterns used)`` for a checked 1-D
    sample ``x``; ``n_resamples`` patterns are drawn from ``rng`` once, here, so every p-value
    and interval of one comparison agrees (what :func:`analysis.stats_paired.paired_test` needs).
    """
    n_used = check_count(n_resamples, "n_resamples")
    masks = _draw_masks(check_rng(rng), n_used, x.size)
    sums, sizes = _mask_sums(masks, x), masks.sum(axis=1)

    def pval(c, alt):
        y = x - c if alt == "greater" else c - x
        return _mask_pvalue(y, masks)

    def interval(a):
        return _interval_from_patterns(sums, sizes, 1, a)
    return pval, interval, n_used
