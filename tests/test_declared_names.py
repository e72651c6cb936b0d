"""Metric and parameter names MLflow would refuse are declaration errors (exit 2, located), not
an MlflowException after training."""

from __future__ import annotations

import pytest
from conftest import tiny_hypothesis, write

from harness import names

BAD_METRIC = 'metrics = ("nll", "x<img src=x>")'


def test_a_metric_name_mlflow_refuses_fails_check_and_run_before_training(project, cli):
    text = tiny_hypothesis(seeds=2, steps=5)
    text = text.replace('metrics = ("nll", "recon")', BAD_METRIC).replace('"recon": recon}', '"x<img src=x>": recon}')
    f = write(project / "hypotheses" / "bad.py", text)
    line = next(i for i, t in enumerate(f.read_text().splitlines(), 1) if t.startswith("@register_model"))
    for command in ("check", "run"):
        r = cli(command, "bad")
        assert r.exit_code == 2, (command, r.output)
        assert f"{f}:" in r.output and "TinyVAE.metrics" in r.output and "x<img src=x>" in r.output, r.output
        assert "hint:" in r.output and "Traceback" not in r.output
    assert f"{f}:{line}" in r.output or f"{f}:{line + 1}" in r.output, r.output
    assert not (project / "runs").exists()


@pytest.mark.parametrize("name", ["nll", "train/neg_elbo", "fid 10k", "a.b-c:d", "ü"])
def test_names_mlflow_accepts(name):
    assert names.problem(name) is None


@pytest.mark.parametrize("name", ["", "x<img src=x>", "a|b", "a//b", "./a", "../a", "/a", "a/", "x" * 251, 3])
def test_names_mlflow_refuses(name):
    assert names.problem(name) is not None


def test_the_rule_is_mlflows_own():
    """The restated rule agrees with MLflow's validators on every case above."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, _validate_length_limit, _validate_metric_name

    for name in ["nll", "train/neg_elbo", "fid 10k", "a.b-c:d", "ü", "", "x<img src=x>", "a|b", "a//b", "./a",
                 "../a", "/a", "a/", "x" * 251]:
        try:
            _validate_metric_name(name)
            _validate_length_limit("Metric name", MAX_ENTITY_KEY_LENGTH, name)
            accepted = True
        except MlflowException:
            accepted = False
        assert accepted == (names.problem(name) is None), name
