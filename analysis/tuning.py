"""What the tuning did: expected best validation score against budget, best configurations.

``expected_best`` is pure (arrays in, arrays out). From N trial scores sorted so that v(1) is
the worst and v(N) the best, the expected best of a budget of n trials:

* ``estimator="tang"`` (default; Tang et al. 2020, "Showing your work doesn't always work"):
  n of the N trials drawn WITHOUT replacement, as a researcher with budget n would have run
  them. v(i) is the best of an n-subset with probability [C(i, n) - C(i-1, n)] / C(N, n), so

      E[best_n] = sum_i v(i) [C(i, n) - C(i-1, n)] / C(N, n),   n <= N,

  the unbiased estimator of the expected maximum (the mean over all n-subsets; at n = N it is
  the observed best).
* ``estimator="dodge"`` (Dodge et al. 2019, "Show Your Work"): n draws WITH replacement,
  P(best = v(i)) = (i/N)^n - ((i-1)/N)^n. Biased downwards (a draw can repeat a trial), most
  at n near N; kept as a labelled option for comparison with papers that report it.

The band drawn is +- one standard deviation of best_n under the same sampling. The formulas
assume iid draws: exact for the random sampler, only indicative for TPE (the report says so).
A diverged trial's score is +-inf; for the curve it is replaced by the worst finite score (it
counts as a draw that found nothing better), and the number replaced is reported.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy.special import comb

ESTIMATORS = ("tang", "dodge")


def best_of_n_weights(N: int, n: int, estimator: str = "tang") -> np.ndarray:
    """P(the i-th worst of N trials is the best of a budget of n), i = 1..N.

    >>> best_of_n_weights(3, 2).tolist()  # without replacement: v(1) can never be the best of 2
    [0.0, 0.3333333333333333, 0.6666666666666666]
    """
    i = np.arange(1, N + 1, dtype=np.float64)
    if estimator == "dodge":
        return (i / N) ** n - ((i - 1) / N) ** n
    if estimator != "tang":
        raise ValueError(f"estimator {estimator!r}: expected one of {list(ESTIMATORS)}")
    if not 1 <= n <= N:
        raise ValueError(f"n = {n}: the unbiased (Tang et al.) estimator needs 1 <= n <= N = {N}")
    return (comb(i, n, exact=False) - comb(i - 1, n, exact=False)) / comb(N, n, exact=False)


def expected_best(values, direction: str = "lower", n_max: int | None = None,
                  estimator: str = "tang") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, E[best of n], sd[best of n]) for n = 1..n_max (default len(values)).

    Example::

        >>> n, mean, sd = expected_best([3.0, 1.0, 2.0], "lower")
        >>> round(float(mean[0]), 12), float(mean[-1])
        (2.0, 1.0)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("expected_best: no trial scores")
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction {direction!r}: expected 'lower' or 'higher'")
    finite = np.isfinite(v)
    if not finite.any():
        raise ValueError("expected_best: every trial diverged")
    s = -v if direction == "lower" else v.copy()  # larger is better from here on
    s[~finite] = s[finite].min()
    s.sort()
    N = s.size
    n_max = N if n_max is None else int(n_max)
    if estimator == "tang":
        n_max = min(n_max, N)  # without replacement a budget beyond N trials was never observed
    ns = np.arange(1, n_max + 1)
    mean, sd = np.empty(n_max), np.empty(n_max)
    for j, n in enumerate(ns):
        p = best_of_n_weights(N, int(n), estimator)
        m = float(p @ s)
        mean[j] = m
        sd[j] = math.sqrt(max(float(p @ (s * s)) - m * m, 0.0))
    if direction == "lower":
        mean = -mean
    return ns, mean, sd


def load_trials(st, hypothesis_id: str, reg) -> pd.DataFrame:
    """One row per COMPLETE-able trial (its seeds' runs ended): variant, stratum, trial, value
    (mean of the prediction's metric over the trial's seeds, on the validation split), params,
    diverged."""
    metric = reg.declaration["prediction"]["metric"]
    rows: dict[tuple, dict] = {}
    for r in st.trial_runs(hypothesis_id, reg.version):
        if r.info.status not in ("FINISHED", "FAILED"):
            continue
        t = r.data.tags
        key = (t["harness.variant"], t["harness.stratum"], int(t["harness.trial"]))
        row = rows.setdefault(key, {"variant": key[0], "stratum": key[1], "trial": key[2], "values": [],
                                    "params": json.loads(t.get("harness.trial_params", "{}"))})
        row["values"].append(r.data.metrics.get(metric, math.nan))
    out = []
    for row in rows.values():
        vals = row.pop("values")
        ok = all(math.isfinite(x) for x in vals)
        out.append({**row, "value": float(np.mean(vals)) if ok else math.nan, "diverged": not ok, "seeds": len(vals)})
    return pd.DataFrame(out, columns=["variant", "stratum", "trial", "params", "value", "diverged", "seeds"])


def edge_warnings(best_params: dict, space: dict) -> list[str]:
    """Tuned values within 2% (of the range, in log space for a log range) of an end of their
    range: the best configuration may lie outside the searched space."""
    out = []
    for name, value in best_params.items():
        d = space.get(name)
        if not d or d.get("type") == "Choice":
            continue
        lo, hi = float(d["low"]), float(d["high"])
        log = d.get("type") == "LogUniform" or d.get("log", False)
        f = (lambda x: math.log(x)) if log and lo > 0 else (lambda x: x)
        pos = (f(float(value)) - f(lo)) / (f(hi) - f(lo))
        if pos <= 0.02 or pos >= 0.98:
            end = "lower" if pos <= 0.02 else "upper"
            out.append(f"{name} = {value:.4g} is at the {end} end of its range [{lo:g}, {hi:g}]: "
                       "the space may be too narrow; widen it in a new version")
    return out


def section(st, hypothesis_id: str, reg, levels: list[str], png, higher: bool | None = None) -> dict | None:
    """The report's tuning section (None when the declaration has no tuning). ``higher``: whether
    the metric is higher-is-better (the direction every variant was tuned in; default: the
    catalogue's direction of the metric)."""
    decl = reg.declaration
    tuning = decl.get("tuning")
    if not tuning:
        return None
    if higher is None:
        from harness.catalog import metric_direction

        higher = metric_direction(decl["prediction"]["metric"]) == "higher"
    direction = "higher" if higher else "lower"
    trials = load_trials(st, hypothesis_id, reg)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="harness-tuning-") as tmp:
        try:
            best = json.loads(st.download(reg.run_id, "tuning/best.json", Path(tmp)).read_text())
        except Exception:  # noqa: BLE001  (tuning not finished yet: no best.json)
            best = {}
    rows, warnings, curves = [], [], []
    order = {lv: i for i, lv in enumerate(levels)}
    trials = trials.assign(_o=trials["variant"].map(order)).sort_values(["stratum", "_o", "trial"], kind="stable")
    for (variant, stratum), g in trials.groupby(["variant", "stratum"], sort=False):  # first appearance: sorted
        vid = variant if not stratum else f"{variant}|{stratum}"
        b = best.get(vid, {})
        finite = g["value"][np.isfinite(g["value"])]
        if len(finite):
            n, mean, sd = expected_best(g["value"].to_numpy(), direction)
            curves.append((vid, n, mean, sd))
        rows.append({
            "variant": vid, "trials": len(g), "diverged": int(g["diverged"].sum()),
            "best_trial": b.get("trial"), "best_value": b.get("value"),
            "best_params": ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                     for k, v in sorted(b.get("params", {}).items())),
        })
        warnings += [f"{vid}: {w}" for w in edge_warnings(b.get("params", {}), tuning["space"])]
    notes = []
    if tuning["sampler"] != "random":
        notes.append(f"The sampler is {tuning['sampler']!r}, not random: its trials are not iid draws, so the "
                     "expected-best curve (which assumes iid draws) is indicative only.")
    counts = {r["trials"] for r in rows}
    if len(counts) > 1:
        warnings.append(f"unequal numbers of ended trials per variant ({sorted(counts)}): tuning is incomplete")
    figure = _curve_plot(curves, decl["prediction"]["metric"], direction, png) if curves else None
    return {"decl": tuning, "rows": rows, "warnings": warnings, "notes": notes, "figure": figure,
            "storage": reg.tags.get("harness.optuna_storage", "")}


def _curve_plot(curves, metric: str, direction: str, png) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for vid, n, mean, sd in curves:
        (line,) = ax.plot(n, mean, marker="o", ms=3, label=vid.replace("$", r"\$"))
        ax.fill_between(n, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("tuning budget n (trials)")
    ax.set_ylabel(f"expected best validation {metric}")
    ax.set_title(f"Expected best of n trials ({'lower' if direction == 'lower' else 'higher'} is better), +- 1 sd",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)
