"""The study: registration, the job list (variant x seed block), claims, resume, the run loop.

A run is identified by its content key (version hash, variant, stratum, seed). Before training,
the job list subtracts every cell that already ended (FINISHED, or FAILED because it diverged:
a divergence is a result, not a crash). A run left RUNNING by a killed process is marked KILLED
and trained again. Claims are ``flock`` locks, one per cell, held while the cell trains: the
kernel releases them when a process dies (even by SIGKILL), so there are no stale claims, and a
second ``harness run`` of the same study skips the cells another process holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import io
import json
import os
import platform
import signal
import subprocess
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import failpoints
from harness.claims import FlockClaims, cell_key, claim_name, tuning_key  # noqa: F401  (claim_name: public here before)
from harness.collect import Collected
from harness.errors import HarnessError, Interrupted, RunError, StoreError, translate
from harness.hypothesis import Sequential, Variant, diff_declarations

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


# ---------------------------------------------------------------------- provenance
def provenance(device: str | None = None) -> dict:
    import torch

    import harness

    commit, dirty = "unknown", "unknown"
    try:
        here = Path(__file__).resolve().parent.parent
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip() or "unknown"
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        )
        dirty = "true" if status.stdout.strip() else "false"
    except (OSError, subprocess.SubprocessError):
        pass
    out = {
        "git_commit": commit,
        "git_dirty": dirty,
        "harness_version": harness.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "host": platform.node(),
    }
    if device is not None:
        out["device"] = device
    return out


# ---------------------------------------------------------------------- registration
def register(col: Collected, store, *, new_version: bool = False):
    """Register ``col`` in ``store``. Returns (registration, created: bool).

    Unchanged declaration -> the existing record, ``created=False``. Changed declaration ->
    StoreError listing the changes unless ``new_version``; versions never share results.
    """
    with _lock(store.root / "claims" / f"register-{col.id}.lock"):
        return _register(col, store, new_version)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """A blocking flock: serialises registration of one hypothesis across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _register(col: Collected, store, new_version: bool):
    hyp = col.hypothesis
    version = hyp.version
    # A record cut short by a kill is absent: under this lock no live process is writing it.
    store.discard_incomplete_registrations(col.id)
    regs = store.registrations(col.id)
    for reg in regs:
        if reg.version == version:
            return reg, False
    if regs and not new_version:
        latest = regs[-1]
        changes = "\n".join(f"    {line}" for line in diff_declarations(latest.declaration, hyp.canonical()))
        raise StoreError(
            f"{col.path}: the declaration changed since version {latest.number} ({latest.version}) "
            f"was registered at {latest.registered_at}:\n{changes}\n"
            "  hint: a changed declaration is a new study; pass --new-version to register it as "
            f"version {latest.number + 1} (its results never mix with version {latest.number}'s)"
        )
    reg = store.register(col.id, hyp.canonical(), version, col.source, hypothesis_provenance(col))
    return reg, True


def hypothesis_provenance(col: Collected) -> dict:
    """:func:`provenance` plus the hypothesis file's own sha256 and git state: ``git checkout``
    of the recorded commit cannot restore an untracked or modified file, so it makes the
    record dirty (the registered copy of the file is what reproduces the study)."""

    prov = provenance()
    state = "no git repository"
    try:
        git = ["git", "-C", str(col.path.parent)]
        tracked = subprocess.run([*git, "ls-files", "--error-unmatch", str(col.path)], capture_output=True, timeout=5)
        if tracked.returncode == 0:
            changed = subprocess.run([*git, "status", "--porcelain", "--", str(col.path)], capture_output=True,
                                     text=True, timeout=5).stdout.strip()
            state = "modified" if changed else "committed"
        elif subprocess.run([*git, "rev-parse"], capture_output=True, timeout=5).returncode == 0:
            state = "untracked"
    except (OSError, subprocess.SubprocessError):
        state = "unknown"
    prov["hypothesis_sha256"] = hashlib.sha256(col.source.encode()).hexdigest()
    prov["hypothesis_git"] = state
    if state != "committed" and prov["git_dirty"] == "false":
        prov["git_dirty"] = f"true (hypothesis file {state})"
    return prov


def current_registration(col: Collected, store):
    """The registration matching the file's current declaration, or None."""
    return next((r for r in store.registrations(col.id) if r.version == col.hypothesis.version), None)


# ---------------------------------------------------------------------- job list
def cell_status(store, hyp_id: str, version: str, variant: Variant | None = None) -> dict[tuple[str, str, int], list]:
    """(level, stratum, seed) -> its runs (CellRun); one query (:meth:`Store.cell_index`),
    of one variant's cells when ``variant`` is given."""
    out: dict[tuple[str, str, int], list] = {}
    for r in store.cell_index(hyp_id, version, variant):
        out.setdefault((r.variant, r.stratum, r.seed), []).append(r)
    return out


def plan(
    col: Collected, store, version: str, n_seeds: int | None = None, block_size: int | None = None,
    device: str = "auto", variants: list[Variant] | None = None,
):
    """(jobs still to train, number of cells already done).

    ``block_size=None`` chooses each variant's block with :func:`harness.engine.auto_block_size`
    (free GPU memory on CUDA, a fixed cap on CPU); results never depend on it.
    """
    hyp = col.hypothesis
    n_seeds = hyp.seeds if n_seeds is None else n_seeds
    status = cell_status(store, col.id, version)
    jobs, done = [], 0
    for v in hyp.variants if variants is None else variants:
        todo = []
        for s in hyp.confirmatory_seeds(n_seeds):
            runs = status.get((v.level, v.stratum, s), [])
            if any(r.status in FINISHED_STATUSES for r in runs):
                done += 1
            else:
                todo.append(s)
        size = (block_size or _auto_block(col, v, device)) if todo else 1
        for i in range(0, len(todo), size):
            jobs.append(Job(v, todo[i : i + size]))
    return jobs, done


def _auto_block(col: Collected, v: Variant, device: str) -> int:
    from harness import data, engine
    from harness.registry import MODELS

    ds = data.load(col.hypothesis.dataset)
    return engine.auto_block_size(MODELS[v.model], v.model_config, v.training, ds, device)


# ---------------------------------------------------------------------- claims
@contextlib.contextmanager
def claim(root: Path, version: str, variant: Variant, seeds: list[int]) -> Iterator[list[int]]:
    """Hold flock claims on the cells of ``seeds``; yields the seeds this process got
    (:class:`harness.claims.FlockClaims`; PostgreSQL leases are :class:`harness.claims.LeaseClaims`)."""
    with FlockClaims(root).cells(version, variant, seeds) as held:
        yield held


# ---------------------------------------------------------------------- one job
def execute(
    col: Collected,
    store,
    reg,
    job: Job,
    device: str = "auto",
    progress: Callable[[float], None] | None = None,
    claims=None,
) -> dict:
    """Claim, train and log one job. Returns counts: trained, finished, diverged, claimed.

    ``claims``: the backend (:mod:`harness.claims`); default flock files under the store root."""
    from harness import data, engine, sample_metrics
    from harness.registry import MODELS

    hyp = col.hypothesis
    counts = {"trained": 0, "finished": 0, "diverged": 0, "claimed": 0, "done": 0}
    claims = claims if claims is not None else FlockClaims(store.root)
    with claims.cells(reg.version, job.variant, job.seeds) as held:
        counts["claimed"] = len(job.seeds) - len(held)
        # Re-read after claiming: another process may have finished these cells meanwhile.
        status = cell_status(store, col.id, reg.version, job.variant)
        seeds = []
        for s in held:
            runs = status.get((job.variant.level, job.variant.stratum, s), [])
            if any(r.status in FINISHED_STATUSES for r in runs):
                counts["done"] += 1
                continue
            for r in runs:  # RUNNING under our claim: its process died
                if r.status == "RUNNING":
                    store.kill(r.run_id)
            seeds.append(s)
        if not seeds:
            return counts
        dev = engine.pick_device(device)
        ds = data.load(hyp.dataset)
        model_cls = MODELS[job.variant.model]
        params = {
            "model": job.variant.model,
            "dataset": hyp.dataset,
            **{k: v for k, v in dataclasses.asdict(job.variant.model_config).items()},
            **{f"training.{k}": v for k, v in dataclasses.asdict(job.variant.training).items()},
        }
        tags = {**provenance(str(dev)), "block_size": len(seeds), "phase": "confirm",
                "worker": f"{platform.node()}:{os.getpid()}",
                "can_sample": engine.can_sample(model_cls)}
        if hyp.tuning is not None:  # trained at the variant's best tuning trial's configuration
            tags["tuned"] = "true"
        if getattr(model_cls, "higher_is_better", ()):  # read by the report's secondary table
            tags["higher_is_better"] = ",".join(model_cls.higher_is_better)
        run_ids: dict[int, str] = {}
        ended: set[int] = set()
        phase = "logging"
        try:
            for s in seeds:
                run_ids[s] = store.start_cell(reg, col.id, job.variant, s, params, tags)
            failpoints.hit("cell.started")
            cb = None
            if progress is not None:
                cb = lambda step, total: progress(len(seeds) * step / total)
            training = job.variant.training
            scored = sample_metrics.wanted(hyp)
            if scored:  # enough samples for the metrics; the grid shows the first 64
                training = dataclasses.replace(training, n_samples=sample_metrics.n_samples_for(ds))
            phase = "training"
            results = engine.train_block(model_cls, job.variant.model_config, training, ds, seeds, dev, progress=cb)
            phase = "logging"
            keys = {s: cell_key(reg.version, job.variant, s) for s in seeds}
            for res in results:
                if scored and res.samples is not None:
                    res.metrics.update(sample_metrics.score(res.samples, ds, res.seed, store.root / "cache"))
                grid = res.samples[:64] if res.samples is not None else None
                png = sample_grid_png(grid, ds.shape) if grid is not None else None
                key = keys[res.seed]
                ours = store.finish_cell(run_ids[res.seed], res, png,
                                         still_ours=(lambda k=key: k in claims.still_held([k])) if claims.waits else None)
                ended.add(res.seed)
                if not ours:  # the lease was lost (heartbeat cut off): the new claimant trains the cell
                    counts["lost"] = counts.get("lost", 0) + 1
                    continue
                counts["trained"] += 1
                counts["finished" if res.status == "FINISHED" else "diverged"] += 1
        except BaseException as exc:  # noqa: BLE001  (re-raised: the runs must not stay RUNNING)
            left = [rid for s, rid in run_ids.items() if s not in ended]
            marked = _abandon(store, left, exc)
            raise _block_error(exc, phase, col, job, store, left, marked) from None
    return counts


def _abandon(store, run_ids: list[str], exc: BaseException) -> int:
    """Mark runs KILLED (not FAILED: FAILED is a divergence, a result) with the error as a tag,
    so a resume retrains them. Best effort: a full disk may refuse even this; the next
    `harness run` then marks them KILLED under its claim."""
    why = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-7000:]
    marked = 0
    for rid in run_ids:
        with contextlib.suppress(Exception):  # the tag is a courtesy; the KILLED status is what counts
            store.set_tag(rid, "error", why)
        with contextlib.suppress(Exception):  # a full disk may refuse it: the next run marks it under its claim
            store.kill(rid)
            marked += 1
    return marked


def _block_error(exc: BaseException, phase: str, col: Collected, job: Job, store, left: list, marked: int):
    """The user error a failed block becomes: where it failed, what happened to its runs, the fix."""
    runs = (f"its {marked} runs were marked KILLED" if marked == len(left)
            else f"{marked} of its {len(left)} runs were marked KILLED (the next `harness run` marks the others)")
    if isinstance(exc, Interrupted):
        exc.killed = getattr(exc, "killed", 0) + marked
        return exc
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit
        return exc
    known = translate(exc, f"the store at {store.root}")
    if isinstance(exc, HarnessError):
        return exc
    if known is not None:
        return type(known)(f"{known}\n  while logging variant {job.variant.id!r}, seeds {job.seeds}: {runs}")
    if phase != "training":
        return exc  # a bug in the harness: keep its traceback
    return RunError(
        f"{_user_frame(exc, col.path)}: training variant {job.variant.id!r} (seeds {job.seeds}) raised "
        f"{type(exc).__name__}: {str(exc)[:500]}\n  {runs}; the traceback is in their harness.error tag\n"
        f"  hint: fix the model code, then `harness run {col.path}` retrains them"
    )


def _user_frame(exc: BaseException, path: Path) -> str:
    """``file:line`` of the deepest frame in the hypothesis file's folder (the user's model),
    else the deepest frame outside installed packages."""
    frames = traceback.extract_tb(exc.__traceback__)
    here = str(path.parent)
    for pick in (lambda f: f.filename.startswith(here), lambda f: "site-packages" not in f.filename):
        hits = [f for f in frames if pick(f)]
        if hits:
            return f"{hits[-1].filename}:{hits[-1].lineno}"
    return str(path)


def sample_grid_png(samples, shape: tuple[int, ...]) -> bytes:
    """A PNG grid of samples: images for 2-D/3-D shapes, a scatter for 2-D points, else lines."""
    if len(shape) >= 2:  # pixels, not a figure: nearest-neighbour upscaled, 1-px separators
        from harness.images import grid_png

        return grid_png(samples, shape)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if shape == (2,):
        fig, ax = plt.subplots(figsize=(3, 3), dpi=100)
        ax.scatter(samples[:, 0], samples[:, 1], s=2)
    else:
        fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
        for row in samples[:16]:
            ax.plot(row.reshape(-1), lw=0.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------- the run loop
_IN_JOB = threading.Event()


def _declared(col: Collected, level: str, stratum: str) -> Variant:
    return next(v for v in col.hypothesis.variants if (v.level, v.stratum) == (level, stratum))


def _changes(col: Collected, variant: Variant) -> dict:
    """The values in which ``variant`` differs from the declared one (its tuned values): plain
    data, so a pool process can rebuild it without unpickling a file-defined Config."""
    base = _declared(col, variant.level, variant.stratum)
    out = {}
    for old, new in ((base.model_config, variant.model_config), (base.training, variant.training)):
        for f in dataclasses.fields(new):
            if getattr(old, f.name) != getattr(new, f.name):
                out[f.name] = getattr(new, f.name)
    return out


def _init_worker(parent: int) -> None:
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
        if not _IN_JOB.is_set():
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


def _interruptible(fn):
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


@_interruptible
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
                              claims=claims)
    t0 = time.perf_counter()
    variants, busy, tuned_runs = hyp.variants, [], 0
    if hyp.tuning is not None:
        variants, busy, tuned_runs = _tune(col, store, reg, device, block_size, optuna_storage, on_progress,
                                           executor, claims)
    total = len(hyp.variants) * (n_seeds or hyp.seeds)
    summary = RunSummary(planned=total, tuning_trained=tuned_runs)
    for v in busy:
        summary.messages.append(
            f"variant {v.id} is being tuned by another `harness run` of this study; its confirmatory runs "
            "wait until its tuning is complete. Run again when that process ends."
        )
    first = True
    state = {"completed": 0.0}

    def make_specs():
        jobs, done = plan(col, store, reg.version, n_seeds, block_size, device, variants=variants)
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
                specs.append({**_spec(col, store, reg, claims, job.variant, device), "kind": "cells", "seeds": seeds})
        return specs, waiting

    def absorb(spec: dict, c: dict) -> None:
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
    return {"path": str(col.path), "smoke": col.hypothesis.smoke, "store": store.uri, "root": str(store.root),
            "claims": claims.spec(), "reg": reg, "level": variant.level, "stratum": variant.stratum,
            "changes": _changes(col, variant), "device": device}


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


def _stop_pool(pool, futs) -> None:
    """On an error or a signal: cancel queued jobs, SIGTERM the running ones (each marks its
    runs KILLED) and wait for them, so no worker outlives the study."""
    from concurrent.futures import wait

    for f in futs:
        f.cancel()
    for proc in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(OSError, ValueError):
            proc.terminate()
    wait(list(futs), timeout=60)
    pool.shutdown(wait=True, cancel_futures=True)


def _tune(col: Collected, store, reg, device, block_size, optuna_storage, on_progress, executor=None, claims=None):
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
    state = {"trained": 0}

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
        return specs, waiting

    def absorb(spec: dict, c: dict) -> None:
        state["trained"] += c["trained"]
        if on_progress:
            on_progress(state["trained"], total)

    def in_process(spec: dict) -> dict:
        base: list[int] = []

        def prog(n: int) -> None:  # n counts this job's trials from 0; the base is taken at its first call
            if not base:
                base.append(state["trained"])
            if on_progress:
                on_progress(base[0] + n, total)

        return {**spec, "progress": prog}

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


def progress_counts(store, col_id: str, version: str, n_planned: int) -> tuple[int, int]:
    """(cells done, planned) for one version."""
    status = cell_status(store, col_id, version)
    done = sum(1 for runs in status.values() if any(r.status in FINISHED_STATUSES for r in runs))
    return done, n_planned

