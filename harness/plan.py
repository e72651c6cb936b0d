"""What is to run and what is done: the job list (variant x seed blocks) read from the store.

Pure bookkeeping over the store's cell index: no engine, no training. The block size of a
variant is the caller's (an int, or a function of the variant: the driver passes the engine's
automatic choice), so this module sits below both the driver and ``analysis``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.collect import Collected
from harness.errors import HarnessError
from harness.hypothesis import Variant

FINISHED_STATUSES = ("FINISHED", "FAILED")



@dataclass
class Job:
    """One variant for a block of seeds: the unit the engine trains as one stacked model."""

    variant: Variant
    seeds: list[int]


@dataclass
class RunSummary:
    trained: int = 0
    finished: int = 0
    diverged: int = 0
    skipped_claimed: int = 0
    already_done: int = 0
    planned: int = 0
    tuning_trained: int = 0  # tuning-trial runs trained by this call
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)



def cell_status(store, hyp_id: str, version: str, variant: Variant | None = None,
                index=None, seeds=None) -> dict[tuple[str, str, int], list]:
    """(level, stratum, seed) -> its runs (CellRun); one query (:meth:`Store.cell_index`),
    of one variant's cells when ``variant`` is given (at least those of ``seeds``, when given:
    a tracking server is then asked for those seeds only). With ``index`` (a
    :class:`harness.cellindex.CellIndex`: a tracking-server store with ``--db``) the version's
    cells come from the finished-cell index instead, its unsure rows re-verified in the store."""
    out: dict[tuple[str, str, int], list] = {}
    rows = index.cell_runs(store, hyp_id, version) if index is not None and variant is None else \
        store.cell_index(hyp_id, version, variant, seeds)
    for r in rows:
        out.setdefault((r.variant, r.stratum, r.seed), []).append(r)
    return out


def plan(
    col: Collected, store, version: str, n_seeds: int | None = None,
    block_size: int | Callable[[Variant], int] | None = None, variants: list[Variant] | None = None, index=None,
):
    """(jobs still to train, number of cells already done).

    ``index``: the finished-cell index to read instead of the store (:func:`cell_status`).

    ``block_size``: seeds per block, or a function of the variant giving it (the driver passes
    :func:`harness.engine.variant_block_size`: free GPU memory on CUDA, a fixed cap on CPU);
    results never depend on it.
    """
    hyp = col.hypothesis
    n_seeds = hyp.seeds if n_seeds is None else n_seeds
    status = cell_status(store, col.id, version, index=index)
    jobs, done = [], 0
    for v in hyp.variants if variants is None else variants:
        todo = []
        for s in hyp.confirmatory_seeds(n_seeds):
            runs = status.get((v.level, v.stratum, s), [])
            if any(r.status in FINISHED_STATUSES for r in runs):
                done += 1
            else:
                todo.append(s)
        if todo:
            size = block_size(v) if callable(block_size) else block_size
            if not size:
                raise HarnessError(f"plan: no block size for variant {v.id!r} (pass an int or a function of the variant)")
        else:
            size = 1
        for i in range(0, len(todo), size):
            jobs.append(Job(v, todo[i : i + size]))
    return jobs, done


def planned_runs(decl: dict) -> int:
    """The runs a registered declaration plans: variants x seeds (a sequential design's maximum)."""
    n = len(next(iter(decl["ablate"].values())))
    for levels in decl["strata"].values():
        n *= len(levels)
    seeds = decl["seeds"]  # an int, or a sequential design {"looks": [...], ...}: plan for the max
    return n * (seeds["looks"][-1] if isinstance(seeds, dict) else seeds)


def progress_counts(store, col_id: str, version: str, n_planned: int) -> tuple[int, int]:
    """(cells done, planned) for one version."""
    status = cell_status(store, col_id, version)
    done = sum(1 for runs in status.values() if any(r.status in FINISHED_STATUSES for r in runs))
    return done, n_planned


def declared(col: Collected, level: str, stratum: str) -> Variant:
    """The variant ``(level, stratum)`` as the file declares it (before tuning)."""
    return next(v for v in col.hypothesis.variants if (v.level, v.stratum) == (level, stratum))


def tuned_changes(col: Collected, variant: Variant) -> dict:
    """The values in which ``variant`` differs from the declared one (its tuned values): plain
    data, so a pool process can rebuild it without unpickling a file-defined Config."""
    base = declared(col, variant.level, variant.stratum)
    out = {}
    for old, new in ((base.model_config, variant.model_config), (base.training, variant.training)):
        for f in dataclasses.fields(new):
            if getattr(old, f.name) != getattr(new, f.name):
                out[f.name] = getattr(new, f.name)
    return out


def check_seeds(col: Collected, n_seeds: int | None) -> None:
    """``--seeds N`` may run a prefix of the pre-registered seeds, never more."""
    hyp = col.hypothesis
    if n_seeds is not None and n_seeds > hyp.seeds:
        raise HarnessError(
            f"--seeds {n_seeds}: the declaration pre-registers seeds={hyp.seeds}\n"
            f"  hint: to run more seeds, change `seeds=` in {col.path} and run with --new-version"
        )
    if n_seeds is not None and n_seeds < 2:
        raise HarnessError(f"--seeds {n_seeds}: a paired comparison needs at least 2 seeds")

