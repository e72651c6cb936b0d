"""What the pre-registered test does not look at: every other metric, and the warnings a
researcher must see before trusting a verdict (collapse, divergence, hopeless designs).

The secondary table is EXPLORATORY: per variant the IQM with a bootstrap interval, per
treatment the mean paired difference to the control with a t interval, at the prediction's
(1 - 2 alpha) level and with NO multiplicity control (many metrics x comparisons: some interval
will exclude 0 by chance). Nothing here is tested, nothing says which variant it "favours"
(issue 22: that wording read as a finding), and nothing here changes the verdict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.stats_descriptive import iqm, iqm_interval
from analysis.stats_mean import t_interval

# A VAE whose rate (KL to the prior) is below this many nats per example has collapsed: its code
# carries almost no information about x and its samples barely depend on z (beta = 4 on digits
# gives ~0.007 nats).
COLLAPSE_RATE = 0.05


def secondary_table(frame: pd.DataFrame, metrics: list[str], levels: list[str], higher: set[str],
                    alpha: float, rng: np.random.Generator) -> list[dict]:
    """One row per (metric, stratum, variant) with ``iqm``, ``iqm_low``, ``iqm_high`` and, for a
    treatment, ``diff`` (treatment - control, paired by seed), ``diff_low``, ``diff_high``,
    ``pairs`` and ``better`` ("treatment", "control" or "unclear": which side the interval is on,
    read in the metric's own direction)."""
    ok = frame[frame["status"] == "FINISHED"]
    rows = []
    for metric in metrics:
        if metric not in ok.columns:
            continue
        for stratum in dict.fromkeys(frame["stratum"]):
            g = ok[ok["stratum"] == stratum]
            ctrl = g[g["variant"] == levels[0]].set_index("seed")[metric].astype(float)
            for variant in levels:
                x = g[g["variant"] == variant].set_index("seed")[metric].astype(float)
                vals = x.to_numpy()
                vals = vals[np.isfinite(vals)]
                row = {"metric": metric, "stratum": stratum, "variant": variant, "n": int(vals.size),
                       "direction": "higher" if metric in higher else "lower", "iqm": math.nan,
                       "iqm_low": math.nan, "iqm_high": math.nan, "diff": None, "diff_low": None,
                       "diff_high": None, "pairs": None}
                if vals.size:
                    row["iqm"] = float(iqm(vals))
                    row["iqm_low"], row["iqm_high"] = iqm_interval(vals, alpha, rng)
                if variant != levels[0]:
                    both = pd.concat([ctrl, x], axis=1, join="inner").dropna()
                    d = (both.iloc[:, 1] - both.iloc[:, 0]).to_numpy(float)
                    row["pairs"] = int(d.size)
                    if d.size:
                        row["diff"] = float(d.mean())
                        row["diff_low"], row["diff_high"] = t_interval(d, alpha) if d.size >= 2 else (-math.inf,
                                                                                                     math.inf)
                rows.append(row)
    return rows


def warnings_for(frame: pd.DataFrame, verdict, secondary: list[dict], errors: dict[str, str],
                 can_sample: bool | None, factor: str = "variant") -> list[dict]:
    """``[{"kind", "text"}]``: what can make the verdict misleading, worst first."""
    out = []

    def _where(r: dict) -> str:
        return f"{factor} = {r['variant']}" + (f" in stratum {r['stratum']}" if r.get("stratum") else "")

    # A per-level rate that is exactly 0 in every finished run of every variant is a slot for a
    # level the model does not have (hvae logs rate_l1..rate_l4 at any depth), not a collapse:
    # a trained posterior's KL is never an exact float zero everywhere.
    ok = frame[frame["status"] == "FINISHED"] if "status" in frame else frame
    absent = {m for m in {r["metric"] for r in secondary}
              if m.startswith("rate_l") and m in ok and len(ok) and bool((ok[m] == 0).all())}
    for r in secondary:
        m = r["metric"]
        if m in absent:
            continue
        if (m == "rate" or m.startswith("rate_l")) and math.isfinite(r["iqm"]) and r["iqm"] < COLLAPSE_RATE:
            out.append({"kind": "posterior collapse", "text": (
                f"{_where(r)}: {m} IQM = {r['iqm']:.3g} nats (< {COLLAPSE_RATE:g}): the latent code carries "
                "almost no information about x and samples barely depend on it. A better score here may "
                "come from ignoring the latent; look at the secondary metrics and the samples.")})
        if m in ("active_units", "active") and math.isfinite(r["iqm"]) and r["iqm"] < 1:
            out.append({"kind": "posterior collapse", "text": (
                f"{_where(r)}: {m} IQM = {r['iqm']:.3g}: no latent unit is active.")})
    failed = frame[frame["status"] == "FAILED"]
    for (stratum, variant), g in failed.groupby(["stratum", "variant"], sort=False):
        n = int((frame["variant"].eq(variant) & frame["stratum"].eq(stratum)).sum())
        why = sorted({errors.get(rid, "diverged") for rid in g["run_id"]})
        out.append({"kind": "divergence", "text": (
            f"{_where({'variant': variant, 'stratum': stratum})}: {len(g)} of {n} runs diverged "
            f"(seeds {sorted(int(s) for s in g['seed'])}; {'; '.join(why)}). They count under the pre-registered "
            "failure policy; a variant that diverges often may need a smaller learning rate or gradient clipping.")})
    for note in verdict.notes:
        if "cannot reach significance" in note:
            out.append({"kind": "too few seeds", "text": note})
    c = verdict.comparisons
    several = "budget" in c.columns and c["budget"].nunique() > 1  # one family over budgets (issue 19)
    for r in c.itertuples():
        if not (math.isfinite(r.ci_low) and math.isfinite(r.ci_high)):
            at = f" at {r.budget} steps" if several else ""
            out.append({"kind": "unbounded interval", "text": (
                f"{factor} = {r.treatment} vs {r.control}{' in ' + r.stratum if r.stratum else ''}{at}: the interval is "
                f"[{r.ci_low:g}, {r.ci_high:g}] with {r.n_pairs} pairs: the data cannot bound the effect; "
                "this comparison says nothing either way. Run more seeds.")})
    if can_sample is False:
        out.append({"kind": "no samples", "text": (
            "The model defines no sample(): there is no sample grid and there are no sample-quality "
            "metrics in this report.")})
    return out


__all__ = ["COLLAPSE_RATE", "secondary_table", "warnings_for"]
