"""Registration: freeze a declaration (content hash, the file, provenance) before any result.

A registration is an MLflow parent run tagged ``harness.kind=registration``. An unchanged
declaration registers nothing new; a changed one is refused with a field-level diff unless
``--new-version``. Registration of one hypothesis is serialised across processes by a flock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import subprocess
from collections.abc import Iterator
from pathlib import Path

from harness.collect import Collected
from harness.errors import StoreError
from harness.hypothesis import diff_declarations
from harness.seeds import declared_seeds


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



def register(col: Collected, store, *, new_version: bool = False):
    """Register ``col`` in ``store``. Returns (registration, created: bool).

    Unchanged declaration -> the existing record, ``created=False``. Changed declaration ->
    StoreError listing the changes unless ``new_version``; versions never share results.
    """
    with registration_lock(store.root / "claims" / f"register-{col.id}.lock"):
        return _register(col, store, new_version)


@contextlib.contextmanager
def registration_lock(path: Path) -> Iterator[None]:
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


def seed_overlap_warning(hyp_id: str, hypothesis, store: str | None = None) -> str | None:
    """A warning when ``hypothesis``'s confirmatory seeds overlap those of a pilot
    (``harness check --pilot``, stored as ``<id>@pilot``) or of an EARLIER registered version of
    ``hyp_id`` in the store (a pilot whose seeds would be re-used as confirmatory evidence),
    naming the versions, the shared seeds and the fix; None when they do not, or
    when there is no store yet (this never creates one: ``harness check`` writes nothing)."""
    from harness.errors import HarnessError
    from harness.tracking import resolve_uri

    uri = resolve_uri(store)
    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        return None
    from harness.pilot import PILOT_SUFFIX, pilot_clash
    from harness.tracking import Store

    try:
        st = Store(store, create=False)
        regs, pilots = st.registrations(hyp_id), st.registrations(hyp_id + PILOT_SUFFIX)
    except HarnessError:  # an unreadable store is `run`'s error to report, not `check`'s
        return None
    clash = pilot_clash(hyp_id, hypothesis, pilots)
    if clash is not None:  # `harness run` refuses this (harness.pilot_study.record_pilots)
        return f"{clash}; `harness run` refuses this range"
    mine = range(hypothesis.first_seed, hypothesis.first_seed + int(hypothesis.seeds))
    own = next((r.number for r in regs if r.version == hypothesis.version), None)
    if own is not None:  # registered already: only the versions before it count
        regs = [r for r in regs if r.number < own]
    clashes = []
    for reg in regs:
        theirs = declared_seeds(reg.declaration)
        shared = range(max(mine.start, theirs.start), min(mine.stop, theirs.stop))
        if shared:
            clashes.append((reg, theirs, shared))
    if not clashes:
        return None
    past = max(declared_seeds(r.declaration).stop for r in regs)
    listed = "; ".join(f"version {r.number} ({r.version}, seeds {span(t)}) shares seeds {span(s)}"
                       for r, t, s in clashes)
    return (f"seeds {span(mine)} of this declaration overlap earlier registered versions of {hyp_id}: "
            f"{listed}. A pilot's seeds re-used as confirmatory evidence are not independent of the "
            f"choices the pilot informed. Fix: set first_seed={past} in the Hypothesis (seeds "
            f"{past}..{past + len(mine) - 1}), past every registered version's seeds")


def span(r: range) -> str:
    return f"{r.start}..{r.stop - 1}"
