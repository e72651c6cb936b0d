"""Fault injection: a real `harness` process SIGKILLed at a named failpoint, signalled, or run
on a full or read-only disk; then the store is checked: the registration complete with its
artifacts, exactly one FINISHED run per cell after a rerun, nothing left RUNNING, the store
readable by every later command.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import harness_subprocess, tiny_hypothesis, write

from harness.failpoints import ENV as FAILPOINT
from harness.tracking import Store

KILLED_BY_SIGKILL = -signal.SIGKILL


def harness(monkeypatch, cwd: Path, *args: str, failpoint: str | None = None, timeout: float = 240):
    """Run `harness ARGS` as a subprocess (optionally armed with a failpoint): (returncode, output)."""
    if failpoint:
        monkeypatch.setenv(FAILPOINT, failpoint)
    try:
        proc = harness_subprocess(*args, cwd=cwd)
    finally:
        monkeypatch.delenv(FAILPOINT, raising=False)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def statuses(db: Path) -> collections.Counter:
    """Run statuses read with sqlite3 itself (no MLflow, nothing written)."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return collections.Counter(s for (s,) in con.execute("select status from runs where lifecycle_stage = 'active'"))
    finally:
        con.close()


def assert_consistent(root: Path, cells: int, hyp: str = "tiny") -> None:
    """One complete registration with its artifacts, one FINISHED run per cell, none RUNNING."""
    st = Store(str(root / "runs"), create=False)
    regs = st.registrations(hyp)
    assert len(regs) == 1, regs
    assert len(st._registration_runs(hyp)) == 1, "an incomplete registration record is left"
    arts = {a.path for a in st.client.list_artifacts(regs[0].run_id, "registration")}
    assert arts == {f"registration/{hyp}.py", "registration/declaration.json"}, arts
    runs = st.cell_runs(hyp, regs[0].version)
    finished = collections.Counter(r.data.tags["harness.key"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == cells and max(finished.values()) == 1, finished
    assert not [r for r in runs if r.info.status == "RUNNING"]


# ---------------------------------------------------------------------- registration
@pytest.mark.parametrize("point", ["register.after_create", "register.before_terminate"])
def test_kill_during_registration_is_redone_not_resumed(project, monkeypatch, point):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    rc, out = harness(monkeypatch, project, "register", "tiny", failpoint=point)
    assert rc == KILLED_BY_SIGKILL, out
    st = Store(create=False)
    assert st.registrations("tiny") == [], "a registration cut short must not count"
    assert len(st._registration_runs("tiny")) == 1  # the partial record is there, RUNNING

    rc, out = harness(monkeypatch, project, "run", "tiny")
    assert rc == 0, out
    assert "registered tiny v1" in out and "resuming" not in out, out
    assert_consistent(project, cells=4)


# ---------------------------------------------------------------------- schema
def test_kill_during_schema_creation_leaves_no_half_store(project, monkeypatch):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    rc, out = harness(monkeypatch, project, "register", "tiny", failpoint="schema.create")
    assert rc == KILLED_BY_SIGKILL, out
    assert not (project / "runs" / "mlflow.db").exists(), "a half-created schema is in place"
    assert list((project / "runs").glob(".mlflow.db.creating-*")), "the temporary schema was not where expected"
    rc, out = harness(monkeypatch, project, "register", "tiny")
    assert rc == 0 and "registered tiny version 1" in out, out
    assert not list((project / "runs").glob(".mlflow.db.creating-*")), "the stale temporary file stays"
    rc, out = harness(monkeypatch, project, "list")
    assert rc == 0 and "Traceback" not in out, out


def test_concurrent_first_use_creates_the_schema_once(project, monkeypatch):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    procs = [harness_subprocess("register", "tiny", cwd=project) for _ in range(3)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    text = "\n".join(outs)
    assert text.count("registered tiny version 1") == 1 and text.count("already registered") == 2, text
    assert len(Store(create=False).registrations("tiny")) == 1


def _half_created(db: Path, with_runs: bool) -> None:
    # What an interrupted in-place MLflow migration leaves: a leftover batch-migration table.
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    con.execute("create table alembic_version (version_num varchar(32))")
    con.execute("insert into alembic_version values ('451aebb31d03')")
    con.execute("create table experiments (experiment_id integer)")
    con.execute("create table runs (run_uuid varchar(32))")
    con.execute("create table _alembic_tmp_runs (run_uuid varchar(32))")
    if with_runs:
        con.execute("insert into runs values ('abc')")
    con.commit()
    con.close()


def test_half_created_store_without_runs_is_recreated(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    _half_created(project / "runs" / "mlflow.db", with_runs=False)
    r = cli("register", "tiny")
    assert r.exit_code == 0, r.output
    assert list((project / "runs").glob("mlflow.db.half-created-*")), "the broken file is kept aside"
    assert len(Store().registrations("tiny")) == 1


def test_half_created_store_with_runs_is_refused(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    db = project / "runs" / "mlflow.db"
    _half_created(db, with_runs=True)
    before = db.read_bytes()
    r = cli("run", "tiny")
    assert r.exit_code == 2, r.output
    assert "holds 1 runs" in r.output and "_alembic_tmp_runs" in r.output and "hint:" in r.output, r.output
    assert db.read_bytes() == before and sorted(p.name for p in db.parent.iterdir()) == ["mlflow.db"]


# ---------------------------------------------------------------------- runs and report
def test_kill_at_each_point_of_a_study_then_rerun(project, monkeypatch):
    """Killed after a block's runs were created, then while a run was being logged (its
    metrics in, not yet terminal), then while the report was being logged: each rerun ends
    with one FINISHED run per cell and a readable store."""
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=3, steps=5))
    rc, out = harness(monkeypatch, project, "run", "tiny", "--block-size", "2", failpoint="cell.started@2")
    assert rc == KILLED_BY_SIGKILL, out
    assert statuses(project / "runs" / "mlflow.db")["RUNNING"] > 0  # the kill landed mid-study
    rc, out = harness(monkeypatch, project, "run", "tiny", "--block-size", "2", failpoint="cell.logging@3")
    assert rc == KILLED_BY_SIGKILL, out
    rc, out = harness(monkeypatch, project, "run", "tiny", "--block-size", "2")
    assert rc == 0, out
    assert_consistent(project, cells=6)

    rc, out = harness(monkeypatch, project, "report", "tiny", failpoint="report.log")
    assert rc == KILLED_BY_SIGKILL, out
    rc, out = harness(monkeypatch, project, "report", "tiny")
    assert rc == 0 and "Traceback" not in out, out
    assert (project / "runs" / "reports" / "tiny" / "index.html").stat().st_size > 1000
    rc, out = harness(monkeypatch, project, "list")
    assert rc == 0 and "6 / 6" in out, out


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_marks_the_block_killed_and_says_how_to_resume(project, sig, code):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=20000))
    proc = harness_subprocess("run", "tiny", "--block-size", "2", cwd=project)
    db = project / "runs" / "mlflow.db"
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            if statuses(db)["RUNNING"] >= 2:
                break
        except sqlite3.Error:  # not created yet
            continue
    time.sleep(0.5)  # into training
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, out
    assert "KILLED" in out and "harness run" in out and "resumes" in out and "Traceback" not in out, out
    st = statuses(db)
    assert st["RUNNING"] == 0 and st["KILLED"] == 2, st


# ---------------------------------------------------------------------- workers
def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_train_a_file_model_and_die_with_a_killed_parent(project, monkeypatch):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=3, steps=3000))
    proc = harness_subprocess("run", "tiny", "--workers", "2", "--block-size", "1", cwd=project)
    db = project / "runs" / "mlflow.db"
    deadline, kids = time.time() + 180, []
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            running = statuses(db)["RUNNING"]
        except sqlite3.Error:
            continue
        kids = _children(proc.pid)
        if running >= 2:  # both workers are training the hypothesis file's model
            break
    assert len(kids) >= 2, kids
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 45
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.5)
    left = [k for k in kids if _alive(k)]
    for k in left:  # do not leak them into the rest of the suite
        os.kill(k, signal.SIGKILL)
    assert not left, f"workers outlived their killed parent: {left}"

    rc, out = harness(monkeypatch, project, "run", "tiny", "--workers", "2", "--block-size", "3")
    assert rc == 0, out
    assert_consistent(project, cells=6)


# ---------------------------------------------------------------------- full and read-only disk
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (root only); skipped, saying why, where it cannot be mounted."""
    d = tmp_path / "disk"
    d.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(d)], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here ({exc}); the full-disk test needs root or CAP_SYS_ADMIN")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()}); the full-disk test needs root")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True, timeout=30)


def _fill(d: Path, leave_kb: int) -> Path:
    avail = os.statvfs(d).f_bavail * os.statvfs(d).f_frsize // 1024
    f = d / "filler"
    with open(f, "ab") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(0, avail - leave_kb) * 1024 + (f.stat().st_size if f.exists() else 0))
    return f


def test_full_then_read_only_disk(small_disk, monkeypatch):
    d = small_disk
    monkeypatch.chdir(d)
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    write(d / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=4, steps=5))
    filler = _fill(d, leave_kb=300)  # a new schema needs ~950 KB
    rc, out = harness(monkeypatch, d, "register", "tiny")
    assert rc == 2 and "no space left" in out and "Traceback" not in out, out
    assert sorted(p.name for p in (d / "runs").iterdir()) == ["mlflow.db.lock"], "a half-created store is left"
    filler.unlink()
    rc, out = harness(monkeypatch, d, "register", "tiny")
    assert rc == 0, out
    filler = _fill(d, leave_kb=40)  # room for a run or two, not for eight
    rc, out = harness(monkeypatch, d, "run", "tiny", "--block-size", "2")
    assert rc == 2, out
    assert "no space left" in out and "hint:" in out and "Traceback" not in out, out
    assert statuses(d / "runs" / "mlflow.db")["RUNNING"] == 0, "a run was left RUNNING on the full disk"

    filler.unlink()
    rc, out = harness(monkeypatch, d, "run", "tiny", "--block-size", "2")
    assert rc == 0, out
    assert_consistent(d, cells=8)

    filler = _fill(d, leave_kb=0)
    rc, out = harness(monkeypatch, d, "report", "tiny")
    assert rc == 2 and "no space left" in out and "Traceback" not in out, out
    filler.unlink()
    rc, out = harness(monkeypatch, d, "report", "tiny")
    assert rc == 0, out

    # The same store seen through a read-only bind mount (a remount would be refused while
    # this process holds the database open).
    ro = d.parent / "read-only"
    ro.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(d), str(ro)], capture_output=True, timeout=30).returncode == 0
    try:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True, text=True, timeout=30)
        if not mounted or r.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here ({r.stderr.strip()})")
        rc, out = harness(monkeypatch, ro, "run", "tiny")
        assert rc == 2 and "read-only" in out and "hint:" in out and "Traceback" not in out, out
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True, timeout=30)
