"""Where a tracking store is, before MLflow opens it: ``--store`` resolved to a URI, the local
root beside it, the lost-database check of a sqlite store and the TCP probe of a server.
No mlflow here (:mod:`harness.tracking` is the only module importing it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from harness.errors import StoreError

ENV_STORE = "HARNESS_STORE"
DEFAULT_DB = Path("runs") / "mlflow.db"
PROBE_SECONDS = 5.0  # a TCP connect to the tracking server before anything else


def resolve_uri(store: str | None = None) -> str:
    """``--store`` > ``$HARNESS_STORE`` > ``sqlite:///<cwd>/runs/mlflow.db`` (absolute)."""
    uri = store or os.environ.get(ENV_STORE)
    if not uri:
        return f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve()}"
    if "://" not in uri:
        p = Path(uri)
        # A regular file is the database itself (refused later when it is not one), never a
        # directory to create mlflow.db under.
        p = p if p.suffix == ".db" or p.is_file() else p / "mlflow.db"
        return f"sqlite:///{p.resolve()}"
    from harness.redact import from_environment

    return from_environment(uri)  # a password given as *** comes from $PGPASSWORD / $MLFLOW_TRACKING_PASSWORD


def local_root(uri: str) -> Path:
    """The directory beside a sqlite store (artifacts, claims, reports); ./runs otherwise."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    return Path.cwd() / "runs"


@contextlib.contextmanager
def flock(path: Path):
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def refuse_if_lost(db: Path, given: str, state: str) -> None:
    """A missing or empty mlflow.db beside a store's artifacts, claims or reports is a lost
    database, not a new store: refuse, naming what looks lost."""
    if state not in ("absent", "empty"):
        return
    if state == "absent" and any(p.suffix == ".db" for p in db.parent.glob("*.db")):
        return  # a second database in the same folder: what is beside may be its own
    found = []
    for sub in ("artifacts", "claims", "reports"):
        d = db.parent / sub
        if d.is_dir():
            names = sorted(p.name for p in d.iterdir())
            if names:
                found.append(f"{d}/ ({len(names)} entries: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
    if found:
        what = "is empty (0 bytes)" if state == "empty" else "is missing"
        raise StoreError(
            f"{given}: {db} {what}, but the store it belonged to is still beside it: "
            + "; ".join(found) + "\n"
            "  hint: the database looks lost: restore mlflow.db from a backup; to start a new store "
            "instead, point --store at a new directory (or move those folders away)"
        )


def probe_server(uri: str) -> None:
    """Fail in seconds, not minutes of MLflow's retries, when the tracking server is unreachable."""
    from urllib.parse import urlsplit

    from harness.redact import redact

    u = urlsplit(uri)
    host, port = u.hostname or "localhost", u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise StoreError(
            f"--store {redact(uri)}: cannot reach the tracking server at {host}:{port} ({exc.strerror or exc})\n"
            f"  hint: start it (e.g. `mlflow server --host {host} --port {port}`) or fix the URI"
        ) from None
