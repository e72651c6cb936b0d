"""A killed Slurm driver's array tasks still pending hold no lease; a rerun cancels them once the
dead driver's lease has expired (issue 23), so their cells are submitted once and no allocation
is spent on a task that would find its cells done. Real PostgreSQL, real Slurm (tests/services.py).

Timing is bounded by the mechanism (the lease length), never by how fast this machine trains:
the queue is held by a job that takes the whole node, so the dead array's tasks stay pending
however slow the machine is, and the waits below end on a state (a row, a queue listing, an
expired lease), with a generous timeout that only turns a hang into a failure."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import harness_subprocess, tiny_hypothesis, write

pytestmark = pytest.mark.slow

TTL = 5.0  # seconds: the lease length (drivers' and cells'); the heartbeat renews every TTL/4


def _wait(what: str, cond, timeout: float, proc=None):
    end = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"waiting for {what}: the driver exited ({proc.returncode}):\n{proc.stdout.read()}")
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.3)


def _slurm(args: list[str], conf: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, "SLURM_CONF": conf})


def _pending(job_id: str, conf: str) -> list[str]:
    p = _slurm(["squeue", "-h", "-r", "-t", "PENDING", "-o", "%i", "-j", job_id], conf)
    return p.stdout.split() if p.returncode == 0 else []


def _sql(url: str, statement: str) -> list:
    import sqlalchemy as sa

    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as con:
            try:
                return list(con.execute(sa.text(statement)))
            except sa.exc.ProgrammingError:  # the table does not exist yet
                return []
    finally:
        eng.dispose()


def _arrays(url: str) -> list[str]:
    return [r[0] for r in _sql(url, "SELECT job_id FROM harness_slurm_arrays ORDER BY submitted_at")]


def test_a_dead_drivers_arrays_are_orphans_only_once_its_lease_expired(pg_db):
    """The bookkeeping alone (no Slurm): a live driver's arrays are never another's to cancel."""
    from harness.claims import LeaseClaims
    from harness.slurm_arrays import SlurmArrays

    a, b = LeaseClaims(pg_db, ttl=1.0), LeaseClaims(pg_db, ttl=1.0)
    dead, rerun = SlurmArrays(a, "h", "v1"), SlurmArrays(b, "h", "v1")
    other_version = SlurmArrays(b, "h", "v2")
    dead.record(["111"])
    end = time.monotonic() + 4 * a.ttl  # four lease lengths alive: never an orphan
    while time.monotonic() < end:
        assert rerun.orphans() == []
        time.sleep(0.1)
    a._stop.set()  # the driver dies: its heartbeat stops, nothing is released
    a._beat.join()
    _wait("the dead driver's lease to expire", lambda: rerun.orphans() == ["111"], 10 * a.ttl)
    assert other_version.orphans() == []  # another version's rerun leaves it alone
    rerun.record(["222"])
    assert rerun.orphans() == ["111"]  # never its own
    rerun.close()
    assert _arrays(pg_db) == ["111"]  # its own rows went with it, the dead driver's stay
    assert not _sql(pg_db, f"SELECT key FROM harness_leases WHERE key = 'slurm-driver/{b.owner}'")  # released
    a.close()
    b.close()


def test_a_rerun_cancels_the_pending_tasks_of_a_killed_drivers_array(tmp_path, pg_db, slurm_cluster):
    hid = f"tiny_{uuid.uuid4().hex[:8]}"
    write(tmp_path / "hypotheses" / f"{hid}.py", tiny_hypothesis(seeds=2, steps=20))
    args = ["run", hid, "--store", pg_db, "--executor", "slurm", "--slurm-time", "10", "--block-size", "1"]
    env = {"SLURM_CONF": slurm_cluster, "HARNESS_LEASE_SECONDS": str(TTL)}
    # Hold the queue: a job that takes the whole node, so every array task stays pending.
    p = _slurm(["sbatch", "--parsable", "--exclusive", "-J", "harness-test-hold", "-o", "/dev/null",
                "--wrap", "sleep 900"], slurm_cluster)
    assert p.returncode == 0, p.stderr
    hold = p.stdout.strip().split(";")[0]
    procs: list[subprocess.Popen] = []
    try:
        _wait("the holding job to run", lambda: _slurm(["squeue", "-h", "-o", "%T", "-j", hold], slurm_cluster)
              .stdout.strip() == "RUNNING", 120)
        first = harness_subprocess(*args, cwd=tmp_path, threads=1, extra_env=env)
        procs.append(first)
        (dead,) = _wait("the first driver's array", lambda: _arrays(pg_db), 300, first)
        _wait("its 4 tasks pending", lambda: len(_pending(dead, slurm_cluster)) == 4, 60, first)
        first.send_signal(signal.SIGKILL)
        first.wait()
        # Its lease runs out at most TTL after its last heartbeat (the database's clock decides).
        _wait("the dead driver's lease to expire", lambda: not _sql(
            pg_db, "SELECT key FROM harness_leases WHERE key LIKE 'slurm-driver/%' "
                   "AND expires_at >= clock_timestamp()"), 10 * TTL + 30)
        assert len(_pending(dead, slurm_cluster)) == 4  # nothing cancelled them meanwhile
        rerun = harness_subprocess(*args, cwd=tmp_path, threads=1, extra_env=env)
        procs.append(rerun)
        # The rerun reaps before it plans, so by the time its own array is recorded the dead
        # one's pending tasks are gone; the node is still held, so none of them could have run.
        (mine,) = _wait("the rerun's array", lambda: [j for j in _arrays(pg_db) if j != dead], 300, rerun)
        assert dead not in _arrays(pg_db)
        assert _slurm(["squeue", "-h", "-r", "-j", dead], slurm_cluster).stdout.split() == []
        assert len(_pending(mine, slurm_cluster)) == 4  # the rerun submitted every cell once
        _slurm(["scancel", hold], slurm_cluster)
        out, _ = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, out
        assert f"cancelled 4 pending tasks of Slurm array {dead}" in out, out
        m = re.search(r": trained (\d+) runs \((\d+) finished", out)
        assert m and m.group(1) == "4", out
        from harness.tracking import Store

        st = Store(pg_db, create=False)
        runs = st.cell_runs(hid, st.registrations(hid)[-1].version)
        cells = sorted((r.data.tags["harness.variant"], r.data.tags["harness.seed"]) for r in runs)
        assert len(cells) == 4 and len(set(cells)) == 4, cells  # every cell exactly once
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert _arrays(pg_db) == []  # the rerun ended: its rows are gone, nothing left to cancel
        assert not list(Path(tmp_path, "runs", "slurm").glob(f"{dead}_*/*_result.pkl"))  # no dead task ran
    finally:
        _slurm(["scancel", hold], slurm_cluster)
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
        for jid in _arrays(pg_db):
            _slurm(["scancel", jid], slurm_cluster)
