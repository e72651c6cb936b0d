"""Power and seeds-needed for the DECLARED test and the overall verdict, by simulation.

The t formula answers a question nobody asked when the declared test is the sign-flip test:
with 4 pairs the exact sign-flip p-value cannot go below 1/16, so its power at alpha = 0.05 is
0 whatever the t formula says. Here the pre-registered decision itself is simulated: every
comparison gets n normal paired differences with standardised effect delta = E / sd (the
tests are scale-invariant, so delta is all that matters), the declared test gives its
superiority and non-superiority p-values, the family is adjusted as decide() adjusts it, and
power is the share of replicates in which the OVERALL outcome is "supported" (every
comparison supported, none refuted). One seeded generator: the same inputs give the same
number. Precision: binomial, about +-0.013 at power 0.8 with the default 1000 replicates.

    >>> round(overall_power("permutation", [2.0], [4], 0.05), 3)  # 1/16 > 0.05: never
    0.0
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from analysis.boundaries import nominal_levels
from analysis.stats_inputs import N_PERMUTATIONS
from analysis.stats_mean import bootstrap_t_null, bootstrap_t_pvalue, t_pvalue
from analysis.stats_mean import seeds_for_power as _t_seeds
from analysis.stats_paired import adjust_pvalues
from analysis.stats_ranks import rank_tail, sign_pvalue

__all__ = ["overall_power", "seeds_for_overall_power", "simulated_pvalues"]

REPLICATES = 1000
_B_SIM = 499  # resamples per simulated replicate for the resampled tests (bootstrap-t, n > 20)


def _signflip_exact_rows(x: np.ndarray) -> np.ndarray:
    """Exact one-sided sign-flip p per row, every pattern at once (n <= 12)."""
    n = x.shape[1]
    patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)
    sums = x @ patterns.T  # sum over the flipped subset A; flipped >= observed iff sum_A <= 0
    tol = 1e-10 * np.abs(x).sum(axis=1, keepdims=True)
    return (sums <= tol).mean(axis=1)


def _rank_rows(x: np.ndarray) -> np.ndarray:
    """Exact signed-rank p per row for continuous data (no ties: ranks 1..n)."""
    n = x.shape[1]
    ranks = np.argsort(np.argsort(np.abs(x), axis=1), axis=1) + 1
    w2 = 2 * (ranks * (x > 0)).sum(axis=1)
    return rank_tail(tuple(range(2, 2 * n + 1, 2)))[w2]


def simulated_pvalues(test: str, x: np.ndarray, null: float, alternative: str,
                      rng: np.random.Generator) -> np.ndarray:
    """One-sided p of ``test`` for every row of ``x`` (replicates x pairs), vectorised."""
    y = (x - null) if alternative == "greater" else (null - x)
    n = y.shape[1]
    if test == "t":
        return np.asarray(t_pvalue(y))
    if test == "sign":
        return np.asarray(sign_pvalue(y))
    if test == "wilcoxon":
        return _rank_rows(y)
    if test == "bootstrap_t":
        return np.asarray(bootstrap_t_pvalue(y, bootstrap_t_null(y, rng, _B_SIM)))
    if n <= 12:
        return _signflip_exact_rows(y)
    # Beyond 12 pairs: random sign patterns shared by the replicates (a power figure, not a
    # decision, so the Monte Carlo error of p near alpha is immaterial).
    masks = (rng.random((_B_SIM, n)) < 0.5).astype(np.float64)
    sums = y @ masks.T
    tol = 1e-10 * np.abs(y).sum(axis=1, keepdims=True)
    return (1 + (sums <= tol).sum(axis=1)) / (1 + _B_SIM)


@lru_cache(maxsize=512)
def _power_cached(test, deltas, ns, alpha, correction, replicates, seed) -> float:
    rng = np.random.default_rng(seed)
    m = len(deltas)
    p_sup = np.empty((replicates, m))
    p_non = np.empty((replicates, m))
    for i, (delta, n) in enumerate(zip(deltas, ns)):
        x = rng.standard_normal((replicates, n)) + delta
        p_sup[:, i] = simulated_pvalues(test, x, 0.0, "greater", rng)
        p_non[:, i] = simulated_pvalues(test, x, delta, "less", rng)
    if m > 1:
        p_sup = adjust_pvalues(p_sup, correction)
        p_non = adjust_pvalues(p_non, correction)
    supported = (p_sup <= alpha) & ~(p_non <= alpha)
    return float(supported.all(axis=1).mean())


def _clean_delta(delta: float) -> float:
    # sd = 0 gives an infinite standardised effect; a huge finite one behaves the same.
    return round(min(float(delta), 1e6), 6)


def overall_power(test: str, deltas, ns, alpha: float, correction: str = "holm",
                  replicates: int = REPLICATES, seed: int = 0) -> float:
    """P(overall outcome "supported") when every comparison's true effect is exactly E.

    ``deltas``: E / sd of each comparison's paired differences; ``ns``: its number of pairs.
    NaN if any delta is not finite or any n < 2.
    """
    deltas, ns = [float(d) for d in deltas], [int(n) for n in ns]
    if not deltas or any(math.isnan(d) or d < 0 for d in deltas) or any(n < 2 for n in ns):
        return math.nan
    return _power_cached(test, tuple(_clean_delta(d) for d in deltas), tuple(ns), float(alpha),
                         correction, int(replicates), int(seed))


def seeds_for_overall_power(test: str, deltas, alpha: float, correction: str = "holm",
                            target: float = 0.8, replicates: int = 400, seed: int = 0,
                            max_n: int = 400) -> float:
    """Smallest n (the same in every comparison) at which :func:`overall_power` >= ``target``.

    Starts from the t formula at alpha / m for the weakest comparison and walks to the first n
    that the simulation (400 replicates: the answer is "about n", +-1 or 2 seeds) confirms. ``inf`` when no effect (delta 0) or more than ``max_n``.
    """
    deltas = [float(d) for d in deltas]
    if not deltas or any(math.isnan(d) for d in deltas):
        return math.nan
    weakest = min(deltas)
    if weakest <= 0:
        return math.inf
    start = _t_seeds(min(weakest, 1e6), 1.0, alpha / len(deltas))
    if not math.isfinite(start) or start > max_n:
        return math.inf
    n = max(2, int(start))

    def ok(k: int) -> bool:
        return overall_power(test, deltas, [k] * len(deltas), alpha, correction, replicates, seed) >= target

    # Power grows with n (up to simulation noise) and the t formula is close for n >= 8:
    # walk down while the step below passes, else bracket upwards in 10% steps and bisect.
    if ok(n):
        while n > 2 and ok(n - 1):
            n -= 1
        return n
    lo, hi = n, n + max(1, n // 10)
    while not ok(hi):
        lo, hi = hi, hi + max(1, hi // 10)
        if hi > max_n:
            return math.inf
    while hi - lo > 1:  # invariant: ok(hi), not ok(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def smallest_pvalue(test: str, n: int) -> float:
    """The smallest one-sided p-value the declared test can give with n pairs.

    >>> smallest_pvalue("permutation", 4), smallest_pvalue("t", 4)
    (0.0625, 0.0)
    """
    if test in ("permutation", "wilcoxon", "sign"):
        return 2.0**-n  # every difference on the same side: 1 of 2^n sign patterns
    if test == "bootstrap_t":
        return 1.0 / (N_PERMUTATIONS + 1)
    return 0.0


def unreachable_design(prediction, seeds, family_size: int) -> str | None:
    """Why the declared design can NEVER reach a verdict, or None when it can.

    A fixed design: the test's smallest attainable p-value exceeds alpha / m (Holm's first
    step), so no comparison can be supported or refuted. A sequential design: the same at the
    LAST look's nominal level (earlier dead looks only waste a look: a warning, not this).

    >>> from types import SimpleNamespace as NS
    >>> unreachable_design(NS(test="permutation", alpha=0.05), 4, 1)[:40]
    'with 4 seeds the permutation test can ne'
    >>> unreachable_design(NS(test="permutation", alpha=0.05), 5, 1) is None
    True
    """
    test, alpha, m = prediction.test, float(prediction.alpha), max(1, int(family_size))
    looks = getattr(seeds, "looks", None)
    n = int(looks[-1]) if looks is not None else int(seeds)
    level = alpha / m if looks is None else nominal_levels(looks, alpha / m, seeds.spending)[-1]
    p_min = smallest_pvalue(test, n)
    if p_min <= level:
        return None
    need = next(k for k in range(n, 10_000) if smallest_pvalue(test, k) <= level)
    return (f"with {n} seeds the {test} test can never reach a verdict: its smallest possible "
            f"p-value is {p_min:.4g} > {level:.4g} (alpha / m, {m} comparison(s)"
            + (", at the last look" if looks is not None else "") + f"). Fix: at least {need} "
            "seeds, or test='t'")


def reachability_warnings(prediction, seeds, family_size: int) -> list[str]:
    """Plain-language warnings when the declared seeds can never reach significance.

    Holm's first step needs a p-value <= alpha / m. With a sequential design (``seeds`` has
    ``looks`` and ``spending``), each look is checked against its nominal level at alpha / m.
    """
    test, alpha, m = prediction.test, float(prediction.alpha), max(1, int(family_size))
    out = []
    looks = getattr(seeds, "looks", None)
    if looks is None:
        n = int(seeds)
        if smallest_pvalue(test, n) > alpha / m:
            out.append(
                f"with {n} seeds the {test} test's smallest possible p-value is "
                f"{smallest_pvalue(test, n):.4g} > alpha / m = {alpha / m:.4g} ({m} comparisons): the "
                f"study can never be supported or refuted. Fix: at least "
                f"{math.ceil(math.log2(m / alpha))} seeds, or test='t'.")
        return out
    levels = nominal_levels(looks, alpha / m, seeds.spending)
    dead = [f"{n} seeds" for n, a in zip(looks, levels) if smallest_pvalue(test, n) > a]
    if dead:
        out.append(
            f"the {test} test cannot reach the nominal level of the {seeds.spending} boundary at "
            f"look(s) {', '.join(dead)} (alpha / m = {alpha / m:.4g}): those looks can never stop "
            "the study. Fix: later first look, spending='pocock', or test='t'.")
    return out
