"""Kill -9 mid-study, then resume: only the missing runs train, no cell is finished twice."""

from __future__ import annotations

import collections
import signal
import time

from conftest import harness_subprocess, tiny_hypothesis, write

from harness.tracking import Store


def _ended(store_hyp="tiny"):
    st = Store()
    runs = st.cell_runs("tiny", st.registrations(store_hyp)[0].version)
    return runs


def test_sigkill_then_resume_finishes_only_missing_runs(project):
    # 2 variants x 6 seeds in blocks of 1 seed, slow enough to kill mid-way.
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=6, steps=300))
    proc = harness_subprocess("run", "tiny", "--block-size", "1", cwd=project)
    deadline = time.time() + 120
    finished = 0
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            finished = sum(r.info.status == "FINISHED" for r in _ended())
        except Exception:  # noqa: BLE001  (store not created yet)
            continue
        if finished >= 3:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    runs = _ended()
    done_before = {r.data.tags["harness.key"] for r in runs if r.info.status == "FINISHED"}
    assert 3 <= len(done_before) < 12, "the kill must land mid-study"

    proc = harness_subprocess("run", "tiny", "--block-size", "1", cwd=project)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    runs = _ended()
    finished = collections.Counter(r.data.tags["harness.key"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == 12 and max(finished.values()) == 1, finished
    assert f"trained {12 - len(done_before)} runs" in output, output
    # The run interrupted by the kill is not counted: it is KILLED, never FINISHED.
    statuses = collections.Counter(r.info.status for r in runs)
    assert statuses["RUNNING"] == 0
    assert statuses["FINISHED"] == 12


def test_two_concurrent_runs_never_train_the_same_cell(project):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=4, steps=200))
    # Create the store and registration first, as `harness run` would, then race two runs.
    first = harness_subprocess("register", "tiny", cwd=project)
    assert first.wait(timeout=120) == 0
    a = harness_subprocess("run", "tiny", "--block-size", "1", cwd=project, threads=1)
    b = harness_subprocess("run", "tiny", "--block-size", "1", cwd=project, threads=1)
    out_a, _ = a.communicate(timeout=300)
    out_b, _ = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    runs = _ended()
    keys = collections.Counter(r.data.tags["harness.key"] for r in runs)
    assert len(keys) == 8 and max(keys.values()) == 1, keys
    assert "claimed" in out_a + out_b or "already done" in out_a + out_b
