"""A verdict at every training budget: which budgets are confirmatory, one family over them,
the rest reported as exploratory, and what the curve of effects says (pure: pandas only).

A frame from :func:`analysis.load.load` has one row per (run, budget): ``budget`` (the declared
budget in steps, by position: under ``match="flops"`` the control's steps), ``budget_steps``
(the steps this run trained to at that budget) and ``train_flops``. ``Prediction.budgets``
says which budgets are confirmatory: ``"final"`` (each stratum's last budget), ``"all"``, or a
tuple of budgets. :func:`decide_by_budget` (what ``analysis.decide`` calls when the frame has
a ``budget`` column) decides the confirmatory ones as ONE family (comparisons x strata x
confirmatory budgets, Holm or the declared correction over all of them) and every other budget
alone, as exploratory (effect and interval; never in the family).

    >>> frame = pd.DataFrame({"run_id": ["a", "a", "b"], "budget": [10, 20, 20],
    ...                       "budget_steps": [10, 20, 20], "value": [1.0, 2.0, 3.0]})
    >>> final_budget(frame)["value"].tolist()
    [2.0, 3.0]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BUDGET_COLUMNS", "confirmatory_mask", "decide_by_budget", "final_budget", "ranking_flips",
           "still_improving", "trend_per_doubling"]

BUDGET_COLUMNS = ("budget", "budget_steps", "train_flops")
# Columns a budget's rows carry into the per-budget table (Verdict.by_budget).
_CURVE_COLUMNS = ["stratum", "budget", "control", "treatment", "n_pairs", "effect", "ci_low", "ci_high",
                  "test_used", "p_value", "p_adjusted", "outcome", "confirmatory"]


def final_budget(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's last budget (one row per run), for callers that want one row per run; a
    frame without budget columns is returned as it is."""
    if "budget" not in frame.columns or frame.empty:
        return frame
    key = "run_id" if "run_id" in frame.columns else None
    steps = frame["budget_steps"] if "budget_steps" in frame.columns else frame["budget"]
    if key is None:  # a hand-made frame: the cell is the run
        key = [c for c in ("stratum", "variant", "seed") if c in frame.columns]
    last = steps.groupby([frame[k] for k in ([key] if isinstance(key, str) else key)]).transform("max")
    return frame[steps == last]


def confirmatory_mask(frame: pd.DataFrame, budgets: Any = "final") -> pd.Series:
    """Rows whose budget is confirmatory under ``Prediction.budgets``: ``"final"`` each
    stratum's largest budget, ``"all"`` every one, a tuple the named ones (each must be in
    the frame, else ValueError naming the budgets there are)."""
    b = frame["budget"]
    stratum = frame["stratum"] if "stratum" in frame.columns else pd.Series("", index=frame.index)
    if budgets == "all":
        return pd.Series(True, index=frame.index)
    if budgets is None or budgets == "final":
        return b == b.groupby(stratum.astype(str)).transform("max")
    named = [int(k) for k in budgets]
    there = sorted({int(x) for x in b.dropna()})
    missing = [k for k in named if k not in there]
    if missing:
        raise ValueError(
            f"prediction.budgets = {tuple(named)}: budget(s) {missing} are not in the frame's 'budget' column; "
            f"received budgets {there}. Fix: name evaluated budgets (Training.evaluate_at and steps).")
    return b.isin(named)


def _fold(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[str, int]]]:
    """Budgets as part of the stratum, so one decide() call makes them one family. The folded
    key reads like a stratum id: ``latent_dim=2,budget=4000``."""
    stratum = (frame["stratum"].astype(object).where(frame["stratum"].notna(), "").astype(str)
               if "stratum" in frame.columns else pd.Series("", index=frame.index))
    budget = frame["budget"].astype(int)
    keys = [",".join(x for x in (s, f"budget={b}") if x) for s, b in zip(stratum, budget)]
    mapping = {k: (s, int(b)) for k, s, b in zip(keys, stratum, budget)}
    return frame.drop(columns=[c for c in BUDGET_COLUMNS if c in frame.columns]).assign(stratum=keys), mapping


def _unfold(table: pd.DataFrame, mapping: dict[str, tuple[str, int]]) -> pd.DataFrame:
    if table is None or "stratum" not in table.columns:
        return table
    out = table.copy()
    pos = list(out.columns).index("stratum") + 1
    budget = [mapping[k][1] if k in mapping else math.nan for k in out["stratum"]]
    out["stratum"] = [mapping[k][0] if k in mapping else k for k in out["stratum"]]
    out.insert(pos, "budget", budget)
    return out


def _with_budget(table: pd.DataFrame, budget_of: dict[str, int]) -> pd.DataFrame:
    if table is None or "stratum" not in table.columns:
        return table
    out = table.copy()
    out.insert(list(out.columns).index("stratum") + 1, "budget", [budget_of.get(s, math.nan) for s in out["stratum"]])
    return out


def decide_by_budget(frame: pd.DataFrame, prediction: Any, control: str | None, decide_one: Callable, **kw):
    """The Verdict of a frame with a ``budget`` column: the confirmatory budgets decided as one
    family by ``decide_one`` (``analysis.decide`` on a frame without budgets), the others each
    alone, as exploratory. The Verdict's ``comparisons``, ``iqm`` and ``failures`` gain a
    ``budget`` column; ``by_budget`` has every budget's comparisons (``confirmatory`` True or
    False; an exploratory row's outcome is "exploratory" and it has no adjusted p-value).
    With one confirmatory budget per stratum its numbers are exactly decide()'s on those rows."""
    spec = getattr(prediction, "budgets", "final")
    if frame["budget"].isna().any():
        raise ValueError("column 'budget' has missing values; received rows "
                         f"{frame.index[frame['budget'].isna()].tolist()[:5]}. Fix: one budget (steps) per row.")
    mask = confirmatory_mask(frame, spec)
    conf = frame[mask]
    drop = [c for c in BUDGET_COLUMNS if c in frame.columns]
    stratum = conf["stratum"].astype(str) if "stratum" in conf.columns else pd.Series("", index=conf.index)
    per_stratum = conf.groupby(stratum)["budget"].nunique()
    if int(per_stratum.max()) == 1:  # one budget per stratum: the strata are the family, as without budgets
        v = decide_one(conf.drop(columns=drop), prediction, control, **kw)
        budget_of = {s: int(b) for s, b in zip(stratum, conf["budget"])}
        comparisons, iqm, failures = (_with_budget(t, budget_of) for t in (v.comparisons, v.iqm, v.failures))
        headline = {**v.headline, "budget": budget_of.get(v.headline.get("stratum", ""))}
        notes = v.notes
    else:
        folded, mapping = _fold(conf)
        v = decide_one(folded, prediction, control, **kw)
        comparisons, iqm, failures = (_unfold(t, mapping) for t in (v.comparisons, v.iqm, v.failures))
        s, b = mapping.get(v.headline.get("stratum", ""), ("", None))
        headline = {**v.headline, "stratum": s, "budget": b}
        notes = v.notes
    confirmed = sorted({int(x) for x in conf["budget"]})
    rows = [comparisons.assign(confirmatory=True)]
    for b in sorted({int(x) for x in frame.loc[~mask, "budget"]}):
        sub = frame[(frame["budget"] == b) & ~mask]
        e = decide_one(sub.drop(columns=drop), prediction, control, **{**kw, "power": False}).comparisons
        e = e.assign(budget=b, p_adjusted=math.nan, outcome="exploratory", confirmatory=False)
        rows.append(e)
    table = pd.concat(rows, ignore_index=True)
    order = {k: i for i, k in enumerate(dict.fromkeys(zip(table["stratum"], table["treatment"])))}
    table = table.assign(_order=[order[k] for k in zip(table["stratum"], table["treatment"])])
    table = table.sort_values(["_order", "budget"], kind="stable").drop(columns="_order").reset_index(drop=True)
    by_budget = table[[c for c in _CURVE_COLUMNS if c in table.columns]]
    which = {"final": "the final budget", "all": "every evaluated budget"}.get(spec, "the named budgets")
    rules = (v.rules + f"\n\nBudgets: the confirmatory budgets are {which} (prediction.budgets = {spec!r}): "
             f"{confirmed} steps. The family is every comparison in every stratum at every confirmatory budget "
             f"({v.family_size} members); every other budget is exploratory: its effect and interval are "
             "reported, never tested as part of the verdict.")
    return dataclasses.replace(v, comparisons=comparisons, iqm=iqm, failures=failures, headline=headline,
                               notes=notes, rules=rules, by_budget=by_budget)


# --------------------------------------------------------------------------- what the curve says
def ranking_flips(by_budget: pd.DataFrame) -> list[dict]:
    """Per comparison, each pair of consecutive budgets between which the effect changes sign:
    ``{"stratum", "control", "treatment", "from", "to", "effect_from", "effect_to", "clear"}``;
    ``clear`` when both intervals exclude 0 (else the flip may be noise).

    >>> t = pd.DataFrame({"stratum": "", "control": "a", "treatment": "b", "budget": [1, 2],
    ...                   "effect": [0.5, -0.4], "ci_low": [0.1, -0.8], "ci_high": [0.9, -0.1]})
    >>> [(f["from"], f["to"], f["clear"]) for f in ranking_flips(t)]
    [(1, 2, True)]
    """
    out = []
    if by_budget is None or by_budget.empty:
        return out
    for (s, c, t), g in by_budget.groupby(["stratum", "control", "treatment"], sort=False):
        g = g.sort_values("budget")
        g = g[np.isfinite(g["effect"].to_numpy(float)) & (g["effect"] != 0)]
        rows = list(g.itertuples())
        for a, b in zip(rows, rows[1:]):
            if np.sign(a.effect) != np.sign(b.effect):
                clear = all((r.ci_low > 0) or (r.ci_high < 0) for r in (a, b))
                out.append({"stratum": s, "control": c, "treatment": t, "from": int(a.budget), "to": int(b.budget),
                            "effect_from": float(a.effect), "effect_to": float(b.effect), "clear": bool(clear)})
    return out


def still_improving(frame: pd.DataFrame, effect: float, higher_is_better: bool) -> list[dict]:
    """Arms whose primary metric is still improving at the last budget by more than half the
    smallest effect ``effect``: per (stratum, variant), the median over finished seeds at the
    last two budgets, their difference per doubling of steps (the plain difference when the two
    are less than a doubling apart, so noise between close budgets is not magnified).
    Returns ``{"stratum", "variant", "from", "to", "value_from", "value_to", "gain"}`` rows.

    >>> f = pd.DataFrame({"stratum": "", "variant": "t", "seed": [0, 1] * 2, "budget": [1, 1, 2, 2],
    ...                   "value": [5.0, 5.0, 4.0, 4.0]})
    >>> [r["gain"] for r in still_improving(f, 1.0, higher_is_better=False)]
    [1.0]
    """
    out = []
    if "budget" not in frame.columns:
        return out
    ok = frame[np.isfinite(pd.to_numeric(frame["value"], errors="coerce").to_numpy(float))]
    if "status" in ok.columns:
        ok = ok[ok["status"].isin(["FINISHED"]) | ok["status"].isna()]
    stratum = ok["stratum"] if "stratum" in ok.columns else pd.Series("", index=ok.index)
    for (s, v), g in ok.groupby([stratum, ok["variant"]], sort=False):
        med = g.groupby("budget")["value"].median().sort_index()
        if len(med) < 2:
            continue
        (b1, m1), (b2, m2) = list(med.items())[-2:]
        gain = (m2 - m1) if higher_is_better else (m1 - m2)
        gain /= max(1.0, math.log2(b2 / b1)) if b1 > 0 else 1.0
        if gain > 0 and gain > effect / 2:
            out.append({"stratum": s, "variant": v, "from": int(b1), "to": int(b2), "value_from": float(m1),
                        "value_to": float(m2), "gain": float(gain)})
    return out


def trend_per_doubling(history: list[tuple[int, float]]) -> float:
    """The least-squares slope of a logged history against log2(step) over its last quarter of
    steps (the change per doubling of steps); NaN with fewer than 3 points there."""
    pts = [(s, v) for s, v in history if s > 0 and math.isfinite(v)]
    if not pts:
        return math.nan
    last = max(s for s, _ in pts)
    tail = [(s, v) for s, v in pts if s >= 0.75 * last]
    if len(tail) < 3 or len({s for s, _ in tail}) < 2:
        return math.nan
    x = np.log2([s for s, _ in tail])
    y = np.array([v for _, v in tail], dtype=float)
    return float(np.polyfit(x, y, 1)[0])
