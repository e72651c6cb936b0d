"""Error-rate calibration of the fixed-design decision under symmetric and skewed differences.

Pure numpy, seeded; used by ``tests/analysis/test_calibration.py`` (few replicates) and by
``scripts/calibrate.py`` (the full tables in docs/statistics.md). Paired differences are drawn
standardised (mean 0, SD 1), then shifted so that the ESTIMAND of the test (mean, median or
pseudo-median) equals the true effect; the decision is decide()'s own rule on the declared
test's p-values (analysis.power.simulated_pvalues, the vectorised path of the same tests).

    >>> rate = error_rate("t", "normal", +1, n=10, truth="null", replicates=200, seed=0)
    >>> 0.0 <= rate <= 0.15
    True
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from analysis.estimands import IMPLIED_ESTIMAND
from analysis.power import simulated_pvalues
from analysis.stats_descriptive import beyond_cochran
from analysis.stats_paired import adjust_pvalues

__all__ = ["DISTRIBUTIONS", "TEST_ESTIMAND", "draw", "error_rate", "adastop_side_by_side_rates", "location", "sequential_rates"]

DISTRIBUTIONS = ("normal", "lognormal0.5", "lognormal1", "t3")
TEST_ESTIMAND = IMPLIED_ESTIMAND  # what each test estimates: the one table, analysis.estimands


def draw(dist: str, sign: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standardised draws (mean 0, SD 1); ``sign=-1`` mirrors a skewed law (left skew)."""
    if dist == "t3":  # heavy-tailed, symmetric: Student t with 3 df scaled to SD 1
        return rng.standard_t(3, shape) / math.sqrt(3.0)
    z = rng.standard_normal(shape)
    if dist == "normal":
        return z
    sigma = float(dist.removeprefix("lognormal"))
    mean, sd = math.exp(sigma**2 / 2), math.sqrt((math.exp(sigma**2) - 1) * math.exp(sigma**2))
    return sign * (np.exp(sigma * z) - mean) / sd


@lru_cache(maxsize=64)
def location(dist: str, sign: int, estimand: str) -> float:
    """The estimand's value for the standardised law of :func:`draw` (pseudo-median numerically:
    the median of (X1 + X2) / 2 over 4 million pairs, error ~1e-3)."""
    if estimand == "mean" or dist in ("normal", "t3"):  # symmetric: every centre is 0
        return 0.0
    sigma = float(dist.removeprefix("lognormal"))
    mean, sd = math.exp(sigma**2 / 2), math.sqrt((math.exp(sigma**2) - 1) * math.exp(sigma**2))
    if estimand == "median":
        return sign * (1.0 - mean) / sd
    x = draw(dist, sign, (2, 4_000_000), np.random.default_rng(12345))
    return float(np.median(x.mean(axis=0)))


def error_rate(test: str, dist: str, sign: int, *, n: int, truth: str, effect: float = 0.5,
               alpha: float = 0.05, strata: int = 1, correction: str = "holm",
               estimand: str | None = None, replicates: int = 2000, seed: int = 0,
               cochran: bool = True) -> float:
    """P(an error) for the declared test, its estimand set to 0 or E in every stratum.

    ``truth="null"``: estimand = 0, the error is "supported" (any stratum, after ``correction``
    across ``strata`` comparisons); ``truth="effect"``: estimand = E (``effect`` SDs), the error
    is "refuted". ``estimand`` overrides the one the test targets (to measure a mismatch, e.g.
    the sign-flip test read as a test of the mean). ``cochran``: apply decide's cap (a test
    of the mean whose differences fail Cochran's rule is at most inconclusive).
    """
    est = estimand or TEST_ESTIMAND[test]
    value = 0.0 if truth == "null" else effect
    rng = np.random.default_rng(seed)
    shift = value - location(dist, sign, est)
    p_sup = np.empty((replicates, strata))
    p_non = np.empty((replicates, strata))
    draws = []
    for k in range(strata):
        x = draw(dist, sign, (replicates, n), rng) + shift
        draws.append(x)
        p_sup[:, k] = simulated_pvalues(test, x, 0.0, "greater", rng)
        p_non[:, k] = simulated_pvalues(test, x, effect, "less", rng)
    if strata > 1:
        p_sup, p_non = adjust_pvalues(p_sup, correction), adjust_pvalues(p_non, correction)
    refuted = p_non <= alpha
    supported = (p_sup <= alpha) & ~refuted
    if TEST_ESTIMAND[test] == "mean" and cochran:  # decide's cap: skew beyond Cochran's rule
        capped = np.stack([beyond_cochran(xs) for xs in draws], axis=1)
        refuted, supported = refuted & ~capped, supported & ~capped
    err = supported if truth == "null" else refuted
    return float(err.any(axis=1).mean())


def sequential_rates(test: str, dist: str, sign: int, looks, *, theta: float, effect: float = 0.5,
                     alpha: float = 0.05, spending: str = "obrien_fleming", futility: bool = True,
                     strata: int = 1, correction_note: str = "holm", replicates: int = 2000,
                     seed: int = 0) -> dict:
    """Operating characteristics of a group-sequential design by simulation.

    Each replicate draws ``max(looks)`` standardised pairs per stratum (estimand of the test
    set to ``theta``), computes the declared test's one-sided p-values on the first n_k pairs
    at every look and applies :func:`analysis.sequential.decide_look`. Returns P(overall
    supported), P(overall refuted), P(inconclusive), the expected number of seeds used and,
    for comparison, the same decision rule at the maximum seeds as a fixed design.
    """
    from analysis.sequential import decide_look

    looks = tuple(int(n) for n in looks)
    rng = np.random.default_rng(seed)
    shift = theta - location(dist, sign, TEST_ESTIMAND[test])
    x = draw(dist, sign, (strata, replicates, looks[-1]), rng) + shift
    p_sup = np.empty((len(looks), strata, replicates))
    p_non = np.empty_like(p_sup)
    for k, n in enumerate(looks):
        for s in range(strata):
            p_sup[k, s] = simulated_pvalues(test, x[s, :, :n], 0.0, "greater", rng)
            p_non[k, s] = simulated_pvalues(test, x[s, :, :n], effect, "less", rng)
    overall, used, any_sup, any_ref = [], [], 0, 0
    for r in range(replicates):
        prev = None
        for k in range(len(looks)):
            d = decide_look(k, looks, p_sup[k, :, r], p_non[k, :, r], alpha=alpha,
                            spending=spending, futility=futility, previous=prev)
            prev = d.outcomes
            if d.stop:
                break
        overall.append(d.overall)
        used.append(looks[k])
        any_sup += "supported" in d.outcomes
        any_ref += "refuted" in d.outcomes
    overall = np.array(overall)
    fixed_sup = p_sup[-1].T
    fixed_non = p_non[-1].T
    if strata > 1:
        fixed_sup, fixed_non = adjust_pvalues(fixed_sup, "holm"), adjust_pvalues(fixed_non, "holm")
    f_ref = (fixed_non <= alpha)
    f_sup = (fixed_sup <= alpha) & ~f_ref
    return {
        "supported": float((overall == "supported").mean()),
        "refuted": float((overall == "refuted").mean()),
        "inconclusive": float((overall == "inconclusive").mean()),
        "any_supported": any_sup / replicates,  # family-wise: some comparison supported
        "any_refuted": any_ref / replicates,
        "expected_seeds": float(np.mean(used)),
        "max_seeds": looks[-1],
        "fixed_supported": float(f_sup.all(axis=1).mean()),
        "fixed_refuted": float(f_ref.any(axis=1).mean()),
    }


def adastop_side_by_side_rates(theta: float, replicates: int, seed: int = 0,
                               looks=(8, 16, 24, 32)) -> dict:
    """The harness's sequential designs and AdaStop on the SAME simulated data.

    Per replicate: control ~ N(0, 1/2), treatment ~ N(theta, 1/2) per seed (paired differences
    SD 1), E = 0.5. harness: permutation test, alpha 0.05 one-sided each way, O'Brien-Fleming-
    and Pocock-like spending, futility on. AdaStop 0.1.3 (needs ``pip install adastop``):
    ``MultipleAgentsComparator(n=8, K=4, B=2000, alpha=0.1)``, two-sided 0.1 (about 0.05 each
    way), beta = 0. Returns, per method, P(supported) (AdaStop: treatment larger), P(refuted)
    (AdaStop: treatment smaller), P(inconclusive) (AdaStop: "equal") and expected seeds.
    """
    import contextlib
    import io

    from adastop import MultipleAgentsComparator

    from analysis.sequential import decide_look

    rng = np.random.default_rng(seed)
    res = {k: [] for k in ("harness OBF", "harness Pocock", "AdaStop")}
    step = looks[0]
    for r in range(replicates):
        c = rng.standard_normal(looks[-1]) * math.sqrt(0.5)
        t = rng.standard_normal(looks[-1]) * math.sqrt(0.5) + theta
        d = t - c
        for name, spending in (("harness OBF", "obrien_fleming"), ("harness Pocock", "pocock")):
            prev = None
            for k, n in enumerate(looks):
                x = d[None, :n]
                ps = simulated_pvalues("permutation", x, 0.0, "greater", rng)
                pn = simulated_pvalues("permutation", x, 0.5, "less", rng)
                dec = decide_look(k, looks, ps, pn, alpha=0.05, spending=spending, previous=prev)
                prev = dec.outcomes
                if dec.stop:
                    break
            res[name].append((dec.overall, n))
        comp = MultipleAgentsComparator(n=step, K=len(looks), B=2000, alpha=0.1, seed=r)
        for n in looks:
            with contextlib.redirect_stdout(io.StringIO()):
                comp.partial_compare({"control": c[:n], "treatment": t[:n]}, verbose=False)
            if comp.is_finished:
                break
        decision = next(iter(comp.decisions.values()))
        # AdaStop compares agent 0 (control) with agent 1: "smaller" = the control is smaller
        res["AdaStop"].append(({"smaller": "supported", "larger": "refuted"}.get(decision, "inconclusive"), n))
    out = {}
    for name, rows in res.items():
        outs = np.array([o for o, _ in rows])
        out[name] = {k: float((outs == k).mean()) for k in ("supported", "refuted", "inconclusive")}
        out[name]["expected_seeds"] = float(np.mean([n for _, n in rows]))
    return out
