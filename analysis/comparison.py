"""One comparison: a control and a treatment in one stratum -> its row of the verdict.

:func:`compare` pairs the two variants' runs by seed, applies the failed-run policy, runs the
declared paired test (``analysis.stats_paired``) and the descriptive figures on the paired
differences; :func:`comparison_outcome` and :func:`comparison_reading` turn a family's adjusted
p-values into each comparison's outcome and reading (the rules of ``docs/statistics.md``).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from analysis.estimands import IMPLIED_ESTIMAND
from analysis.power import overall_power, seeds_for_overall_power
from analysis.stats_descriptive import beyond_cochran, prob_better, prob_better_interval
from analysis.stats_inputs import MAX_EXACT, paired_differences
from analysis.stats_paired import paired_test
from analysis.tidy import imputed_value

__all__ = ["READINGS", "compare", "comparison_outcome", "comparison_reading", "keyed_rng", "skewness"]

# Finer readings of an outcome (Verdict.reading, comparisons["reading"]); outcome keeps its
# three words. Equivalence is a kind of refutation: shown inside (-E, E) is shown below E.
READINGS = ("effect >= E shown", "supported, E not shown", "refuted (< E shown)",
            "equivalent within +-E (TOST)", "inconclusive")
# What each test estimates, and which tests are valid for a declared estimand. The sign test


def comparison_outcome(p_adjusted: object, p_nonsup_adjusted: object, alpha: float) -> np.ndarray:
    """Per-comparison outcome from adjusted p-values (vectorised).

    refuted if ``p_nonsup_adjusted <= alpha`` (the improvement is significantly below the
    smallest effect of interest, which includes a significant effect in the wrong direction);
    otherwise supported if ``p_adjusted <= alpha``; otherwise inconclusive.

    >>> comparison_outcome([0.01, 0.01, 0.5], [0.5, 0.02, 0.5], 0.05).tolist()
    ['supported', 'refuted', 'inconclusive']
    """
    p_sup = np.asarray(p_adjusted, dtype=float)
    p_non = np.asarray(p_nonsup_adjusted, dtype=float)
    refuted = p_non <= alpha
    supported = (p_sup <= alpha) & ~refuted
    return np.where(refuted, "refuted", np.where(supported, "supported", "inconclusive"))


def comparison_reading(outcome: object, p_at_effect_adjusted: object,
                       p_noninf_adjusted: object, alpha: float) -> np.ndarray:
    """Finer reading of each comparison's outcome (vectorised), from adjusted p-values.

    supported: "effect >= E shown" when the test of H0: improvement <= E also rejects, else
    "supported, E not shown"; refuted: "equivalent within +-E (TOST)" when the test of
    H0: improvement <= -E also rejects (the two one-sided tests of equivalence), else
    "refuted (< E shown)"; inconclusive stays "inconclusive".

    >>> comparison_reading(["supported", "refuted", "inconclusive"], [0.01, 0.9, 0.5],
    ...                    [0.0, 0.01, 0.5], 0.05).tolist()
    ['effect >= E shown', 'equivalent within +-E (TOST)', 'inconclusive']
    """
    out = np.asarray(outcome, dtype=object)
    shown = np.asarray(p_at_effect_adjusted, dtype=float) <= alpha
    equiv = np.asarray(p_noninf_adjusted, dtype=float) <= alpha
    sup = np.where(shown, READINGS[0], READINGS[1])
    ref = np.where(equiv, READINGS[3], READINGS[2])
    return np.where(out == "supported", sup, np.where(out == "refuted", ref, READINGS[4]))



def skewness(d: np.ndarray) -> tuple[float, bool]:
    """Sample skewness G1 (adjusted Fisher-Pearson) of the paired differences, and whether it
    threatens the test: |G1| above twice its standard error under normality,
    sqrt(6n(n-1) / ((n-2)(n+1)(n+3))). NaN and False below 3 pairs or with zero variance.

    >>> skewness(np.array([1.0, 2.0, 3.0]))
    (0.0, False)
    """
    n = d.size
    if n < 3 or np.ptp(d) == 0:
        return (math.nan, False)
    c = d - d.mean()
    g1 = float((c**3).mean() / (c**2).mean() ** 1.5 * math.sqrt(n * (n - 1)) / (n - 2))
    se = math.sqrt(6 * n * (n - 1) / ((n - 2) * (n + 1) * (n + 3)))
    return (g1, abs(g1) > 2 * se)



def keyed_rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), *(zlib.crc32(str(x).encode()) for x in names)])


# --------------------------------------------------------------------------- one comparison
def compare(stratum, control, treatment, ctrl, trt, pred, m, rng, n_permutations,
             n_bootstrap, notes, power=True) -> tuple[dict, Any]:
    where = f"treatment {treatment!r} vs control {control!r}" + (
        f" in stratum {stratum!r}" if stratum else "")
    seeds = sorted(set(ctrl.index) & set(trt.index))
    if not seeds:
        raise ValueError(
            f"no pairs for {where}: pairing is by seed within a stratum, and control seeds "
            f"{sorted(ctrl.index.tolist())} share none with treatment seeds "
            f"{sorted(trt.index.tolist())}. Fix: run the same seeds for every variant in every "
            "stratum (or pass the runs of the missing variant)."
        )
    n_unpaired = len(set(ctrl.index) ^ set(trt.index))
    if n_unpaired:
        notes.append(f"{where}: {n_unpaired} run(s) without a partner seed were left out.")
    c_failed = ctrl.loc[seeds, "failed"].to_numpy(bool)
    t_failed = trt.loc[seeds, "failed"].to_numpy(bool)
    c_raw = ctrl.loc[seeds, "value"].to_numpy(float)
    t_raw = trt.loc[seeds, "value"].to_numpy(float)
    # Failed runs: imputed from THIS pair's finished runs only (all of both arms' runs in the
    # stratum, paired or not), so adding an arm changes nothing but the multiplicity adjustment.
    imputed = imputed_value(pd.concat([ctrl["value"], trt["value"]]), pred)
    fill = imputed if pred.failed == "worst" else math.nan
    c_val = np.where(c_failed, fill, c_raw)
    t_val = np.where(t_failed, fill, t_raw)
    both = ~c_failed & ~t_failed
    # A pair in which BOTH runs failed says nothing about which variant is better: it is left
    # out before testing under either policy (imputing it made a tie, d = 0, and a stratum
    # where every run failed read as "equivalent within +-E"; issue 22, defect 1).
    keep = ~(np.isnan(c_val) | np.isnan(t_val)) & ~(c_failed & t_failed)
    why = ""
    if not np.isfinite(pd.concat([ctrl["value"], trt["value"]]).to_numpy(float)).any():
        why = "every run failed in this comparison's stratum: nothing to compare"
    elif not both.any():
        why = ("no pair in which both runs finished: failed runs alone cannot show which "
               "variant is better")
    if why:
        keep[:] = False
        notes.append(f"{where}: inconclusive, {why}.")
    d = paired_differences(c_val[keep], t_val[keep], pred.direction)
    d_finished = paired_differences(
        ctrl.loc[seeds, "value"].to_numpy(float)[both], trt.loc[seeds, "value"].to_numpy(float)[both],
        pred.direction)
    alpha, sesoi = float(pred.alpha), float(pred.effect)
    res = paired_test(d, test=pred.test, effect=sesoi, alpha=alpha, rng=rng,
                      n_resamples=n_permutations, max_exact=MAX_EXACT)
    n = d.size
    if n:
        pb = float(prob_better(d))
        pb_low, pb_high = prob_better_interval(d, alpha, rng, n_bootstrap)
    else:
        pb = pb_low = pb_high = math.nan
        notes.append(f"{where}: no pair left after excluding failed runs; nothing to test.")
    sd = float(np.std(d, ddof=1)) if n >= 2 else math.nan
    control_finished = ctrl.loc[seeds, "value"].to_numpy(float)[~c_failed]
    control_mean = float(control_finished.mean()) if control_finished.size else math.nan
    finite_mean = math.isfinite(control_mean) and control_mean != 0
    relative = res.estimate / abs(control_mean) if finite_mean else math.nan
    alpha_m = alpha / m
    if pred.test in ("permutation", "wilcoxon", "sign") and n and not res.monte_carlo and 2.0 ** -n > alpha_m:
        notes.append(
            f"{where}: with {n} pairs the smallest possible {pred.test} p-value is "
            f"{2.0 ** -n:.4g} > alpha/m = {alpha_m:.4g}; this comparison cannot reach "
            "significance: run more seeds.")
    if n >= 2 and sd == 0:
        notes.append(f"{where}: every paired difference is identical (zero variance); check that "
                     "seeds really vary initialisation, data order and noise.")
    if res.fallback:
        notes.append(f"{where}: zero variance: the {pred.test} statistic is infinite, so the exact "
                     f"sign-flip ({res.fallback}) test was used instead; its p-value "
                     f"{res.p_superiority:.4g} is the smallest {n} pairs can give.")
    if res.monte_carlo and pred.test == "permutation":
        notes.append(f"{where}: {n} pairs, so the sign-flip test used {n_permutations} random "
                     "sign patterns (Monte Carlo) instead of all 2^n.")
    if pred.test == "bootstrap_t" and 0 < n < 8:
        notes.append(f"{where}: the studentised bootstrap with {n} pairs is rough (few distinct "
                     "resamples); its level is calibrated for n >= 8 in docs/statistics.md.")
    skew, skew_warn = skewness(d)
    estimand = getattr(pred, "estimand", None) or IMPLIED_ESTIMAND[pred.test]
    if not why and estimand == "mean" and n >= 3 and bool(beyond_cochran(d)[0]):
        # Cochran's rule for the mean's normal approximation, n > 25 g1^2, applied when the
        # skewness is distinguishable from 0 (|G1| > 2 SE): otherwise sampling noise in G1
        # alone would cap a third of normal samples at n = 10 (docs/statistics.md).
        why = (f"Cochran's rule n > 25 g1^2 fails ({n} <= {25 * skew**2:.0f}, skewness "
               f"{skew:.2f}): the mean's test is not trustworthy for differences this skewed")
        notes.append(f"{where}: at most inconclusive: {why}; declare estimand='median' (the "
                     "exact sign test) for a skewed metric, or run more seeds.")
    delta = sesoi / sd if n >= 2 and sd > 0 else (math.inf if n >= 2 and sd == 0 else math.nan)
    return {
        "stratum": stratum,
        "control": control,
        "treatment": treatment,
        "n_pairs": int(n),
        "n_failed_control": int(c_failed.sum()),
        "n_failed_treatment": int(t_failed.sum()),
        "n_both_failed": int((c_failed & t_failed).sum()),
        "n_unpaired": int(n_unpaired),
        "effect": res.estimate,
        "relative_effect": relative,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "p_value": res.p_superiority,
        "p_nonsup": res.p_nonsuperiority,
        "prob_better": pb,
        "prob_better_ci_low": pb_low,
        "prob_better_ci_high": pb_high,
        "power": overall_power(pred.test, [delta], [n], alpha_m) if power and n >= 2 else math.nan,
        "seeds_for_80_power": (seeds_for_overall_power(pred.test, [delta], alpha_m)
                               if power and n >= 2 else math.nan),
        "estimator": res.estimator,
        "mean_difference": float(d.mean()) if n else math.nan,
        "sd_difference": sd,
        "effect_finished_pairs": float(d_finished.mean()) if d_finished.size else math.nan,
        "control_mean": control_mean,
        "monte_carlo": bool(res.monte_carlo),
        "n_resamples": int(res.n_resamples),
        "d_z": float(d.mean()) / sd if n >= 2 and sd > 0 else math.nan,
        "p_at_effect": res.p_at_effect,
        "p_noninf": res.p_noninferiority,
        "skewness": skew,
        "skew_warning": bool(skew_warn),
        "imputed_value": imputed if pred.failed == "worst" and (c_failed ^ t_failed).any() else math.nan,
        "why_inconclusive": why,
        "test_used": res.fallback or pred.test,
    }, res

