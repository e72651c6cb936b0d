"""The Slurm job arrays a driver submitted, recorded under the driver's own lease, so that a
rerun after the driver died cancels the array tasks still pending.

A Slurm array task claims its cells only when it starts. While it waits in the queue its cells
are under no lease, so after its driver was killed a rerun plans them again and submits them
again: whichever task starts first trains a cell and the other finds it claimed or done
(nothing is trained twice), but the late task still costs an allocation. Hence:

- the driver holds a lease on ``slurm-driver/<its claims owner>`` in ``harness_leases``,
  renewed by the same heartbeat as the cells' leases (``ttl`` = ``$HARNESS_LEASE_SECONDS``);
- every array it submits is a row of ``harness_slurm_arrays`` (the array's job id, the driver,
  the hypothesis and version, when);
- a driver, before each planning pass (:meth:`SlurmArrays.reap`), finds the arrays of this
  version whose driver's lease has expired (or is gone) and runs ``scancel --state=PENDING``
  on those that still have pending tasks. Running tasks are left alone: they hold their cells'
  leases and finish normally. The rows are then deleted;
- a driver that ends deletes its rows and releases its lease (:meth:`SlurmArrays.close`).

A driver whose lease lapsed while it lived (the database unreachable for ``ttl``) can have its
pending tasks cancelled by another driver; its executor then sees them end without a result
(a lost worker) and plans their cells again.
"""

from __future__ import annotations

import logging
import subprocess

from harness.claims import TABLE as LEASES
from harness.claims import LeaseClaims, pg_schema_lock

TABLE = "harness_slurm_arrays"
DRIVER = "slurm-driver/"
log = logging.getLogger("harness.slurm_arrays")


class SlurmArrays:
    """The arrays of one driver (``claims.owner``) for one hypothesis version."""

    def __init__(self, claims: LeaseClaims, hypothesis: str, version: str):
        self.claims, self.hypothesis, self.version = claims, hypothesis, version
        self.key = f"{DRIVER}{claims.owner}"
        self._ready = False

    def _setup(self) -> None:
        if self._ready:
            return
        _ = self.claims.engine  # the leases table exists
        with pg_schema_lock(self.claims.url):
            self.claims.sql(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (job_id TEXT PRIMARY KEY, driver TEXT NOT NULL, "
                "hypothesis TEXT NOT NULL, version TEXT NOT NULL, submitted_at TIMESTAMPTZ NOT NULL)"
            )
        self._ready = True

    def _lease(self) -> None:
        """Hold (or take back) this driver's lease: the heartbeat renews it while it lives."""
        self._setup()
        if not self.claims.acquire([self.key]):
            log.warning("another process holds this driver's lease key %s", self.key)

    def record(self, job_ids: list[str]) -> None:
        """The arrays just submitted (their job ids, without a task suffix)."""
        self._lease()
        for jid in job_ids:
            self.claims.sql(
                f"INSERT INTO {TABLE} (job_id, driver, hypothesis, version, submitted_at) "
                "VALUES (:j, :d, :h, :v, clock_timestamp()) ON CONFLICT (job_id) DO NOTHING",
                j=str(jid), d=self.claims.owner, h=self.hypothesis, v=self.version,
            )

    def orphans(self) -> list[str]:
        """The arrays of this version whose driver's lease has expired or is gone."""
        self._setup()
        rows = self.claims.sql(
            f"SELECT a.job_id FROM {TABLE} a WHERE a.version = :v AND a.driver <> :me AND NOT EXISTS "
            f"(SELECT 1 FROM {LEASES} l WHERE l.key = :prefix || a.driver AND l.expires_at >= clock_timestamp()) "
            "ORDER BY a.submitted_at",
            v=self.version, me=self.claims.owner, prefix=DRIVER,
        )
        return [r[0] for r in rows]

    def reap(self) -> list[str]:
        """Cancel the pending tasks of dead drivers' arrays; returns notes for the user."""
        self._lease()
        notes, done = [], []
        for jid in self.orphans():
            pending = _pending_tasks(jid)
            if pending is None:  # Slurm did not answer: try again next pass
                continue
            if pending:
                p = subprocess.run(["scancel", "--state=PENDING", jid], capture_output=True, text=True, timeout=60)
                if p.returncode != 0 and "Invalid job id" not in p.stderr:
                    log.warning("scancel %s: %s", jid, p.stderr.strip())
                    continue
                notes.append(f"cancelled {pending} pending tasks of Slurm array {jid}, left by a driver that died "
                             "(its lease expired); their cells are trained by this run's jobs")
            done.append(jid)
        if done:
            self.claims.sql(f"DELETE FROM {TABLE} WHERE job_id = ANY(:ids)", ids=done)
        return notes

    def close(self) -> None:
        """This driver ended: its arrays are no one's to cancel, its lease is released."""
        if not self._ready:
            return
        self.claims.sql(f"DELETE FROM {TABLE} WHERE driver = :d", d=self.claims.owner)
        self.claims.release([self.key])


def _pending_tasks(job_id: str) -> int | None:
    """How many tasks of array ``job_id`` are pending (0 when Slurm no longer knows it), or
    None when ``squeue`` failed."""
    try:
        p = subprocess.run(["squeue", "-h", "-r", "-t", "PENDING", "-o", "%i", "-j", str(job_id)],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return 0 if "Invalid job id" in p.stderr else None
    return len(p.stdout.split())
