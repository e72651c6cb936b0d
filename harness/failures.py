"""What a failed block leaves behind, and the error it becomes.

A block that raises (a model bug, a full disk, a signal) marks its unended runs KILLED (never
FAILED: FAILED means diverged, a result) with the traceback as a tag, so a resume retrains
them; then :func:`block_error` turns the exception into the located error the user sees.
"""

from __future__ import annotations

import contextlib
import traceback
from pathlib import Path

from harness.collect import Collected
from harness.errors import HarnessError, Interrupted, RunError, translate


def abandon(store, run_ids: list[str], exc: BaseException) -> int:
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


def block_error(exc: BaseException, phase: str, col: Collected, job, store, left: list, marked: int):
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
        f"{user_frame(exc, col.path)}: training variant {job.variant.id!r} (seeds {job.seeds}) raised "
        f"{type(exc).__name__}: {str(exc)[:500]}\n  {runs}; the traceback is in their harness.error tag\n"
        f"  hint: fix the model code, then `harness run {col.path}` retrains them"
    )


def user_frame(exc: BaseException, path: Path) -> str:
    """``file:line`` of the deepest frame in the hypothesis file's folder (the user's model),
    else the deepest frame outside installed packages."""
    frames = traceback.extract_tb(exc.__traceback__)
    here = str(path.parent)
    for pick in (lambda f: f.filename.startswith(here), lambda f: "site-packages" not in f.filename):
        hits = [f for f in frames if pick(f)]
        if hits:
            return f"{hits[-1].filename}:{hits[-1].lineno}"
    return str(path)


