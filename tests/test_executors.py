"""Executor and claims options: configuration errors are located, before anything starts."""

from __future__ import annotations

import pytest

from harness import executors
from harness.claims import FlockClaims, LeaseClaims, cell_key, lease_seconds
from harness.errors import HarnessError


def test_slurm_settings_come_from_pyproject_and_options_override(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text('[tool.harness.slurm]\npartition = "gpu"\ntime = 30\ngpus-per-task = 1\n')
    assert executors.slurm_settings(p) == {"partition": "gpu", "time": 30, "gpus_per_task": 1}
    assert executors.slurm_settings(p, time=90, partition=None)["time"] == 90
    ex = executors.SlurmExecutor(tmp_path / "jobs", None, **executors.slurm_settings(p))
    assert "partition=gpu" in ex.describe()


@pytest.mark.parametrize(("body", "needle"), [
    ('[tool.harness.slurm]\npartiton = "gpu"\n', "unknown key 'partiton'"),
    ('[tool.harness.slurm]\ntime = "soon"\n', "time = 'soon'"),
    ("[tool.harness.slurm\n", "cannot read"),
])
def test_a_bad_slurm_table_names_the_file_and_the_key(tmp_path, body, needle):
    p = tmp_path / "pyproject.toml"
    p.write_text(body)
    with pytest.raises(HarnessError) as e:
        executors.slurm_settings(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_bad_executor_options_are_refused():
    with pytest.raises(HarnessError, match="--executor nope"):
        executors.make("nope")
    with pytest.raises(HarnessError, match="--workers 0"):
        executors.make("local", workers=0)
    with pytest.raises(HarnessError, match="--ray-gpus -1"):
        executors.make("ray", ray_gpus=-1)
    with pytest.raises(HarnessError, match="--slurm-cluster k8s"):
        executors.make("slurm", slurm_cluster="k8s")


def test_lease_length_and_database_url_are_checked(monkeypatch):
    monkeypatch.setenv("HARNESS_LEASE_SECONDS", "-3")
    with pytest.raises(HarnessError, match="HARNESS_LEASE_SECONDS"):
        lease_seconds()
    monkeypatch.setenv("HARNESS_LEASE_SECONDS", "7.5")
    assert lease_seconds() == 7.5
    with pytest.raises(HarnessError, match="PostgreSQL"):
        LeaseClaims("sqlite:///x.db")


def test_flock_claims_keep_the_file_names_of_earlier_releases(tmp_path):
    """A store written before the claims backends existed keeps working: same lock paths."""
    from types import SimpleNamespace

    from harness.claims import claim_name

    v = SimpleNamespace(level="a b", stratum="", id="a b")
    c = FlockClaims(tmp_path)
    with c.cells("v1", v, [0, 1]) as held:
        assert held == [0, 1]
        with c.cells("v1", v, [0, 1, 2]) as again:  # another open file: the held ones are taken
            assert again == [2]
    assert (tmp_path / "claims" / "v1" / f"{claim_name(v)}.seed0.lock").exists()
    names = sorted(p.name for p in (tmp_path / "claims" / "v1").iterdir())
    assert names == sorted(f"{cell_key('v1', v, s).split('/')[1]}.lock" for s in (0, 1, 2))


def test_describe_never_fails_on_an_empty_message():
    """Located errors quote an exception's first line; an exception with no message (a bare
    ``RuntimeError()``) used to raise IndexError inside the error path itself."""
    from harness.errors import describe

    assert describe(RuntimeError()) == "RuntimeError"
    assert describe(ValueError("  first\nsecond")) == "ValueError: first"
    assert describe(OSError("x" * 500), 10) == "OSError: " + "x" * 10
