"""The finished-cell index (harness/cellindex.py) on a real MLflow tracking server and a real
PostgreSQL (tests/services.py): planning an ``http://`` store with ``--db`` reads the index, and
the index never makes a cell count as ended that MLflow does not have ended.

No mocks: where calls are counted, the real method is wrapped and still answers.
"""

from __future__ import annotations

import collections
import signal
import uuid

import pytest
from conftest import harness_subprocess, tiny_hypothesis, write

from harness.cellindex import TABLE, CellIndex, for_store
from harness.claims import FlockClaims, LeaseClaims
from harness.collect import collect
from harness.engine import SeedResult
from harness.plan import FINISHED_STATUSES, Job, cell_status, plan
from harness.registration import register
from harness.tracking import Store


def _study(tmp_path, store_uri: str, seeds: int = 3):
    hid = f"idx_{uuid.uuid4().hex[:8]}"  # unique: the shared tracking server holds every test's studies
    path = write(tmp_path / "hypotheses" / f"{hid}.py", tiny_hypothesis(seeds=seeds, steps=10))
    col = collect(str(path))
    store = Store(store_uri)
    reg, _ = register(col, store)
    return col, store, reg


def _run(store, col, reg, v, seed: int, status: str) -> str:
    """A child run of cell (v, seed) left in ``status``, written through the store only (the
    index is not told: as a `harness run` without --db, or a crash, leaves it)."""
    rid = store.start_cell(reg, col.id, v, seed, {"model": "tiny_vae"}, {"host": "test"})
    if status in FINISHED_STATUSES:
        store.finish_cell(rid, SeedResult(seed=seed, status=status, metrics={"nll": 1.0 + seed}), None)
    elif status == "KILLED":
        store.kill(rid)
    return rid


def _rows(index: CellIndex, col, reg) -> dict[tuple[str, int], tuple[str, str]]:
    rows = index._exec(f"SELECT level, seed, run_id, status FROM {TABLE} WHERE hyp_id = :h AND version = :v",
                       {"h": col.id, "v": reg.version})
    return {(lv, s): (rid, st) for lv, s, rid, st in rows}


def _summary(jobs, done):
    return sorted((j.variant.id, tuple(j.seeds)) for j in jobs), done


def _done_cells(status) -> set:
    return {k for k, runs in status.items() if any(r.status in FINISHED_STATUSES for r in runs)}


def test_an_index_hit_plans_exactly_what_the_full_scan_plans(project, mlflow_server, pg_db):
    col, store, reg = _study(project, mlflow_server)
    a, b = col.hypothesis.variants
    _run(store, col, reg, a, 0, "FINISHED")
    _run(store, col, reg, a, 1, "FAILED")  # diverged: a result, ended
    _run(store, col, reg, a, 2, "KILLED")
    _run(store, col, reg, a, 2, "FINISHED")  # retrained after the kill
    _run(store, col, reg, b, 0, "RUNNING")
    _run(store, col, reg, b, 1, "FINISHED")  # (b, 2): no run at all
    full = plan(col, store, reg.version, block_size=2)
    index = CellIndex(pg_db)
    filled = plan(col, store, reg.version, block_size=2, index=index)  # first use: one scan fills it
    hit = plan(col, store, reg.version, block_size=2, index=index)
    fresh = plan(col, store, reg.version, block_size=2, index=CellIndex(pg_db))  # another process: the mark is in the db
    assert _summary(*full) == _summary(*filled) == _summary(*hit) == _summary(*fresh)
    assert full[1] == 4
    assert _done_cells(cell_status(store, col.id, reg.version)) == _done_cells(
        cell_status(store, col.id, reg.version, index=index)) == {(a.level, "", 0), (a.level, "", 1), (a.level, "", 2),
                                                                  (b.level, "", 1)}
    assert {st for _, st in _rows(index, col, reg).values()} == {"FINISHED", "FAILED"}  # ended cells only


def test_a_run_finished_in_mlflow_but_not_in_the_index_is_still_found(project, mlflow_server, pg_db):
    col, store, reg = _study(project, mlflow_server)
    a, b = col.hypothesis.variants
    index = CellIndex(pg_db)
    assert plan(col, store, reg.version, block_size=3, index=index)[1] == 0  # filled, empty
    # A crash between MLflow's write and the index's: the worker had recorded the run as
    # RUNNING, MLflow then marked it FINISHED, the index was never told.
    rid = store.start_cell(reg, col.id, a, 0, {}, {})
    index.record(col.id, reg.version, [(a.level, a.stratum, 0, rid, "RUNNING")])
    store.finish_cell(rid, SeedResult(seed=0, status="FINISHED", metrics={"nll": 1.0}), None)
    jobs, done = plan(col, store, reg.version, block_size=3, index=index)
    assert done == 1 and (a.id, (1, 2)) in _summary(jobs, done)[0]  # re-verified: counted, not planned again
    assert _rows(index, col, reg)[(a.level, 0)] == (rid, "FINISHED")  # and recorded

    # A cell that ended with no row at all (a `harness run` without --db on this store): the
    # plan cannot know it, but the worker's re-read after claiming asks MLflow, trains nothing
    # and records it, so the next plan counts it.
    _run(store, col, reg, b, 2, "FINISHED")
    assert plan(col, store, reg.version, block_size=3, index=index)[1] == 1
    claims = LeaseClaims(pg_db, ttl=30)
    try:
        from harness.jobs import execute

        counts = execute(col, store, reg, Job(b, [2]), "cpu", claims=claims)
    finally:
        claims.close()
    assert counts["trained"] == 0 and counts["done"] == 1
    assert plan(col, store, reg.version, block_size=3, index=index)[1] == 2
    assert len(store.cell_runs(col.id, reg.version)) == 2  # nothing was trained twice


def test_a_stale_row_for_a_run_not_finished_in_mlflow_does_not_count(project, mlflow_server, pg_db):
    col, store, reg = _study(project, mlflow_server)
    a, b = col.hypothesis.variants
    index = CellIndex(pg_db)
    plan(col, store, reg.version, block_size=3, index=index)  # filled, empty
    killed = _run(store, col, reg, a, 0, "KILLED")
    running = _run(store, col, reg, a, 1, "RUNNING")
    gone = _run(store, col, reg, a, 2, "FINISHED")
    store.client.delete_run(gone)  # deleted in MLflow after the fact
    index.record(col.id, reg.version, [(a.level, "", 0, killed, "RUNNING"), (a.level, "", 1, running, "RUNNING"),
                                       (a.level, "", 2, gone, "RUNNING")])
    jobs, done = plan(col, store, reg.version, block_size=3, index=index)
    assert done == 0 and {j.variant.id for j in jobs} == {a.id, b.id}
    rows = _rows(index, col, reg)
    assert rows[(a.level, 0)] == (killed, "KILLED") and rows[(a.level, 2)] == (gone, "KILLED")
    assert rows[(a.level, 1)] == (running, "RUNNING")  # still in training elsewhere: asked again next time

    # The rules that keep it so: a KILLED never replaces a newer run's row, an ended row is never rewritten.
    newer = _run(store, col, reg, a, 0, "RUNNING")
    index.record(col.id, reg.version, [(a.level, "", 0, newer, "RUNNING")])
    index.record(col.id, reg.version, [(a.level, "", 0, killed, "KILLED")])
    assert _rows(index, col, reg)[(a.level, 0)] == (newer, "RUNNING")
    done_id = _run(store, col, reg, b, 0, "FINISHED")
    index.record(col.id, reg.version, [(b.level, "", 0, done_id, "FINISHED")])
    index.record(col.id, reg.version, [(b.level, "", 0, "0" * 32, "RUNNING"), (b.level, "", 0, done_id, "KILLED")])
    assert _rows(index, col, reg)[(b.level, 0)] == (done_id, "FINISHED")


def test_http_planning_reads_the_index_and_never_whole_runs(project, mlflow_server, pg_db, monkeypatch):
    col, store, reg = _study(project, mlflow_server, seeds=2)
    a, _ = col.hypothesis.variants
    searches: list[str] = []
    real = store.client.search_runs

    def counted(experiment_ids, filter_string="", *args, **kw):  # the real call, counted
        searches.append(filter_string)
        return real(experiment_ids, filter_string, *args, **kw)

    monkeypatch.setattr(store.client, "search_runs", counted)
    plan(col, store, reg.version, block_size=2)
    assert len([f for f in searches if "harness.kind" in f]) == 1  # without the index: whole runs
    index = CellIndex(pg_db)
    plan(col, store, reg.version, block_size=2, index=index)  # the one fill scan
    searches.clear()
    for _ in range(3):
        plan(col, store, reg.version, block_size=2, index=index)
    assert searches == []  # nothing unsure: MLflow is not asked at all
    rid = _run(store, col, reg, a, 0, "RUNNING")
    index.record(col.id, reg.version, [(a.level, "", 0, rid, "RUNNING")])
    plan(col, store, reg.version, block_size=2, index=index)
    assert searches == [f"attributes.run_id IN ('{rid}')"]  # only the unsure row, by its id

    # Which stores get an index: a server store with lease claims (a --db), nothing else.
    claims = LeaseClaims(pg_db, ttl=30)
    try:
        assert isinstance(for_store(store, claims), CellIndex)
        assert for_store(store, FlockClaims(project)) is None
        assert for_store(Store(str(project / "sqlite")), claims) is None
    finally:
        claims.close()


def test_the_driver_plans_from_the_index_on_an_http_store(project, mlflow_server, pg_db, monkeypatch):
    from harness.study import run_study

    col, store, reg = _study(project, mlflow_server, seeds=2)
    calls = collections.Counter()
    real = store.cell_index

    def counted(hyp_id, version, variant=None, seeds=None):  # the real query, counted by kind
        calls["version" if variant is None else "variant"] += 1
        return real(hyp_id, version, variant, seeds)

    monkeypatch.setattr(store, "cell_index", counted)
    claims = LeaseClaims(pg_db, ttl=30)
    try:
        s = run_study(col, store, reg, device="cpu", block_size=2, claims=claims)
        assert s.trained == 4
        s = run_study(col, store, reg, device="cpu", block_size=2, claims=claims)
        assert s.trained == 0 and s.already_done == 4
    finally:
        claims.close()
    assert calls["version"] == 1  # the fill; every later plan read the index
    assert calls["variant"] == 2  # each block's re-read after claiming asks MLflow itself
    rows = _rows(CellIndex(pg_db), col, reg)
    assert len(rows) == 4 and {st for _, st in rows.values()} == {"FINISHED"}


def test_workers_that_never_write_the_index_cost_a_pass_not_an_endless_loop(project, mlflow_server, pg_db,
                                                                            monkeypatch):
    """Workers of another harness version (or whose writes fail) leave the index empty: the
    plan keeps calling their cells not done, the workers find them ended; the driver then
    records them from MLflow itself, so the study ends."""
    import threading

    from harness import jobs
    from harness.study import run_study

    col, store, reg = _study(project, mlflow_server, seeds=2)
    monkeypatch.setattr(jobs, "for_store", lambda store, claims: None)  # a worker without the index
    claims = LeaseClaims(pg_db, ttl=30)
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(s=run_study(col, store, reg, device="cpu", block_size=2,
                                                               claims=claims)), daemon=True)
    try:
        t.start()
        t.join(timeout=240)
        assert not t.is_alive(), "the driver re-planned the same cells forever"
    finally:
        claims.close()
    assert out["s"].trained == 4
    rows = _rows(CellIndex(pg_db), col, reg)
    assert len(rows) == 4 and {st for _, st in rows.values()} == {"FINISHED"}  # learnt by the driver
    assert len(store.cell_runs(col.id, reg.version)) == 4  # and nothing trained twice


def test_a_workers_reread_on_a_server_asks_for_its_seeds_only(project, mlflow_server, monkeypatch):
    col, store, reg = _study(project, mlflow_server, seeds=4)
    a, b = col.hypothesis.variants
    for v, s, status in ((a, 0, "FINISHED"), (a, 1, "KILLED"), (a, 1, "FINISHED"), (a, 2, "RUNNING"),
                         (b, 1, "FAILED"), (a, 3, "FINISHED")):
        _run(store, col, reg, v, s, status)
    searches: list[str] = []
    real = store.client.search_runs

    def counted(experiment_ids, filter_string="", *args, **kw):  # the real call, counted
        searches.append(filter_string)
        return real(experiment_ids, filter_string, *args, **kw)

    monkeypatch.setattr(store.client, "search_runs", counted)
    whole = cell_status(store, col.id, reg.version, a)
    searches.clear()
    some = cell_status(store, col.id, reg.version, a, seeds=[1, 2])
    assert some == {k: v for k, v in whole.items() if k[2] in (1, 2)} and len(some[(a.level, "", 1)]) == 2
    assert len(searches) == 2 and all("harness.seed" in f for f in searches)  # one search per seed, not the version
    assert cell_status(store, col.id, reg.version, b, seeds=[0, 1]) == cell_status(store, col.id, reg.version, b)


@pytest.mark.slow
def test_a_crash_between_mlflows_write_and_the_indexs_loses_and_duplicates_nothing(project, mlflow_server, pg_db):
    hid = f"idx_{uuid.uuid4().hex[:8]}"
    write(project / "hypotheses" / f"{hid}.py", tiny_hypothesis(seeds=3, steps=10))
    args = ["run", hid, "--store", mlflow_server, "--db", pg_db, "--block-size", "1"]
    env = {"HARNESS_LEASE_SECONDS": "5"}
    p = harness_subprocess(*args, cwd=project, threads=1, extra_env={**env, "HARNESS_FAILPOINT": "cell.ended@2"})
    out, _ = p.communicate(timeout=300)
    assert p.returncode == -signal.SIGKILL, out  # killed right after MLflow marked its 2nd run FINISHED
    store = Store(mlflow_server, create=False)
    reg = store.registrations(hid)[-1]
    col = collect(str(project / "hypotheses" / f"{hid}.py"))
    finished = {(r.variant, r.seed) for r in store.cell_index(hid, reg.version) if r.status == "FINISHED"}
    rows = _rows(CellIndex(pg_db), col, reg)
    assert len(finished) == 2 and {rows[k][1] for k in finished} == {"FINISHED", "RUNNING"}, (finished, rows)

    p = harness_subprocess(*args, cwd=project, threads=1, extra_env=env)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert "trained 4 runs" in out and "2 were already done" in out, out
    per_cell = collections.Counter((r.variant, r.seed) for r in store.cell_index(hid, reg.version))
    assert len(per_cell) == 6 and set(per_cell.values()) == {1}, per_cell  # one run per cell: none twice
    assert {st for _, st in _rows(CellIndex(pg_db), col, reg).values()} == {"FINISHED"}
