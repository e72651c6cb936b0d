"""Hostile hypothesis files, stores and names: each exits 2 with a located message (file, what,
how to fix), no traceback, and writes nothing."""

from __future__ import annotations

import collections
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import tiny_hypothesis, write

from harness.claims import claim
from harness.errors import HarnessError
from harness.hypothesis import Variant
from harness.tracking import Store


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def tiny_with(**replace: str) -> str:
    text = tiny_hypothesis(seeds=2, steps=5)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


LOOP = "import itertools\nfor _ in itertools.count():\n    try:\n        pass\n    except Exception:\n        pass\n"
HOSTILE_FILES = {
    "sys_exit_0": ("import sys\nsys.exit(0)\n", "called sys.exit(0)"),
    "sys_exit_3": ("import sys\nsys.exit(3)\n", "called sys.exit(3)"),
    "os_exit": ("import os\nos._exit(0)\n", "called os._exit(0)"),
    "endless_loop": (LOOP, "took longer than 1 s"),
    "seeds_1e9": (tiny_with(**{"seeds=2,": "seeds=10**9,"}), "too many seeds"),
    "latent_dim_1e6": (tiny_with(**{'fixed={"latent_dim": 2}': 'fixed={"latent_dim": 10**6}'}), "model size too large"),
    "eval_samples_1e6": (tiny_with(**{"eval_samples=2": "eval_samples=10**6"}), "training.eval_samples"),
    "bool_level": (tiny_with(**{'ablate={"hidden": [8, 16]}': 'ablate={"hidden": [1, True]}'}), "duplicate levels"),
    "bool_size": (tiny_with(**{'fixed={"latent_dim": 2}': 'fixed={"latent_dim": True}'}), "bool for an integer field"),
    "many_levels": (tiny_with(**{'ablate={"hidden": [8, 16]}': 'ablate={"hidden": list(range(1, 2002))}'}),
                    "too many levels"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_hostile_hypothesis_file_is_a_located_collection_error(project, cli, monkeypatch, case):
    source, what = HOSTILE_FILES[case]
    monkeypatch.setenv("HARNESS_IMPORT_TIMEOUT", "1")
    f = write(project / "hypotheses" / "bad.py", source)
    for command in ("check", "run"):
        t0 = time.perf_counter()
        r = cli(command, "bad")
        assert r.exit_code == 2, (command, r.output)
        assert what in r.output and f"{f}:" in r.output and "hint:" in r.output, r.output
        assert "Traceback" not in r.output
        assert time.perf_counter() - t0 < 20
    assert not (project / "runs").exists(), "a refused file must write nothing"


def test_level_names_that_sanitise_alike_get_their_own_claims(tmp_path):
    def variant(level: str) -> Variant:
        return Variant(level, "", None, None)

    long = "x" * 300  # over NAME_MAX (255) once it is a file name
    with claim(tmp_path, "v1", variant("a b"), [0]) as held:
        assert held == [0]
        for other in ("a_b", "a/b", long):
            with claim(tmp_path, "v1", variant(other), [0]) as got:
                assert got == [0], other  # not skipped as if another process held it
        with claim(tmp_path, "v1", variant("a b"), [0]) as again:
            assert again == []  # the same cell is still held
    assert len(list((tmp_path / "claims" / "v1").iterdir())) == 4


def test_model_raising_in_init_marks_its_runs_killed(project, cli):
    f = write(project / "hypotheses" / "tiny.py", tiny_with(**{
        "super().__init__(config, shape, levels)\n":
        "super().__init__(config, shape, levels)\n        if config.hidden == 16:\n"
        "            raise ValueError('no 16 today')\n",
    }))
    r = cli("run", "tiny", "--block-size", "2")
    assert r.exit_code == 2, r.output
    assert f"{f}:" in r.output and "ValueError: no 16 today" in r.output and "KILLED" in r.output, r.output
    assert "Traceback" not in r.output
    st = Store()
    runs = st.cell_runs("tiny", st.registrations("tiny")[0].version)
    by = collections.Counter((r.data.tags["harness.variant"], r.info.status) for r in runs)
    assert by == {("8", "FINISHED"): 2, ("16", "KILLED"): 2}, by
    assert all("no 16 today" in r.data.tags["harness.error"] for r in runs if r.info.status == "KILLED")


# ---------------------------------------------------------------------- hostile stores
def _store_cases(project: Path) -> dict:
    runs = project / "runs"

    def zero_byte():
        (runs / "artifacts" / "1").mkdir(parents=True)
        (runs / "claims").mkdir()
        (runs / "claims" / "register-tiny.lock").write_text("")
        (runs / "mlflow.db").write_bytes(b"")
        return [], "looks lost"

    def not_sqlite():
        runs.mkdir()
        (runs / "mlflow.db").write_text("hello, I am not a database\n")
        return [], "not an SQLite database"

    def malformed():
        runs.mkdir()
        (runs / "mlflow.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
        return [], "malformed"

    def regular_file():
        (project / "notes.txt").write_text("some notes\n")
        return ["--store", "notes.txt"], "not an SQLite database"

    def unreachable_server():
        return ["--store", "http://127.0.0.1:1"], "cannot reach the tracking server"

    return {"zero_byte": zero_byte, "not_sqlite": not_sqlite, "malformed": malformed,
            "regular_file": regular_file, "unreachable_server": unreachable_server}


@pytest.mark.parametrize("case", ["zero_byte", "not_sqlite", "malformed", "regular_file", "unreachable_server"])
def test_hostile_store_is_refused_and_left_as_it_was(project, cli, case):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    args, what = _store_cases(project)[case]()
    before = snapshot(project)
    for command in ("run", "register", "report"):
        t0 = time.perf_counter()
        r = cli(command, "tiny", *args)
        assert r.exit_code == 2, (command, r.output)
        assert what in r.output and "hint:" in r.output and "Traceback" not in r.output, (command, r.output)
        assert time.perf_counter() - t0 < 15, "a refused store must fail in seconds"
    after = {k: v for k, v in snapshot(project).items() if "__pycache__" not in k}
    assert after == {k: v for k, v in before.items() if "__pycache__" not in k}


def test_zero_byte_store_names_what_looks_lost(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    _store_cases(project)["zero_byte"]()
    r = cli("list")
    assert r.exit_code == 2 and "0 bytes" in r.output and "artifacts" in r.output and "claims" in r.output, r.output


def test_idx_dimensions_whose_product_overflows(tmp_path):
    from harness.data import read_idx

    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(b"\x00\x00\x08\x04" + (65536).to_bytes(4, "big") * 4)  # 2**64 elements, no body
    with pytest.raises(HarnessError, match="truncated"):
        read_idx(f)


def test_a_new_store_is_a_complete_schema(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    assert cli("register", "tiny").exit_code == 0
    con = sqlite3.connect(project / "runs" / "mlflow.db")
    tables = {n for (n,) in con.execute("select name from sqlite_master where type = 'table'")}
    con.close()
    assert {"experiments", "runs", "alembic_version"} <= tables
    assert not [t for t in tables if t.startswith("_alembic_tmp_")]


def test_a_pool_job_is_plain_data_that_rebuilds_the_variant(project):
    """What crosses to a worker: level, stratum and the (tuned) values that differ, never a
    Config instance of a class defined in the hypothesis file."""
    import dataclasses
    import pickle

    from harness.collect import collect
    from harness.plan import declared as _declared
    from harness.plan import tuned_changes as _changes

    col = collect(write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5)))
    v = col.hypothesis.variants[1]
    tuned = dataclasses.replace(v, model_config=dataclasses.replace(v.model_config, latent_dim=3),
                                training=dataclasses.replace(v.training, lr=0.01))
    changes = _changes(col, tuned)
    assert changes == {"latent_dim": 3, "lr": 0.01} and _changes(col, v) == {}
    assert b"harness_hypothesis_tiny" not in pickle.dumps((v.level, v.stratum, changes))
    assert col.hypothesis.tuned_variant(_declared(col, v.level, v.stratum), changes) == tuned
