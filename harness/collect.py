"""Find and import hypothesis files, the way pytest collects test modules.

A hypothesis file is a plain module with a module-level ``hypothesis = Hypothesis(...)``. A
file that fails to import becomes one CollectionError naming the file and line, what went
wrong and how to fix it: never a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from harness.errors import CollectionError, DeclarationError
from harness.hypothesis import Hypothesis

HYPOTHESES_DIR = Path("hypotheses")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass
class Collected:
    """A validated hypothesis and where it came from."""

    id: str  # the file's stem: hypotheses/<id>.py
    path: Path
    hypothesis: Hypothesis
    source: str  # the file's text, stored with the registration record


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
    if not _ID.match(path.stem):
        raise CollectionError(
            f"{path}: the file name {path.stem!r} is not a valid hypothesis ID\n"
            "  hint: use letters, digits, '_' and '-', starting with a letter or '_'"
        )
    return path


def collect(target: str | Path, *, smoke: bool = False) -> Collected:
    """Import one hypothesis file and return its validated declaration.

    ``smoke=True`` gives the labelled smoke version: 2 seeds, a tiny training budget, its own
    version hash and its own experiment (``<id>@smoke``), so it never mixes with the study.

    Example::

        c = collect("iaf_tightens_bound")   # hypotheses/iaf_tightens_bound.py
        c.hypothesis.n_runs
    """
    path = resolve(target).resolve()
    source = path.read_text()
    name = f"harness_hypothesis_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # A module beside the hypothesis file (a user's model) must be importable from it.
    sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except DeclarationError as exc:
        raise CollectionError(str(exc.at(_where(path, exc)))) from None
    except SyntaxError as exc:
        raise CollectionError(
            f"{path}:{exc.lineno}: syntax error: {exc.msg}\n  {(exc.text or '').rstrip()}\n"
            "  hint: fix the Python syntax; `harness new NAME` writes a working template"
        ) from None
    except Exception as exc:  # noqa: BLE001  (any import failure becomes a collection error)
        raise CollectionError(
            f"{_where(path, exc)}: error while importing the hypothesis file: "
            f"{type(exc).__name__}: {exc}\n"
            "  hint: the file must import cleanly; run it with `python FILE` to see the traceback"
        ) from None
    finally:
        sys.path.remove(str(path.parent))
    hyp = getattr(module, "hypothesis", None)
    if not isinstance(hyp, Hypothesis):
        raise CollectionError(
            f"{path}: no module-level `hypothesis = Hypothesis(...)` (found {type(hyp).__name__})\n"
            "  hint: assign your declaration to a variable named `hypothesis`; see `harness new NAME`"
        )
    if smoke:
        return Collected(f"{path.stem}{SMOKE_SUFFIX}", path, smoke_version(hyp), source)
    return Collected(path.stem, path, hyp, source)


SMOKE_SUFFIX = "@smoke"


def smoke_version(hyp: Hypothesis) -> Hypothesis:
    """The same declaration with 2 seeds and a tiny budget, labelled as a smoke run."""
    t = hyp.training
    training = dataclasses.replace(
        t, steps=min(t.steps, 30), eval_samples=min(t.eval_samples, 8), log_every=min(t.log_every, 10),
        n_samples=min(t.n_samples, 64),
    )
    tuning = hyp.tuning and dataclasses.replace(hyp.tuning, trials=min(hyp.tuning.trials, 2), seeds_per_trial=1)
    return dataclasses.replace(hyp, seeds=2, training=training, tuning=tuning, smoke=True)


def discover() -> list[Path]:
    """Every hypothesis file in ``hypotheses/`` (not starting with '_')."""
    if not HYPOTHESES_DIR.is_dir():
        return []
    return sorted(p for p in HYPOTHESES_DIR.glob("*.py") if not p.name.startswith("_"))


def _where(path: Path, exc: BaseException) -> str:
    """``file:line`` of the deepest traceback frame inside the hypothesis file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)
