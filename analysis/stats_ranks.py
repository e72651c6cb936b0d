"""Rank and sign tests with the intervals that invert them: the Wilcoxon signed-rank test
(Pratt's zero handling, exact) with the Hodges-Lehmann estimate and Walsh-average interval,
and the exact sign test of the median with its order-statistic interval. Pure: arrays in,
numbers out."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy import stats as _st

from analysis.stats_inputs import (
    REL_TOL,
    as_pairs,
    check_alpha,
    check_alternative,
    scalar_or_array,
)

__all__ = [
    "hodges_lehmann",
    "hodges_lehmann_interval",
    "rank_tail",
    "sign_interval",
    "sign_pvalue",
    "signed_rank_critical",
    "wilcoxon_pvalue",
]

MAX_EXACT_RANK = 200  # exact signed-rank null (subset sums of midranks) up to this many pairs


def _has_zero_or_tie(x: np.ndarray) -> bool:
    a = np.sort(np.abs(x))
    return bool(a.size and (a[0] == 0 or np.any(np.diff(a) == 0)))


@lru_cache(maxsize=4096)
def rank_tail(doubled: tuple[int, ...]) -> np.ndarray:
    """P(2 W+ >= s) for s = 0 .. sum(doubled) when each doubled midrank enters with prob 1/2."""
    total = sum(doubled)
    counts = np.zeros(total + 1)
    counts[0] = 1.0
    for r in doubled:
        nxt = counts.copy()
        nxt[r:] += counts[: total + 1 - r]
        counts = nxt
    counts /= 2.0 ** len(doubled)
    return np.cumsum(counts[::-1])[::-1]


def _pratt_1d(x: np.ndarray, alternative: str) -> float:
    """Exact one-sided signed-rank p with Pratt's zero handling, conditional on the |x| ranks.

    Zeros keep their place in the ranking of |x| (Pratt 1959) but carry no sign; ties get
    midranks. The null distribution flips the sign of every non-zero difference independently,
    which is the exact permutation distribution for any continuous or discrete symmetric law.
    """
    scale = float(np.abs(x).max()) if x.size else 0.0
    if scale == 0:
        return 1.0  # no non-zero difference: no evidence either way
    # Differences equal up to float error (d_i - c vs c - d_j at a Walsh average c) are ties.
    a = np.round(np.abs(x) / scale, 10)
    nz = a != 0
    doubled = np.rint(2 * _st.rankdata(a)).astype(np.int64)[nz]
    w2 = int(doubled[x[nz] > 0].sum())  # 2 W+
    if alternative == "less":
        w2 = int(doubled.sum()) - w2  # P(W+* <= W+) = P(W-* >= W-) by symmetry
    if nz.sum() <= MAX_EXACT_RANK:
        tail = rank_tail(tuple(sorted(doubled.tolist())))
        return float(min(1.0, tail[w2]))
    mean = doubled.sum() / 2.0
    se = math.sqrt(float((doubled.astype(float) ** 2).sum()) / 4.0)  # of 2 W+
    return float(_st.norm.sf((w2 - mean - 1.0) / se))  # continuity correction (2W+ in steps of 2)


def wilcoxon_pvalue(d: object, *, null: float = 0.0, alternative: str = "greater"):
    """One-sided Wilcoxon signed-rank p-value of ``d - null``, Pratt's zero handling, exact.

    Zeros are ranked with the other |d| and then carry no sign (``zero_method="pratt"``);
    ties get midranks. p is exact over the 2^k sign flips of the k non-zero differences for
    k <= 200 (the same number as ``scipy.stats.wilcoxon(d, zero_method="pratt",
    method="exact")`` without zeros or ties, and as a sign-flip ``permutation_test`` of W+
    with them), normal approximation beyond. This is the test that
    :func:`hodges_lehmann_interval` inverts, so the two agree with zeros and ties too. All
    differences zero gives p = 1. 2-D input: one p per row.

    >>> round(wilcoxon_pvalue([0.5, 1.0, 1.5, 2.0, -0.2]), 4)
    0.0625
    """
    x = as_pairs(d) - null
    check_alternative(alternative)
    if x.shape[-1] == 0:
        raise ValueError("wilcoxon_pvalue needs at least one pair; got an empty array")
    if x.ndim == 1:
        return _pratt_1d(x, alternative)
    return np.array([_pratt_1d(row, alternative) for row in x])


def _invert_at_breaks(breaks: np.ndarray, pvalue: Callable[[float, str], float],
                      alpha: float) -> tuple[float, float]:
    """(1 - 2 alpha) interval {c : neither one-sided test of centre c rejects}, as its hull.

    ``pvalue(c, alternative)`` must be constant between consecutive ``breaks`` (the points
    where the statistic can jump), so evaluating it at every break and at one point inside
    every gap between breaks covers every c. low = inf{c : p_greater(c) > alpha}; high =
    sup{c : p_less(c) > alpha}. The test therefore rejects "centre <= 0" exactly when
    ``low > 0`` wherever p_greater is monotone in c (it is for the sign and signed-rank
    statistics up to the rare Pratt non-monotonicity, see docs/statistics.md).
    """
    b = np.unique(breaks)
    mids = (b[:-1] + b[1:]) / 2.0
    span = max(1.0, float(b[-1] - b[0]))
    pts = np.sort(np.concatenate([b, mids, [b[0] - span, b[-1] + span]]))
    low, high = -math.inf, math.inf
    # A bound at a break that the test itself rejects is open: (break, ...). It is returned as
    # the next float beyond the break, so that "low > 0" still reads "0 is rejected".
    k = _first_accepted(pts, lambda c: pvalue(c, "greater") > alpha)
    if k is not None:
        c = pts[k]
        at = float(b[b <= c][-1]) if k else -math.inf
        low = at if k == 0 or at == c else float(np.nextafter(at, math.inf))
    rev = pts[::-1]
    k = _first_accepted(rev, lambda c: pvalue(c, "less") > alpha)
    if k is not None:
        c = rev[k]
        at = float(b[b >= c][0]) if k else math.inf
        high = at if k == 0 or at == c else float(np.nextafter(at, -math.inf))
    return (low, high)


def _first_accepted(pts: np.ndarray, accepted: Callable[[float], bool], scan: int = 1500) -> int | None:
    """Index of the first point at which the test does not reject.

    Up to ``scan`` points: every point in order (exact even where the p-value is not monotone in
    the centre). Beyond: bisection on the monotone trend, then a backward walk over the last 64
    points before the crossing, which catches the local non-monotonicity of rank statistics
    (an island of acceptance far from the crossing would be missed; none was seen in tests).
    """
    if pts.size <= scan:
        return next((k for k, c in enumerate(pts) if accepted(float(c))), None)
    lo, hi = 0, pts.size - 1
    if accepted(float(pts[0])):
        return 0
    if not accepted(float(pts[hi])):
        return None
    while hi - lo > 1:  # invariant: rejected at lo, accepted at hi
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if not accepted(float(pts[mid])) else (lo, mid)
    first = hi
    for k in range(hi - 1, max(-1, hi - 65), -1):
        if accepted(float(pts[k])):
            first = k
    return first


def _signed_rank_tail(n: int) -> np.ndarray:
    """P(W+ >= w) for w = 0 .. n(n+1)/2 under H0, exact (counts of subset sums of 1..n)."""
    m = n * (n + 1) // 2
    counts = np.zeros(m + 1, dtype=np.int64)
    counts[0] = 1
    for k in range(1, n + 1):
        nxt = counts.copy()
        nxt[k:] += counts[: m + 1 - k]
        counts = nxt
    return np.cumsum(counts[::-1])[::-1] / 2.0**n


def signed_rank_critical(n: int, alpha: float) -> int:
    """Smallest c with P(W+ >= c) <= alpha under H0, as ``scipy.stats.wilcoxon`` computes p.

    Exact distribution for n <= 50; for n > 50 scipy's normal approximation with continuity
    correction, c = ceil(n(n+1)/4 + 0.5 + z_(1-alpha) * sqrt(n(n+1)(2n+1)/24)). Returns
    n(n+1)/2 + 1 when no value of W+ is significant (2^-n > alpha).

    >>> signed_rank_critical(5, 0.05)  # only W+ = 15 (p = 1/32) is significant
    15
    """
    alpha = check_alpha(alpha)
    m = n * (n + 1) // 2
    if n <= 50:
        tail = _signed_rank_tail(n)
        ok = np.nonzero(tail <= alpha * (1 + 1e-12))[0]
        return int(ok[0]) if ok.size else m + 1
    mean = m / 2.0
    se = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    return min(m + 1, math.ceil(mean + 0.5 + _st.norm.isf(alpha) * se - 1e-9))


def _walsh(x: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(x.shape[-1])
    return np.sort((x[..., i] + x[..., j]) / 2.0, axis=-1)


def hodges_lehmann(d: object):
    """Hodges-Lehmann estimate: the median of the Walsh averages (d_i + d_j)/2, i <= j.

    The estimate that goes with the signed-rank test (a pseudo-median; the mean and median
    when d is symmetric). 2-D input: one estimate per row.

    >>> hodges_lehmann([1.0, 2.0, 9.0])  # Walsh averages 1, 1.5, 2, 5, 5.5, 9
    3.5
    """
    x = as_pairs(d)
    if x.shape[-1] == 0:
        raise ValueError("hodges_lehmann needs at least one pair; got an empty array")
    out = np.median(_walsh(x), axis=-1)
    return scalar_or_array(np.asarray(out), x.ndim == 1)


def hodges_lehmann_interval(d: object, alpha: float):
    """Two-sided (1 - 2 alpha) interval that inverts the one-sided signed-rank test.

    The set of centres c at which neither one-sided :func:`wilcoxon_pvalue` of d - c rejects
    at ``alpha``, found by evaluating the test at every Walsh average (where the statistic can
    jump) and between them. Without ties or zeros this is the classical interval
    [w_(M - c + 1), w_(c)] on the M = n(n+1)/2 sorted Walsh averages with c =
    :func:`signed_rank_critical` (n, alpha); with zeros or ties it still agrees with the test
    (Pratt zero handling on both sides). ``(-inf, inf)`` when no centre can be rejected.
    2-D input: arrays of lows and highs.

    >>> hodges_lehmann_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05)
    (1.0, 5.0)
    """
    x = as_pairs(d)
    alpha = check_alpha(alpha)
    n = x.shape[-1]
    if n == 0:
        return (math.nan, math.nan)
    if x.ndim == 2:
        pairs = [hodges_lehmann_interval(row, alpha) for row in x]
        return (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    if 2.0**-n > alpha * (1 + 1e-12):
        return (-math.inf, math.inf)
    if not _has_zero_or_tie(x) and n <= 50:
        # No ties: the textbook order statistics (equal to the inversion, and fast).
        m, c = n * (n + 1) // 2, signed_rank_critical(n, alpha)
        w = _walsh(x)
        return (float(w[m - c]), float(w[c - 1]))
    return _invert_at_breaks(_walsh(x), lambda c, alt: wilcoxon_pvalue(x, null=c, alternative=alt), alpha)



# --------------------------------------------------------------------------- sign test (median)
def sign_pvalue(d: object, *, null: float = 0.0, alternative: str = "greater"):
    """One-sided exact sign test of H0: median(d) = ``null`` (``"greater"``: H1 median above).

    p = P(Bin(k, 1/2) >= #{d > null}) with k = #{d != null} (zeros dropped), the same number
    as ``scipy.stats.binomtest(#{d > null}, k, alternative="greater")``. Exact for the median
    of ANY continuous distribution, skewed or not: the test for ``estimand="median"``.
    2-D input: one p per row.

    >>> round(sign_pvalue([1.0, 2.0, 3.0, 4.0, -1.0]), 4)  # P(Bin(5, 1/2) >= 4)
    0.1875
    """
    x = as_pairs(d) - null
    check_alternative(alternative)
    if x.shape[-1] == 0:
        raise ValueError("sign_pvalue needs at least one pair; got an empty array")
    scale = np.abs(x).max(axis=-1, keepdims=True)
    tiny = np.abs(x) <= REL_TOL * np.where(scale > 0, scale, 1.0)
    pos = ((x > 0) & ~tiny).sum(axis=-1)
    k = (~tiny).sum(axis=-1)
    hits = pos if alternative == "greater" else k - pos
    p = np.where(k > 0, _st.binom.sf(hits - 1, k, 0.5), 1.0)
    return scalar_or_array(np.minimum(1.0, np.asarray(p, float)), x.ndim == 1)


def sign_interval(d: object, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - 2 alpha) interval for the median that inverts :func:`sign_pvalue`.

    Without ties these are order statistics of d (the distribution-free median interval).
    ``(-inf, inf)`` when 2^-n > alpha.

    >>> sign_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05)
    (1.0, 5.0)
    """
    x = as_pairs(d, max_ndim=1)
    alpha = check_alpha(alpha)
    if x.size == 0:
        return (math.nan, math.nan)
    return _invert_at_breaks(x, lambda c, alt: sign_pvalue(x, null=c, alternative=alt), alpha)
