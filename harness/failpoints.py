"""Named failpoints: the fault-injection suite kills a real process at an exact point.

``HARNESS_FAILPOINT=name`` (or ``name@N`` for the N-th time the point is reached, or several
comma-separated) makes the process SIGKILL itself when it reaches ``hit(name)``: no cleanup,
no ``finally``, exactly what a power cut or ``kill -9`` does. Unset, ``hit`` is one dict lookup. With ``HARNESS_FAILPOINT_ONCE=PATH`` the kill happens
once across all processes (the first to create PATH dies; later ones pass): a worker that a
cluster restarts, or a retried job, is not killed again.

Names (grep for ``failpoints.hit``): ``schema.create`` (the new store's schema is written to
its temporary file, not yet renamed), ``register.after_create`` (the registration run exists,
no artifacts yet), ``register.before_terminate`` (artifacts logged, not yet marked complete),
``cell.started`` (a block's runs created, not trained), ``cell.ended`` (a run terminal in the
store, the finished-cell index not yet told), ``trial.started`` (a block of tuning
trials' runs created, not trained), ``cell.logging`` (a run's metrics
logged, not yet terminal), ``report.log`` (a report's files being logged to the store).
"""

from __future__ import annotations

import os
import signal

ENV = "HARNESS_FAILPOINT"
ENV_ONCE = "HARNESS_FAILPOINT_ONCE"
_counts: dict[str, int] = {}


def hit(name: str) -> None:
    """SIGKILL this process if ``$HARNESS_FAILPOINT`` names this point (and count)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    _counts[name] = _counts.get(name, 0) + 1
    for item in spec.split(","):
        point, _, nth = item.strip().partition("@")
        if point == name and _counts[name] == (int(nth) if nth else 1):
            once = os.environ.get(ENV_ONCE)
            if once:
                try:
                    os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                except FileExistsError:
                    return
            os.kill(os.getpid(), signal.SIGKILL)
