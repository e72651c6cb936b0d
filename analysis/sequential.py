"""Group-sequential seeds: look decisions on the boundaries of ``analysis.boundaries``.

A design has K looks at cumulative seed counts n_1 < ... < n_K; each comparison's one-sided
p-value of the DECLARED test at look k is compared with the look's NOMINAL level
(:func:`analysis.boundaries.nominal_levels`, Lan-DeMets spending).

Two one-sided group-sequential tests run side by side, each at alpha with the same spending:
superiority (H0: improvement <= 0; crossing -> "supported") and, with ``futility=True``,
non-superiority at the smallest effect of interest E (H0: improvement >= E; crossing ->
"refuted"). Both are non-binding, so P(supported | 0) <= alpha and P(refuted | E) <= alpha
hold whatever the other does. With several comparisons the family is handled by a group-
sequential Holm procedure (Maurer & Bretz 2013): an unrejected hypothesis is tested at the
boundaries of level alpha / (m - r), r = hypotheses already rejected, recomputed as r grows.
Interval after (early) stopping: the repeated confidence interval (Jennison & Turnbull 1989),
the test's own interval at the nominal level of the look, whose coverage 1 - 2 alpha holds
simultaneously over all looks and hence under any stopping rule.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

from analysis.boundaries import boundaries, check_looks, nominal_levels
from analysis.budgets import BUDGET_COLUMNS, final_budget
from analysis.decide import decide

__all__ = ["LookDecision", "analyse_look", "decide_look"]


@dataclass(frozen=True)
class LookDecision:
    """The decision at one look for a family of comparisons.

    ``outcomes``: per comparison "supported", "refuted" or "continue" (at the last look,
    "inconclusive" instead of "continue"); ``stop``: True when the overall outcome is decided
    (every comparison supported, or any refuted) or the last look is reached; ``overall``:
    "supported", "refuted", "inconclusive" (last look, undecided) or "continue";
    ``levels_sup`` / ``levels_non``: the nominal level each comparison was tested at (after
    Holm recycling); ``rci_level``: the nominal one-sided alpha at which the repeated
    confidence interval of every comparison is formed at this look (the look's boundary at
    alpha / m, Bonferroni over the family), e.g. ``PairedTest.interval(rci_level)``.
    """

    look: int
    n: int
    outcomes: tuple[str, ...]
    overall: str
    stop: bool
    levels_sup: tuple[float, ...]
    levels_non: tuple[float, ...]
    rci_level: float


def _holm_sequential(p: np.ndarray, decided: np.ndarray, look: int, looks, alpha: float,
                     spending: str) -> tuple[np.ndarray, np.ndarray]:
    """Group-sequential Holm at one look: returns (rejected now or before, level used)."""
    m = p.size
    rejected = decided.copy()
    levels = np.zeros(m)
    while True:
        r = int(rejected.sum())
        if r == m:
            break
        a = nominal_levels(looks, alpha / (m - r), spending)[look]
        levels[~rejected] = a
        new = (~rejected) & (p <= a)
        if not new.any():
            break
        rejected |= new
    return rejected, levels


def decide_look(look: int, looks, p_superiority, p_nonsuperiority, *, alpha: float,
                spending: str = "obrien_fleming", futility: bool = True,
                previous: tuple[str, ...] | None = None) -> LookDecision:
    """Apply the design at look ``look`` (0-based) to each comparison's one-sided p-values.

    ``p_superiority`` / ``p_nonsuperiority``: raw p-values of the declared test on all pairs so
    far (one per comparison); ``previous``: the outcomes of the last look (decided comparisons
    keep their decision: a decided study is never reopened).

    >>> d = decide_look(0, (8, 16, 24, 32), [1e-6], [0.9], alpha=0.025)
    >>> d.outcomes, d.stop
    (('supported',), True)
    """
    looks = check_looks(looks)
    if not 0 <= look < len(looks):
        raise ValueError(f"look must be in 0..{len(looks) - 1}; got {look!r}")
    p_sup = np.asarray(p_superiority, float)
    p_non = np.asarray(p_nonsuperiority, float)
    m = p_sup.size
    prev = previous or ("continue",) * m
    was_sup = np.array([o == "supported" for o in prev])
    was_ref = np.array([o == "refuted" for o in prev])
    sup, lv_sup = _holm_sequential(p_sup, was_sup, look, looks, alpha, spending)
    if futility:
        ref, lv_non = _holm_sequential(p_non, was_ref, look, looks, alpha, spending)
    else:
        ref, lv_non = was_ref.copy(), np.zeros(m)
    last = look == len(looks) - 1
    outcomes = []
    for i in range(m):
        if was_sup[i] or was_ref[i]:
            outcomes.append(prev[i])
        elif ref[i]:  # refuted first, as in the fixed design
            outcomes.append("refuted")
        elif sup[i]:
            outcomes.append("supported")
        else:
            outcomes.append("inconclusive" if last else "continue")
    if any(o == "refuted" for o in outcomes):
        overall = "refuted"
    elif all(o == "supported" for o in outcomes):
        overall = "supported"
    else:
        overall = "inconclusive" if last else "continue"
    rci = nominal_levels(looks, alpha / m, spending)[look]
    return LookDecision(look, looks[look], tuple(outcomes), overall, overall != "continue",
                        tuple(map(float, lv_sup)), tuple(map(float, lv_non)), float(rci))


def analyse_look(frame, prediction, design, look: int, previous: tuple[str, ...] | None = None,
                 control: str | None = None, seed: int = 0, first_seed: int | None = None) -> dict:
    """One look of a sequential study: the declared test on the runs of the first n_k seeds,
    the design's boundaries, each comparison's decision and its repeated confidence interval.

    The first n_k seeds are ``first_seed .. first_seed + n_k - 1`` (the declaration's
    ``Hypothesis.first_seed``); ``None`` takes it from ``frame.attrs["first_seed"]``, which
    :func:`analysis.load.load` sets from the registered declaration (0 when absent).

    ``design`` has ``looks``, ``spending``, ``futility`` (a ``harness.Sequential``). Returns a
    JSON-able dict (what ``harness run`` logs to the parent run, and the report shows).
    The family is controlled by the group-sequential Holm procedure whatever
    ``prediction.correction`` says (Benjamini-Hochberg has no group-sequential form here).
    """
    looks = check_looks(design.looks)
    n = looks[look]
    alpha = float(prediction.alpha)
    m_guess = None
    first = int(frame.attrs.get("first_seed", 0) if first_seed is None else first_seed)
    # Looks decide on each run's final budget (a sequential design declares budgets="final").
    frame = final_budget(frame).drop(columns=[c for c in BUDGET_COLUMNS if c in frame.columns])
    sub = frame[(frame["seed"] >= first) & (frame["seed"] < first + n)]
    # one decide() call at the RCI level: its p-values do not depend on alpha, and its interval
    # at that level IS the repeated confidence interval of this look
    for _ in range(2):  # the RCI level depends on the family size m, known after one call
        a_rci = nominal_levels(looks, alpha / (m_guess or 1), design.spending)[look]
        a_rci = min(max(a_rci, 1e-12), 0.499)
        if dataclasses.is_dataclass(prediction):
            pred = dataclasses.replace(prediction, alpha=a_rci)
        else:
            pred = types.SimpleNamespace(**{**vars(prediction), "alpha": a_rci})
        v = decide(sub, pred, control=control, seed=seed, power=False)
        if m_guess == v.family_size or v.family_size == 1:
            break
        m_guess = v.family_size
    comp = v.comparisons
    d = decide_look(look, looks, comp["p_value"].to_numpy(), comp["p_nonsup"].to_numpy(),
                    alpha=alpha, spending=design.spending, futility=design.futility,
                    previous=previous)
    c = boundaries(looks, alpha / len(comp), design.spending)
    rows = []
    for i, r in comp.iterrows():
        rows.append({
            "stratum": r["stratum"], "treatment": r["treatment"], "n_pairs": int(r["n_pairs"]),
            "estimate": float(r["effect"]), "p_superiority": float(r["p_value"]),
            "p_nonsuperiority": float(r["p_nonsup"]),
            "z_superiority": float(st.norm.isf(min(max(r["p_value"], 1e-300), 1.0))),
            "level_superiority": d.levels_sup[i], "level_nonsuperiority": d.levels_non[i],
            "rci_low": float(r["ci_low"]), "rci_high": float(r["ci_high"]), "outcome": d.outcomes[i],
        })
    return {
        "look": look, "looks": list(looks), "n": n, "spending": design.spending,
        "futility": bool(design.futility), "alpha": alpha,
        "boundary_z": c[look], "boundaries_z": list(c),
        "nominal_levels": nominal_levels(looks, alpha / len(comp), design.spending),
        "rci_confidence": 1 - 2 * a_rci, "comparisons": rows, "outcomes": list(d.outcomes),
        "overall": d.overall, "stop": d.stop,
    }
