"""Tests of the mean of paired differences: the paired t-test and its Student interval, the
studentised bootstrap (bootstrap-t) test and interval, and the t formula for power and seeds
needed. Pure: arrays in, numbers out; the bootstrap draws only from the caller's Generator."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as _st

from analysis.stats_inputs import (
    N_PERMUTATIONS,
    REL_TOL,
    as_pairs,
    check_alpha,
    check_alternative,
    check_count,
    check_rng,
    scalar_or_array,
)

__all__ = [
    "bootstrap_t_interval",
    "bootstrap_t_null",
    "bootstrap_t_pvalue",
    "power_paired_t",
    "seeds_for_power",
    "t_interval",
    "t_pvalue",
]


# --------------------------------------------------------------------------- paired t
def t_pvalue(d: object, *, null: float = 0.0, alternative: str = "greater"):
    """One-sided one-sample (paired) t-test p-value of ``d`` against ``null``.

    ``scipy.stats.ttest_1samp(d, null, alternative=...)``. With fewer than 2 pairs p = 1
    (no test). With zero variance the limit is used: p = 0 when every d is beyond ``null`` in
    the alternative's direction, else 1. 2-D input: one p per row.

    >>> round(t_pvalue([1.0, 2.0, 3.0]), 4)
    0.0371
    """
    x = as_pairs(d) - null
    check_alternative(alternative)
    n = x.shape[-1]
    one_d = x.ndim == 1
    if n < 2:
        return scalar_or_array(np.ones(x.shape[:-1]), one_d)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        p = np.asarray(_st.ttest_1samp(x, 0.0, axis=-1, alternative=alternative).pvalue, float)
    constant = np.ptp(x, axis=-1) == 0
    if np.any(constant):
        mean = x.mean(axis=-1)
        beyond = mean > 0 if alternative == "greater" else mean < 0
        p = np.where(constant, np.where(beyond, 0.0, 1.0), p)
    p = np.where(np.isnan(p), 1.0, p)
    return scalar_or_array(p, one_d)


def t_interval(d: object, alpha: float):
    """Two-sided (1 - 2 alpha) Student t interval for the mean of ``d``.

    mean(d) -+ t_(1-alpha, n-1) * sd(d) / sqrt(n), sd with ddof=1: the interval whose lower
    bound exceeds 0 exactly when the one-sided t-test at ``alpha`` rejects. Equal to
    ``scipy.stats.ttest_1samp(d, 0).confidence_interval(1 - 2 * alpha)``. ``(-inf, inf)``
    with fewer than 2 pairs. 2-D input: arrays of lows and highs.

    >>> [round(v, 4) for v in t_interval([1.0, 2.0, 3.0], 0.05)]
    [0.3141, 3.6859]
    """
    x = as_pairs(d)
    alpha = check_alpha(alpha)
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



# --------------------------------------------------------------------------- studentised bootstrap (mean)
def bootstrap_t_null(d: object, rng: np.random.Generator, n_resamples: int = N_PERMUTATIONS):
    """Studentised bootstrap distribution T* = (mean* - mean) / (sd* / sqrt(n)) of ``d``.

    Resampling indices come from ``rng`` only and do not depend on the data, so one draw can
    serve every row of a 2-D ``d`` (the simulation tests use this). A resample with sd* = 0
    gives T* = 0 if mean* = mean, else +-inf. Returns an array (..., n_resamples).
    """
    x = as_pairs(d)
    n = x.shape[-1]
    idx = check_rng(rng).integers(0, n, size=(check_count(n_resamples, "n_resamples"), n))
    xb = x[..., idx]  # (..., B, n)
    mean = x.mean(axis=-1, keepdims=True)
    mb = xb.mean(axis=-1)
    se = xb.std(axis=-1, ddof=1) / math.sqrt(n)
    diff = mb - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.sign(diff) * np.inf)
    t = np.where((se == 0) & (np.abs(diff) <= REL_TOL * (np.abs(mean) + 1)), 0.0, t)
    return t


def bootstrap_t_pvalue(d: object, tstar: np.ndarray, *, null: float = 0.0,
                       alternative: str = "greater"):
    """One-sided studentised-bootstrap p for the mean: (1 + #{T* >= t}) / (1 + B).

    t = (mean(d) - null) / (sd(d) / sqrt(n)); ``tstar`` from :func:`bootstrap_t_null` on the
    same d. The bootstrap-t corrects the t-test's skewness error to second order (Hall 1992),
    the test for ``estimand="mean"``. Fewer than 3 pairs: p = 1. Constant d: p = 0 when every
    d is beyond ``null`` in the alternative's direction, else 1. 2-D input: one p per row.
    """
    x = as_pairs(d)
    check_alternative(alternative)
    n = x.shape[-1]
    if n < 3:
        return scalar_or_array(np.ones(x.shape[:-1]), x.ndim == 1)
    se = x.std(axis=-1, ddof=1) / math.sqrt(n)
    diff = x.mean(axis=-1) - null
    sign = 1.0 if alternative == "greater" else -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = sign * diff / np.where(se > 0, se, 1.0)
    ts = sign * np.asarray(tstar)
    count = (ts >= t[..., None] - 1e-12 * np.abs(t[..., None])).sum(axis=-1)
    p = (1.0 + count) / (1.0 + ts.shape[-1])
    p = np.where(se > 0, p, np.where(sign * diff > 0, 0.0, 1.0))
    return scalar_or_array(np.asarray(p, float), x.ndim == 1)


def bootstrap_t_interval(d: object, tstar: np.ndarray, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - 2 alpha) studentised-bootstrap interval that inverts
    :func:`bootstrap_t_pvalue`: mean - se T*_(j-th largest), mean - se T*_(j-th smallest),
    j = floor(alpha (B + 1)). ``(-inf, inf)`` with fewer than 3 pairs or j < 1."""
    x = as_pairs(d, max_ndim=1)
    alpha = check_alpha(alpha)
    n = x.size
    ts = np.sort(np.asarray(tstar, float))
    j = math.floor(alpha * (ts.size + 1) + 1e-9)
    if n < 3 or j < 1:
        return (-math.inf, math.inf)
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(n))
    if se == 0:
        return (mean, mean)
    return (mean - se * float(ts[-j]), mean - se * float(ts[j - 1]))



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
    alpha = check_alpha(alpha)
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
    alpha = check_alpha(alpha)
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
