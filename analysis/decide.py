"""Prediction + tidy frame of runs -> Verdict: the pre-registered decision, nothing else.

``decide(frame, prediction, control=...)`` is a pure function. ``frame`` has one row per run
with columns ``variant``, ``seed``, ``value`` (NaN or +-inf for a failed/diverged run) and
optionally ``stratum``. Runs are paired by seed within a stratum; every treatment level is
compared with the control in every stratum (the *family*); each comparison gets a superiority
test (the treatment helps), a non-superiority test (the improvement is below the smallest
effect of interest), the interval that inverts the test, a probability of improvement and a
power figure. The decision rules are in :func:`decision_rules` and ``docs/statistics.md``.

All resampling draws from ONE ``numpy.random.Generator`` created from ``seed``, in a fixed
order (comparisons in order of appearance, then the per-variant IQM intervals), so the same
frame gives the same Verdict bit for bit.
"""

from __future__ import annotations

import math
import sys
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.power import overall_power, seeds_for_overall_power
from analysis.stats import (
    MAX_EXACT,
    N_BOOTSTRAP,
    N_PERMUTATIONS,
    adjust_pvalues,
    iqm,
    iqm_interval,
    paired_differences,
    paired_test,
    prob_better,
    prob_better_interval,
)

__all__ = ["ESTIMANDS", "OUTCOMES", "READINGS", "Verdict", "comparison_outcome", "comparison_reading",
           "decide", "decision_rules", "family_outcome", "skewness"]

OUTCOMES = ("supported", "refuted", "inconclusive")
# Finer readings of an outcome (Verdict.reading, comparisons["reading"]); outcome keeps its
# three words. Equivalence is a kind of refutation: shown inside (-E, E) is shown below E.
READINGS = ("effect >= E shown", "supported, E not shown", "refuted (< E shown)",
            "equivalent within +-E (TOST)", "inconclusive")
# What each test estimates, and which tests are valid for a declared estimand. The sign test
# is exact for the median of any continuous law; sign-flip and signed-rank need symmetry
# (their centre is the pseudo-median, = mean = median when symmetric); for the mean only the
# studentised bootstrap corrects the skewness error (t is allowed, with the skew warning).
IMPLIED_ESTIMAND = {"permutation": "pseudomedian", "wilcoxon": "pseudomedian", "t": "mean",
                    "sign": "median", "bootstrap_t": "mean"}
ESTIMANDS = {"mean": ("bootstrap_t", "t"), "median": ("sign",),
             "pseudomedian": ("wilcoxon", "permutation")}
REQUIRED_COLUMNS = ("variant", "seed")
_PREDICTION_FIELDS = {
    "metric": None,
    "direction": ("lower", "higher"),
    "effect": None,
    "alpha": None,
    "test": tuple(IMPLIED_ESTIMAND),
    "correction": ("holm", "bh"),
    "failed": ("worst", "exclude"),
}
COMPARISON_COLUMNS = [
    "stratum", "control", "treatment", "n_pairs", "n_failed_control", "n_failed_treatment",
    "n_both_failed", "n_unpaired", "effect", "relative_effect", "ci_low", "ci_high", "p_value",
    "p_adjusted", "p_nonsup", "p_nonsup_adjusted", "prob_better", "prob_better_ci_low",
    "prob_better_ci_high", "outcome", "negligible", "power", "seeds_for_80_power", "estimator",
    "mean_difference", "sd_difference", "effect_finished_pairs", "control_mean", "monte_carlo",
    "n_resamples", "d_z", "adj_ci_low", "adj_ci_high", "adj_confidence", "p_at_effect",
    "p_at_effect_adjusted", "p_noninf", "p_noninf_adjusted", "reading", "skewness",
    "skew_warning", "imputed_value",
]


# --------------------------------------------------------------------------- the verdict
@dataclass(eq=False)
class Verdict:
    """The outcome of a pre-registered prediction, with everything a report needs.

    ``outcome``: "supported", "refuted" or "inconclusive" (rules: :attr:`rules`).
    ``effect`` / ``ci``: the headline comparison's estimated improvement in the predicted
    direction (metric units) and its (1 - 2 alpha) interval. ``p_value``: the p-value behind
    the overall outcome (for a single comparison the raw one-sided p; otherwise
    multiplicity-adjusted): the non-superiority p of the refuting comparison when refuted, else
    the superiority p of the weakest comparison. ``comparisons``: one row per comparison and
    stratum (columns in ``COMPARISON_COLUMNS``). ``iqm``: per stratum and variant, the
    interquartile mean of the analysed values with a bootstrap interval. ``failures``: failed
    runs per stratum and variant, and the value imputed for them.
    """

    outcome: str
    effect: float
    ci: tuple[float, float]
    p_value: float
    comparisons: pd.DataFrame
    family_size: int
    explanation: str
    iqm: pd.DataFrame
    failures: pd.DataFrame
    rules: str
    control: str
    treatments: tuple[str, ...]
    strata: tuple[str, ...]
    headline: dict[str, str]  # {"stratum": ..., "treatment": ...} of the comparison behind effect/ci/p
    negligible: bool  # significant but possibly smaller than the smallest effect of interest
    confidence: float  # level of every interval, 1 - 2 alpha
    prediction: Any
    seed: int
    n_permutations: int
    n_bootstrap: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    reading: str = ""  # finer reading of outcome, one of READINGS
    estimand: str = ""  # "mean", "median" or "pseudomedian" (declared, or implied by the test)
    power: float = math.nan  # P(overall "supported") at effect E for the declared test, simulated
    seeds_for_80_power: float = math.nan  # seeds per comparison for overall power 0.8

    def to_dict(self) -> dict:
        """A JSON-able summary (tables as lists of records; non-finite numbers as None)."""
        def clean(v: Any) -> Any:
            if isinstance(v, (float, np.floating)):
                return float(v) if math.isfinite(v) else None
            if isinstance(v, (np.integer,)):
                return int(v)
            if isinstance(v, (np.bool_,)):
                return bool(v)
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v

        pred = self.prediction
        return clean({
            "outcome": self.outcome,
            "reading": self.reading,
            "estimand": self.estimand,
            "power": self.power,
            "seeds_for_80_power": self.seeds_for_80_power,
            "effect": self.effect,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "family_size": self.family_size,
            "explanation": self.explanation,
            "control": self.control,
            "treatments": list(self.treatments),
            "strata": list(self.strata),
            "headline": dict(self.headline),
            "negligible": self.negligible,
            "confidence": self.confidence,
            "prediction": {k: getattr(pred, k) for k in _PREDICTION_FIELDS},
            "seed": self.seed,
            "n_permutations": self.n_permutations,
            "n_bootstrap": self.n_bootstrap,
            "notes": list(self.notes),
            "rules": self.rules,
            "comparisons": self.comparisons.to_dict(orient="records"),
            "iqm": self.iqm.to_dict(orient="records"),
            "failures": self.failures.to_dict(orient="records"),
        })


# --------------------------------------------------------------------------- the rules
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


def family_reading(outcome: str, readings: object) -> str:
    """The overall reading: E shown only if shown in every comparison; equivalence only if
    every comparison is equivalent; otherwise the plain reading of the outcome."""
    r = list(readings)
    if outcome == "supported":
        return READINGS[0] if all(x == READINGS[0] for x in r) else READINGS[1]
    if outcome == "refuted":
        return READINGS[3] if all(x == READINGS[3] for x in r) else READINGS[2]
    return READINGS[4]


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


def family_outcome(outcomes: object) -> str:
    """Overall outcome of a family: supported if every comparison is supported, refuted if any
    comparison is refuted, inconclusive otherwise.

    >>> family_outcome(["supported", "supported"]), family_outcome(["supported", "refuted"])
    ('supported', 'refuted')
    """
    out = list(outcomes)
    if not out:
        raise ValueError("family_outcome needs at least one comparison")
    if any(o == "refuted" for o in out):
        return "refuted"
    if all(o == "supported" for o in out):
        return "supported"
    return "inconclusive"


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


# --------------------------------------------------------------------------- decide
def decide(
    frame: pd.DataFrame,
    prediction: Any,
    control: str | None = None,
    *,
    seed: int = 0,
    n_permutations: int = N_PERMUTATIONS,
    n_bootstrap: int = N_BOOTSTRAP,
    power: bool = True,
) -> Verdict:
    """Apply a pre-registered prediction to one row per run and return the Verdict.

    ``frame``: columns ``variant`` (str), ``seed`` (int), ``value`` (float; NaN or +-inf for
    a failed or diverged run), optional ``stratum`` (str; absent or "" for a single stratum).
    ``prediction``: a ``harness.Prediction`` (metric, direction, effect, alpha, test,
    correction, failed). ``control``: the control variant; default the first variant in order
    of appearance. ``seed`` seeds the one Generator behind every resampled number;
    ``n_permutations`` random sign patterns are used when a comparison has more than 20 pairs,
    ``n_bootstrap`` resamples for the descriptive bootstrap intervals. ``power=False`` skips the
    simulated power and seeds-needed figures (NaN), for callers that simulate decide itself.

    >>> from types import SimpleNamespace
    >>> pred = SimpleNamespace(metric="nll", direction="lower", effect=0.5, alpha=0.05,
    ...                        test="t", correction="holm", failed="worst")
    >>> frame = pd.DataFrame({"variant": ["a"] * 5 + ["b"] * 5, "seed": list(range(5)) * 2,
    ...                       "value": [10, 11, 12, 13, 14, 8.9, 10.1, 10.8, 12.2, 12.9]})
    >>> v = decide(frame, pred, control="a")
    >>> v.outcome, round(v.effect, 2)
    ('supported', 1.02)
    """
    pred = _check_prediction(prediction)
    for name, v, low in (("seed", seed, 0), ("n_permutations", n_permutations, 1),
                         ("n_bootstrap", n_bootstrap, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{name} must be an integer; got {v!r}")
        if v < low:
            raise ValueError(f"{name} must be >= {low}; got {v!r}")
    runs = _tidy(frame, pred.metric)
    estimand = _check_estimand(pred)
    variants = list(dict.fromkeys(runs["variant"]))
    if len(variants) < 2:
        raise ValueError(
            f"decide() needs at least 2 variants (a control and a treatment) in column 'variant'; "
            f"received {variants}. Fix: include the runs of every level of the ablated factor."
        )
    if control is None:
        control = variants[0]
    control = str(control)
    if control not in variants:
        raise ValueError(
            f"control {control!r} is not a value of column 'variant'; received variants "
            f"{variants}. Fix: pass control= one of them (the first level of the ablated factor)."
        )
    treatments = [v for v in variants if v != control]
    strata = list(dict.fromkeys(runs["stratum"]))
    m = len(strata) * len(treatments)
    alpha, sesoi = float(pred.alpha), float(pred.effect)
    # Canonical order (stratum, variant, seed) before anything is resampled, and one generator
    # per comparison keyed by its names: row order, and other arms, never move a number.
    runs = runs.sort_values(["stratum", "variant", "seed"], kind="stable").reset_index(drop=True)

    notes: list[str] = []
    rows, results = [], []
    for s in strata:
        in_s = runs[runs["stratum"] == s]
        ctrl = in_s[in_s["variant"] == control].set_index("seed")
        for t in treatments:
            trt = in_s[in_s["variant"] == t].set_index("seed")
            row, res = _compare(s, control, t, ctrl, trt, pred, m, _keyed_rng(seed, s, t),
                                n_permutations, n_bootstrap, notes, power)
            rows.append(row)
            results.append(res)

    comp = pd.DataFrame(rows)
    for col in ("p_value", "p_nonsup", "p_at_effect", "p_noninf"):
        name = "p_adjusted" if col == "p_value" else f"{col}_adjusted"
        comp[name] = adjust_pvalues(comp[col].to_numpy(), pred.correction)
    comp["outcome"] = comparison_outcome(comp["p_adjusted"], comp["p_nonsup_adjusted"], alpha)
    comp["reading"] = comparison_reading(comp["outcome"], comp["p_at_effect_adjusted"],
                                         comp["p_noninf_adjusted"], alpha)
    # Negligible: supported, but the multiplicity-adjusted test cannot show the effect reaches E.
    comp["negligible"] = (comp["p_adjusted"] <= alpha) & (comp["p_at_effect_adjusted"] > alpha)
    # Simultaneous intervals at the family's level: Bonferroni for holm, FCR (Benjamini-
    # Yekutieli 2005: level 1 - 2 alpha R / m, R = comparisons supported) for bh.
    n_sel = int((comp["p_adjusted"] <= alpha).sum())
    a_adj = alpha / m if pred.correction == "holm" or m == 1 else alpha * max(n_sel, 1) / m
    adj = [r.interval(a_adj) if r.n else (math.nan, math.nan) for r in results]
    comp["adj_ci_low"] = [a[0] for a in adj]
    comp["adj_ci_high"] = [a[1] for a in adj]
    comp["adj_confidence"] = 1 - 2 * a_adj
    deltas = [sesoi / sd if sd > 0 else math.inf for sd in comp["sd_difference"]]
    overall_pw = (overall_power(pred.test, deltas, comp["n_pairs"], alpha, pred.correction)
                  if power else math.nan)
    overall_seeds = (seeds_for_overall_power(pred.test, deltas, alpha, pred.correction)
                     if power and all(n >= 2 for n in comp["n_pairs"]) else math.nan)
    comp = comp[COMPARISON_COLUMNS]

    outcome = family_outcome(comp["outcome"])
    if outcome == "refuted":
        refuted = comp[comp["outcome"] == "refuted"]
        head = int(refuted["p_nonsup_adjusted"].idxmin())
        p_col = "p_nonsup" if m == 1 else "p_nonsup_adjusted"
    else:
        head = int(comp["p_adjusted"].idxmax())
        p_col = "p_value" if m == 1 else "p_adjusted"
    row = comp.loc[head]
    if outcome == "supported":
        negligible = bool(comp["negligible"].any())
    else:
        negligible = bool(row["negligible"])
    reading = family_reading(outcome, comp["reading"])
    for _, r in comp[comp["skew_warning"]].iterrows():
        where = f"{r['treatment']} vs {r['control']}" + (f" in stratum {r['stratum']}" if r["stratum"] else "")
        fix = ("declare estimand='median' (exact sign test) or estimand='mean' with "
               "test='bootstrap_t'" if pred.test != "bootstrap_t" else
               "with so few seeds even the bootstrap-t may miss alpha; add seeds or declare "
               "estimand='median'")
        notes.append(
            f"{where}: the paired differences are skewed (skewness {r['skewness']:.2f}, more than "
            f"twice its standard error); the {pred.test} test's error rates for the "
            f"{estimand} assume " + ("symmetry" if estimand == "pseudomedian" else
                                     "near-normal averages") + f": {fix}.")

    iqm_table = _iqm_table(runs, strata, [control, *treatments], alpha, seed, n_bootstrap)
    failures = _failure_table(runs, strata, control, comp, pred)
    if pred.correction == "bh" and m > 1:
        notes.append("Benjamini-Hochberg controls the false discovery rate across comparisons, "
                     "not the family-wise error rate; choose holm for family-wise control.")

    return Verdict(
        outcome=outcome,
        effect=float(row["effect"]),
        ci=(float(row["ci_low"]), float(row["ci_high"])),
        p_value=float(row[p_col]),
        comparisons=comp,
        family_size=m,
        explanation=_explain(outcome, comp, head, pred, m, overall_pw, overall_seeds),
        iqm=iqm_table,
        failures=failures,
        rules=decision_rules(pred, m),
        control=control,
        treatments=tuple(treatments),
        strata=tuple(strata),
        headline={"stratum": str(row["stratum"]), "treatment": str(row["treatment"])},
        negligible=negligible,
        confidence=1 - 2 * alpha,
        prediction=prediction,
        seed=int(seed),
        n_permutations=int(n_permutations),
        n_bootstrap=int(n_bootstrap),
        notes=tuple(dict.fromkeys(notes)),
        reading=reading,
        estimand=estimand,
        power=overall_pw,
        seeds_for_80_power=overall_seeds,
    )


def _keyed_rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), *(zlib.crc32(str(x).encode()) for x in names)])


# --------------------------------------------------------------------------- one comparison
def _compare(stratum, control, treatment, ctrl, trt, pred, m, rng, n_permutations,
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
    imputed = _imputed_value(pd.concat([ctrl["value"], trt["value"]]), pred)
    fill = imputed if pred.failed == "worst" else math.nan
    c_val = np.where(c_failed, fill, c_raw)
    t_val = np.where(t_failed, fill, t_raw)
    keep = ~(np.isnan(c_val) | np.isnan(t_val))  # only "exclude" leaves NaN here
    d = paired_differences(c_val[keep], t_val[keep], pred.direction)
    both = ~c_failed & ~t_failed
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
    if res.monte_carlo and pred.test == "permutation":
        notes.append(f"{where}: {n} pairs, so the sign-flip test used {n_permutations} random "
                     "sign patterns (Monte Carlo) instead of all 2^n.")
    if pred.test == "bootstrap_t" and 0 < n < 8:
        notes.append(f"{where}: the studentised bootstrap with {n} pairs is rough (few distinct "
                     "resamples); its level is calibrated for n >= 8 in docs/statistics.md.")
    skew, skew_warn = skewness(d)
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
        "imputed_value": imputed if pred.failed == "worst" and (c_failed | t_failed).any() else math.nan,
    }, res


# --------------------------------------------------------------------------- input checks
def _check_prediction(p: Any) -> Any:
    for name, allowed in _PREDICTION_FIELDS.items():
        if not hasattr(p, name):
            raise TypeError(
                f"prediction has no attribute {name!r}; received {type(p).__name__}. Fix: pass "
                "the harness.Prediction that the hypothesis file declares."
            )
        v = getattr(p, name)
        if allowed is not None and v not in allowed:
            raise ValueError(f"prediction.{name} = {v!r}; expected one of {list(allowed)}")
    def ok_num(v: object) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    if not ok_num(p.effect) or not math.isfinite(p.effect) or p.effect < 0:
        raise ValueError(f"prediction.effect = {p.effect!r}; expected a finite number >= 0 "
                         "(the smallest effect of interest, in metric units)")
    if not ok_num(p.alpha) or not 0 < p.alpha < 0.5:
        raise ValueError(f"prediction.alpha = {p.alpha!r}; expected a number strictly between 0 and 0.5")
    return p


def _check_estimand(p: Any) -> str:
    estimand = getattr(p, "estimand", None)
    if estimand is None:
        return IMPLIED_ESTIMAND[p.test]
    if estimand not in ESTIMANDS:
        raise ValueError(f"prediction.estimand = {estimand!r}; expected one of {list(ESTIMANDS)} or None")
    if p.test not in ESTIMANDS[estimand]:
        raise ValueError(
            f"prediction.test = {p.test!r} does not estimate the {estimand}; valid for "
            f"estimand={estimand!r}: {list(ESTIMANDS[estimand])}")
    return estimand


def _tidy(frame: Any, metric: str = "value") -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"frame must be a pandas DataFrame with one row per run; received "
            f"{type(frame).__name__}. Fix: build it with analysis.load or pd.DataFrame(...)."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"frame is missing column(s) {missing}; received columns {list(map(str, frame.columns))}. "
            "Fix: one row per run with columns 'variant' (str), 'seed' (int), 'value' (float, NaN "
            "for a failed run) and optionally 'stratum' (str)."
        )
    if len(frame) == 0:
        raise ValueError("frame has no rows; received an empty DataFrame. Fix: pass one row per run.")
    # The column the prediction names is the one analysed; "value" only when it is absent.
    column = metric if metric in frame.columns else "value"
    if column not in frame.columns:
        raise ValueError(
            f"frame has neither a column {metric!r} (the prediction's metric) nor 'value'; "
            f"received columns {list(map(str, frame.columns))}. Fix: one row per run with the "
            "metric's value in a column named after it or in 'value'.")
    if column != "value" and "status" in frame.columns:
        # analysis.load logs every metric of a FAILED run too: such a run has no result.
        frame = frame.assign(**{column: frame[column].where(frame["status"].isin(["FINISHED"]) |
                                                            frame["status"].isna())})
    variant = frame["variant"]
    if variant.isna().any():
        raise ValueError(
            f"column 'variant' has {int(variant.isna().sum())} missing value(s); received rows "
            f"{frame.index[variant.isna()].tolist()[:5]}. Fix: give every run its variant id."
        )
    seed = pd.to_numeric(frame["seed"], errors="coerce")
    bad = seed.isna() | ~np.isfinite(seed.astype(float)) | (seed.astype(float) % 1 != 0)
    if bad.any():
        raise ValueError(
            f"column 'seed' must hold integers; received {frame['seed'][bad].tolist()[:5]}. "
            "Fix: use the integer seed of each run."
        )
    value = pd.to_numeric(frame[column], errors="coerce").astype(float)
    bad = value.isna() & frame[column].notna()
    if bad.any():
        raise ValueError(
            f"column {column!r} must be numeric; received {frame[column][bad].tolist()[:5]}. "
            "Fix: one float per run (NaN for a failed or diverged run)."
        )
    if "stratum" in frame.columns:
        stratum = frame["stratum"].astype(object).where(frame["stratum"].notna(), "").astype(str)
    else:
        stratum = pd.Series("", index=frame.index)
    runs = pd.DataFrame({
        "stratum": stratum.to_numpy(str).astype(object),
        "variant": variant.astype(str).to_numpy().astype(object),
        "seed": seed.astype(float).astype(np.int64).to_numpy(),
        "value": value.to_numpy(),
    })
    runs["failed"] = ~np.isfinite(runs["value"].to_numpy())
    dup = runs.duplicated(["stratum", "variant", "seed"], keep=False)
    if dup.any():
        examples = runs.loc[dup, ["stratum", "variant", "seed"]].drop_duplicates().head(5)
        raise ValueError(
            "frame has more than one row for the same (stratum, variant, seed); received "
            f"{examples.to_dict(orient='records')}. Fix: one row per run (drop re-runs or keep "
            "the FINISHED one)."
        )
    return runs


# --------------------------------------------------------------------------- failed runs
def _imputed_value(values: pd.Series, pred: Any) -> float:
    """The value a failed run gets under the "worst" policy in one stratum."""
    finished = values[np.isfinite(values.to_numpy(float))].to_numpy(float)
    if finished.size == 0:
        return 0.0  # every run failed: every pair is a tie whatever this value is
    lo, hi = float(finished.min()), float(finished.max())
    worst = hi if pred.direction == "lower" else lo
    margin = hi - lo if hi > lo else max(abs(worst), 1.0)
    return worst + margin if pred.direction == "lower" else worst - margin


def _failure_table(runs, strata, control, comp, pred) -> pd.DataFrame:
    """Failed runs per (stratum, variant) and the value imputed for them: a treatment's from
    its comparison with the control; the control's when every comparison gives it the same
    value (else NaN: see comparisons["imputed_value"])."""
    rows = []
    for s in strata:
        in_s = comp[comp["stratum"] == s]
        for v in [control, *in_s["treatment"]]:
            sub = runs[(runs["stratum"] == s) & (runs["variant"] == v)]
            failed = sub.loc[sub["failed"], "seed"].tolist()
            values = in_s["imputed_value"] if v == control else in_s.loc[in_s["treatment"] == v, "imputed_value"]
            values = values.dropna().unique()
            rows.append({
                "stratum": s,
                "variant": v,
                "n_runs": len(sub),
                "n_failed": len(failed),
                "failed_seeds": ",".join(str(x) for x in sorted(failed)),
                "imputed_value": float(values[0]) if failed and len(values) == 1 else math.nan,
            })
    return pd.DataFrame(rows)


def _iqm_table(runs, strata, variants, alpha, seed, n_bootstrap) -> pd.DataFrame:
    """Per (stratum, variant): IQM of the FINISHED runs (a failed run's imputed value belongs to
    a comparison, not to a variant; n_failed says how many are left out)."""
    rows = []
    for s in strata:
        for v in variants:
            sub = runs[(runs["stratum"] == s) & (runs["variant"] == v)]
            x = sub["value"].to_numpy(float)
            x = x[np.isfinite(x)]
            if x.size:
                low, high = iqm_interval(x, alpha, _keyed_rng(seed, "iqm", s, v), n_bootstrap)
                centre, mean, median = float(iqm(x)), float(x.mean()), float(np.median(x))
            else:
                low = high = centre = mean = median = math.nan
            rows.append({
                "stratum": s, "variant": v, "n_runs": len(sub),
                "n_failed": int(sub["failed"].sum()), "n_analysed": int(x.size), "iqm": centre,
                "iqm_ci_low": low, "iqm_ci_high": high, "mean": mean, "median": median,
            })
    return pd.DataFrame(rows)


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


def _explain(outcome: str, comp: pd.DataFrame, head: int, pred: Any, m: int,
             power: float = math.nan, seeds: float = math.nan) -> str:
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


# `import analysis; analysis.decide(...)`: the package attribute `decide` is this module once
# it is imported (Python binds submodules on their parent), so the module itself is callable.
class _CallableModule(sys.modules[__name__].__class__):
    def __call__(self, *args: Any, **kwargs: Any) -> Verdict:
        return decide(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
