"""The report's budget section: the compute curve (effect and interval against budget), the
verdict per budget, the ranking flips and the still-improving warning, and each variant's
compute for "What was trained". Data only: ``analysis.report_data`` puts it in the report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.budgets import ranking_flips, still_improving, trend_per_doubling
from analysis.figures import budget_curve_plot
from analysis.outputs import duration, fmt

__all__ = ["budget_section", "compute_rows"]

# Logged with every run for the compute accounting (docs/compute.md), never a result: kept out
# of the secondary-metrics table ("What was trained" shows them).
COMPUTE_METRICS = ("seconds", "wall_seconds", "train_flops", "params")


def budget_section(frame: pd.DataFrame, verdict, prediction, decl: dict, factor: str, units: str,
                   higher_is_better: bool, histories: dict) -> dict:
    """``{"budgets": dict | None, "warnings": [...], "findings": [...], "notes": [...]}``.

    ``frame``: ``analysis.load``'s (one row per run and budget); ``histories``: the report's
    training curves ``{term: {"factor = level[ | stratum]": [history per seed]}}``, for the
    still-improving check of a study with one budget."""
    out: dict = {"budgets": None, "warnings": [], "findings": [], "notes": []}
    curve = getattr(verdict, "by_budget", None)
    where = _where(factor)
    if "budget" in frame.columns:
        for r in still_improving(frame, float(prediction.effect), higher_is_better):
            out["warnings"].append({"kind": "still improving", "text": (
                f"{where(r['variant'], r['stratum'])}: {prediction.metric} went from {fmt(r['value_from'])} at "
                f"{r['from']} to {fmt(r['value_to'])}{units} at {r['to']} steps (median over seeds), "
                f"{fmt(r['gain'])}{units} better per doubling of steps, more than half the smallest effect of "
                f"interest ({fmt(prediction.effect / 2)}{units}): still improving: the verdict may not hold with "
                "more training.")})
    n_budgets = frame["budget"].nunique() if "budget" in frame.columns else 1
    if n_budgets <= 1:
        out["warnings"] += _trend_warnings(histories, prediction, units, higher_is_better)
        if not any(prediction.metric == t for t in histories):
            out["notes"].append(
                "Whether the arms are still improving was not checked: the runs were evaluated at one budget "
                f"and the training loss is not logged in {prediction.metric}'s units; declare "
                "Training(evaluate_at=...) to see the effect at several budgets.")
    if curve is None or curve.empty or n_budgets <= 1:
        return out
    x_of, x_label, flops = _axis(frame, decl)
    for f in ranking_flips(curve):
        sure = ("both intervals exclude 0" if f["clear"] else
                "at least one interval includes 0, so the flip may be noise")
        out["findings"].append(
            f"{where(f['treatment'], f['stratum'])} vs {f['control']}: the ranking flips between {f['from']} and "
            f"{f['to']} steps (effect {fmt(f['effect_from'])}{units} -> {fmt(f['effect_to'])}{units}; {sure}).")
    rows = []
    for r in curve.itertuples():
        rows.append({"budget": int(r.budget), "flops": flops.get(int(r.budget), math.nan), "stratum": r.stratum,
                     "comparison": f"{factor} = {r.treatment} vs {r.control}", "n_pairs": int(r.n_pairs),
                     "effect": r.effect, "ci_low": r.ci_low, "ci_high": r.ci_high, "test": r.test_used, "p_value": r.p_value,
                     "p_adjusted": r.p_adjusted, "outcome": r.outcome, "confirmatory": bool(r.confirmatory)})
    confirmatory = sorted({int(b) for b in curve.loc[curve["confirmatory"], "budget"]})
    out["budgets"] = {
        "rows": rows, "confirmatory": confirmatory, "all": sorted({int(b) for b in curve["budget"]}),
        "spec": getattr(prediction, "budgets", "final"), "axis": x_label,
        "figure": budget_curve_plot(curve, prediction, units, x_of, x_label, factor),
    }
    return out


def _where(factor: str):
    return lambda variant, stratum: f"{factor} = {variant}" + (f" in stratum {stratum}" if stratum else "")


def _axis(frame: pd.DataFrame, decl: dict) -> tuple[dict, str, dict]:
    """Budget -> x value, the axis label, and budget -> training FLOPs (the control's median).
    FLOPs on the axis when the study matched compute on them and every budget logged them."""
    budgets = sorted({int(b) for b in frame["budget"]})
    flops: dict[int, float] = {}
    if "train_flops" in frame.columns:
        control = next(iter(decl["ablate"].values()))[0] if decl.get("ablate") else None
        ctrl = frame[frame["variant"].astype(str) == (control if isinstance(control, str) else str(control))]
        for b in budgets:
            x = pd.to_numeric(ctrl.loc[ctrl["budget"] == b, "train_flops"], errors="coerce").to_numpy(float)
            x = x[np.isfinite(x)]
            if x.size:
                flops[b] = float(np.median(x))
    if (decl.get("training") or {}).get("match") == "flops" and all(flops.get(b, 0) > 0 for b in budgets):
        return flops, "training FLOPs (matched across variants; log scale)", flops
    return {b: float(b) for b in budgets}, "training steps (declared budget; log scale)", flops


def _trend_warnings(histories: dict, prediction, units: str, higher_is_better: bool) -> list[dict]:
    """One budget: the still-improving check on the training history of the metric itself
    (``train/<metric>``), its trend per doubling over the last quarter of steps."""
    per_arm = histories.get(prediction.metric) or {}
    out = []
    for name, hs in per_arm.items():
        slopes = [trend_per_doubling(h) for h in hs if h]
        slopes = [x for x in slopes if math.isfinite(x)]
        if not slopes:
            continue
        gain = float(np.median(slopes)) * (1 if higher_is_better else -1)
        if gain > 0 and gain > prediction.effect / 2:
            out.append({"kind": "still improving", "text": (
                f"{name}: the training {prediction.metric} improved by {fmt(gain)}{units} per doubling of steps "
                f"over the last quarter of training (median over seeds), more than half the smallest effect of "
                f"interest ({fmt(prediction.effect / 2)}{units}): still improving: the verdict may not hold with "
                "more training. Declare Training(evaluate_at=...) to see the effect at several budgets.")})
    return out


def _median(g: pd.DataFrame, col: str) -> float:
    x = pd.to_numeric(g[col], errors="coerce").to_numpy(float) if col in g.columns else np.array([])
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else math.nan


def compute_rows(frame: pd.DataFrame, factor: str) -> list[dict]:
    """One "compute" row per (stratum, variant) of the final budget's runs: parameters, FLOPs
    per step, steps, training FLOPs and the wall time its runs took."""
    rows = []
    if frame.empty:
        return rows
    for (stratum, variant), g in frame.groupby(["stratum", "variant"], sort=False):
        parts = []
        params, flops, steps = (_median(g, c) for c in ("params", "train_flops", "budget_steps"))
        if math.isfinite(params):
            parts.append(f"{int(params):,} parameters")
        if math.isfinite(flops) and math.isfinite(steps) and steps > 0:
            parts.append(f"{flops / steps:.3g} FLOPs per step x {int(steps):,} steps = {flops:.3g} training FLOPs")
        elif math.isfinite(steps):
            parts.append(f"{int(steps):,} steps")
        if "seconds" in g.columns:
            secs = pd.to_numeric(g["seconds"], errors="coerce").to_numpy(float)
            secs = secs[np.isfinite(secs)]
            if secs.size:
                parts.append(f"wall time {duration(float(np.median(secs)))} per run ({duration(float(secs.sum()))} "
                             f"over {secs.size} runs)")
        if parts:
            rows.append({"section": "compute", "setting": f"{factor} = {variant}" + (f" | {stratum}" if stratum else ""),
                         "value": "; ".join(parts)})
    return rows
