"""The driver: tune, then train every block of the study until done, with sequential looks.

It plans (:mod:`harness.plan`), leaves out cells under another claimant's live lease, hands job
specs to an executor (:mod:`harness.executors`), absorbs their counts and plans again. What a
worker does for one job is :mod:`harness.jobs`; registration is :mod:`harness.registration`.

A run is identified by its content key (version hash, variant, stratum, seed). Before training,
the job list subtracts every cell that already ended (FINISHED, or FAILED because it diverged:
a divergence is a result, not a crash). A run left RUNNING by a killed process is marked KILLED
and trained again. Claims are ``flock`` locks, one per cell, held while the cell trains: the
kernel releases them when a process dies (even by SIGKILL), so there are no stale claims, and a
second ``harness run`` of the same study skips the cells another process holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.cellindex import for_store
from harness.claims import FlockClaims, tuning_key
from harness.collect import Collected
from harness.errors import RunError
from harness.hypothesis import Sequential, Variant
from harness.jobs import interruptible, pilot_n
from harness.plan import Job, RunSummary, check_seeds, declared, plan, tuned_changes


@interruptible
def run_study(
    col: Collected,
    store,
    reg,
    *,
    n_seeds: int | None = None,
    device: str = "auto",
    workers: int = 1,
    block_size: int | None = None,
    on_progress: Callable[[float, int], None] | None = None,
    optuna_storage: str | None = None,
    on_training: Callable[[float, int], None] | None = None,
    executor=None,
    claims=None,
    on_phase: Callable[[str, int], None] | None = None,
) -> RunSummary:
    """Train every (variant, seed) of ``reg``'s version not yet done.

    With a declared ``Tuning``, two phases: first each variant's tuning to its full budget
    (:mod:`harness.tuning`; trial runs on the validation split, seeds disjoint from the
    confirmatory ones), then the confirmatory runs, each variant at its best configuration.

    ``executor`` (:mod:`harness.executors`; default local with ``workers`` processes) runs the
    jobs; ``claims`` (:mod:`harness.claims`; default flock files under the store root) decides
    who trains what. With flock claims a cell another live process holds is skipped (it is
    alive: the kernel says so); with leases the driver waits for it, and takes it over when its
    lease expires (its worker died).

    ``on_progress(ended_runs, total_runs)`` is called when runs have ended (logged, terminal);
    ``on_training(trained, total_runs)`` as training advances inside a block (in run units,
    fractional; in-process only): a block's runs end only after all its seeds trained.
    ``on_phase(name, total_runs)`` starts a phase ("tuning", then "confirmatory"): the two
    callbacks' counts are the current phase's (trial runs while tuning), never carried over.
    """
    import time

    from harness.executors import LocalExecutor

    hyp = col.hypothesis
    check_seeds(col, n_seeds)
    executor = executor if executor is not None else LocalExecutor(workers)
    claims = claims if claims is not None else FlockClaims(store.root)
    if n_seeds is None and isinstance(hyp.seeds, Sequential):  # look by look, stop when decided
        return run_sequential(col, store, reg, device=device, workers=workers, block_size=block_size,
                              on_progress=on_progress, optuna_storage=optuna_storage, executor=executor,
                              claims=claims, on_training=on_training, on_phase=on_phase)
    t0 = time.perf_counter()
    variants, busy, tuned_runs = hyp.variants, [], 0
    if hyp.tuning is not None:
        variants, busy, tuned_runs = _tune(col, store, reg, device, block_size, optuna_storage, on_progress,
                                           executor, claims, on_training=on_training, on_phase=on_phase)
    total = len(hyp.variants) * (n_seeds or hyp.seeds)
    if on_phase:
        on_phase("confirmatory", total)
    summary = RunSummary(planned=total, tuning_trained=tuned_runs)
    for v in busy:
        summary.messages.append(
            f"variant {v.id} is being tuned by another `harness run` of this study; its confirmatory runs "
            "wait until its tuning is complete. Run again when that process ends."
        )
    first = True
    state = {"completed": 0.0}

    on_worker = block_size is None and executor.worker_sizes_blocks  # each worker sizes its own blocks
    index = for_store(store, claims)  # an http:// store with --db: the finished-cell index (harness.cellindex)

    def make_specs():
        if on_worker:  # a variant's cells per job, spread over the executor's slots; never sized here
            jobs, done = plan(col, store, reg.version, n_seeds, job_cells(), variants=variants, index=index)
            jobs = spread(jobs, executor.slots())
        else:
            jobs, done = plan(col, store, reg.version, n_seeds, block_size or _auto_block(col, device), variants=variants,
                              index=index)
        nonlocal first
        if first:
            summary.already_done = done
            first = False
        state["done"] = done
        state["completed"] = float(done)
        if on_progress:
            on_progress(float(done), total)
        specs, waiting = [], 0
        for job in jobs:
            seeds = job.seeds
            if claims.waits:  # cells under another live lease: wait, never train them twice
                theirs = claims.foreign_cells(reg.version, job.variant, seeds)
                waiting += len(theirs)
                seeds = [s for s in seeds if s not in theirs]
            if seeds:
                specs.append({**_spec(col, store, reg, claims, job.variant, device), "kind": "cells", "seeds": seeds,
                              "block_size": None if on_worker else len(seeds)})
        return specs, waiting

    def absorb(spec: dict, c: dict) -> None:
        if index is not None and c["done"]:  # planned, but found ended by the worker: tell the index
            index.learn(store, col.id, reg.version, declared(col, spec["level"], spec["stratum"]), spec["seeds"])
        summary.trained += c["trained"]
        summary.finished += c["finished"]
        summary.diverged += c["diverged"]
        summary.skipped_claimed += c["claimed"] if not claims.waits else 0
        summary.already_done += c["done"] if not claims.waits else 0
        state["completed"] += c["trained"] + c["done"]  # not cells another process still trains
        if on_progress:
            on_progress(state["completed"], total)

    def in_process(spec: dict) -> dict:
        def prog(x: float) -> None:  # in-process jobs run one after the other: the base is read now
            if on_training:
                on_training(state["completed"] + x, total)

        return {**spec, "progress": prog}

    _drive(executor, claims, make_specs, absorb, in_process, summary, col, store)
    elsewhere = state.get("done", 0) - summary.already_done - summary.trained
    if claims.waits and elsewhere > 0:
        summary.messages.append(f"{elsewhere} runs ended meanwhile in other workers (live leases; none trained twice)")
    summary.seconds = time.perf_counter() - t0
    if summary.skipped_claimed:
        summary.messages.append(
            f"{summary.skipped_claimed} runs are being trained by another `harness run` of this study "
            "(claimed); they were skipped here. Run again when it ends to confirm all runs finished."
        )
    return summary


MAX_LOST_ROUNDS = 3


def _spec(col: Collected, store, reg, claims, variant: Variant, device: str) -> dict:
    """The plain-data part of a job spec shared by both kinds (see :mod:`harness.jobs`)."""
    return {"path": str(col.path), "smoke": col.hypothesis.smoke, "overrides": list(col.overrides),
            "pilot": pilot_n(col), "store": store.uri, "root": str(store.root),
            "claims": claims.spec(), "reg": reg, "level": variant.level, "stratum": variant.stratum,
            "changes": tuned_changes(col, variant), "device": device}


def _drive(executor, claims, make_specs, absorb, in_process, summary: RunSummary, col: Collected, store) -> None:
    """Submit the planned jobs, absorb their results, and plan again until nothing is left.

    Flock claims: one pass (cells another live process holds are skipped), again only after a
    worker was lost (its flocks are gone with it). Leases: again until every cell has ended,
    waiting for cells under another live lease and taking over those whose lease expired. A
    job lost with its worker ``MAX_LOST_ROUNDS`` passes in a row is an error, not a loop."""
    import time

    from harness import jobs as jobs_mod
    from harness.executors import LocalExecutor

    local = isinstance(executor, LocalExecutor) and executor.workers == 1
    if local:
        jobs_mod.seed_caches(col, store, claims)
    lost_rounds, waited, poll = 0, False, min(5.0, getattr(claims, "ttl", 5.0) / 3)
    while True:
        summary.messages += executor.housekeeping()  # e.g. a dead driver's pending Slurm tasks cancelled
        specs, waiting = make_specs()
        if not specs and not waiting:
            break
        if not specs:  # everything left is under another live lease
            waited = True
            time.sleep(poll)
            continue
        lost = 0
        for i, out in executor.run(jobs_mod.run_job, [in_process(s) for s in specs] if local else specs):
            if isinstance(out, Exception):  # WorkerLost
                lost += 1
                summary.messages.append(f"a worker was lost ({out}); its cells are planned again")
                continue
            if "error" in out:
                jobs_mod.raise_error(out)
            absorb(specs[i], out["ok"])
        lost_rounds = lost_rounds + 1 if lost else 0
        if lost_rounds >= MAX_LOST_ROUNDS:
            raise RunError(
                f"{col.path}: jobs lost their worker in {MAX_LOST_ROUNDS} passes in a row (last: {summary.messages[-1]})\n"
                "  hint: look at the executor's logs (out of memory? a node failing?); "
                f"`harness run {col.path}` resumes what is left"
            )
        if not claims.waits and not lost:
            break
        if lost and claims.waits:
            time.sleep(poll)  # the lost worker's leases expire before its cells can be taken over
    if waited:
        summary.messages.append("waited for cells that another worker held under a live lease (not trained twice)")


def run_sequential(col: Collected, store, reg, **kw) -> RunSummary:
    """A group-sequential study: train up to the next look, analyse it, stop when decided.

    Each look's statistics and boundaries go to the parent (registration) run as the tag
    ``harness.look.<k>`` (JSON, see ``analysis.sequential.analyse_look``); the stopping look
    as ``harness.sequential_stop``. A study that stopped is never reopened: a later
    ``harness run`` reports the decision and trains nothing. After a kill the looks are
    re-analysed from the store (deterministic: the same runs give the same decision) and
    training resumes at the first look whose seeds are not all done.
    """
    import json

    from analysis.load import load
    from analysis.sequential import analyse_look

    hyp, design = col.hypothesis, col.hypothesis.seeds
    current = next((r for r in store.registrations(col.id) if r.version == reg.version), reg)
    summary = RunSummary(planned=len(hyp.variants) * int(design))
    stopped = current.tags.get("harness.sequential_stop")
    if stopped is not None:
        summary.messages.append(f"sequential design already decided at look {stopped}: "
                                f"{current.tags.get('harness.verdict.sequential', '')}; a decided study is never reopened")
        return summary
    previous = None
    for k, n in enumerate(design.looks):
        s = run_study(col, store, reg, n_seeds=n, **kw)
        for f in ("trained", "finished", "diverged", "skipped_claimed", "seconds"):
            setattr(summary, f, getattr(summary, f) + getattr(s, f))
        summary.already_done = s.already_done
        if s.skipped_claimed:
            summary.messages += s.messages + [f"look {k} ({n} seeds) cannot be analysed until those runs end"]
            return summary
        frame = load(col.id, store, reg.version)
        look = analyse_look(frame, hyp.prediction, design, k, previous, control=hyp.control,
                            seed=int(reg.version, 16) % 2**32)
        if f"harness.look.{k}" not in current.tags:
            store.set_tag(reg.run_id, f"look.{k}", json.dumps(look, default=float))
        previous = tuple(look["outcomes"])
        summary.messages.append(f"look {k} at {n} seeds: {look['overall']} (z boundary "
                                f"{look['boundary_z']:.3f}; {', '.join(look['outcomes'])})")
        if look["stop"]:
            store.set_tag(reg.run_id, "verdict.sequential", look["overall"])
            store.set_tag(reg.run_id, "sequential_stop", str(k))
            break
    return summary


def _tune(col: Collected, store, reg, device, block_size, optuna_storage, on_progress, executor=None, claims=None,
          on_training=None, on_phase=None):
    """Phase 1: every variant's tuning to its full budget, one job per variant (they run in
    parallel on a pool or a cluster; each trains its trials in blocks). Returns (variants at
    their best configurations, variants another process is still tuning, trial runs trained)."""
    from harness import tuning
    from harness.executors import LocalExecutor

    hyp = col.hypothesis
    executor = executor if executor is not None else LocalExecutor(1)
    claims = claims if claims is not None else FlockClaims(store.root)
    st = tuning.storage(optuna_storage, store.root)
    store.set_tag(reg.run_id, "optuna_storage", tuning.storage_label(optuna_storage, store.root))
    total = hyp.n_tuning_runs
    summary = RunSummary()
    state = {"trained": 0, "announced": False}

    def make_specs():
        specs, waiting = [], 0
        for v in hyp.variants:
            if tuning.complete_trials(col, reg, v, st) >= hyp.tuning.trials:
                continue
            if claims.waits and claims.foreign([tuning_key(reg.version, v)]):
                waiting += 1
                continue
            specs.append({**_spec(col, store, reg, claims, v, device), "kind": "tune", "seeds": [],
                          "block_size": block_size, "optuna": optuna_storage})
        if specs and on_phase and not state["announced"]:  # a tuning left to do: its own display
            state["announced"] = True
            on_phase("tuning", total)
        return specs, waiting

    def absorb(spec: dict, c: dict) -> None:
        state["trained"] += c["trained"]
        if on_progress:
            on_progress(state["trained"], total)

    def in_process(spec: dict) -> dict:
        base: list[int] = []

        def prog(n: int) -> None:  # n counts this job's trial runs from 0; the base is taken at its first call
            if not base:
                base.append(state["trained"])
            if on_progress:
                on_progress(base[0] + n, total)

        def training(x: float) -> None:  # x: this job's trial runs trained so far, fractional (steps)
            if not base:
                base.append(state["trained"])
            if on_training:
                on_training(base[0] + x, total)

        return {**spec, "progress": prog, "training": training}

    _drive(executor, claims, make_specs, absorb, in_process, summary, col, store)
    best, busy, chosen = [], [], {}
    for v in hyp.variants:
        res = tuning.load_best(col, reg, v, st)
        if res.complete < hyp.tuning.trials:  # another process (flock) still tunes it
            busy.append(v)
            continue
        best.append(res.variant)
        chosen[v.id] = {"trial": res.best_trial, "value": res.best_value, "params": res.best_params,
                        "complete": res.complete, "optuna_study": tuning.study_name(col.id, reg.version, v)}
    if chosen:  # the configurations the confirmatory runs use, beside the registration
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "best.json").write_text(json.dumps(chosen, indent=2, sort_keys=True))
            store.log_artifacts(reg.run_id, Path(tmp), "tuning")
    return best, busy, state["trained"]


def _auto_block(col: Collected, device: str) -> Callable[[Variant], int]:
    """Each variant's block size chosen by the engine (free GPU memory on CUDA, a cap on CPU):
    for a local executor, whose workers share the driver's device."""
    from harness import engine

    return lambda v: engine.variant_block_size(col.hypothesis, v, device)


def job_cells() -> int:
    """The most cells one job carries when its worker sizes the blocks: the largest block any
    device stacks (``engine.GPU_MAX_BLOCK``), so a driver never caps a worker's block."""
    from harness import engine

    return engine.GPU_MAX_BLOCK


def spread(jobs: list[Job], slots: int | None) -> list[Job]:
    """Regroup each variant's cells into jobs of near-equal size, enough of them that the
    executor's ``slots`` (the jobs it runs at once; None: unknown, one job per variant) have
    work, each a whole number of cells and at most :func:`job_cells`. The worker then splits
    its job into blocks its device can stack (``engine.fit_block``)."""
    import math

    cells: dict = {}
    for j in jobs:
        cells.setdefault((j.variant.level, j.variant.stratum), (j.variant, []))[1].extend(j.seeds)
    out = []
    per_variant = math.ceil((slots or 1) / max(1, len(cells)))
    for variant, seeds in cells.values():
        k = min(len(seeds), max(per_variant, math.ceil(len(seeds) / job_cells())))
        q, r = divmod(len(seeds), k)
        start = 0
        for i in range(k):
            n = q + (1 if i < r else 0)
            out.append(Job(variant, seeds[start : start + n]))
            start += n
    return out
