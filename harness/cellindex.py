"""The finished-cell index: which cells of a version have ended, answered fast for a
tracking-server store.

An ``http(s)://`` MLflow server offers no projection: without this index, planning reads every
run of the version as a whole run object (a paginated ``search_runs``, about 0.8 ms a run). With
``--db`` (the PostgreSQL database of the claims, needed anyway for a server store shared by
several drivers) planning reads the table ``harness_cells`` instead: one row per cell, keyed by
(hypothesis id, version, cell key), holding the cell's run id and status.

What a row may say, and who writes it (:meth:`CellIndex.record` keeps these rules in SQL):

- ``RUNNING``: the worker created the cell's run (written before training, so before MLflow can
  mark the run terminal). Not trusted: re-verified against MLflow every time it is read.
- ``FINISHED`` / ``FAILED`` (ended: a result, or a divergence, which is a result): written only
  after MLflow holds that status (by the worker right after ``finish_cell``, by the first fill
  from MLflow's own rows, or by a re-verification). Trusted, and never rewritten: a terminal
  status in MLflow is final, so the index never counts a cell as ended that MLflow does not.
- ``KILLED``: MLflow says the run ended without a result (or it is gone). Not done; a newer
  run's ``RUNNING`` row replaces it, and it never replaces a newer run's row.

A crash between MLflow's write and the index's leaves a ``RUNNING`` row whose run MLflow has
FINISHED: the next read re-verifies it (one ``search_runs`` by run id per 100 such rows), counts
the cell and records it, so nothing is lost and nothing is trained twice. A cell that ended
without the index knowing (a ``harness run`` without ``--db`` on the same store) reads as not
done; the worker's re-read after claiming asks MLflow itself (:func:`harness.jobs.execute`), so
it is not trained again, and that re-read records it here.

Fill: the first read of a version with no mark in ``harness_cells_filled`` scans the store once
(:meth:`harness.tracking.Store.cell_index`) and records every ended cell, then marks the
version, in one transaction under an advisory lock (two drivers starting together scan once),
so studies begun before the index exist get it on first use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time

from harness.claims import is_postgres, pg_schema_lock
from harness.errors import HarnessError, StoreError, describe
from harness.redact import redact
from harness.tracking import CellRun

TABLE = "harness_cells"
FILLED = "harness_cells_filled"
ENDED = ("FINISHED", "FAILED")
FILL_LOCK = 0x63656C6C  # "cell": advisory-lock namespace of a version's first fill
log = logging.getLogger("harness.cellindex")

_OPEN: dict[str, CellIndex] = {}
_OPEN_LOCK = threading.Lock()


def cell_key(level: str, stratum: str, seed: int) -> str:
    """A cell's key in the index: a hash of the exact (level, stratum, seed), fixed length
    whatever a level's length (an index entry has a size limit), never ambiguous."""
    return hashlib.sha256(f"{level}\0{stratum}\0{int(seed)}".encode()).hexdigest()[:32]


def for_store(store, claims) -> CellIndex | None:
    """The index for ``store`` under ``claims``: with a tracking-server store and lease claims
    (a PostgreSQL ``--db``); None otherwise. A database store answers its own tag-only query
    fast (:meth:`Store.cell_index`), and without ``--db`` there is nowhere to keep an index:
    planning then reads the store as before."""
    if not getattr(store, "is_server", False) or getattr(claims, "kind", None) != "lease":
        return None
    return open_index(claims.spec()["url"])


def open_index(url: str) -> CellIndex:
    """One :class:`CellIndex` per database per process (its connection pool is reused)."""
    with _OPEN_LOCK:
        if url not in _OPEN:
            _OPEN[url] = CellIndex(url)
        return _OPEN[url]


class CellIndex:
    """The finished-cell index in the PostgreSQL database at ``url`` (see the module docstring)."""

    def __init__(self, url: str, retry_seconds: float = 30.0):
        if not is_postgres(url):
            raise HarnessError(f"--db {redact(url)}: the finished-cell index needs a PostgreSQL database")
        self.url = url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
        self.retry_seconds = retry_seconds
        self._engine = None
        self._filled: set[tuple[str, str]] = set()

    # -------------------------------------------------------------- database
    @property
    def engine(self):
        if self._engine is None:
            import sqlalchemy as sa

            try:
                eng = sa.create_engine(self.url, pool_pre_ping=True, pool_size=2, max_overflow=2)
                with pg_schema_lock(self.url), eng.begin() as con:
                    con.execute(sa.text(
                        f"CREATE TABLE IF NOT EXISTS {TABLE} (hyp_id TEXT NOT NULL, version TEXT NOT NULL, "
                        "cell TEXT NOT NULL, level TEXT NOT NULL, stratum TEXT NOT NULL, seed INTEGER NOT NULL, "
                        "run_id TEXT NOT NULL, status TEXT NOT NULL, "
                        "updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), "
                        "PRIMARY KEY (hyp_id, version, cell))"))
                    con.execute(sa.text(
                        f"CREATE TABLE IF NOT EXISTS {FILLED} (hyp_id TEXT NOT NULL, version TEXT NOT NULL, "
                        "filled_at TIMESTAMPTZ NOT NULL, runs INTEGER NOT NULL, cells INTEGER NOT NULL, "
                        "PRIMARY KEY (hyp_id, version))"))
            except Exception as exc:  # noqa: BLE001  (driver missing, server down, bad URL)
                raise HarnessError(
                    f"--db {redact(self.url)}: cannot open the finished-cell index ({describe(exc)})\n"
                    "  hint: start PostgreSQL, or fix the URL (postgresql://USER@HOST:PORT/DB)"
                ) from None
            self._engine = eng
        return self._engine

    def _exec(self, sql: str, params: dict) -> list:
        """One statement in its own transaction, retried while the database is unreachable
        (a restart) for up to ``retry_seconds``; then a StoreError."""
        import sqlalchemy as sa

        deadline, delay = time.monotonic() + self.retry_seconds, 0.2
        while True:
            try:
                with self.engine.begin() as con:
                    res = con.execute(sa.text(sql), params)
                    return list(res) if res.returns_rows else []
            except sa.exc.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"--db {redact(self.url)}: the finished-cell index did not answer for "
                        f"{self.retry_seconds:.0f} s ({describe(exc, 200)})\n"
                        "  hint: start PostgreSQL again; `harness run` resumes"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -------------------------------------------------------------- writes
    @staticmethod
    def _record_sql() -> str:
        # An ended row is never rewritten; an ended status replaces any other row; RUNNING (a
        # new run of the cell) replaces a KILLED or RUNNING row; KILLED replaces only its own run's row.
        return (
            f"INSERT INTO {TABLE} AS c (hyp_id, version, cell, level, stratum, seed, run_id, status) "
            "SELECT :h, :v, t.cell, t.level, t.stratum, t.seed, t.run_id, t.status FROM unnest("
            "CAST(:cells AS TEXT[]), CAST(:levels AS TEXT[]), CAST(:strata AS TEXT[]), CAST(:seeds AS INTEGER[]), "
            "CAST(:runs AS TEXT[]), CAST(:statuses AS TEXT[])) AS t(cell, level, stratum, seed, run_id, status) "
            "ON CONFLICT (hyp_id, version, cell) DO UPDATE SET run_id = EXCLUDED.run_id, status = EXCLUDED.status, "
            "updated_at = clock_timestamp() "
            "WHERE c.status NOT IN ('FINISHED', 'FAILED') AND (EXCLUDED.status <> 'KILLED' OR c.run_id = EXCLUDED.run_id)"
        )

    @staticmethod
    def _record_params(hyp_id: str, version: str, rows) -> dict:
        # One row per cell (one statement may not update a row twice): an ended run first,
        # FINISHED before FAILED, else the last given.
        rank = {"FINISHED": 2, "FAILED": 1}
        cells: dict[tuple, tuple] = {}
        for r in rows:
            k = (r[0], r[1], int(r[2]))
            if k not in cells or rank.get(r[4], 0) >= rank.get(cells[k][4], 0):
                cells[k] = r
        rows = list(cells.values())
        return {"h": hyp_id, "v": version, "cells": [cell_key(lv, st, s) for lv, st, s, _, _ in rows],
                "levels": [r[0] for r in rows], "strata": [r[1] for r in rows], "seeds": [int(r[2]) for r in rows],
                "runs": [r[3] for r in rows], "statuses": [r[4] for r in rows]}

    def record(self, hyp_id: str, version: str, rows) -> None:
        """Record cells: ``rows`` of (level, stratum, seed, run id, status), one statement.
        ``status`` is RUNNING (a run created), FINISHED / FAILED (only once MLflow holds it) or
        KILLED (MLflow says so); the rules of the module docstring decide what is kept."""
        params = self._record_params(hyp_id, version, rows)
        if params["cells"]:
            self._exec(self._record_sql(), params)

    def record_quietly(self, hyp_id: str, version: str, rows) -> bool:
        """:meth:`record`, a failure logged instead of raised: for a status MLflow already holds
        (the cell's RUNNING row is re-verified on the next read, so nothing depends on it)."""
        try:
            self.record(hyp_id, version, rows)
            return True
        except Exception as exc:  # noqa: BLE001  (the index is a cache of MLflow here, never the truth)
            log.warning("finished-cell index not updated (%s); the next plan re-verifies the cell", describe(exc, 200))
            return False

    # -------------------------------------------------------------- reads
    def is_filled(self, hyp_id: str, version: str) -> bool:
        if (hyp_id, version) in self._filled:
            return True
        if self._exec(f"SELECT 1 FROM {FILLED} WHERE hyp_id = :h AND version = :v", {"h": hyp_id, "v": version}):
            self._filled.add((hyp_id, version))
            return True
        return False

    def fill(self, store, hyp_id: str, version: str) -> int:
        """Scan the store once for the version's ended cells and mark the version filled
        (a no-op when another process has meanwhile). Returns the runs scanned."""
        import sqlalchemy as sa

        with self.engine.begin() as con:
            con.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:k))"),
                        {"ns": FILL_LOCK, "k": f"{hyp_id}/{version}"})
            if con.execute(sa.text(f"SELECT 1 FROM {FILLED} WHERE hyp_id = :h AND version = :v"),
                           {"h": hyp_id, "v": version}).first():
                self._filled.add((hyp_id, version))
                return 0
            runs = store.cell_index(hyp_id, version)
            params = self._record_params(hyp_id, version, _ended(runs))
            if params["cells"]:
                con.execute(sa.text(self._record_sql()), params)
            con.execute(sa.text(f"INSERT INTO {FILLED} (hyp_id, version, filled_at, runs, cells) "
                                "VALUES (:h, :v, clock_timestamp(), :n, :c)"),
                        {"h": hyp_id, "v": version, "n": len(runs), "c": len(params["cells"])})
        self._filled.add((hyp_id, version))
        log.info("finished-cell index of %s %s filled from %d runs (%d ended cells)", hyp_id, version, len(runs),
                 len(params["cells"]))
        return len(runs)

    def learn(self, store, hyp_id: str, version: str, variant, seeds) -> None:
        """Record the ended cells among ``variant``'s ``seeds`` as MLflow has them. The driver
        calls it when a worker found cells ended that the plan (the index) had as not done: a
        worker that does not write the index (another harness version, a write that failed) can
        then cost one extra pass, never an endless re-planning."""
        self.record_quietly(hyp_id, version, _ended(store.cell_index(hyp_id, version, variant, list(seeds))))

    def cell_runs(self, store, hyp_id: str, version: str) -> list[CellRun]:
        """Every indexed cell of one version as :class:`CellRun` (the planner's input, as
        :meth:`Store.cell_index` gives it): ended rows as recorded, every other row with the
        status MLflow gives its run now (re-verified; a run MLflow no longer has reads KILLED).
        A cell with no row has no run the index knows of: not done."""
        if not self.is_filled(hyp_id, version):
            self.fill(store, hyp_id, version)
        rows = self._exec(f"SELECT level, stratum, seed, run_id, status FROM {TABLE} WHERE hyp_id = :h AND version = :v",
                          {"h": hyp_id, "v": version})
        out = [CellRun(rid, status, level, stratum, int(seed)) for level, stratum, seed, rid, status in rows]
        unsure = [r for r in out if r.status not in ENDED and r.status != "KILLED"]
        if not unsure:
            return out
        now = store.run_statuses(hyp_id, [r.run_id for r in unsure])
        fixed = {}
        for r in unsure:
            status = now.get(r.run_id)  # None: gone from MLflow (deleted), not done
            status = status if status in ENDED else "RUNNING" if status in ("RUNNING", "SCHEDULED") else "KILLED"
            if status != r.status:
                fixed[r.run_id] = dataclasses.replace(r, status=status)
        if fixed:
            self.record_quietly(hyp_id, version, [(r.variant, r.stratum, r.seed, r.run_id, r.status)
                                                  for r in fixed.values()])
        return [fixed.get(r.run_id, r) for r in out]


def _ended(runs) -> list[tuple]:
    """The ended runs of ``runs`` (CellRun) as rows for :meth:`CellIndex.record`."""
    return [(r.variant, r.stratum, r.seed, r.run_id, r.status) for r in runs if r.status in ENDED]
