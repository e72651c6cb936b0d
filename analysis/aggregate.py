"""Across strata: the aggregate view of rliable (Agarwal et al. 2021), DESCRIPTIVE only.

The registered test decides per stratum (``analysis.decide``); this module says how the variants
compare over all strata at once, and nothing here changes, or stands in for, the verdict:

* **normalised IQM** per variant: the interquartile mean of every finished run's normalised score,
  pooled over strata, with a **stratified bootstrap** interval (each stratum's runs resampled with
  replacement on their own, then pooled: a resample never moves a run to another stratum, and
  every stratum keeps its number of runs);
* **probability of improvement** of each treatment over the control, averaged over strata with
  equal weight: within a stratum the paired per-seed version, P(d > 0) + 0.5 P(d = 0) over the
  seeds where both runs finished (as ``comparisons["prob_better"]``), or, in a stratum without
  such a pair, the unpaired one, P(t better than c) + 0.5 P(tie) over all pairs of finished runs
  (Mann-Whitney U / (n m), rliable's); a stratified bootstrap interval over the same units;
* **performance profiles**: per variant, the fraction of its finished runs whose normalised score
  is above tau, for tau on a grid over [0, 1], with pointwise stratified bootstrap bands.

Normalisation (:func:`normalise`): within each stratum, min-max over the finished runs of every
variant, oriented by the metric's direction: 1 = the best run in that stratum, 0 = the worst (for a
lower-is-better metric such as NLL or FID, the lowest value scores 1). It is free of each
stratum's units and offset, so strata of different scales can be pooled. The scores are relative
to the runs of this study (another variant with a worse run moves them) and the normalisation is
fixed from the observed runs, not re-estimated inside resamples (rliable treats its reference
scores as constants the same way). The probability of improvement needs no normalisation.

Failed runs (NaN / +-inf) are left out, as in ``Verdict.iqm``, and counted. Pure: frames and
arrays in, numbers out; every resampling function draws only from the caller's Generator, and
:func:`aggregate` keys one per variant and quantity with ``analysis.comparison.keyed_rng``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.comparison import keyed_rng
from analysis.stats_descriptive import iqm, prob_better
from analysis.stats_inputs import N_BOOTSTRAP, as_pairs, check_alpha, check_count, check_rng, paired_differences
from analysis.tidy import tidy

__all__ = ["NORMALISATION", "TAUS", "Aggregate", "aggregate", "normalise", "performance_profile",
           "pooled_iqm", "prob_improvement", "stratified_bootstrap_interval", "stratified_resamples"]

TAUS = np.linspace(0.0, 1.0, 101)  # the performance profiles' thresholds, on the normalised scale
NORMALISATION = ("within each stratum, min-max over the finished runs of every variant, oriented so that "
                 "1 = the best run in that stratum and 0 = the worst (in the metric's direction); "
                 "0.5 for every run when all of a stratum's finished runs are equal")

# A stratum's resampling unit: a 1-D array (paired differences, or one variant's scores) is
# resampled entry by entry; a tuple of arrays (an unpaired stratum's control and treatment) has
# each array resampled on its own.
Group = np.ndarray | tuple[np.ndarray, ...]


# --------------------------------------------------------------------------- pure functions
def normalise(values: object, strata: object, direction: str) -> np.ndarray:
    """Each value as a score in [0, 1] within its stratum (see :data:`NORMALISATION`); NaN for a
    failed run (NaN or +-inf), which never enters the min or max.

    >>> normalise([1.0, 3.0, 2.0, 10.0, 30.0], ["a", "a", "a", "b", "b"], "lower").tolist()
    [1.0, 0.0, 0.5, 1.0, 0.0]
    """
    x = np.asarray(values, dtype=np.float64)
    s = np.asarray(strata, dtype=object)
    if x.ndim != 1 or s.shape != x.shape:
        raise ValueError(f"values and strata must be 1-D of equal length; got shapes {x.shape} and {s.shape}")
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher'; got {direction!r}")
    out = np.full(x.shape, math.nan)
    finite = np.isfinite(x)
    for key in dict.fromkeys(s.tolist()):
        m = (s == key) & finite
        if not m.any():
            continue
        lo, hi = float(x[m].min()), float(x[m].max())
        if hi == lo:
            out[m] = 0.5
        else:
            out[m] = (x[m] - lo) / (hi - lo) if direction == "higher" else (hi - x[m]) / (hi - lo)
    return out


def stratified_resamples(groups: Sequence[Group], rng: np.random.Generator,
                         n_resamples: int = N_BOOTSTRAP) -> list:
    """One bootstrap draw per stratum, in order: each 1-D group becomes an (n_resamples, n) array
    of its own entries drawn with replacement (a tuple group: a tuple of such arrays, one per
    member). Indices come from ``rng`` only; a stratum never lends an entry to another.

    >>> parts = stratified_resamples([np.array([0.0, 1.0]), np.array([5.0])], np.random.default_rng(0), 3)
    >>> [p.shape for p in parts], bool((parts[1] == 5.0).all())
    ([(3, 2), (3, 1)], True)
    """
    rng = check_rng(rng)
    n = check_count(n_resamples, "n_resamples")

    def draw(a: object) -> np.ndarray:
        v = as_pairs(a, "a stratum's values", max_ndim=1)
        if v.size == 0:
            raise ValueError("a stratum has no values to resample; leave strata without finished runs out")
        return v[rng.integers(0, v.size, size=(n, v.size))]

    return [tuple(draw(a) for a in g) if isinstance(g, tuple) else draw(g) for g in groups]


def stratified_bootstrap_interval(groups: Sequence[Group], statistic: Callable[[list], np.ndarray], alpha: float,
                                  rng: np.random.Generator, n_resamples: int = N_BOOTSTRAP) -> tuple[float, float]:
    """Percentile (1 - 2 alpha) interval of ``statistic`` under the stratified bootstrap.

    ``statistic`` maps the list :func:`stratified_resamples` returns (one part per stratum,
    resamples along axis 0) to n_resamples values; applied to the groups themselves it gives the
    estimate. NaN bounds without a group. With ONE stratum this is the plain percentile bootstrap
    (``analysis.stats_descriptive.bootstrap_interval``), draw for draw.

    >>> g = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([10.0, 11.0, 12.0, 13.0])]
    >>> lo, hi = stratified_bootstrap_interval(g, pooled_iqm, 0.05, np.random.default_rng(0))
    >>> 0.0 <= lo <= pooled_iqm(g) <= hi <= 13.0
    True
    """
    alpha = check_alpha(alpha)
    if not groups:
        return (math.nan, math.nan)
    values = np.asarray(statistic(stratified_resamples(groups, rng, n_resamples)), dtype=np.float64)
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return (float(low), float(high))


def pooled_iqm(parts: Sequence[np.ndarray]):
    """The IQM of the strata's values pooled (``scipy.stats.trim_mean(x, 0.25)`` on their
    concatenation); 2-D parts (resamples x runs): one IQM per resample.

    >>> pooled_iqm([np.array([0.0, 1.0]), np.array([2.0, 100.0])])
    1.5
    """
    return iqm(np.concatenate([np.asarray(p, dtype=np.float64) for p in parts], axis=-1))


def prob_improvement(parts: Sequence[Group]):
    """Mean over strata (equal weight) of P(treatment better than control): a 1-D part holds a
    stratum's paired differences in the predicted direction (``prob_better``: P(d > 0) +
    0.5 P(d = 0)); a ``(control, treatment)`` part holds an unpaired stratum's oriented values
    (higher = better): P(t > c) + 0.5 P(t = c) over all n m pairs. 2-D parts: one per resample.

    >>> prob_improvement([np.array([1.0, -1.0, 0.0, 2.0]), (np.array([0.0, 2.0]), np.array([1.0, 3.0]))])
    0.6875
    """
    if not parts:
        raise ValueError("prob_improvement needs at least one stratum")
    values = []
    for p in parts:
        if isinstance(p, tuple):
            c, t = (np.asarray(a, dtype=np.float64) for a in p)
            diff = t[..., None, :] - c[..., :, None]  # every (control run, treatment run) pair
            values.append((diff > 0).mean(axis=(-2, -1)) + 0.5 * (diff == 0).mean(axis=(-2, -1)))
        else:
            values.append(np.asarray(prob_better(p), dtype=np.float64))
    out = np.mean(np.stack(values), axis=0)
    return float(out) if out.ndim == 0 else out


def performance_profile(scores: object, taus: object = TAUS) -> np.ndarray:
    """Fraction of ``scores`` strictly above each tau (rliable's score distribution), per row of a
    2-D input; shape ``(..., len(taus))``.

    >>> performance_profile([0.0, 0.5, 1.0], [0.0, 0.5, 1.0]).tolist()
    [0.6666666666666666, 0.3333333333333333, 0.0]
    """
    x = np.asarray(scores, dtype=np.float64)
    t = np.asarray(taus, dtype=np.float64).ravel()
    if x.shape[-1] == 0:
        raise ValueError("performance_profile needs at least one score")
    # one threshold at a time: (resamples x runs) stays the largest array, whatever the grid
    return np.stack([(x > tau).mean(axis=-1) for tau in t], axis=-1)


# --------------------------------------------------------------------------- one frame
@dataclass(frozen=True)
class Aggregate:
    """The across-strata view of one study (descriptive; see the module docstring).

    ``table``: one row per variant (control first): ``variant``, ``n_strata`` (strata with a
    finished run), ``n_runs``, ``n_failed``, ``n_analysed``, ``iqm`` / ``iqm_ci_low`` /
    ``iqm_ci_high`` (normalised scale), ``prob_improvement`` / ``prob_improvement_ci_low`` /
    ``prob_improvement_ci_high`` over the control (NaN for the control), ``strata_paired``,
    ``strata_unpaired``, ``strata_left_out`` (no finished run in one of the two arms).
    ``profiles``: one row per (variant, tau): ``fraction``, ``ci_low``, ``ci_high``.
    """

    table: pd.DataFrame
    profiles: pd.DataFrame
    strata: tuple[str, ...]
    control: str
    direction: str
    confidence: float
    seed: int
    n_bootstrap: int
    normalisation: str = NORMALISATION


def aggregate(frame: pd.DataFrame, control: str, direction: str, *, alpha: float, seed: int,
              n_bootstrap: int = N_BOOTSTRAP, taus: object = TAUS) -> Aggregate:
    """Normalised IQM, probability of improvement and performance profiles over all strata of
    ``frame`` (one row per run: ``variant``, ``seed``, ``value``, optional ``stratum``, as
    ``analysis.decide`` takes it). Intervals at 1 - 2 ``alpha``; every resample comes from
    ``keyed_rng(seed, "aggregate", quantity, variant)``, so the same frame and seed give the same
    numbers bit for bit, whatever the row order.

    >>> f = pd.DataFrame({"variant": ["a"] * 4 + ["b"] * 4, "seed": [0, 1] * 4,
    ...                   "stratum": ["x", "x", "y", "y"] * 2,
    ...                   "value": [1.0, 2.0, 10.0, 20.0, 0.5, 1.5, 5.0, 30.0]})
    >>> a = aggregate(f, "a", "lower", alpha=0.05, seed=0, n_bootstrap=200)
    >>> a.table["prob_improvement"].tolist()[1]
    0.75
    """
    alpha = check_alpha(alpha)
    n_bootstrap = check_count(n_bootstrap, "n_bootstrap")
    runs = tidy(frame)
    strata = list(dict.fromkeys(runs["stratum"]))
    variants = list(dict.fromkeys(runs["variant"]))
    control = str(control)
    if control not in variants:
        raise ValueError(f"control {control!r} is not a value of column 'variant'; received variants {variants}. "
                         "Fix: pass control= one of them.")
    # Canonical order before anything is resampled: strata are drawn in sorted order, so the
    # frame's row order never moves a number (as in decide()).
    runs = runs.sort_values(["stratum", "variant", "seed"], kind="stable").reset_index(drop=True)
    drawn_strata = sorted(strata)
    runs["score"] = normalise(runs["value"].to_numpy(float), runs["stratum"].to_numpy(object), direction)
    ok = runs[~runs["failed"]]
    rows, profiles = [], []
    taus = np.asarray(taus, dtype=np.float64).ravel()
    for v in [control, *(x for x in variants if x != control)]:
        mine = ok[ok["variant"] == v]
        groups = [g for g in (mine.loc[mine["stratum"] == s, "score"].to_numpy(float) for s in drawn_strata)
                  if g.size]
        row = {"variant": v, "n_strata": len(groups), "n_runs": int((runs["variant"] == v).sum()),
               "n_failed": int(runs.loc[runs["variant"] == v, "failed"].sum()), "n_analysed": len(mine),
               "iqm": math.nan, "iqm_ci_low": math.nan, "iqm_ci_high": math.nan}
        fraction = low = high = np.full(taus.size, math.nan)
        if groups:
            row["iqm"] = float(pooled_iqm(groups))
            row["iqm_ci_low"], row["iqm_ci_high"] = stratified_bootstrap_interval(
                groups, pooled_iqm, alpha, keyed_rng(seed, "aggregate", "iqm", v), n_bootstrap)
            fraction = performance_profile(np.concatenate(groups), taus)
            drawn = stratified_resamples(groups, keyed_rng(seed, "aggregate", "profile", v), n_bootstrap)
            low, high = np.quantile(performance_profile(np.concatenate(drawn, axis=1), taus), [alpha, 1 - alpha], axis=0)
        profiles.append(pd.DataFrame({"variant": v, "tau": taus, "fraction": fraction, "ci_low": low, "ci_high": high}))
        row.update(_improvement(ok, control, v, drawn_strata, direction, alpha, seed, n_bootstrap))
        rows.append(row)
    return Aggregate(table=pd.DataFrame(rows), profiles=pd.concat(profiles, ignore_index=True), strata=tuple(strata),
                     control=control, direction=direction, confidence=1 - 2 * alpha, seed=int(seed),
                     n_bootstrap=n_bootstrap)


def _improvement(ok: pd.DataFrame, control: str, treatment: str, strata: list, direction: str, alpha: float,
                 seed: int, n_bootstrap: int) -> dict:
    """The probability of improvement of ``treatment`` over ``control`` from the finished runs
    ``ok``: each stratum paired by seed where a pair of finished runs exists, else unpaired."""
    out = {"prob_improvement": math.nan, "prob_improvement_ci_low": math.nan, "prob_improvement_ci_high": math.nan,
           "strata_paired": 0, "strata_unpaired": 0, "strata_left_out": 0}
    if treatment == control:
        return out
    sign = 1.0 if direction == "higher" else -1.0
    groups: list[Group] = []
    for s in strata:
        c = ok[(ok["stratum"] == s) & (ok["variant"] == control)].set_index("seed")["value"]
        t = ok[(ok["stratum"] == s) & (ok["variant"] == treatment)].set_index("seed")["value"]
        seeds = sorted(set(c.index) & set(t.index))
        if seeds:
            groups.append(paired_differences(c.loc[seeds].to_numpy(float), t.loc[seeds].to_numpy(float), direction))
            out["strata_paired"] += 1
        elif len(c) and len(t):
            groups.append((sign * c.to_numpy(float), sign * t.to_numpy(float)))
            out["strata_unpaired"] += 1
        else:
            out["strata_left_out"] += 1
    if groups:
        out["prob_improvement"] = float(prob_improvement(groups))
        out["prob_improvement_ci_low"], out["prob_improvement_ci_high"] = stratified_bootstrap_interval(
            groups, prob_improvement, alpha, keyed_rng(seed, "aggregate", "improvement", treatment), n_bootstrap)
    return out
