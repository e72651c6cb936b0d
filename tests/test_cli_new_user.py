"""The rough edges a new user hits: the catalogue, missing data, changed declarations,
provenance of an untracked file, every model name checked, progress, output to a pipe."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
from conftest import harness_subprocess, tiny_hypothesis, write

from harness.tracking import Store

MNIST = '''
"""MNIST needs a local directory."""
from harness import Hypothesis, Prediction, Training
hypothesis = Hypothesis(
    claim="c", dataset="mnist", model="vae", ablate={"posterior": ["diagonal", "linear_iaf"]},
    prediction=Prediction(metric="iwae_nll", direction="lower", effect=1.0), seeds=2,
    training=Training(steps=2),
)
'''


def test_catalog_lists_models_datasets_and_metrics(project, cli):
    r = cli("catalog")
    assert r.exit_code == 0, r.output
    out = r.output
    assert re.search(r"^vae: VAE", out, re.M)
    assert re.search(r"latent_dim: int = 8\s+size of z", out)  # the field's comment
    assert re.search(r"beta: float = 4.0\s+KL weight", out)  # beta_vae's own default
    assert re.search(r"steps: int = 2000\s+optimiser steps per run", out)  # Training fields
    assert "digits: shape (8, 8), 17 levels; train 1497, test 300" in out
    assert re.search(r"mnist: not available here: .*--data-dir", out)
    assert re.search(r"precision: higher is better; ", out) and re.search(r"iwae_nll: lower is better, nats", out)
    assert cli("catalog", "models").exit_code == 0
    r = cli("catalog", "nonsense")
    assert r.exit_code == 2 and "expected models, datasets, metrics or all" in r.output
    assert "harness catalog" in (cli("new", "x") and (project / "hypotheses" / "x.py").read_text())


@pytest.mark.parametrize("command", ["check", "run"])
def test_missing_data_directory_is_caught_before_anything_is_registered(project, cli, monkeypatch, command):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    write(project / "hypotheses" / "needs_mnist.py", MNIST)
    r = cli(command, "needs_mnist")
    assert r.exit_code == 2, r.output
    assert "needs_mnist.py" in r.output and "--data-dir" in r.output and "HARNESS_DATA_DIR" in r.output
    assert "the CLI's data directory option" not in r.output
    assert not (project / "runs").exists(), "nothing may be registered"
    empty = project / "data"
    empty.mkdir()
    r = cli(command, "needs_mnist", "--data-dir", str(empty))
    assert r.exit_code == 2 and "--data-dir" in r.output, r.output
    assert f"run `harness fetch mnist --data-dir '{empty}'` first" in r.output, r.output  # not a website first
    r = cli(command, "needs_mnist", "--data-dir", str(project / "nowhere"))
    assert r.exit_code == 2 and "no such directory" in r.output
    assert not (project / "runs").exists()


def test_changed_declaration_prints_only_the_changed_fields(project, cli):
    f = write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    assert cli("register", "tiny").exit_code == 0
    write(f, tiny_hypothesis(seeds=2, steps=6))
    r = cli("run", "tiny")
    assert r.exit_code == 2
    assert "training.steps: 5 -> 6" in r.output, r.output
    assert "batch_size" not in r.output and "eval_samples" not in r.output  # unchanged fields are not printed


def test_every_model_name_is_validated(project, cli):
    write(project / "hypotheses" / "bad_model.py", '''
from harness import Hypothesis, Prediction
hypothesis = Hypothesis(claim="c", model="no_such_model", ablate={"model": ["vae", "iaf_vae"]},
    prediction=Prediction(metric="iwae_nll", direction="lower", effect=1.0))
''')
    r = cli("check", "bad_model")
    assert r.exit_code == 2 and "model = 'no_such_model'" in r.output and "bad_model.py:3" in r.output, r.output
    write(project / "hypotheses" / "ok_model.py", '''
from harness import Hypothesis, Prediction
hypothesis = Hypothesis(claim="c", ablate={"model": ["vae", "iaf_vae"]},
    prediction=Prediction(metric="iwae_nll", direction="lower", effect=1.0))
''')
    r = cli("check", "ok_model")
    assert r.exit_code == 0 and "model vae, iaf_vae on digits" in r.output, r.output


def test_untracked_hypothesis_file_is_recorded_and_reproducible(project, cli):
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    f = write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    assert cli("register", "tiny").exit_code == 0
    reg = Store().registrations("tiny")[0]
    assert reg.tags["harness.hypothesis_sha256"] == hashlib.sha256(f.read_text().encode()).hexdigest()
    assert reg.tags["harness.hypothesis_git"] == "untracked"
    assert reg.tags["harness.git_dirty"].startswith("true"), reg.tags["harness.git_dirty"]
    # "Reproduce" restores the registered file, though git never saw it
    copy = project / "restored" / "tiny.py"
    r = cli("source", "tiny", "--output", str(copy))
    assert r.exit_code == 0, r.output
    assert copy.read_text() == f.read_text()
    r = cli("source", "tiny", "--version", "ffffff")
    assert r.exit_code == 2 and "no registered version" in r.output


def test_progress_counts_ended_runs_and_training_separately(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=10))
    r = cli("run", "tiny", "--block-size", "2")
    assert r.exit_code == 0, r.output
    ended = [int(m) for m in re.findall(r"^confirmatory: runs (\d+)/4 ended", r.output, re.M)]
    assert ended == [0, 2, 4], r.output  # one line per block that ended; never a run that has not
    lines = r.output.splitlines()
    first_block_trained = next(i for i, s in enumerate(lines) if s.startswith("confirmatory: training 50%"))
    assert first_block_trained < next(i for i, s in enumerate(lines) if s.startswith("confirmatory: runs 2/4 ended"))


def test_output_to_a_pipe_is_not_squeezed(project):
    long_id = "a_hypothesis_with_a_rather_long_name_that_does_not_fit_in_eighty_columns_at_all"
    write(project / "hypotheses" / f"{long_id}.py", tiny_hypothesis(seeds=2, steps=5))
    p = harness_subprocess("list", cwd=project)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert long_id in out and "…" not in out, out
