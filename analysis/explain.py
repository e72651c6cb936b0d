"""The verdict in words: the decision rules with the prediction's numbers filled in, and the
explanation of one outcome. Text only: every number comes from the comparisons table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.comparison import READINGS
from analysis.estimands import IMPLIED_ESTIMAND
from analysis.stats_inputs import N_PERMUTATIONS

__all__ = ["decision_rules", "explain"]


def decision_rules(prediction: Any, family_size: int = 1) -> str:
    """The decision rules, in words, with the prediction's numbers filled in."""
    p = prediction
    conf = _pct(1 - 2 * p.alpha)
    d_def = "control - treatment" if p.direction == "lower" else "treatment - control"
    est = {
        "permutation": "the mean of d; interval: the subset-means interval that inverts the "
        "sign-flip test (exact over all 2^n sign patterns for n <= 20 pairs, else over "
        f"{N_PERMUTATIONS} random patterns)",
        "wilcoxon": "the Hodges-Lehmann estimate (median of Walsh averages); interval: the "
        "Walsh-average interval that inverts the signed-rank test",
        "t": "the mean of d; interval: the Student t interval",
        "sign": "the median of d; interval: the order-statistic interval that inverts the exact "
        "sign test (zeros dropped)",
        "bootstrap_t": "the mean of d; interval: the studentised-bootstrap interval that inverts "
        f"the bootstrap-t test ({N_PERMUTATIONS} resamples)",
    }[p.test]
    estimand = getattr(p, "estimand", None) or IMPLIED_ESTIMAND[p.test]
    failed = (
        "a failed run (NaN or infinite value) is replaced by a value worse than every finished "
        "run of the two variants being compared in its stratum: their worst finished value moved "
        "further in the bad direction by the range of their finished values (by max(|worst|, 1) "
        "when that range is 0), so other arms never change it and a "
        "failed run loses its pair by at least as much as any two finished runs differ; a pair "
        "where both runs failed is a tie, d = 0"
        if p.failed == "worst"
        else "a pair in which either run failed is dropped (counts are still reported)"
    )
    correction = "Holm (family-wise error)" if p.correction == "holm" else (
        "Benjamini-Hochberg (false discovery rate)")
    lines = [
        (f"Decision rules (alpha = {p.alpha:g} one-sided, smallest effect of interest E = "
         f"{p.effect:g} {p.metric}, estimand: {estimand}, {p.test} test, {p.correction} "
         f"correction, failed runs: {p.failed})."),
        (f"1. Pairs: runs are paired by seed within a stratum; d = {d_def} per pair, so d > 0 "
         "means the treatment did better."),
        f"2. Failed runs: {failed}.",
        (f"3. Effect: {est}; every interval is two-sided at {conf} (1 - 2 alpha), so each side "
         "is a one-sided bound at alpha."),
        ("4. Tests: superiority p tests H0: improvement <= 0 against H1: improvement > 0; "
         "non-superiority p applies the same test to d - E, H0: improvement >= E against "
         "H1: improvement < E."),
        (f"5. Multiplicity: the family is every treatment level vs the control in every stratum "
         f"(m = {family_size}); the superiority p-values and, separately, the non-superiority "
         f"p-values are adjusted across it by {correction}."),
        ("6. Comparison: refuted if the adjusted non-superiority p <= alpha (the improvement is "
         "below E, including a significant effect in the wrong direction); otherwise supported "
         "if the adjusted superiority p <= alpha; otherwise inconclusive. Readings: a supported "
         "comparison is 'effect >= E shown' when the adjusted test of H0: improvement <= E "
         "rejects too, else 'supported, E not shown' and flagged negligible; a refuted one is "
         "'equivalent within +-E (TOST)' when the adjusted test of H0: improvement <= -E rejects "
         "too. The adjusted interval is the simultaneous one (Bonferroni, level 1 - 2 alpha / m; "
         "for bh the FCR interval of Benjamini-Yekutieli, 1 - 2 alpha R / m)."),
        ("7. Overall: supported if every comparison in the family is supported; refuted if any "
         "comparison is refuted; inconclusive otherwise."),
        (f"8. Power: of the declared {p.test} test and the whole decision, simulated (normal "
         "paired differences with the observed SD of each comparison, true effect E in every "
         "comparison, 1000 replicates): per comparison, P(supported) at alpha / m = "
         f"{p.alpha / max(family_size, 1):.4g}; overall, P(every comparison supported after "
         "the correction); seeds for 80% overall power likewise."),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- words
def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def _fmt_p(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.3g}"


def _pct(level: float) -> str:
    return f"{100 * level:.4g}%"


def _describe(row: pd.Series, pred: Any) -> str:
    better = "lower" if pred.direction == "lower" else "higher"
    where = f" in stratum {row['stratum']}" if row["stratum"] else ""
    return (f"the improvement of {row['treatment']} over {row['control']}{where} in "
            f"{pred.metric} ({better} is better) is {_fmt(row['effect'])} "
            f"({_pct(1 - 2 * pred.alpha)} CI {_fmt(row['ci_low'])} to {_fmt(row['ci_high'])}"
            + (f"; adjusted {_pct(row['adj_confidence'])} CI {_fmt(row['adj_ci_low'])} to "
               f"{_fmt(row['adj_ci_high'])}" if row["adj_confidence"] < 1 - 2 * pred.alpha - 1e-12 else "")
            + f"; d_z = {_fmt(row['d_z'])}, {row['n_pairs']} pairs)")


def _failure_clause(comp: pd.DataFrame, pred: Any) -> str:
    n_t, n_c = int(comp["n_failed_treatment"].sum()), int(comp["n_failed_control"].sum())
    if not n_t and not n_c:
        return ""
    how = ("each counted as a loss worse than every finished run" if pred.failed == "worst"
           else "their pairs excluded")
    return f" Failed runs: {n_t} treatment and {n_c} control, {how}."


def explain(outcome: str, comp: pd.DataFrame, head: int, pred: Any, m: int,
             power: float = math.nan, seeds: float = math.nan) -> str:
    """The verdict's explanation: ``outcome`` of the family of ``m`` comparisons ``comp`` (the
    verdict's comparisons table), told through its headline row ``head``."""
    row = comp.loc[head]
    a, e = pred.alpha, pred.effect
    adj = "" if m == 1 else f"{pred.correction}-adjusted "
    p_sup = row["p_value"] if m == 1 else row["p_adjusted"]
    p_non = row["p_nonsup"] if m == 1 else row["p_nonsup_adjusted"]
    n_sup = int((comp["outcome"] == "supported").sum())
    if outcome == "supported":
        first = (f"Supported: {_describe(row, pred)}; one-sided {pred.test} {adj}p = "
                 f"{_fmt_p(p_sup)} <= alpha = {a:g}, and the improvement is not significantly "
                 f"below the smallest effect of interest {e:g}.")
        if m > 1:
            first = (f"Supported: all {m} comparisons are significant after {pred.correction} "
                     f"correction (adjusted p <= alpha = {a:g}) and none is significantly below "
                     f"the smallest effect of interest {e:g}; the weakest: {_describe(row, pred)}, "
                     f"adjusted p = {_fmt_p(p_sup)}.")
        if comp["negligible"].any():
            worst = comp.loc[comp["negligible"]].iloc[0]
            first += (f" The effect is significant but possibly smaller than the smallest effect "
                      f"of interest (not shown to reach it): the {adj}test of improvement <= {e:g} does not reject (adjusted "
                      f"interval down to {_fmt(worst['adj_ci_low'])})"
                      + (" and the estimate itself is below it." if worst["effect"] < e else "."))
        else:
            first += (f" The effect is shown to be at least {e:g}: the {adj}interval lies at or above "
                      f"{e:g} ({adj}test of improvement <= {e:g} rejects).")
        return first + _failure_clause(comp, pred)
    if outcome == "refuted":
        lead = (f"Refuted: {_describe(row, pred)}; the improvement is significantly below the "
                f"smallest effect of interest {e:g} (one-sided non-superiority {adj}p = "
                f"{_fmt_p(p_non)} <= alpha = {a:g}).")
        if row["p_adjusted"] <= a and row["effect"] > 0:
            lead += (" The effect is significant but smaller than the smallest effect of "
                     "interest: real, yet too small for the prediction.")
        elif row["adj_ci_high"] < 0:
            lead += f" The treatment is significantly worse than {row['control']}."
        if row["reading"] == READINGS[3]:
            lead += (f" Equivalent within +-{e:g}: the two one-sided tests also show the "
                     f"improvement above -{e:g} ({adj}p = {_fmt_p(row['p_noninf_adjusted'] if m > 1 else row['p_noninf'])}).")
        if m > 1:
            lead += (f" A prediction about every comparison fails when any one is refuted "
                     f"({n_sup} of {m} comparisons were supported).")
        return lead + _failure_clause(comp, pred)
    tail = ""
    if isinstance(power, float) and math.isfinite(power):
        scope = "" if m == 1 else f" (all {m} comparisons together)"
        tail = (f" Power of the {pred.test} test at the smallest effect of interest{scope} was "
                f"{power:.2f}" + (f"; about {int(seeds)} seeds would give 80%."
                                  if math.isfinite(seeds) else "; no number of seeds up to 400 gives 80%."))
    if m == 1:
        return (f"Inconclusive: {_describe(row, pred)}; the improvement is neither significantly "
                f"above 0 (p = {_fmt_p(p_sup)} > alpha = {a:g}) nor significantly below the "
                f"smallest effect of interest {e:g} (non-superiority p = {_fmt_p(p_non)})." + tail
                + _failure_clause(comp, pred))
    return (f"Inconclusive: {n_sup} of {m} comparisons are supported and none is refuted, and "
            f"the prediction needs all of them; the weakest: {_describe(row, pred)}, "
            f"{pred.correction}-adjusted p = {_fmt_p(p_sup)} > alpha = {a:g}." + tail
            + _failure_clause(comp, pred))
