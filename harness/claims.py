"""Claims: which process trains a cell, or tunes a variant, right now.

Two backends behind one interface (``cells``, ``tuning``, ``foreign_cells``, ``spec``):

``FlockClaims`` (one host; the default with a local sqlite store): one ``flock`` file per cell
under ``<store root>/claims/<version>/``, held while the cell trains. The kernel drops a dead
process's locks, even after SIGKILL, so there are no stale claims. Not safe on NFS and
invisible to another host.

``LeaseClaims`` (many hosts; whenever the coordination database is PostgreSQL): one row per
claimed key in the table ``harness_leases``, taken by a single ``INSERT .. ON CONFLICT DO
UPDATE .. WHERE expires_at < now()`` statement, so exactly one claimant wins a key (the
database's row lock decides; no check-then-write race). The row carries a lease that a
heartbeat thread renews every ``ttl / 4`` seconds while the claim is held, using the
database's clock (never the hosts', which may disagree). A worker that dies (SIGKILL, a node
lost, a network partition) stops renewing; after ``ttl`` seconds its lease is expired and the
next claimant takes the key over. A slow but alive worker keeps renewing, so it is never
pre-empted however long its block trains. Before a run is marked FINISHED the worker checks
that its lease is still its own (:meth:`LeaseClaims.still_held`): a worker that lost its lease
(its heartbeat could not reach the database for ``ttl`` seconds) abandons the run instead of
finishing a cell that someone else may be training.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError, describe
from harness.redact import from_environment, redact

ENV_LEASE = "HARNESS_LEASE_SECONDS"
DEFAULT_LEASE = 60.0
TABLE = "harness_leases"
log = logging.getLogger("harness.claims")


def claim_name(variant) -> str:
    """A claim's stem: a hash of the exact (level, stratum), so levels that sanitise alike
    (``a b``, ``a_b``, ``a/b``) never share a claim and a long level never exceeds NAME_MAX;
    a readable prefix for whoever lists the folder or the table."""
    digest = hashlib.sha256(f"{variant.level}\0{variant.stratum}".encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_=." else "_" for ch in variant.id)[:40]
    return f"{safe}-{digest}"


def cell_key(version: str, variant, seed: int) -> str:
    return f"{version}/{claim_name(variant)}.seed{seed}"


def tuning_key(version: str, variant) -> str:
    return f"{version}/tune-{hashlib.sha256(variant.id.encode()).hexdigest()[:16]}"


def lease_seconds() -> float:
    raw = os.environ.get(ENV_LEASE)
    if not raw:
        return DEFAULT_LEASE
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not ttl > 0:
        raise HarnessError(f"${ENV_LEASE}={raw!r}: expected a positive number of seconds\n"
                           f"  hint: unset it for the default ({DEFAULT_LEASE:g} s)")
    return ttl


def from_spec(spec: dict):
    """Rebuild a backend in a worker from :meth:`spec` (plain data)."""
    if spec["kind"] == "lease":
        return LeaseClaims(spec["url"], ttl=spec["ttl"])
    return FlockClaims(Path(spec["root"]))


# ---------------------------------------------------------------------- flock
class FlockClaims:
    kind = "flock"
    waits = False  # a claimed cell is skipped: the process holding it is alive (the kernel says so)

    def __init__(self, root: Path):
        self.root = Path(root)

    def spec(self) -> dict:
        return {"kind": "flock", "root": str(self.root)}

    def _path(self, key: str) -> Path:
        p = self.root / "claims" / f"{key}.lock"
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @contextlib.contextmanager
    def _hold(self, keys: list[str]) -> Iterator[list[str]]:
        held, fds = [], []
        try:
            for k in keys:
                fd = os.open(self._path(k), os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.write(fd, f"pid={os.getpid()} host={platform.node()}\n".encode())
                fds.append(fd)
                held.append(k)
            yield held
        finally:
            for fd in fds:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    @contextlib.contextmanager
    def cells(self, version: str, variant, seeds: list[int]) -> Iterator[list[int]]:
        """Hold the claims on the cells of ``seeds``; yields the seeds this process got."""
        keys = {cell_key(version, variant, s): s for s in seeds}
        with self._hold(list(keys)) as held:
            yield [keys[k] for k in held]

    @contextlib.contextmanager
    def tuning(self, version: str, variant) -> Iterator[bool]:
        with self._hold([tuning_key(version, variant)]) as held:
            yield bool(held)

    def still_held(self, keys: list[str]) -> set[str]:
        return set(keys)  # a live process's flock cannot be lost

    def foreign_cells(self, version: str, variant, seeds: list[int]) -> set[int]:
        with self.cells(version, variant, seeds) as got:
            return set(seeds) - set(got)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------- leases
class LeaseClaims:
    """Leases in PostgreSQL (see the module docstring). ``url``: a SQLAlchemy PostgreSQL URL."""

    kind = "lease"
    waits = True  # a claimed cell is waited for: its lease either ends with the cell or expires

    def __init__(self, url: str, ttl: float | None = None, owner: str | None = None):
        if not is_postgres(url):
            raise HarnessError(f"--db {redact(url)}: claims across hosts need a PostgreSQL database\n"
                               "  hint: --db postgresql://USER@HOST:PORT/DB")
        url = from_environment(url, "--db")
        self.url = url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
        self.ttl = float(ttl if ttl is not None else lease_seconds())
        self.owner = owner or f"{platform.node()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._engine = None
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._lost: set[str] = set()
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()

    def spec(self) -> dict:
        return {"kind": "lease", "url": self.url, "ttl": self.ttl}

    # -------------------------------------------------------------- database
    @property
    def engine(self):
        if self._engine is None:
            import sqlalchemy as sa

            try:
                eng = sa.create_engine(self.url, pool_pre_ping=True, pool_size=2, max_overflow=2)
                with pg_schema_lock(self.url), eng.begin() as con:
                    con.execute(sa.text(
                        f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                        "host TEXT, pid INTEGER, acquired_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
                    ))
            except Exception as exc:  # noqa: BLE001  (driver missing, server down, bad URL)
                raise HarnessError(
                    f"--db {redact(self.url)}: cannot open the claims database "
                    f"({describe(exc)})\n"
                    "  hint: start PostgreSQL, or fix the URL (postgresql://USER@HOST:PORT/DB)"
                ) from None
            self._engine = eng
        return self._engine

    def _exec(self, sql: str, **params) -> list:
        """One statement in its own transaction, retried with backoff while the database is
        unreachable (a restart): up to about ``ttl`` seconds, then the error propagates."""
        import sqlalchemy as sa

        deadline, delay = time.monotonic() + max(self.ttl, 5.0), 0.2
        while True:
            try:
                with self.engine.begin() as con:
                    res = con.execute(sa.text(sql), params)
                    return list(res) if res.returns_rows else []
            except sa.exc.OperationalError as exc:
                if time.monotonic() > deadline:
                    from harness.errors import StoreError

                    raise StoreError(
                        f"--db {redact(self.url)}: the claims database did not answer for {max(self.ttl, 5.0):.0f} s "
                        f"({describe(exc, 200)})\n"
                        "  hint: start PostgreSQL again; `harness run` resumes (claims of dead workers expire)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def sql(self, statement: str, **params) -> list:
        """One statement on the claims database (its own transaction, retried like the leases'
        own): for the tables that live beside the leases (:mod:`harness.slurm_arrays`)."""
        return self._exec(statement, **params)

    def acquire(self, keys: list[str]) -> list[str]:
        """Take every key that is free, expired or already ours; returns those taken. Atomic per
        key: of two claimants racing for one key exactly one gets a row back."""
        got = []
        for k in keys:
            rows = self._exec(
                f"INSERT INTO {TABLE} AS l (key, owner, host, pid, acquired_at, expires_at) "
                "VALUES (:k, :o, :h, :p, clock_timestamp(), clock_timestamp() + make_interval(secs => :ttl)) "
                "ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, host = EXCLUDED.host, pid = EXCLUDED.pid, "
                "acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at "
                "WHERE l.expires_at < clock_timestamp() OR l.owner = EXCLUDED.owner RETURNING l.key",
                k=k, o=self.owner, h=platform.node(), p=os.getpid(), ttl=self.ttl,
            )
            if rows:
                got.append(k)
        with self._lock:
            self._held.update(got)
            self._lost.difference_update(got)
        if got:
            self._start_heartbeat()
        return got

    def release(self, keys: list[str]) -> None:
        with self._lock:
            self._held.difference_update(keys)
        if keys:
            with contextlib.suppress(Exception):  # an unreleased lease just expires
                self._exec(f"DELETE FROM {TABLE} WHERE owner = :o AND key = ANY(:ks)", o=self.owner, ks=list(keys))

    def renew(self) -> None:
        """One heartbeat: extend every lease held; a key whose row is no longer ours is lost."""
        with self._lock:
            keys = sorted(self._held)
        if not keys:
            return
        rows = self._exec(
            f"UPDATE {TABLE} SET expires_at = clock_timestamp() + make_interval(secs => :ttl) "
            "WHERE owner = :o AND key = ANY(:ks) AND expires_at >= clock_timestamp() RETURNING key",
            ttl=self.ttl, o=self.owner, ks=keys,
        )
        lost = set(keys) - {r[0] for r in rows}
        if lost:
            log.warning("lost %d leases (heartbeat too late): %s", len(lost), sorted(lost)[:5])
            with self._lock:
                self._lost.update(lost)

    def _start_heartbeat(self) -> None:
        if self._beat is not None and self._beat.is_alive():
            return
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.ttl / 4):
                try:
                    self.renew()
                except Exception as exc:  # noqa: BLE001  (database unreachable: try again next beat)
                    log.warning("lease heartbeat failed: %s", exc)

        self._beat = threading.Thread(target=beat, name="harness-lease-heartbeat", daemon=True)
        self._beat.start()

    def still_held(self, keys: list[str]) -> set[str]:
        """The keys whose lease is still ours with at least half a lease length left, asked of
        the database. A healthy heartbeat keeps 3/4 to all of it, so a live worker always
        passes; the margin covers the write that follows the check (another claimant can take
        the key only after it expires)."""
        rows = self._exec(
            f"SELECT key FROM {TABLE} WHERE owner = :o AND key = ANY(:ks) "
            "AND expires_at >= clock_timestamp() + make_interval(secs => :margin)",
            o=self.owner, ks=list(keys), margin=self.ttl / 2,
        )
        return {r[0] for r in rows}

    def foreign(self, keys: list[str]) -> set[str]:
        """The keys held by another claimant under an unexpired lease."""
        if not keys:
            return set()
        rows = self._exec(
            f"SELECT key FROM {TABLE} WHERE owner <> :o AND key = ANY(:ks) AND expires_at >= clock_timestamp()",
            o=self.owner, ks=list(keys),
        )
        return {r[0] for r in rows}

    # -------------------------------------------------------------- the interface
    @contextlib.contextmanager
    def cells(self, version: str, variant, seeds: list[int]) -> Iterator[list[int]]:
        keys = {cell_key(version, variant, s): s for s in seeds}
        got = self.acquire(list(keys))
        try:
            yield [keys[k] for k in got]
        finally:
            self.release(got)

    @contextlib.contextmanager
    def tuning(self, version: str, variant) -> Iterator[bool]:
        got = self.acquire([tuning_key(version, variant)])
        try:
            yield bool(got)
        finally:
            self.release(got)

    def foreign_cells(self, version: str, variant, seeds: list[int]) -> set[int]:
        keys = {cell_key(version, variant, s): s for s in seeds}
        return {keys[k] for k in self.foreign(list(keys))}

    def close(self) -> None:
        self._stop.set()
        if self._engine is not None:
            self._engine.dispose()


SCHEMA_LOCK = 0x6861726E  # "harn": one advisory lock serialises every first-use schema creation


@contextlib.contextmanager
def pg_schema_lock(url: str) -> Iterator[None]:
    """Serialise first-use schema creation (MLflow's, Optuna's, the leases table) across
    processes: PostgreSQL's ``CREATE .. IF NOT EXISTS`` is not safe against a concurrent
    creator (a unique violation in ``pg_type``). A session-level advisory lock on its own
    connection, dropped by the server if this process dies."""
    import sqlalchemy as sa

    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as con:
            con.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
            try:
                yield
            finally:
                con.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK})
                con.commit()
    finally:
        eng.dispose()


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith(("postgresql://", "postgresql+", "postgres://"))


@contextlib.contextmanager
def claim(root: Path, version: str, variant, seeds: list[int]) -> Iterator[list[int]]:
    """Hold flock claims on the cells of ``seeds``; yields the seeds this process got
    (:class:`harness.claims.FlockClaims`; PostgreSQL leases are :class:`harness.claims.LeaseClaims`)."""
    with FlockClaims(root).cells(version, variant, seeds) as held:
        yield held
