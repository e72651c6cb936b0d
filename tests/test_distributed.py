"""Distributed execution against real services: PostgreSQL, an MLflow tracking server, a
two-node Ray cluster and submitit (tests/services.py; .ci/run starts them).

One suite for every executor (as Optuna tests every storage with one suite): the same study on
local (a process pool), ray and slurm (a real single-node Slurm: munged, slurmctld, slurmd)
ends with exactly one FINISHED run per cell and the same numbers. Then the
fault tests: a worker SIGKILLed mid-block, the tracking server restarted mid-study, two
drivers on one study, a dead worker's Optuna trial.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conftest import harness_subprocess, tiny_hypothesis, write

pytestmark = pytest.mark.slow


def _project(tmp_path: Path, seeds: int = 4, steps: int = 20) -> tuple[Path, str]:
    hid = f"tiny_{uuid.uuid4().hex[:8]}"  # unique: the shared tracking server holds every test's studies
    write(tmp_path / "hypotheses" / f"{hid}.py", tiny_hypothesis(seeds=seeds, steps=steps))
    return tmp_path, hid


def _run(cwd: Path, *args, env: dict | None = None, timeout: float = 300) -> tuple[int, str]:
    p = harness_subprocess("run", *args, cwd=cwd, threads=1, extra_env=env)
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def _cells(store: str, hid: str) -> dict[tuple[str, int], list]:
    from harness.tracking import Store

    st = Store(store, create=False)
    reg = st.registrations(hid)[-1]
    out: dict = {}
    for r in st.cell_runs(hid, reg.version):
        t = r.data.tags
        out.setdefault((t["harness.variant"], int(t["harness.seed"])), []).append(r)
    return out


def _assert_exactly_one_finished(cells: dict, n: int) -> None:
    assert len(cells) == n, sorted(cells)
    for key, runs in cells.items():
        fin = [r for r in runs if r.info.status == "FINISHED"]
        assert len(fin) == 1, (key, [r.info.status for r in runs])


def _metrics(cells: dict) -> dict:
    return {k: next(r for r in rs if r.info.status == "FINISHED").data.metrics["nll"] for k, rs in cells.items()}


def _trained(out: str) -> int:
    m = re.search(r": trained (\d+) runs \((\d+) finished, (\d+) diverged\)", out)
    assert m, out
    return int(m.group(1))


EXECUTORS = {
    "local": ["--executor", "local", "--workers", "2"],
    "ray": ["--executor", "ray"],  # --address added from the fixture
    "slurm": ["--executor", "slurm", "--slurm-time", "10"],  # a real single-node Slurm (SLURM_CONF)
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The numbers of an in-process run (sqlite store, one thread): every executor must match."""
    d = tmp_path_factory.mktemp("ref")
    cwd, hid = _project(d)
    rc, out = _run(cwd, hid)
    assert rc == 0, out
    return hid, (cwd / "hypotheses" / f"{hid}.py").read_text(), _metrics(_cells(str(cwd / "runs"), hid))


# ---------------------------------------------------------------------- the shared suite
# Every executor on a database store; the tracking-server store with the distributed executor
# (it is the same Store either way: the executor never sees the store's kind).
@pytest.mark.parametrize(("executor", "store_kind"), [("local", "postgresql"), ("ray", "postgresql"),
                                                      ("slurm", "postgresql"), ("ray", "http")])
def test_every_executor_runs_the_study_once_and_resumes_the_rest(executor, store_kind, tmp_path, pg_db,
                                                                 mlflow_server, ray_cluster, slurm_cluster, reference):
    ref_id, source, ref = reference
    hid = f"tiny_{uuid.uuid4().hex[:8]}"
    write(tmp_path / "hypotheses" / f"{hid}.py", source)
    store = pg_db if store_kind == "postgresql" else mlflow_server
    args = [hid, "--store", store, *EXECUTORS[executor], "--block-size", "2"]
    if store_kind == "http":
        args += ["--db", pg_db]
    if executor == "ray":
        args += ["--address", ray_cluster]
    env = {"SLURM_CONF": slurm_cluster}
    rc, out = _run(tmp_path, *args, "--seeds", "2", env=env)
    assert rc == 0, out
    assert "claims lease" in out, out  # a shared store: database leases, never flock files
    assert _trained(out) == 4
    rc, out = _run(tmp_path, *args, env=env)
    assert rc == 0, out
    assert _trained(out) == 4 and "4 were already done" in out, out  # only the rest was submitted
    assert re.search(r"runs 8/8 ended", out), out  # the same progress lines on every executor
    cells = _cells(store, hid)
    _assert_exactly_one_finished(cells, 8)
    got = _metrics(cells)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), (k, got[k], v)
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # no worker wrote a sqlite file
    if executor in ("local", "ray") and (executor == "ray") == (store_kind == "http"):
        for cmd in (["report", hid, "--store", store], ["list", "--store", store]):
            p = harness_subprocess(*cmd, cwd=tmp_path, threads=1)
            text = p.communicate(timeout=300)[0]
            assert p.returncode == 0 and hid in text, text
        if store_kind == "http":
            p = harness_subprocess("ui", "--store", store, cwd=tmp_path, threads=1)
            text = p.communicate(timeout=120)[0]
            assert p.returncode == 0 and store in text, text


def test_submitits_local_executor_runs_the_same_jobs_without_slurm(tmp_path, pg_db):
    cwd, hid = _project(tmp_path, seeds=2, steps=10)
    rc, out = _run(cwd, hid, "--store", pg_db, "--executor", "slurm", "--slurm-cluster", "local", "--block-size", "1",
                   env={"PATH": "/usr/bin:/bin"})  # no sbatch needed
    assert rc == 0 and "submitit local executor" in out, out
    _assert_exactly_one_finished(_cells(pg_db, hid), 4)


def test_executors_that_cannot_start_fail_before_registering(tmp_path, pg_db, ray_cluster):
    cwd, hid = _project(tmp_path)
    rc, out = _run(cwd, hid, "--store", pg_db, "--executor", "ray", "--address", "127.0.0.1:1")
    assert rc == 2 and "--address 127.0.0.1:1" in out and "no Ray cluster" in out, out
    rc, out = _run(cwd, hid, "--store", pg_db, "--executor", "ray", "--address", ray_cluster, "--ray-gpus", "1")
    assert rc == 2 and "--ray-gpus 1" in out and "GPUs" in out, out  # would wait forever in Ray's queue
    env = {"PATH": str(tmp_path)}  # no sbatch on this PATH
    rc, out = _run(cwd, hid, "--store", pg_db, "--executor", "slurm", env=env)
    assert rc == 2 and "sbatch" in out, out
    from harness.tracking import Store

    assert Store(pg_db).registrations(hid) == []  # nothing was registered
    rc, out = _run(cwd, hid, "--executor", "ray")  # the default sqlite store
    assert rc == 2 and "sqlite" in out and "postgresql://" in out, out
    assert not (cwd / "runs").exists()  # refused before the file was created
    rc, out = _run(cwd, hid, "--executor", "nope")
    assert rc == 2 and "--executor nope" in out, out


# ---------------------------------------------------------------------- leases
def test_leases_exactly_one_claimant_wins_each_key(pg_db):
    from harness.claims import LeaseClaims

    keys = [f"v/k{i}" for i in range(40)]
    claimants = [LeaseClaims(pg_db, ttl=30) for _ in range(6)]
    won: dict[int, list] = {}
    barrier = threading.Barrier(len(claimants))

    def grab(i: int) -> None:
        barrier.wait()
        won[i] = claimants[i].acquire(keys)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(len(claimants))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(k for ks in won.values() for k in ks)
    assert set(counts) == set(keys) and set(counts.values()) == {1}, counts
    assert sum(1 for ks in won.values() if ks) >= 1
    for c in claimants:
        c.close()


def test_a_slow_live_worker_is_never_preempted_and_a_dead_ones_lease_expires(pg_db):
    from harness.claims import LeaseClaims

    ttl = 1.0
    alive, other = LeaseClaims(pg_db, ttl=ttl), LeaseClaims(pg_db, ttl=ttl)
    assert alive.acquire(["v/cell"]) == ["v/cell"]
    end = time.monotonic() + 5 * ttl  # five lease lengths of "training"
    while time.monotonic() < end:
        assert other.acquire(["v/cell"]) == []
        time.sleep(0.1)
    assert alive.still_held(["v/cell"]) == {"v/cell"}
    alive._stop.set()  # the worker dies: its heartbeat stops, nothing is released
    alive._beat.join()  # a beat already in flight ends
    # The bound that holds on any machine, on the database's clock: the dead owner's lease
    # runs to (its last heartbeat + ttl), and nobody takes the key over before then. (Measured
    # from when the heartbeat stopped it is only >= 0.75 ttl minus a beat's latency: the last
    # beat may be up to ttl/4 older.)
    (last_expiry,) = other._exec("SELECT expires_at FROM harness_leases WHERE key = 'v/cell'")[0]
    t_dead = time.monotonic()
    while not other.acquire(["v/cell"]):
        assert time.monotonic() - t_dead < 3 * ttl, "an expired lease was never taken over"
        time.sleep(0.05)
    (taken_at, owner) = other._exec("SELECT acquired_at, owner FROM harness_leases WHERE key = 'v/cell'")[0]
    assert owner == other.owner
    assert taken_at > last_expiry, (taken_at, last_expiry)  # not before the lease ran out
    assert alive.still_held(["v/cell"]) == set()  # the dead owner can no longer finish the cell
    alive.close()
    other.close()


# ---------------------------------------------------------------------- faults
@pytest.mark.parametrize("executor", ["local", "ray", "slurm"])
def test_a_worker_killed_mid_block_has_its_cells_retrained_once_by_another(executor, tmp_path, pg_db, ray_cluster,
                                                                           slurm_cluster):
    cwd, hid = _project(tmp_path, seeds=3, steps=20)
    once = tmp_path / "killed-once"
    env = {"HARNESS_FAILPOINT": "cell.started", "HARNESS_FAILPOINT_ONCE": str(once), "HARNESS_LEASE_SECONDS": "3",
           "SLURM_CONF": slurm_cluster}
    where = {"ray": ["--address", ray_cluster], "slurm": ["--slurm-time", "10"], "local": ["--workers", "2"]}[executor]
    rc, out = _run(cwd, hid, "--store", pg_db, "--executor", executor, *where, "--block-size", "3", env=env)
    assert once.exists(), out  # a worker really was killed
    assert rc == 0, out
    assert "a worker was lost" in out, out
    cells = _cells(pg_db, hid)
    _assert_exactly_one_finished(cells, 6)
    killed = [r for rs in cells.values() for r in rs if r.info.status == "KILLED"]
    # One block of 3 seeds died; a broken process pool (local) also stops the other block in flight
    # (those of its runs not yet logged).
    statuses = [r.info.status for rs in cells.values() for r in rs]
    assert len(killed) == 3 or (executor == "local" and 3 <= len(killed) <= 6), statuses
    for r in killed:
        key = (r.data.tags["harness.variant"], int(r.data.tags["harness.seed"]))
        fin = next(x for x in cells[key] if x.info.status == "FINISHED")
        assert fin.data.tags["harness.worker"] != r.data.tags["harness.worker"]  # another worker
        assert fin.info.start_time - r.info.start_time >= 0.5 * 3000  # after the lease, not before


def test_the_tracking_server_restarting_mid_study_loses_and_duplicates_nothing(tmp_path, pg_server, pg_db):
    from services import services as svc

    backend = svc.create_database(pg_server, f"mlr_{uuid.uuid4().hex[:8]}")
    port = svc.free_port()
    url, server = svc.start_mlflow(tmp_path / "server", backend, port)
    try:
        cwd, hid = _project(tmp_path / "p", seeds=6, steps=60)
        p = harness_subprocess("run", hid, "--store", url, "--db", pg_db, "--block-size", "1", cwd=cwd, threads=1)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
        reader.start()
        end = time.monotonic() + 300
        while not any(re.search(r"runs ([2-9]|1[01])/12 ended", ln) for ln in lines):
            assert p.poll() is None and time.monotonic() < end, "".join(lines)
            time.sleep(0.2)
        svc.stop_process(server)  # mid-study: some runs ended, others not started
        down = time.monotonic()
        time.sleep(3)
        url2, server = svc.start_mlflow(tmp_path / "server", backend, port)
        outage = time.monotonic() - down
        assert p.wait(timeout=400) == 0, "".join(lines)
        reader.join(timeout=10)
        out = "".join(lines)
        assert _trained(out) == 12, out
        cells = _cells(url2, hid)
        _assert_exactly_one_finished(cells, 12)
        assert all(len(rs) == 1 for rs in cells.values()), out  # nothing duplicated
        assert outage > 3
    finally:
        svc.stop_process(server)


def test_a_killed_driver_is_rerun_and_attaches_to_the_slurm_jobs_still_running(tmp_path, pg_db, slurm_cluster):
    """Slurm jobs outlive their driver: the next `harness run` waits for their live leases
    and submits only what no job holds; nothing is trained twice."""
    import signal

    cwd, hid = _project(tmp_path, seeds=4, steps=150)
    args = ["run", hid, "--store", pg_db, "--executor", "slurm", "--slurm-time", "10", "--block-size", "2"]
    env = {"SLURM_CONF": slurm_cluster}
    p = harness_subprocess(*args, cwd=cwd, threads=1, extra_env=env)
    end = time.monotonic() + 240
    while True:  # until a job's runs exist: the jobs are running
        assert p.poll() is None and time.monotonic() < end, p.stdout.read() if p.poll() is not None else "timeout"
        try:
            if any(r.info.status == "RUNNING" for rs in _cells(pg_db, hid).values() for r in rs):
                break
        except IndexError:  # not registered yet
            pass
        time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    rc, out = _run(cwd, *args[1:], env=env, timeout=400)
    assert rc == 0, out
    cells = _cells(pg_db, hid)
    _assert_exactly_one_finished(cells, 8)
    assert all(len(rs) == 1 for rs in cells.values()), out  # the orphaned jobs' runs were kept, not retrained
    assert _trained(out) < 8, out


def test_two_drivers_on_one_study_split_the_work(tmp_path, pg_db):
    cwd, hid = _project(tmp_path, seeds=6, steps=60)
    args = [hid, "--store", pg_db, "--block-size", "1"]
    procs = []
    for _ in range(2):
        p = harness_subprocess("run", *args, cwd=cwd, threads=1, extra_env={"HARNESS_LEASE_SECONDS": "5"})
        procs.append(p)
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = [_trained(o) for o in outs]
    assert sum(trained) == 12 and min(trained) >= 1, (trained, outs)  # split, never duplicated
    _assert_exactly_one_finished(_cells(pg_db, hid), 12)
    assert all(len(rs) == 1 for rs in _cells(pg_db, hid).values())  # not one run trained twice


def test_a_dead_workers_trial_is_failed_and_reasked_with_the_budget_exact(tmp_path, pg_db, ray_cluster):
    import optuna
    from optuna.trial import TrialState

    from harness import tuning

    cwd = tmp_path
    hid = f"tuned_{uuid.uuid4().hex[:8]}"
    write(cwd / "hypotheses" / f"{hid}.py", TUNED)
    once = tmp_path / "killed-once"
    env = {"HARNESS_FAILPOINT": "trial.started", "HARNESS_FAILPOINT_ONCE": str(once), "HARNESS_LEASE_SECONDS": "3"}
    rc, out = _run(cwd, hid, "--store", pg_db, "--executor", "ray", "--address", ray_cluster, "--block-size", "2",
                   env=env, timeout=500)
    assert once.exists(), out
    assert rc == 0, out
    st = tuning.storage(pg_db, cwd / "runs")
    states = Counter()
    for s in st.get_all_studies():
        study = optuna.load_study(study_name=s.study_name, storage=st)
        c = Counter(t.state for t in study.get_trials(deepcopy=False))
        assert c[TrialState.COMPLETE] == 4, (s.study_name, c)  # the budget, exactly
        assert c[TrialState.RUNNING] == 0
        states.update(c)
    assert states[TrialState.FAIL] >= 1, states  # the dead worker's trial, failed and asked again
    _assert_exactly_one_finished(_cells(pg_db, hid), 4)


TUNED = '''
"""Tuned tiny study for the distributed tuning test."""
from harness import Hypothesis, LogUniform, Prediction, Training, Tuning

hypothesis = Hypothesis(
    claim="A linear IAF posterior lowers the beta-VAE's NLL (tuned).",
    source="tests", dataset="digits", model="beta_vae",
    fixed={"latent_dim": 4, "hidden": 32},
    ablate={"posterior": ["diagonal", "linear_iaf"]},
    prediction=Prediction(metric="neg_elbo", direction="lower", effect=0.5, test="t"),
    seeds=2,
    training=Training(steps=15, batch_size=64, eval_samples=2, log_every=5, n_samples=16),
    tuning=Tuning(space={"lr": LogUniform(1e-4, 1e-2)}, trials=4, seeds_per_trial=1),
)
'''
