"""Power before running: a pilot's comparisons -> the registered design's power at E and the
seeds needed for a target power, for the DECLARED test (pure: numbers in, numbers out).

Each comparison's SD of the paired differences (``decide``'s ``sd_difference``, for the declared
test, estimand and failed-run policy) is all the pilot contributes; the effect used is the
smallest effect of interest E, never the pilot's own effect (a pilot's effect is far too noisy
to plan on, and the study must detect E, not what the pilot happened to see). The formulas are
``decide``'s own (``analysis.power``), so a pilot's figures are what the report would print:

- per comparison, at alpha / m (Bonferroni: Holm's first step, so a slight under-statement of
  Holm's power): for ``test="t"`` the noncentral t (``stats_mean.power_paired_t`` /
  ``seeds_for_power``, equal to statsmodels ``TTestPower``); for the other tests the simulated
  P(supported) of ``analysis.power`` (normal differences, the declared test);
- overall, P(every comparison supported after the declared correction), simulated; with one
  comparison it is that comparison's figure.

A pilot's SD is itself an estimate from n - 1 degrees of freedom, and planning on it under-powers
the study about half the time. Browne (1995) and the "conservative pilot" practice plan on a
one-sided upper confidence bound instead: sd * sqrt((n - 1) / chi2_(1 - c)(n - 1)), c = 0.8 by
default (:func:`sd_upper_bound`). Both are given.

    >>> round(sd_upper_bound(1.0, 10), 3)
    1.293
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats as _st

from analysis.power import overall_power, seeds_for_overall_power
from analysis.stats_mean import power_paired_t, seeds_for_power

__all__ = ["DEFAULT_POWER", "SIMULATED_MAX_SEEDS", "UPPER_CONFIDENCE", "comparison_power", "comparison_seeds",
           "pilot_estimate", "sd_upper_bound"]

DEFAULT_POWER = 0.8  # target power when the prediction declares none
UPPER_CONFIDENCE = 0.8  # one-sided confidence of the SD's upper bound (Browne 1995)
SIMULATED_MAX_SEEDS = 400  # the simulated seeds-needed search stops here: "more than 400"


def sd_upper_bound(sd: float, n_pairs: int, confidence: float = UPPER_CONFIDENCE) -> float:
    """One-sided ``confidence`` upper bound for the SD of normal differences, from the sample SD
    of ``n_pairs`` of them: sd * sqrt(df / chi2.ppf(1 - confidence, df)), df = n_pairs - 1.
    NaN with fewer than 2 pairs or a non-finite sd."""
    if not (n_pairs >= 2 and math.isfinite(sd) and sd >= 0 and 0 < confidence < 1):
        return math.nan
    df = n_pairs - 1
    return float(sd * math.sqrt(df / _st.chi2.ppf(1 - confidence, df)))


def comparison_power(test: str, effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of one comparison at level ``alpha`` with n pairs when the true improvement is
    ``effect`` and the differences have SD ``sd``: the noncentral t for ``test="t"``, else the
    simulated P(supported) of ``analysis.power``."""
    if not (math.isfinite(sd) and sd >= 0 and n >= 2):
        return math.nan
    if test == "t":
        return power_paired_t(effect, sd, n, alpha)
    return overall_power(test, [effect / sd if sd > 0 else math.inf], [n], alpha)


def comparison_seeds(test: str, effect: float, sd: float, alpha: float, target: float) -> float:
    """Seeds (pairs) one comparison needs for power ``target``: the noncentral t for
    ``test="t"`` (the ceiling of statsmodels ``TTestPower().solve_power``), else simulated
    (``inf`` beyond :data:`SIMULATED_MAX_SEEDS`)."""
    if not (math.isfinite(sd) and sd >= 0):
        return math.nan
    if test == "t":
        return seeds_for_power(effect, sd, alpha, target)
    return seeds_for_overall_power(test, [effect / sd if sd > 0 else math.inf], alpha, target=target,
                                   max_n=SIMULATED_MAX_SEEDS)


def pilot_estimate(comparisons: Any, prediction: Any, n_registered: int, target: float | None = None,
                   confidence: float = UPPER_CONFIDENCE) -> dict:
    """Power and seeds needed of the registered design, from a pilot's comparisons.

    ``comparisons``: ``decide(pilot_frame, prediction).comparisons`` (records or a DataFrame
    with ``stratum``, ``control``, ``treatment``, ``n_pairs``, ``effect``, ``sd_difference``
    and optionally ``budget``): the confirmatory family. ``n_registered``: the registered seeds
    per variant (a sequential design's maximum). ``target``: the power wanted; default
    :data:`DEFAULT_POWER`. Returns ``{"rows": [...], "overall": {...}, "target", "m", "alpha",
    "effect", "test", "confidence"}``; each row and the overall dict have ``power`` /
    ``seeds`` at the pilot's SD and ``power_upper`` / ``seeds_upper`` at its upper bound.

    >>> from types import SimpleNamespace as NS
    >>> pred = NS(effect=1.0, alpha=0.05, test="t", correction="holm")
    >>> est = pilot_estimate([{"stratum": "", "control": "a", "treatment": "b", "n_pairs": 5,
    ...                        "effect": 1.2, "sd_difference": 1.0}], pred, n_registered=10)
    >>> est["rows"][0]["seeds"], round(est["rows"][0]["power"], 4)
    (8, 0.8975)
    """
    records = comparisons.to_dict("records") if hasattr(comparisons, "to_dict") else list(comparisons)
    test, alpha, effect = prediction.test, float(prediction.alpha), float(prediction.effect)
    target = DEFAULT_POWER if target is None else float(target)
    m = max(1, len(records))
    rows = []
    for r in records:
        n, sd = int(r["n_pairs"]), float(r["sd_difference"])
        sd = sd if n >= 2 else math.nan
        upper = sd_upper_bound(sd, n, confidence)
        row = {k: r[k] for k in ("stratum", "control", "treatment", "budget") if k in r}
        row.update(n_pairs=n, effect=float(r["effect"]), sd=sd, sd_upper=upper)
        for suffix, s in (("", sd), ("_upper", upper)):
            row["power" + suffix] = comparison_power(test, effect, s, int(n_registered), alpha / m)
            row["seeds" + suffix] = comparison_seeds(test, effect, s, alpha / m, target)
        rows.append(row)
    if m == 1 and rows:
        overall = {k: rows[0][k] for k in ("power", "seeds", "power_upper", "seeds_upper")}
    else:
        overall = {}
        for suffix in ("", "_upper"):
            sds = [row["sd" + suffix] for row in rows]
            if not sds or any(not math.isfinite(s) for s in sds):
                overall.update({"power" + suffix: math.nan, "seeds" + suffix: math.nan})
                continue
            deltas = [effect / s if s > 0 else math.inf for s in sds]
            overall["power" + suffix] = overall_power(test, deltas, [int(n_registered)] * m, alpha,
                                                      prediction.correction)
            overall["seeds" + suffix] = seeds_for_overall_power(test, deltas, alpha, prediction.correction,
                                                                target=target, max_n=SIMULATED_MAX_SEEDS)
    return {"rows": rows, "overall": overall, "target": target, "m": m, "alpha": alpha, "effect": effect,
            "test": test, "confidence": confidence}
