"""Pure statistics for paired, multi-seed comparisons: one test, all its parts, and the family.

Everything in ``analysis/stats_*.py`` works on numpy arrays and nothing else: no MLflow, no
files, no global state. Every function that resamples takes a ``numpy.random.Generator``
(``rng``) and draws only from it, so one seeded generator makes a whole report reproducible
bit for bit.

The unit of analysis is a vector ``d`` of paired differences, one per seed, expressed in the
predicted direction (``d > 0`` means the treatment did better; see
:func:`analysis.stats_inputs.paired_differences`). Five one-sided tests are offered, each with
the interval that inverts it, so that a test and its interval never disagree:

=============  ==========================================  ===================================
test           statistic / null distribution               estimate and interval
=============  ==========================================  ===================================
permutation    mean of d; all 2^n sign flips (n <= 20),    mean; subset-means interval
               else ``n_resamples`` random sign flips      (Hartigan 1969), the exact inversion
               (``analysis.stats_signflip``)
wilcoxon       signed-rank W+ (``analysis.stats_ranks``)   Hodges-Lehmann pseudo-median;
                                                           Walsh-average interval
sign           #{d > 0}, exact binomial                    median; order-statistic interval
               (``analysis.stats_ranks``)
t              paired t (``analysis.stats_mean``)          mean; Student t interval
bootstrap_t    studentised bootstrap (``stats_mean``)      mean; bootstrap-t interval
=============  ==========================================  ===================================

:func:`paired_test` runs one of them on one sample; :func:`adjust_pvalues` controls a family.
See ``docs/statistics.md`` for the definitions and the measured error rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analysis.estimands import TESTS
from analysis.stats_inputs import MAX_EXACT, N_PERMUTATIONS, as_pairs, check_alpha, check_count, check_rng
from analysis.stats_mean import bootstrap_t_interval, bootstrap_t_null, bootstrap_t_pvalue, t_interval, t_pvalue
from analysis.stats_ranks import hodges_lehmann, hodges_lehmann_interval, sign_interval, sign_pvalue, wilcoxon_pvalue
from analysis.stats_signflip import sign_flip_interval, sign_flip_pvalue, sign_flip_resampled

__all__ = ["ESTIMATORS", "PairedTest", "adjust_pvalues", "paired_test"]


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
    # The test actually run when the declared one has no answer: "permutation" for t and
    # bootstrap_t on differences with zero variance (their statistic is +-inf there).
    fallback: str = ""


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
    x = as_pairs(d, max_ndim=1)
    alpha = check_alpha(alpha)
    if not math.isfinite(effect) or effect < 0:
        raise ValueError(f"effect (the smallest effect of interest) must be finite and >= 0; got {effect!r}")
    n = x.size
    conf = 1 - 2 * alpha
    est_name = ESTIMATORS[test]
    if n == 0:
        return PairedTest(test, 0, math.nan, est_name, math.nan, math.nan, conf, 1.0, 1.0, False, 0,
                          1.0, 1.0, lambda a: (math.nan, math.nan))
    monte_carlo, n_used = False, 0
    declared, fallback = test, ""
    if test in ("t", "bootstrap_t") and n >= 2 and np.ptp(x) <= 1e-12 * float(np.abs(x).max()):
        # Zero variance: the t statistic is +-inf and its limit p = 0 claims more than n
        # identical differences can show. The exact sign-flip test of the same mean gives the
        # smallest p these n pairs can attain, 2^-n (issue 22, defect 2).
        test, fallback = "permutation", "permutation"
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
        n_used = check_count(n_resamples, "n_resamples")
        tstar = bootstrap_t_null(x, check_rng(rng), n_used)
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
        pval, interval, n_used = sign_flip_resampled(x, rng, n_resamples)
        monte_carlo = True
        estimate = float(x.mean())
    low, high = interval(alpha)
    return PairedTest(
        declared, n, float(estimate), est_name, low, high, conf, float(pval(0.0, "greater")),
        float(pval(effect, "less")), monte_carlo, n_used, float(pval(effect, "greater")),
        float(pval(-effect, "greater")), interval, fallback,
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
