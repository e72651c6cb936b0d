"""scripts/setup.sh installs the extras asked for (demo: none; tests: dev), and its stamp knows
which: a demo venv later used for the tests gets dev, a test venv used for the demo keeps it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A stand-in for .venv/bin/python: records the pip commands, imports anything.
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls.log"
exit 0
"""


def _setup(repo: Path, *args: str, env: dict | None = None) -> list[str]:
    log = repo / ".venv" / "calls.log"
    before = log.read_text().splitlines() if log.exists() else []
    r = subprocess.run(["bash", "scripts/setup.sh", *args], cwd=repo, capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    after = log.read_text().splitlines() if log.exists() else []
    return [c for c in after[len(before):] if "install -e" in c]


def test_setup_installs_the_extras_asked_for_and_the_stamp_tracks_them(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    py = repo / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)

    assert _setup(repo) == ["-m pip install -e ."]  # the demo: base dependencies only
    assert _setup(repo) == []  # done: quick
    assert _setup(repo, "dev") == ["-m pip install -e .[dev]"]  # the tests on a demo venv: dev added
    assert _setup(repo) == [] and _setup(repo, "dev") == []  # dev stays; nothing reinstalled
    assert _setup(repo, env={"HARNESS_EXTRAS": "cluster"}) == ["-m pip install -e .[cluster,dev]"]
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "\n# changed\n")
    assert _setup(repo) == ["-m pip install -e ."]  # a changed project: reinstalled as asked
