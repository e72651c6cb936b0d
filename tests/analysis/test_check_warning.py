"""`harness check` warns at declaration when the seeds can never reach significance."""

from __future__ import annotations

from conftest import tiny_hypothesis, write


def test_check_warns_when_the_declared_test_cannot_reach_alpha(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=3))
    res = cli("check", "tiny")
    assert res.exit_code == 0, res.output
    assert "can never be supported or refuted" in res.output and "at least 5 seeds" in res.output
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=6))
    res = cli("check", "tiny")
    assert res.exit_code == 0 and "warning" not in res.output
    assert not (project / "runs" / "mlflow.db").exists()  # check writes nothing
