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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.stats import (
    MAX_EXACT,
    N_BOOTSTRAP,
    N_PERMUTATIONS,
    adjust_pvalues,
    iqm,
    iqm_interval,
    paired_differences,
    paired_test,
    power_paired_t,
    prob_better,
    prob_better_interval,
    seeds_for_power,
)

__all__ = ["OUTCOMES", "Verdict", "comparison_outcome", "decide", "decision_rules", "family_outcome"]

OUTCOMES = ("supported", "refuted", "inconclusive")
REQUIRED_COLUMNS = ("variant", "seed", "value")
_PREDICTION_FIELDS = {
    "metric": None,
    "direction": ("lower", "higher"),
    "effect": None,
    "alpha": None,
    "test": ("permutation", "wilcoxon", "t"),
    "correction": ("holm", "bh"),
    "failed": ("worst", "exclude"),
}
COMPARISON_COLUMNS = [
    "stratum", "control", "treatment", "n_pairs", "n_failed_control", "n_failed_treatment",
    "n_both_failed", "n_unpaired", "effect", "relative_effect", "ci_low", "ci_high", "p_value",
    "p_adjusted", "p_nonsup", "p_nonsup_adjusted", "prob_better", "prob_better_ci_low",
    "prob_better_ci_high", "outcome", "negligible", "power", "seeds_for_80_power", "estimator",
    "mean_difference", "sd_difference", "effect_finished_pairs", "control_mean", "monte_carlo",
    "n_resamples",
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
    }[p.test]
    failed = (
        "a failed run (NaN or infinite value) is replaced by a value worse than every finished "
        "run in its stratum: the worst finished value moved further in the bad direction by the "
        "stratum's range of finished values (by max(|worst|, 1) when that range is 0), so a "
        "failed run loses its pair by at least as much as any two finished runs differ; a pair "
        "where both runs failed is a tie, d = 0"
        if p.failed == "worst"
        else "a pair in which either run failed is dropped (counts are still reported)"
    )
    correction = "Holm (family-wise error)" if p.correction == "holm" else (
        "Benjamini-Hochberg (false discovery rate)")
    lines = [
        (f"Decision rules (alpha = {p.alpha:g} one-sided, smallest effect of interest E = "
         f"{p.effect:g} {p.metric}, {p.test} test, {p.correction} correction, failed runs: "
         f"{p.failed})."),
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
         "if the adjusted superiority p <= alpha; otherwise inconclusive. A comparison with "
         "adjusted superiority p <= alpha whose interval reaches below E is flagged negligible: "
         "significant but possibly smaller than the smallest effect of interest (a supported "
         "comparison keeps its outcome; the flag qualifies it)."),
        ("7. Overall: supported if every comparison in the family is supported; refuted if any "
         "comparison is refuted; inconclusive otherwise."),
        ("8. Power: of the one-sided paired t-test at E, from the observed SD of d and the "
         f"number of pairs, at alpha / m = {p.alpha / max(family_size, 1):.4g}; seeds for 80% "
         "power likewise."),
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
) -> Verdict:
    """Apply a pre-registered prediction to one row per run and return the Verdict.

    ``frame``: columns ``variant`` (str), ``seed`` (int), ``value`` (float; NaN or +-inf for
    a failed or diverged run), optional ``stratum`` (str; absent or "" for a single stratum).
    ``prediction``: a ``harness.Prediction`` (metric, direction, effect, alpha, test,
    correction, failed). ``control``: the control variant; default the first variant in order
    of appearance. ``seed`` seeds the one Generator behind every resampled number;
    ``n_permutations`` random sign patterns are used when a comparison has more than 20 pairs,
    ``n_bootstrap`` resamples for the descriptive bootstrap intervals.

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
    runs = _tidy(frame)
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
    rng = np.random.default_rng(int(seed))

    # Failed-run policy, per stratum (the same imputed value for every variant in the stratum).
    imputed = {s: _imputed_value(runs.loc[runs["stratum"] == s, "value"], pred) for s in strata}
    if pred.failed == "worst":
        analysed = runs["value"].where(~runs["failed"], runs["stratum"].map(imputed))
    else:
        analysed = runs["value"].where(~runs["failed"])
    runs = runs.assign(analysed=analysed)

    notes: list[str] = []
    rows = []
    for s in strata:
        in_s = runs[runs["stratum"] == s]
        ctrl = in_s[in_s["variant"] == control].set_index("seed")
        for t in treatments:
            trt = in_s[in_s["variant"] == t].set_index("seed")
            rows.append(_compare(s, control, t, ctrl, trt, pred, m, rng, n_permutations,
                                 n_bootstrap, notes))

    comp = pd.DataFrame(rows)
    comp["p_adjusted"] = adjust_pvalues(comp["p_value"].to_numpy(), pred.correction)
    comp["p_nonsup_adjusted"] = adjust_pvalues(comp["p_nonsup"].to_numpy(), pred.correction)
    comp["outcome"] = comparison_outcome(comp["p_adjusted"], comp["p_nonsup_adjusted"], alpha)
    comp["negligible"] = (comp["p_adjusted"] <= alpha) & (comp["ci_low"] < sesoi)
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

    iqm_table = _iqm_table(runs, strata, [control, *treatments], alpha, rng, n_bootstrap)
    failures = _failure_table(runs, strata, [control, *treatments], imputed, pred)
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
        explanation=_explain(outcome, comp, head, pred, m),
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
    )


# --------------------------------------------------------------------------- one comparison
def _compare(stratum, control, treatment, ctrl, trt, pred, m, rng, n_permutations,
             n_bootstrap, notes) -> dict:
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
    c_val = ctrl.loc[seeds, "analysed"].to_numpy(float)
    t_val = trt.loc[seeds, "analysed"].to_numpy(float)
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
    if pred.test in ("permutation", "wilcoxon") and n and not res.monte_carlo and 2.0 ** -n > alpha_m:
        notes.append(
            f"{where}: with {n} pairs the smallest possible {pred.test} p-value is "
            f"{2.0 ** -n:.4g} > alpha/m = {alpha_m:.4g}; this comparison cannot reach "
            "significance: run more seeds.")
    if n >= 2 and sd == 0:
        notes.append(f"{where}: every paired difference is identical (zero variance); check that "
                     "seeds really vary initialisation, data order and noise.")
    if res.monte_carlo:
        notes.append(f"{where}: {n} pairs, so the sign-flip test used {n_permutations} random "
                     "sign patterns (Monte Carlo) instead of all 2^n.")
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
        "power": power_paired_t(sesoi, sd, n, alpha_m),
        "seeds_for_80_power": seeds_for_power(sesoi, sd, alpha_m) if n >= 2 else math.nan,
        "estimator": res.estimator,
        "mean_difference": float(d.mean()) if n else math.nan,
        "sd_difference": sd,
        "effect_finished_pairs": float(d_finished.mean()) if d_finished.size else math.nan,
        "control_mean": control_mean,
        "monte_carlo": bool(res.monte_carlo),
        "n_resamples": int(res.n_resamples),
    }


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


def _tidy(frame: Any) -> pd.DataFrame:
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
    value = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    bad = value.isna() & frame["value"].notna()
    if bad.any():
        raise ValueError(
            f"column 'value' must be numeric; received {frame['value'][bad].tolist()[:5]}. "
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


def _failure_table(runs, strata, variants, imputed, pred) -> pd.DataFrame:
    rows = []
    for s in strata:
        for v in variants:
            sub = runs[(runs["stratum"] == s) & (runs["variant"] == v)]
            failed = sub.loc[sub["failed"], "seed"].tolist()
            rows.append({
                "stratum": s,
                "variant": v,
                "n_runs": len(sub),
                "n_failed": len(failed),
                "failed_seeds": ",".join(str(x) for x in sorted(failed)),
                "imputed_value": imputed[s] if pred.failed == "worst" and failed else math.nan,
            })
    return pd.DataFrame(rows)


def _iqm_table(runs, strata, variants, alpha, rng, n_bootstrap) -> pd.DataFrame:
    rows = []
    for s in strata:
        for v in variants:
            sub = runs[(runs["stratum"] == s) & (runs["variant"] == v)]
            x = sub["analysed"].to_numpy(float)
            x = x[~np.isnan(x)]
            if x.size:
                low, high = iqm_interval(x, alpha, rng, n_bootstrap)
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
            f"({_pct(1 - 2 * pred.alpha)} CI {_fmt(row['ci_low'])} to {_fmt(row['ci_high'])}, "
            f"{row['n_pairs']} pairs)")


def _failure_clause(comp: pd.DataFrame, pred: Any) -> str:
    n_t, n_c = int(comp["n_failed_treatment"].sum()), int(comp["n_failed_control"].sum())
    if not n_t and not n_c:
        return ""
    how = ("each counted as a loss worse than every finished run" if pred.failed == "worst"
           else "their pairs excluded")
    return f" Failed runs: {n_t} treatment and {n_c} control, {how}."


def _explain(outcome: str, comp: pd.DataFrame, head: int, pred: Any, m: int) -> str:
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
                      f"of interest: the interval reaches down to {_fmt(worst['ci_low'])} < {e:g}"
                      + (" and the estimate itself is below it." if worst["effect"] < e else "."))
        else:
            first += f" The whole interval lies at or above {e:g}."
        return first + _failure_clause(comp, pred)
    if outcome == "refuted":
        lead = (f"Refuted: {_describe(row, pred)}; the improvement is significantly below the "
                f"smallest effect of interest {e:g} (one-sided non-superiority {adj}p = "
                f"{_fmt_p(p_non)} <= alpha = {a:g}).")
        if row["p_adjusted"] <= a and row["effect"] > 0:
            lead += (" The effect is significant but smaller than the smallest effect of "
                     "interest: real, yet too small for the prediction.")
        elif row["ci_high"] < 0:
            lead += f" The treatment is significantly worse than {row['control']}."
        if m > 1:
            lead += (f" A prediction about every comparison fails when any one is refuted "
                     f"({n_sup} of {m} comparisons were supported).")
        return lead + _failure_clause(comp, pred)
    power = row["power"]
    seeds = row["seeds_for_80_power"]
    tail = ""
    if isinstance(power, float) and math.isfinite(power):
        tail = (f" Power at the smallest effect of interest was {power:.2f}"
                + (f"; about {int(seeds)} seeds would give 80%." if math.isfinite(seeds) else "."))
    if m == 1:
        return (f"Inconclusive: {_describe(row, pred)}; the improvement is neither significantly "
                f"above 0 (p = {_fmt_p(p_sup)} > alpha = {a:g}) nor significantly below the "
                f"smallest effect of interest {e:g} (non-superiority p = {_fmt_p(p_non)})." + tail
                + _failure_clause(comp, pred))
    return (f"Inconclusive: {n_sup} of {m} comparisons are supported and none is refuted, and "
            f"the prediction needs all of them; the weakest: {_describe(row, pred)}, "
            f"{pred.correction}-adjusted p = {_fmt_p(p_sup)} > alpha = {a:g}." + tail
            + _failure_clause(comp, pred))
