"""What `harness run` coordinates through, chosen before anything is written: the claims
backend and the tuning storage for a store and an executor (or a located refusal), the record
of a Slurm driver's arrays (:mod:`harness.slurm_arrays`), and the parent-death signal of the
servers `harness ui` starts."""

from __future__ import annotations

import os

from harness.errors import HarnessError
from harness.redact import redact


def coordination(st, ex, db: str | None, optuna_storage: str | None, col):
    """The claims backend and the tuning storage for this store and executor, or a located
    refusal: hosts must never share a sqlite file, and claims across hosts need a database."""
    from harness.claims import FlockClaims, LeaseClaims

    db = db or os.environ.get("HARNESS_DB") or (st.uri if st.uri.startswith(("postgresql", "postgres://")) else None)
    if ex.distributed and db is None:
        raise HarnessError(
            f"--executor {ex.name}: claims across hosts need a database, and the store {redact(st.uri)} is not one\n"
            "  hint: pass --db postgresql://USER@HOST/DB (or set HARNESS_DB)"
        )
    if ex.distributed and col.hypothesis.tuning is not None and optuna_storage and (
            "://" not in optuna_storage or optuna_storage.startswith("sqlite:")):
        raise HarnessError(
            f"--optuna-storage {redact(optuna_storage)}: a journal or sqlite file is local to one host; --executor {ex.name} "
            "tunes on several\n  hint: leave --optuna-storage out (the --db database is used) or give a "
            "PostgreSQL URL"
        )
    claims = LeaseClaims(db) if db else FlockClaims(st.root)
    if db:
        _ = claims.engine  # a database that cannot be opened fails here, located
        if hasattr(ex, "track"):  # Slurm: a rerun cancels the pending tasks of this driver's arrays if it dies
            from harness.slurm_arrays import SlurmArrays

            ex.track(SlurmArrays(claims, col.id, col.hypothesis.version))
    return claims, optuna_storage or db


def die_with_parent() -> None:
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the process group still covers Ctrl-C
        pass
