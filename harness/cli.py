"""The `harness` command line: new, check, register, run, list, report, ui.

User errors (HarnessError) print their message, with no traceback, and exit 2.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import HarnessError, translate

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Pre-registered, multi-seed ablation studies of deep generative models.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StoreOpt = typer.Option(None, "--store", help="Tracking store URI (default sqlite:///runs/mlflow.db; env HARNESS_STORE).")


def _user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # a full disk, a read-only or garbled store: a user error too
            known = translate(exc)
            if known is None:
                raise
            err.print(f"[bold red]error:[/] {escape(str(known))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(known.exit_code) from None

    return wrapper


TEMPLATE = '''"""{title}

Write the claim you test, where it comes from, and why the smallest effect of interest below
is the smallest difference that would matter. Registration freezes this declaration by content
hash: change it later and it becomes a new version whose results never mix with this one's.
"""

from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    # One sentence, shown at the top of the report.
    claim="A full-covariance (linear IAF) posterior tightens the VAE's bound over a diagonal one.",
    source="Kingma et al. 2016, Improved variational inference with inverse autoregressive flow",
    dataset="digits",  # sklearn's 8x8 digits, bundled: no download
    model="vae",
    # Settings every variant shares (model Config fields or Training fields).
    fixed={{"latent_dim": 8, "hidden": 128}},
    # The ablated factor: the first level is the control, each other level a treatment.
    ablate={{"posterior": ["diagonal", "linear_iaf"]}},
    # Optional: repeat the comparison in each stratum, e.g. {{"latent_dim": [4, 16]}}.
    strata={{}},
    prediction=Prediction(
        metric="iwae_nll",  # test-split IWAE negative log-likelihood, nats per image
        direction="lower",  # the treatment lowers it...
        effect=0.5,  # ...by at least 0.5 nats: smaller gains would not change practice
        alpha=0.05,  # one-sided, family-wise
    ),
    seeds=10,  # seeds per variant; the same seed across variants pairs the runs
    training=Training(steps=1000, batch_size=128, lr=1e-3, eval_samples=100),
)
'''


@app.command()
@_user_errors
def new(name: str = typer.Argument(..., help="Hypothesis ID: writes hypotheses/NAME.py.")):
    """Write a commented hypothesis template to hypotheses/NAME.py."""
    from harness.collect import _ID, HYPOTHESES_DIR

    if not _ID.match(name):
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
def check(target: str = typer.Argument(..., help="Hypothesis file or ID."), store: str | None = StoreOpt):
    """Validate a hypothesis file and print its plan. Writes nothing."""
    from harness.collect import collect
    from harness.tracking import resolve_uri

    col = collect(target)
    h = col.hypothesis
    out.print(f"[bold]{col.id}[/]  version {h.version}  ({col.path})")
    out.print(f"claim: {h.claim}", highlight=False, markup=False)
    out.print(f"prediction: {h.prediction.sentence(h.control, ', '.join(h.levels[1:]))}", markup=False)
    out.print(f"model {h.model} on {h.dataset}; ablated factor {h.factor!r}: control {h.control!r}, "
              f"treatments {h.levels[1:]}", markup=False)
    out.print(f"strata: {h.strata_ids if h.strata else 'none'}", markup=False)
    out.print(f"seeds: {h.seeds} per variant; variants: {len(h.variants)}; runs: {h.n_runs}", markup=False)
    out.print(f"training: {h.training}", markup=False)
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
    out.print(f"store: {resolve_uri(store)}", markup=False)
    from harness.sample_metrics import floor_warning

    if (warning := floor_warning(h)) is not None:
        out.print(f"warning: {warning}", style="yellow", markup=False)
    if h.smoke:
        out.print("[yellow]smoke mode: a tiny budget to check the plumbing; not evidence[/]")


@app.command()
@_user_errors
def register(
    target: str = typer.Argument(..., help="Hypothesis file or ID."),
    store: str | None = StoreOpt,
    new_version: bool = typer.Option(False, "--new-version", help="Register a changed declaration as a new version."),
):
    """Freeze the declaration (content hash, time, file, versions) in the tracking store."""
    from harness.collect import collect
    from harness.study import register as do_register
    from harness.tracking import Store

    col = collect(target)
    st = Store(store)
    reg, created = do_register(col, st, new_version=new_version)
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
        None, "--block-size", help="Seeds trained together as one stacked model (default: auto from device memory)."
    ),
    store: str | None = StoreOpt,
    new_version: bool = typer.Option(False, "--new-version", help="Register a changed declaration as a new version."),
    smoke: bool = typer.Option(False, "--smoke", help="A labelled smoke run (2 seeds, tiny budget) into ID@smoke."),
    optuna_storage: str | None = typer.Option(
        None, "--optuna-storage",
        help="Optuna storage for tuning: a database URL (RDB) or a journal file (default <store root>/optuna.journal).",
    ),
):
    """Register if needed, then tune (if declared) and train every (variant, seed) not yet finished."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from harness.collect import collect
    from harness.engine import pick_device
    from harness.study import check_seeds, run_study
    from harness.study import register as do_register
    from harness.tracking import Store

    if block_size is not None and block_size < 1:
        raise HarnessError(f"--block-size {block_size}: expected a positive integer")
    if workers < 1:
        raise HarnessError(f"--workers {workers}: expected a positive integer")
    col = collect(target, smoke=smoke)
    check_seeds(col, seeds)
    dev = pick_device(device)
    st = Store(store)
    reg, created = do_register(col, st, new_version=new_version)
    word = "registered" if created else "resuming"
    out.print(f"{word} {col.id} v{reg.number} ({reg.version}) on {dev}; store {st.uri}", markup=False)
    if col.hypothesis.smoke:
        out.print("[yellow]smoke mode: tiny budget, not evidence[/]")
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=out,
        disable=not out.is_terminal and os.environ.get("HARNESS_PROGRESS") != "1",
    ) as bar:
        task = bar.add_task("runs", total=None)

        import time

        t0, last, start = time.perf_counter(), [-1], [None]

        def on_progress(done: float, total: int) -> None:
            bar.update(task, completed=int(done), total=total)
            if start[0] is None:
                start[0] = done  # runs already ended before this invocation
            if bar.disable and int(done) != last[0]:  # logs, CI: one plain line per change
                last[0] = int(done)
                el = time.perf_counter() - t0
                rate = (done - start[0]) / el if el > 0 else 0.0
                eta = f"{(total - done) / rate:.0f} s" if rate > 0 else "?"
                out.print(f"runs {int(done)}/{total} ended; elapsed {el:.0f} s; eta {eta}", markup=False)

        summary = run_study(
            col, st, reg, n_seeds=seeds, device=str(dev), workers=workers,
            block_size=block_size, on_progress=on_progress, optuna_storage=optuna_storage,
        )
    for m in summary.messages:
        out.print(f"[yellow]{m}[/]")
    if col.hypothesis.tuning is not None:
        out.print(f"tuning: trained {summary.tuning_trained} trial runs here "
                  f"({col.hypothesis.n_tuning_runs} in the declared budget)", markup=False)
    out.print(
        f"{col.id} v{reg.number}: trained {summary.trained} runs ({summary.finished} finished, "
        f"{summary.diverged} diverged) in {summary.seconds:.1f} s; {summary.already_done} were already done; "
        f"{summary.planned} planned",
        markup=False,
    )
    stem = col.path.stem
    out.print(f"next: harness report {stem}" + (" --smoke" if smoke else "") + (f" --store {store}" if store else ""),
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
    table = Table(title=f"hypotheses (store {uri})")
    for c in ("id", "version", "registered", "runs done / planned", "verdict"):
        table.add_column(c)
    from harness.study import progress_counts

    for hid in sorted(rows):
        regs = st.registrations(hid) if st else []
        if not regs:
            table.add_row(hid, "-", "not registered", "-", "-")
            continue
        for reg in regs:
            planned = int(reg.tags.get("harness.planned", 0)) or _planned(reg.declaration)
            done, _ = progress_counts(st, hid, reg.version, planned)
            table.add_row(hid, f"v{reg.number} {reg.version}", reg.registered_at, f"{done} / {planned}",
                          reg.tags.get("harness.verdict", "not reported"))
    out.print(table)


def _planned(decl: dict) -> int:
    n = len(next(iter(decl["ablate"].values())))
    for levels in decl["strata"].values():
        n *= len(levels)
    return n * decl["seeds"]


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
):
    """Analyse a study and write runs/reports/<id>/index.html and report.md."""
    from analysis.report import write_report
    from harness.collect import SMOKE_SUFFIX

    hid = Path(target).stem if target.endswith(".py") else target
    if smoke and not hid.endswith(SMOKE_SUFFIX):
        hid += SMOKE_SUFFIX
    res = write_report(hid, store=store, version=version, seed=seed)
    out.print(res.terminal_table)
    out.print(res.verdict_line, markup=False, highlight=False)
    out.print(f"report: {res.html}", markup=False)


@app.command()
@_user_errors
def ui(
    store: str | None = StoreOpt,
    port: int = typer.Option(5000, "--port", help="Port on 127.0.0.1."),
):
    """Serve MLflow's UI on 127.0.0.1 over the same store."""
    from harness.tracking import local_root, resolve_uri

    uri = resolve_uri(store)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(port)]
    if uri.startswith("sqlite:///"):
        cmd += ["--default-artifact-root", (local_root(uri) / "artifacts").resolve().as_uri()]
    out.print(f"MLflow UI on http://127.0.0.1:{port} over {uri} (Ctrl-C stops it)", markup=False)
    os.execv(sys.executable, cmd)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
