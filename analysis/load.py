"""MLflow -> a tidy pandas frame, one row per run (the edge where I/O lives)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from harness.errors import StoreError
from harness.redact import redact

if TYPE_CHECKING:
    import pandas as pd


def load(hypothesis_id: str, store: str | None = None, version: str | None = None) -> pd.DataFrame:
    """Every ended run of one version of a study, one row per (variant, stratum, seed).

    Columns: ``variant``, ``stratum``, ``seed``, ``value`` (the pre-registered metric; NaN for
    a diverged run), ``status``, ``run_id``, ``version``, every final metric and every config
    param. ``version`` defaults to the latest registered version. Example::

        frame = analysis.load("iaf_tightens_bound")
        frame.groupby("variant").value.mean()
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
    rows = []
    for r in st.cell_runs(hypothesis_id, reg.version):
        if r.info.status not in ("FINISHED", "FAILED"):
            continue  # killed or still running: not a result
        t = r.data.tags
        row = {
            "variant": t["harness.variant"],
            "stratum": t["harness.stratum"],
            "seed": int(t["harness.seed"]),
            "status": r.info.status,
            "run_id": r.info.run_id,
            "version": reg.version,
            "device": t.get("harness.device", ""),
        }
        row.update({k: _num(v) for k, v in r.data.params.items()})
        row.update({k: v for k, v in r.data.metrics.items() if not k.startswith("train/")})
        value = r.data.metrics.get(metric, math.nan)
        row["value"] = value if r.info.status == "FINISHED" else math.nan
        rows.append(row)
    cols = ["variant", "stratum", "seed", "value", "status", "run_id", "version"]
    frame = pd.DataFrame(rows, columns=None if rows else cols)
    if rows:
        # One row per cell; should a store hold two ended runs of a cell, keep the first.
        frame = frame.sort_values(["stratum", "variant", "seed", "run_id"]).drop_duplicates(
            ["variant", "stratum", "seed"]
        )
        frame = frame[cols + [c for c in frame.columns if c not in cols]].reset_index(drop=True)
    frame.attrs.update(
        hypothesis=hypothesis_id, version=reg.version, metric=metric, registration=reg, store=st.uri,
        # the declared confirmatory seeds start here (Hypothesis.first_seed; absent = 0)
        first_seed=int(reg.declaration.get("first_seed", 0)),
    )
    return frame


def _num(v: str):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


__all__ = ["load"]
