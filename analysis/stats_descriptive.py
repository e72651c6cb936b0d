"""Descriptive statistics with percentile-bootstrap intervals: the probability of improvement
(common-language effect size) and the interquartile mean (as rliable reports it). Pure: arrays
in, numbers out; resampling draws only from the caller's Generator."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import stats as _st

from analysis.stats_inputs import N_BOOTSTRAP, as_pairs, check_alpha, check_count, check_rng, scalar_or_array

__all__ = ["beyond_cochran", "bootstrap_interval", "iqm", "iqm_interval", "prob_better", "prob_better_interval"]


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
    v = as_pairs(x, "x", max_ndim=1)
    alpha = check_alpha(alpha)
    rng = check_rng(rng)
    n_resamples = check_count(n_resamples, "n_resamples")
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
    x = as_pairs(d)
    if x.shape[-1] == 0:
        raise ValueError("prob_better needs at least one pair; got an empty array")
    out = (x > 0).mean(axis=-1) + 0.5 * (x == 0).mean(axis=-1)
    return scalar_or_array(np.asarray(out), x.ndim == 1)


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
    v = as_pairs(x, "x")
    if v.shape[-1] == 0:
        raise ValueError("iqm needs at least one value; got an empty array")
    return scalar_or_array(np.asarray(_st.trim_mean(v, 0.25, axis=-1)), v.ndim == 1)


def iqm_interval(
    x: object, alpha: float, rng: np.random.Generator, n_resamples: int = N_BOOTSTRAP
) -> tuple[float, float]:
    """Percentile bootstrap (1 - 2 alpha) interval for the :func:`iqm` of one variant's runs.

    >>> lo, hi = iqm_interval([1.0, 2.0, 3.0, 4.0, 5.0], 0.05, np.random.default_rng(0))
    >>> 1.0 <= lo <= hi <= 5.0
    True
    """
    return bootstrap_interval(x, iqm, alpha, rng, n_resamples)


def beyond_cochran(x: object) -> np.ndarray:
    """Per row of ``x`` (replicates x pairs): is the skewness too large for the mean's test?

    Cochran's rule for the normal approximation of a mean, n > 25 G1^2 (G1 the adjusted
    Fisher-Pearson skewness), applied only when |G1| exceeds twice its normal-theory standard
    error sqrt(6n(n-1) / ((n-2)(n+1)(n+3))): without that, sampling noise in G1 alone would
    flag a third of normal samples of 10. The vectorised form of the rule
    ``analysis.comparison`` applies to one comparison.

    >>> beyond_cochran([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.1, 5.0]]).tolist()
    [False, True]
    """
    a = np.atleast_2d(np.asarray(x, dtype=float))
    n = a.shape[-1]
    if n < 3:
        return np.zeros(a.shape[0], bool)
    c = a - a.mean(axis=-1, keepdims=True)
    m2, m3 = (c**2).mean(axis=-1), (c**3).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0) * np.sqrt(n * (n - 1)) / (n - 2)
    se = np.sqrt(6 * n * (n - 1) / ((n - 2) * (n + 1) * (n + 3)))
    return (np.abs(g1) > 2 * se) & (n <= 25 * g1**2)
