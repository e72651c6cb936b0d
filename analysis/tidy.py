"""A frame of runs -> the tidy runs decide() analyses, and what failed runs become.

:func:`tidy` checks the frame a caller hands ``analysis.decide`` and returns one row per run
(``stratum``, ``variant``, ``seed``, ``value``, ``failed``); :func:`imputed_value` is the value
a failed run gets under the "worst" policy; :func:`failure_table` reports both per variant.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["REQUIRED_COLUMNS", "failure_table", "imputed_value", "tidy"]

REQUIRED_COLUMNS = ("variant", "seed")


def tidy(frame: Any, metric: str = "value") -> pd.DataFrame:
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
def imputed_value(values: pd.Series, pred: Any) -> float:
    """The value a failed run gets under the "worst" policy in one stratum."""
    finished = values[np.isfinite(values.to_numpy(float))].to_numpy(float)
    if finished.size == 0:
        return math.nan  # every run failed: such a comparison is inconclusive, nothing imputed
    lo, hi = float(finished.min()), float(finished.max())
    worst = hi if pred.direction == "lower" else lo
    margin = hi - lo if hi > lo else max(abs(worst), 1.0)
    return worst + margin if pred.direction == "lower" else worst - margin


def failure_table(runs, strata, control, comp, pred) -> pd.DataFrame:
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

