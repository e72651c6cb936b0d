"""Find and import hypothesis files, the way pytest collects test modules.

A hypothesis file is a plain module with a module-level ``hypothesis = Hypothesis(...)``. A
file that fails to import becomes one CollectionError naming the file and line, what went
wrong and how to fix it: never a traceback.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import os
import re
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CollectionError, DeclarationError
from harness.hypothesis import Hypothesis
from harness.isolate import ENV_IMPORT_TIMEOUT, IMPORT_TIMEOUT  # noqa: F401  (set there; used here and re-exported)

HYPOTHESES_DIR = Path("hypotheses")
ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass
class Collected:
    """A validated hypothesis and where it came from."""

    id: str  # the file's stem: hypotheses/<id>.py
    path: Path
    hypothesis: Hypothesis
    source: str  # the file's text, stored with the registration record
    overrides: tuple = ()  # `harness run --set` arguments: an exploratory version (harness.explore)


def resolve(target: str | Path) -> Path:
    """``ID`` -> ``hypotheses/ID.py``; a path is taken as given. Missing -> CollectionError."""
    t = str(target)
    path = Path(t) if (t.endswith(".py") or "/" in t or Path(t).is_file()) else HYPOTHESES_DIR / f"{t}.py"
    if not path.is_file():
        known = sorted(p.stem for p in HYPOTHESES_DIR.glob("*.py")) if HYPOTHESES_DIR.is_dir() else []
        raise CollectionError(
            f"{path}: no such hypothesis file (from argument {t!r})\n"
            f"  hint: give a file path or an ID from {HYPOTHESES_DIR}/ "
            f"({', '.join(known) if known else 'none there yet'}); create one with `harness new NAME`"
        )
    if not ID_PATTERN.match(path.stem):
        raise CollectionError(
            f"{path}: the file name {path.stem!r} is not a valid hypothesis ID\n"
            "  hint: use letters, digits, '_' and '-', starting with a letter or '_'"
        )
    return path


def collect(target: str | Path, *, smoke: bool = False, isolated: bool = False,
            overrides: tuple | list = (), pilot: int | None = None) -> Collected:
    """Import one hypothesis file and return its validated declaration.

    ``smoke=True`` gives the labelled smoke version: 2 seeds, a tiny training budget, its own
    version hash and its own experiment (``<id>@smoke``), so it never mixes with the study.
    ``isolated=True`` (`harness check`) imports the file in a child process first, killed after
    the import timeout whatever the file does (ignores SIGALRM, starts a thread, kills its own
    process), and imports it here only once the child succeeded (see :mod:`harness.isolate`).
    ``overrides`` (``--set training.steps=300``, :mod:`harness.explore`) give an exploratory
    version, stored apart as ``<id>@explore``: never the registered study. ``pilot=N``
    (`harness check --pilot N`, :mod:`harness.pilot`) gives the pilot version, ``<id>@pilot``.

    Example::

        c = collect("iaf_tightens_bound")   # hypotheses/iaf_tightens_bound.py
        c.hypothesis.n_runs
    """
    path = resolve(target).resolve()
    source = _read(path)
    if isolated:
        from harness.isolate import import_in_child

        import_in_child(path)  # a CollectionError, located, when the file fails there
    name = f"harness_hypothesis_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # A module beside the hypothesis file (a user's model) must be importable from it.
    sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    threads = set(threading.enumerate())
    try:
        with _guarded_import(path):
            spec.loader.exec_module(module)
    except _ImportExit as exc:
        raise CollectionError(
            f"{_where(path, exc)}: the hypothesis file called {exc.call} while being imported\n"
            "  hint: a hypothesis file is imported, not run: remove the call, or put script code under "
            "`if __name__ == \"__main__\":`"
        ) from None
    except _ImportTimeout as exc:
        raise CollectionError(
            f"{_where(path, exc)}: importing the hypothesis file took longer than {exc.seconds:g} s "
            "(an endless loop, or slow work at import time?)\n"
            f"  hint: a hypothesis file only declares; move long work out of it (or raise ${ENV_IMPORT_TIMEOUT})"
        ) from None
    except DeclarationError as exc:
        raise CollectionError(str(exc.at(_field_where(path, source, exc)))) from None
    except SyntaxError as exc:
        raise CollectionError(
            f"{path}:{exc.lineno}: syntax error: {exc.msg}\n  {(exc.text or '').rstrip()}\n"
            "  hint: fix the Python syntax; `harness new NAME` writes a working template"
        ) from None
    except _Interrupted:  # a real Ctrl-C while importing: the user's, not the file's
        raise KeyboardInterrupt from None
    except BaseException as exc:  # noqa: BLE001  (any import failure, KeyboardInterrupt raised by the file included)
        raise CollectionError(
            f"{_where(path, exc)}: error while importing the hypothesis file: "
            f"{type(exc).__name__}: {exc}\n"
            "  hint: the file must import cleanly; run it with `python FILE` to see the traceback"
        ) from None
    finally:
        sys.path.remove(str(path.parent))
    _no_stray_threads(path, threads)
    hyp = getattr(module, "hypothesis", None)
    if not isinstance(hyp, Hypothesis):
        raise CollectionError(
            f"{path}: no module-level `hypothesis = Hypothesis(...)` (found {type(hyp).__name__})\n"
            "  hint: assign your declaration to a variable named `hypothesis`; see `harness new NAME`"
        )
    if pilot is not None:
        from harness.pilot import PILOT_SUFFIX, pilot_version

        if smoke or overrides:
            raise CollectionError("--pilot with --smoke or --set: a pilot runs the declaration as it is\n"
                                  "  hint: leave out --smoke and --set")
        return Collected(f"{path.stem}{PILOT_SUFFIX}", path, pilot_version(hyp, pilot), source)
    if overrides:
        from harness.explore import EXPLORE_SUFFIX, apply

        if smoke:
            raise CollectionError("--set with --smoke: an exploratory version has its own budget\n"
                                  "  hint: leave out --smoke, and --set training.steps=... for a short run")
        return Collected(f"{path.stem}{EXPLORE_SUFFIX}", path, apply(hyp, list(overrides)), source,
                         tuple(overrides))
    if smoke:
        return Collected(f"{path.stem}{SMOKE_SUFFIX}", path, smoke_version(hyp), source)
    return Collected(path.stem, path, hyp, source)


SMOKE_SUFFIX = "@smoke"


def smoke_version(hyp: Hypothesis) -> Hypothesis:
    """The same declaration with 2 seeds and a tiny budget, labelled as a smoke run."""
    t = hyp.training
    steps = min(t.steps, 30)
    # Budgets shrink with the steps (at least one step apart), so a smoke run exercises them too.
    at = sorted({max(1, k * steps // t.steps) for k in t.evaluate_at} - {steps})
    training = dataclasses.replace(
        t, steps=steps, eval_samples=min(t.eval_samples, 8), log_every=min(t.log_every, 10),
        n_samples=min(t.n_samples, 64), evaluate_at=tuple(at),
    )
    tuning = hyp.tuning and dataclasses.replace(hyp.tuning, trials=min(hyp.tuning.trials, 2), seeds_per_trial=1)
    prediction = hyp.prediction
    if isinstance(prediction.budgets, tuple):  # named budgets shrink as evaluate_at does
        budgets = {steps if k >= t.steps else max(1, k * steps // t.steps) for k in prediction.budgets}
        prediction = dataclasses.replace(prediction, budgets=tuple(sorted(budgets)))
    return dataclasses.replace(hyp, seeds=2, training=training, tuning=tuning, smoke=True, prediction=prediction)


class _ImportExit(BaseException):  # not Exception: a file's `except Exception` must not swallow it
    """sys.exit / os._exit called by a hypothesis file while it is imported."""

    def __init__(self, call: str):
        super().__init__(call)
        self.call = call


class _Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) delivered while a hypothesis file imports: the user's interrupt."""


def _read(path: Path) -> str:
    """The file's text, or a located CollectionError when it is not UTF-8 (Python's own rule
    for source files without an encoding line)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CollectionError(
            f"{path}:{line}: the hypothesis file is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})\n"
            "  hint: save the file as UTF-8"
        ) from None


# Non-daemon threads a hypothesis file started and left running: the interpreter would wait for
# them at exit, so `harness` ends with os._exit once its message is out (see harness.cli.main).
STRAY_THREADS: list[threading.Thread] = []


def leave_if_threads_left() -> None:
    """End the process now (exit 2) when a hypothesis file left a non-daemon thread running:
    its error is already reported and nothing was written, but the interpreter would wait for
    the thread forever at exit. For the CLI's entry point only (not for library callers)."""
    if any(t.is_alive() for t in STRAY_THREADS):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)


def _no_stray_threads(path: Path, before: set) -> None:
    """A thread the file started and left running keeps the process alive after its work ends
    (`check` would print the plan and never exit)."""
    stray = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    if stray:
        STRAY_THREADS.extend(stray)  # the CLI's exit must not wait for them (harness.cli.main)
        code = getattr(getattr(stray[0], "_target", None), "__code__", None)
        where = f"{path}:{code.co_firstlineno}" if code and Path(code.co_filename).resolve() == path else str(path)
        raise CollectionError(
            f"{where}: the hypothesis file started a thread ({stray[0].name}) that is still running after its "
            "import\n  hint: a hypothesis file only declares: start no threads (or processes) in it"
        )


class _ImportTimeout(BaseException):
    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


@contextlib.contextmanager
def _guarded_import(path: Path):
    """While a hypothesis file imports: sys.exit (SystemExit) and os._exit become _ImportExit,
    and a SIGALRM timer bounds the time (main thread only: signals reach no other thread). In
    process, so `check` pays for no second interpreter."""
    real_exit = os._exit
    real_signal, real_mask = signal.signal, signal.pthread_sigmask
    real_alarm, real_setitimer = signal.alarm, signal.setitimer

    def no_exit(code=0):
        raise _ImportExit(f"os._exit({code!r})")

    # The import timeout is SIGALRM: a file must not ignore, block or re-arm it.
    def no_alarm_handler(signum, handler):
        if signum == signal.SIGALRM:
            raise _ImportExit(f"signal.signal({signal.Signals(signum).name}, ...)")
        return real_signal(signum, handler)

    def no_alarm_mask(how, mask):
        if how != signal.SIG_UNBLOCK and signal.SIGALRM in set(mask):
            raise _ImportExit("signal.pthread_sigmask(...)")
        return real_mask(how, mask)

    def no_alarm(*args):
        raise _ImportExit("signal.alarm(...)")

    def no_timer(which, *args):
        if which == signal.ITIMER_REAL:
            raise _ImportExit("signal.setitimer(ITIMER_REAL, ...)")
        return real_setitimer(which, *args)

    def on_interrupt(signum, frame):
        raise _Interrupted

    timeout = float(os.environ.get(ENV_IMPORT_TIMEOUT) or IMPORT_TIMEOUT)
    timed = threading.current_thread() is threading.main_thread() and timeout > 0
    if timed:
        def on_alarm(signum, frame):
            raise _ImportTimeout(timeout)

        old_handler = signal.signal(signal.SIGALRM, on_alarm)
        old_interrupt = signal.signal(signal.SIGINT, on_interrupt)
        old_timer = signal.setitimer(signal.ITIMER_REAL, timeout)
        signal.signal, signal.pthread_sigmask, signal.alarm, signal.setitimer = (
            no_alarm_handler, no_alarm_mask, no_alarm, no_timer)
    os._exit = no_exit
    try:
        yield
    except SystemExit as exc:
        raise _ImportExit(f"sys.exit({exc.code!r})").with_traceback(exc.__traceback__) from None
    finally:
        os._exit = real_exit
        if timed:
            signal.signal, signal.pthread_sigmask, signal.alarm, signal.setitimer = (
                real_signal, real_mask, real_alarm, real_setitimer)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            signal.signal(signal.SIGINT, old_interrupt)
            if old_timer[0] > 0:
                signal.setitimer(signal.ITIMER_REAL, *old_timer)


def discover() -> list[Path]:
    """Every hypothesis file in ``hypotheses/`` (not starting with '_')."""
    if not HYPOTHESES_DIR.is_dir():
        return []
    return sorted(p for p in HYPOTHESES_DIR.glob("*.py") if not p.name.startswith("_"))


def locate(col: Collected, exc: DeclarationError) -> DeclarationError:
    """``exc`` located at its field's line in the collected file (``seeds=`` -> that line)."""
    return exc.at(_field_where(col.path, col.source, exc))


def _where(path: Path, exc: BaseException) -> str:
    """``file:line`` of the deepest traceback frame inside the hypothesis file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def _field_where(path: Path, source: str, exc: DeclarationError) -> str:
    """``file:line`` of the bad field itself (``model="vea"`` -> the line of ``model=``), found in the
    file's syntax tree under the call the error came from; else the call's line (:func:`_where`)."""
    where = _where(path, exc)
    line = int(where.rsplit(":", 1)[1]) if where != str(path) else None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return where
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and (line is None or n.lineno <= line <= (n.end_lineno or n.lineno))]
    named = [c for c in calls if getattr(c.func, "id", getattr(c.func, "attr", None)) == "Hypothesis"]
    parts = str(exc.field).split(".")
    for call, path_parts in [(c, parts) for c in named] + [(c, parts[-1:]) for c in sorted(
            calls, key=lambda c: (c.end_lineno or c.lineno) - c.lineno)]:
        found = _locate(call, path_parts)
        if found is not None:
            return f"{path}:{found}"
    return where


def _locate(node: ast.AST, parts: list[str]) -> int | None:
    """The line of the keyword argument / dict key named by ``parts``, descending from ``node``."""
    found = None
    for part in parts:
        if isinstance(node, ast.Call):
            hit = next((k for k in node.keywords if k.arg == part), None)
            if hit is None:
                break
            found, node = hit.lineno, hit.value
        elif isinstance(node, ast.Dict):
            i = next((i for i, k in enumerate(node.keys) if isinstance(k, ast.Constant) and k.value == part), None)
            if i is None:
                break
            found, node = node.keys[i].lineno, node.values[i]
        else:
            break
    return found
