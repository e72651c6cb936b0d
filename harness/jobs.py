"""Job functions: what a worker runs for one job, on any executor (:mod:`harness.executors`).

A job spec is plain data, so it crosses a process pool, Ray and a Slurm job file alike:
``kind`` ("cells": seeds of one variant, trained in blocks of ``block_size``, or, when it is
None, of the size this worker's device allows (:func:`harness.engine.fit_block`); "tune": one
variant's tuning to its full budget, trained in trial blocks), ``path``/``smoke`` (the hypothesis file, collected again in
the worker: a model defined in that file exists there only after it is), ``store`` and ``root``
(the tracking store), ``claims`` (the claims backend's spec), ``reg`` (the registration),
``level``/``stratum``/``changes`` (the variant and its tuned values), ``seeds``, ``device``,
``block_size``, ``gpu_share`` (Ray's fractional GPU), ``optuna`` (the tuning storage) and ``threads``.

A job returns ``{"ok": counts}`` or, for the harness's own errors, ``{"error": class name,
"message": ..., "exit_code": ...}``: an exception object would not survive every executor's
serialisation intact; :func:`raise_error` turns it back into the same error in the driver.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import signal
import threading
from collections.abc import Callable

from harness import errors, failpoints
from harness.cellindex import for_store
from harness.claims import FlockClaims, cell_key
from harness.collect import Collected
from harness.errors import HarnessError, Interrupted
from harness.failures import abandon, block_error
from harness.images import sample_grid_png
from harness.likelihood import add_test_nll
from harness.plan import FINISHED_STATUSES, Job, cell_status, declared
from harness.registration import provenance

# Set while this process trains a job: a signal then raises Interrupted (the job marks its runs
# KILLED on the way out); idle, a pool process just exits.
IN_JOB = threading.Event()

# Per process: a worker trains many jobs of one study; collecting the file, opening the store
# and the claims database once each is enough.
_COLLECTED: dict = {}
_STORES: dict = {}
_CLAIMS: dict = {}


def seed_caches(col, store, claims) -> None:
    """In-process execution: the driver's own objects serve its jobs (no second import of the
    hypothesis file, no second store or claims connection)."""
    _COLLECTED[str(col.path), col.hypothesis.smoke, tuple(col.overrides), pilot_n(col)] = col
    _STORES[store.uri, str(store.root)] = store
    _CLAIMS[repr(sorted(claims.spec().items()))] = claims


def pilot_n(col) -> int:
    """The N of a pilot version (`harness check --pilot N`), 0 for any other: part of a job's key."""
    return int(col.hypothesis.seeds) if col.hypothesis.pilot else 0


def _context(spec: dict):
    import torch

    from harness import claims as claims_mod
    from harness.collect import collect
    from harness.tracking import Store

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    key = (spec["path"], spec["smoke"], tuple(spec.get("overrides", ())), spec.get("pilot") or 0)
    if key not in _COLLECTED:
        _COLLECTED[key] = collect(spec["path"], smoke=spec["smoke"], overrides=key[2], pilot=key[3] or None)
    col = _COLLECTED[key]
    reg = spec["reg"]
    if col.hypothesis.version != reg.version:
        raise errors.StoreError(
            f"{spec['path']}: the file changed while the study ran (version {col.hypothesis.version}, "
            f"registered {reg.version})\n  hint: restore it, or register the change with --new-version")
    skey = (spec["store"], spec.get("root") or "")
    if skey not in _STORES:
        from pathlib import Path

        _STORES[skey] = Store(spec["store"], root=Path(spec["root"]) if spec.get("root") else None)
    ckey = repr(sorted(spec["claims"].items()))
    if ckey not in _CLAIMS:
        _CLAIMS[ckey] = claims_mod.from_spec(spec["claims"])
    return col, _STORES[skey], _CLAIMS[ckey], reg


def _variant(col, spec: dict):
    v = declared(col, spec["level"], spec["stratum"])
    return col.hypothesis.tuned_variant(v, spec["changes"]) if spec.get("changes") else v


def run_job(spec: dict) -> dict:
    """The one entry point every executor calls."""
    IN_JOB.set()
    try:
        col, store, claims, reg = _context(spec)
        if spec["kind"] == "cells":
            out = execute(col, store, reg, Job(_variant(col, spec), list(spec["seeds"])), spec["device"],
                          progress=spec.get("progress"), claims=claims, block_size=spec.get("block_size"),
                          gpu_share=spec.get("gpu_share"))
        elif spec["kind"] == "tune":
            from harness import tuning

            st = tuning.storage(spec.get("optuna"), store.root)
            res = tuning.tune_variant(col, store, reg, _variant(col, spec), st, device=spec["device"],
                                      block_size=spec.get("block_size"), progress=spec.get("progress"), claims=claims,
                                      training=spec.get("training"), gpu_share=spec.get("gpu_share"))
            out = {"trained": res.trained, "complete": res.complete, "busy": res.busy}
        else:
            raise HarnessError(f"unknown job kind {spec['kind']!r}")
        return {"ok": out}
    except HarnessError as exc:
        return {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code,
                "killed": getattr(exc, "killed", None)}
    finally:
        IN_JOB.clear()


def raise_error(out: dict) -> None:
    """Raise, in the driver, the error a job returned."""
    name, msg = out["error"], out["message"]
    if name == "Interrupted":
        exc = errors.Interrupted(msg, int(out.get("exit_code", 143)) - 128)
        if out.get("killed") is not None:
            exc.killed = out["killed"]
        raise exc
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, HarnessError)) or name == "DeclarationError":
        cls = HarnessError
    raise cls(msg)


# ---------------------------------------------------------------------- a job's cells
def execute(
    col: Collected,
    store,
    reg,
    job: Job,
    device: str = "auto",
    progress: Callable[[float], None] | None = None,
    claims=None,
    block_size: int | None = None,
    gpu_share: float | None = None,
) -> dict:
    """Claim, train and log one job's cells. Returns counts: trained, finished, diverged, claimed.

    ``claims``: the backend (:mod:`harness.claims`); default flock files under the store root.
    ``block_size``: the seeds stacked in one block; None: chosen here, from this worker's device
    (:func:`harness.engine.fit_block`), and the cells are trained in blocks of that size one
    after the other, all of them claimed for the whole job. ``gpu_share``: the share of the GPU
    this job was given (Ray's fractional GPUs), which bounds the memory a block may plan for."""
    from harness import compute, data, engine
    from harness.registry import MODELS

    hyp = col.hypothesis
    counts = {"trained": 0, "finished": 0, "diverged": 0, "claimed": 0, "done": 0}
    claims = claims if claims is not None else FlockClaims(store.root)
    index = for_store(store, claims)  # the finished-cell index (harness.cellindex), or None
    level, stratum = job.variant.level, job.variant.stratum
    with claims.cells(reg.version, job.variant, job.seeds) as held:
        counts["claimed"] = len(job.seeds) - len(held)
        # Re-read after claiming: another process may have finished these cells meanwhile. The
        # store itself, never the index: a cell that ended without the index knowing is found
        # here (and recorded), so the index can cost a plan, never a second training.
        status = cell_status(store, col.id, reg.version, job.variant, seeds=held)
        seeds, known = [], []
        for s in held:
            runs = status.get((level, stratum, s), [])
            if any(r.status in FINISHED_STATUSES for r in runs):
                counts["done"] += 1
                r = next(r for r in runs if r.status in FINISHED_STATUSES)
                known.append((level, stratum, s, r.run_id, r.status))
                continue
            for r in runs:  # RUNNING under our claim: its process died
                if r.status == "RUNNING":
                    store.kill(r.run_id)
            seeds.append(s)
        if index is not None and known:
            index.record_quietly(col.id, reg.version, known)
        if not seeds:
            return counts
        dev = engine.pick_device(device)
        ds = data.load(hyp.dataset)
        model_cls = MODELS[job.variant.model]
        # match="flops": this variant's own steps and budgets (harness.compute); the declared
        # ones (its stratum's control's) are logged beside them.
        training = compute.resolve(hyp, job.variant, ds)
        size = block_size or engine.fit_block(model_cls, job.variant.model_config, training, ds, dev, len(seeds),
                                              gpu_share)
        cells = _Cells(col, store, reg, job.variant, claims, dev, ds, model_cls, training, index)
        for i in range(0, len(seeds), size):
            part = seeds[i : i + size]
            cb = None
            if progress is not None:
                cb = lambda step, total, i=i, n=len(part): progress(i + n * step / total)
            cells.train(part, counts, cb)
    return counts


@dataclasses.dataclass
class _Cells:
    """What every block of one job shares: the variant, its data, model, training, params and tags."""

    col: Collected
    store: object
    reg: object
    variant: object
    claims: object
    dev: object
    ds: object
    model_cls: type
    training: object
    index: object = None  # the finished-cell index (harness.cellindex), or None
    params: dict = dataclasses.field(default_factory=dict)
    tags: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        from harness import compute, engine

        hyp, model_cls = self.col.hypothesis, self.model_cls
        self.declared_budgets = _declared_budgets(hyp, self.variant)
        self.cost = compute.count(model_cls, self.variant.model_config, self.ds, self.training.batch_size)
        self.params = {
            "model": self.variant.model,
            "dataset": hyp.dataset,
            **{k: v for k, v in dataclasses.asdict(self.variant.model_config).items()},
            **{f"training.{k}": v for k, v in dataclasses.asdict(self.training).items()},
        }
        self.tags = {**provenance(str(self.dev)), "phase": "confirm", "worker": f"{platform.node()}:{os.getpid()}",
                     "can_sample": engine.can_sample(model_cls)}
        if hyp.tuning is not None:  # trained at the variant's best tuning trial's configuration
            self.tags["tuned"] = "true"
        if getattr(model_cls, "higher_is_better", ()):  # read by the report's secondary table
            self.tags["higher_is_better"] = ",".join(model_cls.higher_is_better)

    def train(self, seeds: list[int], counts: dict, cb) -> None:
        """Train ``seeds`` (claimed, none ended) as one stacked block and log each run."""
        from harness import engine, sample_metrics

        col, store, reg, variant, claims, ds, model_cls = (self.col, self.store, self.reg, self.variant, self.claims,
                                                           self.ds, self.model_cls)
        hyp, training, params = col.hypothesis, self.training, self.params
        index, level, stratum = self.index, variant.level, variant.stratum
        tags = {**self.tags, "block_size": len(seeds)}
        run_ids: dict[int, str] = {}
        ended: set[int] = set()
        phase = "logging"
        try:
            for s in seeds:
                run_ids[s] = store.start_cell(reg, col.id, variant, s, params, tags)
            if index is not None:  # before any run can be terminal: a crash after MLflow's write leaves a row to re-verify
                index.record(col.id, reg.version, [(level, stratum, s, rid, "RUNNING") for s, rid in run_ids.items()])
            failpoints.hit("cell.started")
            scored = sample_metrics.wanted(hyp)
            if scored:  # enough samples for the metrics; the grid shows the first 64
                training = dataclasses.replace(training, n_samples=sample_metrics.n_samples_for(ds))
            phase = "training"
            results = engine.train_block(model_cls, variant.model_config, training, ds, seeds, self.dev, progress=cb,
                                         budget_samples=scored)
            phase = "logging"
            keys = {s: cell_key(reg.version, variant, s) for s in seeds}
            for res in results:
                add_test_nll(res.metrics, model_cls)  # every family's likelihood under one name
                for k in res.budgets:
                    add_test_nll(res.budgets[k], model_cls)
                if scored and res.samples is not None:
                    res.metrics.update(sample_metrics.score(res.samples, ds, res.seed, store.root / "cache"))
                for k, x in res.budget_samples.items():  # only when scored (train_block's budget_samples)
                    res.budgets[k].update(sample_metrics.score(x, ds, res.seed, store.root / "cache"))
                grid = res.samples[:64] if res.samples is not None else None
                png = sample_grid_png(grid, ds.shape) if grid is not None else None
                key = keys[res.seed]
                ours = store.finish_cell(run_ids[res.seed], res, png,
                                         still_ours=(lambda k=key: k in claims.still_held([k])) if claims.waits else None,
                                         steps=training.steps, declared_budgets=self.declared_budgets,
                                         flops_per_step=self.cost.flops_per_step or None)
                ended.add(res.seed)
                failpoints.hit("cell.ended")
                if index is not None:  # after MLflow holds the status, never before
                    index.record_quietly(col.id, reg.version, [(level, stratum, res.seed, run_ids[res.seed],
                                                                res.status if ours else "KILLED")])
                if not ours:  # the lease was lost (heartbeat cut off): the new claimant trains the cell
                    counts["lost"] = counts.get("lost", 0) + 1
                    continue
                counts["trained"] += 1
                counts["finished" if res.status == "FINISHED" else "diverged"] += 1
        except BaseException as exc:  # noqa: BLE001  (re-raised: the runs must not stay RUNNING)
            left = [rid for s, rid in run_ids.items() if s not in ended]
            marked = abandon(store, left, exc)
            raise block_error(exc, phase, col, Job(variant, seeds), store, left, marked) from None


def _declared_budgets(hyp, variant) -> list[int]:
    """The budgets as declared, position for position with the steps the variant trains at:
    its stratum's control's when ``match="flops"`` rescales them, else its own."""
    if variant.training.match != "flops":
        return list(variant.training.budgets)
    ctl = next(v for v in hyp.variants if v.level == hyp.control and v.stratum == variant.stratum)
    return list(ctl.training.budgets)


# ---------------------------------------------------------------------- signals
def init_worker(parent: int) -> None:
    """Pool-process initializer: die with the parent, turn SIGTERM / SIGINT into Interrupted.

    The kernel sends SIGTERM when the parent dies (PR_SET_PDEATHSIG, Linux); a watchdog
    thread polling the parent's pid covers other systems and a parent that died before the
    prctl. SIGTERM inside a job marks its runs KILLED; idle, the process just exits.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass

    def on_signal(signum, frame):
        if not IN_JOB.is_set():
            os._exit(128 + signum)
        signal.signal(signum, signal.SIG_DFL)
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}", signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30.0)  # the job's cleanup (marking its runs KILLED) had its chance
        os._exit(1)

    threading.Thread(target=watch, name="harness-parent-watchdog", daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def interruptible(fn):
    """Run ``fn(col, ...)`` with SIGTERM / SIGINT raising Interrupted (exit 143 / 130): the
    block in training marks its runs KILLED on the way out, and the message says how to resume."""

    @functools.wraps(fn)
    def wrapper(col: Collected, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return fn(col, *args, **kwargs)
        old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def on_signal(signum, frame):
            for sig, h in old.items():  # a second signal acts as it always does
                signal.signal(sig, h)
            raise Interrupted(f"interrupted by {signal.Signals(signum).name}", signum)

        for sig in old:
            signal.signal(sig, on_signal)
        try:
            return fn(col, *args, **kwargs)
        except Interrupted as exc:
            killed = getattr(exc, "killed", None)
            runs = f"{killed} runs in training were marked KILLED" if killed is not None else \
                "the runs in training were marked KILLED"
            raise Interrupted(
                f"{str(exc).splitlines()[0]}: {runs}; runs that had ended are kept\n"
                f"  hint: `harness run {col.path}` resumes: it trains only the runs not yet ended",
                exc.signum,
            ) from None
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)

    return wrapper
