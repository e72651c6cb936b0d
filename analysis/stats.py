"""Pure statistics for paired, multi-seed comparisons.

Everything here works on numpy arrays and nothing else: no MLflow, no files, no global state.
Every function that resamples takes a ``numpy.random.Generator`` (``rng``) and draws only from
it, so one seeded generator makes a whole report reproducible bit for bit.

The unit of analysis is a vector ``d`` of paired differences, one per seed, expressed in the
predicted direction (``d > 0`` means the treatment did better; see :func:`paired_differences`).
Three one-sided tests are offered, each with the interval that inverts it, so that a test and
its interval never disagree:

=============  ==========================================  ===================================
test           statistic / null distribution               estimate and interval
=============  ==========================================  ===================================
permutation    mean of d; all 2^n sign flips (n <= 20),    mean; subset-means interval
               else ``n_resamples`` random sign flips      (Hartigan 1969), the exact inversion
wilcoxon       signed-rank W+ (``scipy.stats.wilcoxon``)   Hodges-Lehmann pseudo-median;
                                                           Walsh-average interval
t              paired t (``scipy.stats.ttest_1samp``)      mean; Student t interval
=============  ==========================================  ===================================

Functions whose first argument is ``d`` accept a 1-D array (one sample) or a 2-D array (one
sample per row, pairs along the last axis) where noted; 2-D input is how the simulation tests
run thousands of replicates quickly.

See ``docs/statistics.md`` for the definitions and the measured error rates.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import stats as _st

__all__ = [
    "MAX_EXACT",
    "N_BOOTSTRAP",
    "N_PERMUTATIONS",
    "TESTS",
    "PairedTest",
    "adjust_pvalues",
    "bootstrap_interval",
    "bootstrap_t_interval",
    "bootstrap_t_null",
    "bootstrap_t_pvalue",
    "hodges_lehmann",
    "hodges_lehmann_interval",
    "iqm",
    "iqm_interval",
    "paired_differences",
    "paired_test",
    "power_paired_t",
    "prob_better",
    "prob_better_interval",
    "seeds_for_power",
    "sign_flip_interval",
    "sign_flip_pvalue",
    "sign_interval",
    "sign_pvalue",
    "signed_rank_critical",
    "t_interval",
    "t_pvalue",
    "wilcoxon_pvalue",
]

TESTS = ("permutation", "wilcoxon", "t", "sign", "bootstrap_t")
ALTERNATIVES = ("greater", "less")
MAX_EXACT = 20  # sign-flip tests enumerate all 2^n patterns up to this many pairs
N_PERMUTATIONS = 9999  # random sign patterns beyond MAX_EXACT pairs
N_BOOTSTRAP = 4999  # bootstrap resamples for descriptive intervals
_REL_TOL = 1e-10  # ties in sums of differences: relative to sum(|d|); float error is ~n*eps


# --------------------------------------------------------------------------- input checks
def _pairs(d: object, name: str = "d", *, max_ndim: int = 2) -> np.ndarray:
    x = np.asarray(d, dtype=np.float64)
    if x.ndim == 0 or x.ndim > max_ndim:
        raise ValueError(
            f"{name} must be a 1-D array of paired differences"
            + (" (or 2-D, one sample per row)" if max_ndim == 2 else "")
            + f"; got an array of shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name} contains NaN or infinite values; apply the failed-run policy first "
            "(analysis.decide replaces or drops failed runs before testing)"
        )
    return x


def _check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be a number strictly between 0 and 0.5; got {alpha!r}")
    return float(alpha)


def _check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {list(ALTERNATIVES)}; got {alternative!r}")
    return alternative


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0); "
            f"got {type(rng).__name__}"
        )
    return rng


def _check_count(value: object, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _scalar_or_array(out: np.ndarray, one_d: bool):
    return float(out.reshape(())) if one_d else out


# --------------------------------------------------------------------------- differences
def paired_differences(control: object, treatment: object, direction: str) -> np.ndarray:
    """Per-seed improvement of the treatment over the control, in the predicted direction.

    ``direction="lower"`` (lower is better): ``d = control - treatment``;
    ``direction="higher"``: ``d = treatment - control``. Either way ``d > 0`` means the
    treatment did better on that seed. NaN (a failed run) propagates: apply the failed-run
    policy before testing.

    >>> paired_differences([10.0, 12.0], [9.0, 12.5], "lower").tolist()
    [1.0, -0.5]
    """
    c = np.asarray(control, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.float64)
    if c.shape != t.shape or c.ndim != 1:
        raise ValueError(
            "control and treatment must be 1-D arrays of equal length, one value per seed pair; "
            f"got shapes {c.shape} and {t.shape}"
        )
    if direction == "lower":
        return c - t
    if direction == "higher":
        return t - c
    raise ValueError(f"direction must be 'lower' or 'higher'; got {direction!r}")


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
    return _REL_TOL * float(np.abs(x).sum())


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
    x = _pairs(d) - null
    _check_alternative(alternative)
    if x.shape[-1] == 0:
        raise ValueError("sign_flip_pvalue needs at least one pair; got an empty array")
    n_resamples = _check_count(n_resamples, "n_resamples")
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
        rng = _check_rng(rng)
        for i, row in enumerate(rows):
            out[i] = _mask_pvalue(row, _draw_masks(rng, n_resamples, n))
    return _scalar_or_array(out.reshape(x.shape[:-1]), one_d)


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
    x = _pairs(d, max_ndim=1)
    alpha = _check_alpha(alpha)
    if x.size == 0:
        return (math.nan, math.nan)
    if x.size <= max_exact:
        return _interval_from_patterns(_subset_sums(x), _subset_sums(np.ones_like(x)), 0, alpha)
    masks = _draw_masks(_check_rng(rng), _check_count(n_resamples, "n_resamples"), x.size)
    return _interval_from_patterns(_mask_sums(masks, x), masks.sum(axis=1), 1, alpha)


# --------------------------------------------------------------------------- Wilcoxon
MAX_EXACT_RANK = 200  # exact signed-rank null (subset sums of midranks) up to this many pairs


def _has_zero_or_tie(x: np.ndarray) -> bool:
    a = np.sort(np.abs(x))
    return bool(a.size and (a[0] == 0 or np.any(np.diff(a) == 0)))


@lru_cache(maxsize=4096)
def _rank_tail(doubled: tuple[int, ...]) -> np.ndarray:
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
        tail = _rank_tail(tuple(sorted(doubled.tolist())))
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
    x = _pairs(d) - null
    _check_alternative(alternative)
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
    alpha = _check_alpha(alpha)
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
    x = _pairs(d)
    if x.shape[-1] == 0:
        raise ValueError("hodges_lehmann needs at least one pair; got an empty array")
    out = np.median(_walsh(x), axis=-1)
    return _scalar_or_array(np.asarray(out), x.ndim == 1)


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
    x = _pairs(d)
    alpha = _check_alpha(alpha)
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


# --------------------------------------------------------------------------- paired t
def t_pvalue(d: object, *, null: float = 0.0, alternative: str = "greater"):
    """One-sided one-sample (paired) t-test p-value of ``d`` against ``null``.

    ``scipy.stats.ttest_1samp(d, null, alternative=...)``. With fewer than 2 pairs p = 1
    (no test). With zero variance the limit is used: p = 0 when every d is beyond ``null`` in
    the alternative's direction, else 1. 2-D input: one p per row.

    >>> round(t_pvalue([1.0, 2.0, 3.0]), 4)
    0.0371
    """
    x = _pairs(d) - null
    _check_alternative(alternative)
    n = x.shape[-1]
    one_d = x.ndim == 1
    if n < 2:
        return _scalar_or_array(np.ones(x.shape[:-1]), one_d)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        p = np.asarray(_st.ttest_1samp(x, 0.0, axis=-1, alternative=alternative).pvalue, float)
    constant = np.ptp(x, axis=-1) == 0
    if np.any(constant):
        mean = x.mean(axis=-1)
        beyond = mean > 0 if alternative == "greater" else mean < 0
        p = np.where(constant, np.where(beyond, 0.0, 1.0), p)
    p = np.where(np.isnan(p), 1.0, p)
    return _scalar_or_array(p, one_d)


def t_interval(d: object, alpha: float):
    """Two-sided (1 - 2 alpha) Student t interval for the mean of ``d``.

    mean(d) -+ t_(1-alpha, n-1) * sd(d) / sqrt(n), sd with ddof=1: the interval whose lower
    bound exceeds 0 exactly when the one-sided t-test at ``alpha`` rejects. Equal to
    ``scipy.stats.ttest_1samp(d, 0).confidence_interval(1 - 2 * alpha)``. ``(-inf, inf)``
    with fewer than 2 pairs. 2-D input: arrays of lows and highs.

    >>> [round(v, 4) for v in t_interval([1.0, 2.0, 3.0], 0.05)]
    [0.3141, 3.6859]
    """
    x = _pairs(d)
    alpha = _check_alpha(alpha)
    n = x.shape[-1]
    if n < 2:
        low, high = np.full(x.shape[:-1], -np.inf), np.full(x.shape[:-1], np.inf)
    else:
        mean = x.mean(axis=-1)
        half = _st.t.isf(alpha, n - 1) * x.std(axis=-1, ddof=1) / math.sqrt(n)
        low, high = mean - half, mean + half
    if x.ndim == 1:
        return (float(low), float(high))
    return (np.asarray(low), np.asarray(high))


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
    x = _pairs(d) - null
    _check_alternative(alternative)
    if x.shape[-1] == 0:
        raise ValueError("sign_pvalue needs at least one pair; got an empty array")
    scale = np.abs(x).max(axis=-1, keepdims=True)
    tiny = np.abs(x) <= _REL_TOL * np.where(scale > 0, scale, 1.0)
    pos = ((x > 0) & ~tiny).sum(axis=-1)
    k = (~tiny).sum(axis=-1)
    hits = pos if alternative == "greater" else k - pos
    p = np.where(k > 0, _st.binom.sf(hits - 1, k, 0.5), 1.0)
    return _scalar_or_array(np.minimum(1.0, np.asarray(p, float)), x.ndim == 1)


def sign_interval(d: object, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - 2 alpha) interval for the median that inverts :func:`sign_pvalue`.

    Without ties these are order statistics of d (the distribution-free median interval).
    ``(-inf, inf)`` when 2^-n > alpha.

    >>> sign_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05)
    (1.0, 5.0)
    """
    x = _pairs(d, max_ndim=1)
    alpha = _check_alpha(alpha)
    if x.size == 0:
        return (math.nan, math.nan)
    return _invert_at_breaks(x, lambda c, alt: sign_pvalue(x, null=c, alternative=alt), alpha)


# --------------------------------------------------------------------------- studentised bootstrap (mean)
def bootstrap_t_null(d: object, rng: np.random.Generator, n_resamples: int = N_PERMUTATIONS):
    """Studentised bootstrap distribution T* = (mean* - mean) / (sd* / sqrt(n)) of ``d``.

    Resampling indices come from ``rng`` only and do not depend on the data, so one draw can
    serve every row of a 2-D ``d`` (the simulation tests use this). A resample with sd* = 0
    gives T* = 0 if mean* = mean, else +-inf. Returns an array (..., n_resamples).
    """
    x = _pairs(d)
    n = x.shape[-1]
    idx = _check_rng(rng).integers(0, n, size=(_check_count(n_resamples, "n_resamples"), n))
    xb = x[..., idx]  # (..., B, n)
    mean = x.mean(axis=-1, keepdims=True)
    mb = xb.mean(axis=-1)
    se = xb.std(axis=-1, ddof=1) / math.sqrt(n)
    diff = mb - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.sign(diff) * np.inf)
    t = np.where((se == 0) & (np.abs(diff) <= _REL_TOL * (np.abs(mean) + 1)), 0.0, t)
    return t


def bootstrap_t_pvalue(d: object, tstar: np.ndarray, *, null: float = 0.0,
                       alternative: str = "greater"):
    """One-sided studentised-bootstrap p for the mean: (1 + #{T* >= t}) / (1 + B).

    t = (mean(d) - null) / (sd(d) / sqrt(n)); ``tstar`` from :func:`bootstrap_t_null` on the
    same d. The bootstrap-t corrects the t-test's skewness error to second order (Hall 1992),
    the test for ``estimand="mean"``. Fewer than 3 pairs: p = 1. Constant d: p = 0 when every
    d is beyond ``null`` in the alternative's direction, else 1. 2-D input: one p per row.
    """
    x = _pairs(d)
    _check_alternative(alternative)
    n = x.shape[-1]
    if n < 3:
        return _scalar_or_array(np.ones(x.shape[:-1]), x.ndim == 1)
    se = x.std(axis=-1, ddof=1) / math.sqrt(n)
    diff = x.mean(axis=-1) - null
    sign = 1.0 if alternative == "greater" else -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = sign * diff / np.where(se > 0, se, 1.0)
    ts = sign * np.asarray(tstar)
    count = (ts >= t[..., None] - 1e-12 * np.abs(t[..., None])).sum(axis=-1)
    p = (1.0 + count) / (1.0 + ts.shape[-1])
    p = np.where(se > 0, p, np.where(sign * diff > 0, 0.0, 1.0))
    return _scalar_or_array(np.asarray(p, float), x.ndim == 1)


def bootstrap_t_interval(d: object, tstar: np.ndarray, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - 2 alpha) studentised-bootstrap interval that inverts
    :func:`bootstrap_t_pvalue`: mean - se T*_(j-th largest), mean - se T*_(j-th smallest),
    j = floor(alpha (B + 1)). ``(-inf, inf)`` with fewer than 3 pairs or j < 1."""
    x = _pairs(d, max_ndim=1)
    alpha = _check_alpha(alpha)
    n = x.size
    ts = np.sort(np.asarray(tstar, float))
    j = math.floor(alpha * (ts.size + 1) + 1e-9)
    if n < 3 or j < 1:
        return (-math.inf, math.inf)
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(n))
    if se == 0:
        return (mean, mean)
    return (mean - se * float(ts[-j]), mean - se * float(ts[j - 1]))


# --------------------------------------------------------------------------- one test, all parts
ESTIMATORS = {"permutation": "mean", "wilcoxon": "hodges-lehmann", "t": "mean", "sign": "median",
              "bootstrap_t": "mean"}


@dataclass(frozen=True)
class PairedTest:
    """Everything one paired test says about a vector of differences d.

    ``p_superiority`` tests H0: centre <= 0 against H1: centre > 0 (the treatment helps);
    ``p_nonsuperiority`` tests H0: centre >= effect against H1: centre < effect (the
    improvement is smaller than the smallest effect of interest), the same test applied to
    d - effect. ``p_at_effect`` tests H0: centre <= effect against H1: centre > effect (the
    improvement is shown to reach E); ``p_noninferiority`` tests H0: centre <= -effect against
    H1: centre > -effect (with ``p_nonsuperiority``, the two one-sided tests of equivalence
    within +-E). ``ci_low``/``ci_high`` is the (1 - 2 alpha) interval that inverts the test,
    so ``ci_low > 0`` iff ``p_superiority <= alpha`` and ``ci_high < effect`` iff
    ``p_nonsuperiority <= alpha``. ``interval(a)`` gives the interval at another level (the
    multiplicity-adjusted one) from the same resamples.
    """

    test: str
    n: int
    estimate: float
    estimator: str  # "mean", "median" or "hodges-lehmann"
    ci_low: float
    ci_high: float
    confidence: float  # 1 - 2 alpha
    p_superiority: float
    p_nonsuperiority: float
    monte_carlo: bool  # True for resampled null distributions (sign flip n > max_exact, bootstrap-t)
    n_resamples: int  # sign patterns or bootstrap resamples behind the p-values; 0 for t, wilcoxon, sign
    p_at_effect: float = math.nan
    p_noninferiority: float = math.nan
    interval: Callable[[float], tuple[float, float]] | None = field(default=None, compare=False, repr=False)


def paired_test(
    d: object,
    *,
    test: str,
    effect: float,
    alpha: float,
    rng: np.random.Generator | None = None,
    n_resamples: int = N_PERMUTATIONS,
    max_exact: int = MAX_EXACT,
) -> PairedTest:
    """Run one paired test on ``d``: superiority, non-superiority, equivalence and interval.

    ``test``: "permutation" (sign flip, mean), "wilcoxon" (signed rank, Hodges-Lehmann),
    "t" (paired t, mean), "sign" (exact sign test, median) or "bootstrap_t" (studentised
    bootstrap, mean). ``effect`` is the smallest effect of interest (>= 0). ``rng`` is needed
    only by the resampled tests (sign flip with n > ``max_exact``, bootstrap-t), which draw ONE
    set of resamples and use it for every p-value and interval, so they agree.
    No pairs: estimate and interval NaN, every p-value 1.

    >>> r = paired_test([1.0, 2.0, 3.0], test="t", effect=0.5, alpha=0.05)
    >>> round(r.estimate, 3), round(r.p_superiority, 4), round(r.p_nonsuperiority, 4)
    (2.0, 0.0371, 0.9392)
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {list(TESTS)}; got {test!r}")
    x = _pairs(d, max_ndim=1)
    alpha = _check_alpha(alpha)
    if not math.isfinite(effect) or effect < 0:
        raise ValueError(f"effect (the smallest effect of interest) must be finite and >= 0; got {effect!r}")
    n = x.size
    conf = 1 - 2 * alpha
    est_name = ESTIMATORS[test]
    if n == 0:
        return PairedTest(test, 0, math.nan, est_name, math.nan, math.nan, conf, 1.0, 1.0, False, 0,
                          1.0, 1.0, lambda a: (math.nan, math.nan))
    monte_carlo, n_used = False, 0
    if test == "t":
        def pval(c, alt):
            return t_pvalue(x, null=c, alternative=alt)

        def interval(a):
            return t_interval(x, a)
        estimate = float(x.mean())
    elif test == "wilcoxon":
        def pval(c, alt):
            return wilcoxon_pvalue(x, null=c, alternative=alt)

        def interval(a):
            return hodges_lehmann_interval(x, a)
        estimate = hodges_lehmann(x)
    elif test == "sign":
        def pval(c, alt):
            return sign_pvalue(x, null=c, alternative=alt)

        def interval(a):
            return sign_interval(x, a)
        estimate = float(np.median(x))
    elif test == "bootstrap_t":
        n_used = _check_count(n_resamples, "n_resamples")
        tstar = bootstrap_t_null(x, _check_rng(rng), n_used)
        monte_carlo = True

        def pval(c, alt):
            return bootstrap_t_pvalue(x, tstar, null=c, alternative=alt)

        def interval(a):
            return bootstrap_t_interval(x, tstar, a)
        estimate = float(x.mean())
    elif n <= max_exact:
        n_used = 2**n

        def pval(c, alt):
            return sign_flip_pvalue(x, null=c, alternative=alt, max_exact=max_exact)

        def interval(a):
            return sign_flip_interval(x, a, max_exact=max_exact)
        estimate = float(x.mean())
    else:
        n_used = _check_count(n_resamples, "n_resamples")
        masks = _draw_masks(_check_rng(rng), n_used, n)
        sums, sizes = _mask_sums(masks, x), masks.sum(axis=1)
        monte_carlo = True

        def pval(c, alt):
            y = x - c if alt == "greater" else c - x
            return _mask_pvalue(y, masks)

        def interval(a):
            return _interval_from_patterns(sums, sizes, 1, a)
        estimate = float(x.mean())
    low, high = interval(alpha)
    return PairedTest(
        test, n, float(estimate), est_name, low, high, conf, float(pval(0.0, "greater")),
        float(pval(effect, "less")), monte_carlo, n_used, float(pval(effect, "greater")),
        float(pval(-effect, "greater")), interval,
    )


# --------------------------------------------------------------------------- multiplicity
def adjust_pvalues(p: object, method: str):
    """Multiplicity-adjusted p-values: ``"holm"`` (step-down, family-wise error) or ``"bh"``
    (Benjamini-Hochberg step-up, false discovery rate).

    Holm: sorted p_(1) <= ... <= p_(m), adj_(i) = max_(j<=i) min(1, (m - j + 1) p_(j)).
    BH: adj_(i) = min_(j>=i) min(1, m p_(j) / j). The same numbers as statsmodels
    ``multipletests(p, method="holm")`` / ``"fdr_bh"`` (statsmodels' default is Holm-Sidak,
    which this is not). 2-D input: one family per row.

    >>> adjust_pvalues([0.01, 0.04, 0.03], "holm").tolist()
    [0.03, 0.06, 0.06]
    >>> np.round(adjust_pvalues([0.01, 0.04, 0.03], "bh"), 4).tolist()
    [0.03, 0.04, 0.04]
    """
    x = np.asarray(p, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"p must be a 1-D array of p-values (or 2-D, one family per row); got shape {x.shape}")
    if np.any(~np.isfinite(x)) or np.any(x < 0) or np.any(x > 1):
        raise ValueError("p-values must be numbers in [0, 1] without NaN")
    if method not in ("holm", "bh"):
        raise ValueError(f"method must be 'holm' or 'bh'; got {method!r}")
    m = x.shape[-1]
    if m == 0:
        return x.copy()
    order = np.argsort(x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, axis=-1)
    rank = np.arange(1, m + 1)
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - rank + 1) * s), axis=-1)
    else:
        adj = np.minimum.accumulate((m / rank * s)[..., ::-1], axis=-1)[..., ::-1]
        adj = np.minimum(adj, 1.0)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


# --------------------------------------------------------------------------- descriptive
def bootstrap_interval(
    x: object,
    statistic: Callable[[np.ndarray], np.ndarray],
    alpha: float,
    rng: np.random.Generator,
    n_resamples: int = N_BOOTSTRAP,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - 2 alpha) interval of ``statistic`` over the entries of ``x``.

    ``statistic`` maps an (n_resamples, n) array to n_resamples values (reduce over axis -1).
    Resampling indices are drawn from ``rng`` only. NaN bounds for an empty sample.

    >>> rng = np.random.default_rng(0)
    >>> lo, hi = bootstrap_interval([1.0, 2.0, 3.0, 4.0], lambda a: a.mean(axis=-1), 0.05, rng)
    >>> 1.0 <= lo <= 2.5 <= hi <= 4.0
    True
    """
    v = _pairs(x, "x", max_ndim=1)
    alpha = _check_alpha(alpha)
    rng = _check_rng(rng)
    n_resamples = _check_count(n_resamples, "n_resamples")
    if v.size == 0:
        return (math.nan, math.nan)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    values = np.asarray(statistic(v[idx]), dtype=np.float64)
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return (float(low), float(high))


def prob_better(d: object):
    """Common-language effect size for paired data: P(treatment better) estimated as the
    fraction of pairs with d > 0, ties (d = 0) counting one half. 2-D input: one per row.

    >>> prob_better([1.0, -1.0, 0.0, 2.0])
    0.625
    """
    x = _pairs(d)
    if x.shape[-1] == 0:
        raise ValueError("prob_better needs at least one pair; got an empty array")
    out = (x > 0).mean(axis=-1) + 0.5 * (x == 0).mean(axis=-1)
    return _scalar_or_array(np.asarray(out), x.ndim == 1)


def prob_better_interval(
    d: object, alpha: float, rng: np.random.Generator, n_resamples: int = N_BOOTSTRAP
) -> tuple[float, float]:
    """Percentile bootstrap (1 - 2 alpha) interval for :func:`prob_better`, resampling pairs.

    >>> prob_better_interval([1.0, 2.0, 3.0], 0.05, np.random.default_rng(0))
    (1.0, 1.0)
    """
    return bootstrap_interval(d, prob_better, alpha, rng, n_resamples)


def iqm(x: object):
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, 0.25)``,
    which cuts floor(n/4) values from each end, as rliable does). 2-D input: one per row.

    >>> iqm([1.0, 2.0, 3.0, 100.0])
    2.5
    """
    v = _pairs(x, "x")
    if v.shape[-1] == 0:
        raise ValueError("iqm needs at least one value; got an empty array")
    return _scalar_or_array(np.asarray(_st.trim_mean(v, 0.25, axis=-1)), v.ndim == 1)


def iqm_interval(
    x: object, alpha: float, rng: np.random.Generator, n_resamples: int = N_BOOTSTRAP
) -> tuple[float, float]:
    """Percentile bootstrap (1 - 2 alpha) interval for the :func:`iqm` of one variant's runs.

    >>> lo, hi = iqm_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05, np.random.default_rng(0))
    >>> 1.0 <= lo <= hi <= 5.0
    True
    """
    return bootstrap_interval(x, iqm, alpha, rng, n_resamples)


# --------------------------------------------------------------------------- power
def power_paired_t(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the one-sided paired t-test at level ``alpha`` to detect a true mean
    improvement ``effect`` with n pairs whose differences have standard deviation ``sd``.

    Noncentral t: P(T' > t_(1-alpha, n-1)), T' ~ nct(df = n - 1, nc = (effect / sd) sqrt(n)),
    equal to statsmodels ``TTestPower().power(effect / sd, n, alpha, alternative="larger")``.
    NaN for n < 2 or a non-finite sd; sd = 0 gives 1 for effect > 0 (alpha for effect = 0).

    >>> round(power_paired_t(1.0, 1.0, 10, 0.05), 4)
    0.8975
    """
    alpha = _check_alpha(alpha)
    if not (n >= 2 and math.isfinite(sd) and sd >= 0 and math.isfinite(effect)):
        return math.nan
    if sd == 0:
        return 1.0 if effect > 0 else alpha
    crit = _st.t.isf(alpha, n - 1)
    return float(_st.nct.sf(crit, n - 1, effect / sd * math.sqrt(n)))


def seeds_for_power(
    effect: float, sd: float, alpha: float, power: float = 0.8, max_n: int = 10**7
) -> float:
    """Smallest number of seed pairs n >= 2 at which :func:`power_paired_t` >= ``power``.

    The integer ceiling of statsmodels ``TTestPower().solve_power(effect / sd, alpha=alpha,
    power=power, alternative="larger")``. ``inf`` when ``effect`` <= 0 (no finite number of
    seeds detects no effect) or more than ``max_n`` would be needed; NaN for a non-finite sd;
    2 when sd = 0 and effect > 0.

    >>> seeds_for_power(1.0, 1.0, 0.05)
    8
    """
    alpha = _check_alpha(alpha)
    if not 0 < power < 1:
        raise ValueError(f"power must be strictly between 0 and 1; got {power!r}")
    if not (math.isfinite(sd) and sd >= 0 and math.isfinite(effect)):
        return math.nan
    if effect <= 0:
        return math.inf
    if sd == 0:
        return 2

    def ok(n: int) -> bool:
        return power_paired_t(effect, sd, n, alpha) >= power

    if ok(2):
        return 2
    lo, hi = 2, 4
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > max_n:
            return math.inf
    while hi - lo > 1:  # invariant: not ok(lo), ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi
