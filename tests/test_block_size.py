"""Who sizes a block (issue 23): without ``--block-size`` a job sent to a Ray or Slurm worker
carries a variant's cells, and the worker splits them into stacked blocks by its own device's
rule (measured GPU memory; on a CPU ``$HARNESS_CPU_MAX_BLOCK``, else 16). The driver, which may
be a GPU-less login node, no longer fixes it. Results never depend on the split."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from types import SimpleNamespace

import pytest
from conftest import harness_subprocess, tiny_hypothesis, write

from harness import engine
from harness.errors import HarnessError
from harness.executors import LocalExecutor
from harness.plan import Job
from harness.study import job_cells, spread

SEEDS, STEPS = 5, 12


def _project(tmp_path) -> str:
    hid = f"tiny_{uuid.uuid4().hex[:8]}"  # unique: a shared store may hold other tests' studies
    write(tmp_path / "hypotheses" / f"{hid}.py", tiny_hypothesis(seeds=SEEDS, steps=STEPS))
    return hid


def _runs(store: str, hid: str) -> list:
    from harness.tracking import Store

    st = Store(store, create=False)
    return st.cell_runs(hid, st.registrations(hid)[-1].version)


def _blocks(runs: list) -> dict[str, list[tuple[int, int, str]]]:
    """variant -> [(seed, its block's size, the worker that trained it)], by seed."""
    out = defaultdict(list)
    for r in runs:
        t = r.data.tags
        out[t["harness.variant"]].append((int(t["harness.seed"]), int(t["harness.block_size"]), t["harness.worker"]))
    return {v: sorted(x) for v, x in out.items()}


def _metrics(runs: list) -> dict:
    return {(r.data.tags["harness.variant"], int(r.data.tags["harness.seed"])): r.data.metrics["nll"] for r in runs}


def _run(cwd, *args, env=None):
    p = harness_subprocess("run", *args, cwd=cwd, threads=1, extra_env=env)
    out, _ = p.communicate(timeout=400)
    assert p.returncode == 0, out
    return out


def _assert_split_on_one_worker(runs: list) -> None:
    """Each variant: one job (one worker) whose 5 cells were stacked as blocks of 2, 2 and 1."""
    blocks = _blocks(runs)
    assert len(blocks) == 2, blocks
    for variant, cells in blocks.items():
        assert [s for s, _, _ in cells] == list(range(SEEDS)), (variant, cells)
        assert [b for _, b, _ in cells] == [2, 2, 2, 2, 1], (variant, cells)
        assert len({w for _, _, w in cells}) == 1, (variant, cells)  # one job carried the variant


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    """The reference: the same study with an explicit --block-size 2, planned by the driver."""
    d = tmp_path_factory.mktemp("explicit")
    (d / "hypotheses").mkdir()
    hid = _project(d)
    _run(d, hid, "--block-size", "2")
    runs = _runs(str(d / "runs"), hid)
    assert sorted(b for _, b, _ in sum(_blocks(runs).values(), [])) == [1, 1] + [2] * 8
    return (d / "hypotheses" / f"{hid}.py").read_text(), _metrics(runs)


# ---------------------------------------------------------------------- the worker's rule
def test_the_cpu_cap_is_read_from_the_workers_environment(monkeypatch, tmp_path):
    from harness import data, models

    ds = data.load("digits")
    cfg, tr = models.VAE.Config(), engine.Training(steps=2)
    monkeypatch.delenv("HARNESS_CPU_MAX_BLOCK", raising=False)
    assert engine.auto_block_size(models.VAE, cfg, tr, ds, "cpu") == engine.CPU_MAX_BLOCK
    monkeypatch.setenv("HARNESS_CPU_MAX_BLOCK", "2")
    assert engine.auto_block_size(models.VAE, cfg, tr, ds, "cpu") == 2
    assert engine.auto_block_size(models.VAE, cfg, tr, ds, "cpu", cap=3) == 3  # --block-size wins
    assert [engine.fit_block(models.VAE, cfg, tr, ds, "cpu", n) for n in (1, 2, 5)] == [1, 2, 2]
    monkeypatch.setenv("HARNESS_CPU_MAX_BLOCK", "0")
    with pytest.raises(HarnessError, match=r"\$HARNESS_CPU_MAX_BLOCK='0'"):
        engine.auto_block_size(models.VAE, cfg, tr, ds, "cpu")


def test_spread_gives_each_slot_work_and_never_caps_a_block():
    a, b = SimpleNamespace(level="a", stratum=""), SimpleNamespace(level="b", stratum="")
    jobs = [Job(a, list(range(5))), Job(b, list(range(3)))]

    def sizes(slots):
        return [(j.variant.level, len(j.seeds)) for j in spread(jobs, slots)]

    assert sizes(None) == [("a", 5), ("b", 3)]  # unknown slots: one job per variant
    assert sizes(2) == [("a", 5), ("b", 3)]
    assert sizes(4) == [("a", 3), ("a", 2), ("b", 2), ("b", 1)]
    assert sizes(100) == [("a", 1)] * 5 + [("b", 1)] * 3  # never an empty job
    big = [Job(a, list(range(job_cells()))), Job(a, list(range(job_cells(), job_cells() + 10)))]
    assert [len(j.seeds) for j in spread(big, None)] == [job_cells() // 2 + 5] * 2  # at most job_cells each
    assert sorted(s for j in spread(big, 3) for s in j.seeds) == list(range(job_cells() + 10))


# ---------------------------------------------------------------------- through the driver
class WorkerEnvironment(LocalExecutor):
    """The in-process executor, marked as one whose workers size their blocks, with an
    environment of its own while a job runs: a worker's, which the driver does not share."""

    worker_sizes_blocks = True

    def __init__(self, env: dict):
        super().__init__(1)
        self.env, self.specs = env, []

    def run(self, fn, specs):
        self.specs += specs

        def job(spec):
            old = {k: os.environ.get(k) for k in self.env}
            os.environ.update(self.env)
            try:
                return fn(spec)
            finally:
                for k, v in old.items():
                    os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)

        yield from super().run(job, specs)


def test_the_driver_sends_a_variants_cells_and_the_worker_splits_them(project, monkeypatch, explicit):
    """The driver's environment says 16 seeds per block, the worker's 2: the blocks are 2, 2, 1."""
    from harness.collect import collect
    from harness.registration import register
    from harness.study import run_study
    from harness.tracking import Store

    source, ref = explicit
    monkeypatch.delenv("HARNESS_CPU_MAX_BLOCK", raising=False)
    write(project / "hypotheses" / "tiny.py", source)
    col = collect("tiny")
    st = Store()
    reg, _ = register(col, st)
    ex = WorkerEnvironment({"HARNESS_CPU_MAX_BLOCK": "2"})
    summary = run_study(col, st, reg, executor=ex, device="cpu")
    assert summary.trained == 2 * SEEDS
    assert [(s["level"], s["seeds"], s["block_size"]) for s in ex.specs] == [
        ("8", list(range(SEEDS)), None), ("16", list(range(SEEDS)), None)]
    runs = _runs(str(project / "runs"), "tiny")
    _assert_split_on_one_worker(runs)
    assert _metrics(runs) == pytest.approx(ref, rel=1e-6, abs=1e-7)  # the same numbers as --block-size 2


def test_the_local_executor_still_sizes_blocks_in_the_driver(project, explicit):
    """--executor local: the driver's device is its workers'; it plans the blocks as before."""
    source, ref = explicit
    write(project / "hypotheses" / "tiny.py", source)
    _run(project, "tiny", env={"HARNESS_CPU_MAX_BLOCK": "2"})
    runs = _runs(str(project / "runs"), "tiny")
    assert sorted(b for _, b, _ in sum(_blocks(runs).values(), [])) == [1, 1] + [2] * 8
    assert _metrics(runs) == pytest.approx(ref, rel=1e-6, abs=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["slurm-local", "ray"])
def test_a_distributed_worker_splits_its_job_by_its_own_device(executor, tmp_path, pg_db, ray_cluster, explicit):
    """The real executors' code path: submitit's job files (run here, no Slurm queue needed) and
    a two-node Ray cluster (2 slots: one job per variant). The worker's environment carries
    the CPU cap (Ray's runtime_env, the job file's environment)."""
    source, ref = explicit
    hid = f"tiny_{uuid.uuid4().hex[:8]}"
    write(tmp_path / "hypotheses" / f"{hid}.py", source)
    where = {"slurm-local": ["--executor", "slurm", "--slurm-cluster", "local"],
             "ray": ["--executor", "ray", "--address", ray_cluster]}[executor]
    out = _run(tmp_path, hid, "--store", pg_db, *where, env={"HARNESS_CPU_MAX_BLOCK": "2"})
    assert "blocks are sized here" not in out, out
    runs = _runs(pg_db, hid)
    _assert_split_on_one_worker(runs)
    assert _metrics(runs) == pytest.approx(ref, rel=1e-6, abs=1e-7)
