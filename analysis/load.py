"""MLflow -> a tidy pandas frame, one row per run and budget (the edge where I/O lives)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from harness.errors import StoreError
from harness.redact import redact

if TYPE_CHECKING:
    import pandas as pd

# Logged once, at the final step (docs/compute.md): not read per budget.
_FINAL_ONLY = {"seconds", "wall_seconds", "params"}
# Per budget (analysis.budgets): the declared budget (by position), the steps this run trained
# to at it, its training FLOPs; run_status is the run's own status (status is the budget's).
_BUDGET_COLS = ["budget", "budget_steps", "train_flops", "run_status"]


def load(hypothesis_id: str, store: str | None = None, version: str | None = None) -> pd.DataFrame:
    """Every ended run of one version of a study, one row per (variant, stratum, seed, budget).

    Columns: ``variant``, ``stratum``, ``seed``, ``value`` (the pre-registered metric; NaN for
    a diverged run), ``status``, ``run_id``, ``version``, ``budget`` (the declared budget in
    steps, matched across variants by position), ``budget_steps`` (the steps this run trained
    to at it: they differ under ``match="flops"``), ``train_flops`` (at that budget; NaN when not
    logged), ``run_status``, every metric at that budget and every config param. Runs without
    ``Training.evaluate_at`` have one budget, their ``steps``: one row per run, as before. A
    diverged run's earlier budgets are what runs of those steps ended with: ``status`` is the
    budget's (FINISHED when its metric is finite), ``run_status`` the run's.
    ``analysis.budgets.final_budget(frame)`` keeps each run's last budget. ``version`` defaults
    to the latest registered version. Example::

        frame = analysis.load("iaf_tightens_bound")
        final_budget(frame).groupby("variant").value.mean()
    """
    import pandas as pd  # on first use: `import analysis` (and so harness, via analysis.estimands) stays light

    from harness.tracking import Store

    st = store if hasattr(store, "client") else Store(store, create=False)
    regs = st.registrations(hypothesis_id)
    if not regs:
        raise StoreError(
            f"hypothesis {hypothesis_id!r}: not registered in the store {redact(st.uri)}\n"
            f"  hint: `harness register {hypothesis_id}` or `harness run {hypothesis_id}` first; "
            "check --store"
        )
    reg = regs[-1] if version is None else next((r for r in regs if r.version.startswith(version)), None)
    if reg is None:
        raise StoreError(
            f"hypothesis {hypothesis_id!r}: no version {version!r}; registered: {[r.version for r in regs]}"
        )
    metric = reg.declaration["prediction"]["metric"]
    # One ended run per cell; should a store hold two ended runs of a cell, keep the first.
    cells: dict[tuple, object] = {}
    for r in sorted((r for r in st.cell_runs(hypothesis_id, reg.version) if r.info.status in ("FINISHED", "FAILED")),
                    key=lambda r: (r.data.tags["harness.stratum"], r.data.tags["harness.variant"],
                                   int(r.data.tags["harness.seed"]), r.info.run_id)):
        t = r.data.tags
        cells.setdefault((t["harness.stratum"], t["harness.variant"], int(t["harness.seed"])), r)
    ended = list(cells.values())  # killed or still running: not a result
    labels = _budget_labels(ended, reg.declaration)
    # The histories of runs evaluated at more than one budget: one query for all of them.
    multi = [r.info.run_id for r in ended if len(labels[r.info.run_id][1]) > 1]
    keys = sorted({k for r in ended if r.info.run_id in set(multi) for k in r.data.metrics
                   if not k.startswith("train/") and k not in _FINAL_ONLY})
    histories = st.metric_histories(multi, keys) if multi else {}
    rows = []
    for r in ended:
        t = r.data.tags
        base = {
            "variant": t["harness.variant"],
            "stratum": t["harness.stratum"],
            "seed": int(t["harness.seed"]),
            "status": r.info.status,
            "run_id": r.info.run_id,
            "version": reg.version,
            "device": t.get("harness.device", ""),
        }
        base.update({k: _num(v) for k, v in r.data.params.items()})
        declared, steps = labels[r.info.run_id]
        hist = {k: dict(pts) for k, pts in histories.get(r.info.run_id, {}).items()}
        for label, step in zip(declared, steps):
            row = dict(base)
            if step == steps[-1]:  # the final budget: the run's latest metrics, as always
                row.update({k: v for k, v in r.data.metrics.items() if not k.startswith("train/")})
                status = r.info.status
            else:  # an earlier budget is what a run of that many steps ended with
                row.update({k: h[step] for k, h in hist.items() if step in h})
                if "params" in r.data.metrics:
                    row["params"] = r.data.metrics["params"]
                status = "FINISHED" if math.isfinite(row.get(metric, math.nan)) else "FAILED"
            value = row.get(metric, math.nan)
            row.update(status=status, run_status=r.info.status, budget=int(label), budget_steps=int(step),
                       value=value if status == "FINISHED" else math.nan)
            row.setdefault("train_flops", math.nan)
            rows.append(row)
    cols = ["variant", "stratum", "seed", "value", "status", "run_id", "version", *_BUDGET_COLS]
    frame = pd.DataFrame(rows, columns=None if rows else cols)
    if rows:
        frame = frame.sort_values(["stratum", "variant", "seed", "budget_steps"])
        frame = frame[cols + [c for c in frame.columns if c not in cols]].reset_index(drop=True)
    frame.attrs.update(
        hypothesis=hypothesis_id, version=reg.version, metric=metric, registration=reg, store=st.uri,
        # the declared confirmatory seeds start here (Hypothesis.first_seed; absent = 0)
        first_seed=int(reg.declaration.get("first_seed", 0)),
        budgets=sorted({int(b) for b in frame["budget"]}) if rows else [],
    )
    return frame


def _budget_labels(runs: list, decl: dict) -> dict[str, tuple[list[int], list[int]]]:
    """run id -> (budget labels, the run's own steps at them). A label is the declared budget at
    that position (``harness.declared_budgets``: its stratum's control's steps under
    ``match="flops"``); when a variant's own steps differ from its control's (``steps`` ablated)
    the control's label the positions, so final pairs with final, as before budgets existed."""
    def own(r) -> tuple[list[int], list[int]]:
        t = r.data.tags
        steps = json.loads(t["harness.budgets"]) if "harness.budgets" in t else []
        if not steps:  # logged before issue 19: the run's one budget is its steps
            steps = [int(float(r.data.params.get("training.steps", 0)))]
        declared = json.loads(t["harness.declared_budgets"]) if "harness.declared_budgets" in t else steps
        return [int(x) for x in declared], [int(x) for x in steps]

    control = next(iter(decl["ablate"].values()))[0] if decl.get("ablate") else None
    control = control if isinstance(control, str) else json.dumps(control)
    ctrl = {r.data.tags["harness.stratum"]: own(r)[0] for r in runs if r.data.tags["harness.variant"] == control}
    out = {}
    for r in runs:
        declared, steps = own(r)
        c = ctrl.get(r.data.tags["harness.stratum"])
        out[r.info.run_id] = (c if c is not None and len(c) == len(steps) else declared, steps)
    return out


def _num(v: str):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


__all__ = ["load"]
