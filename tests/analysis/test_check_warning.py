"""`harness check` warns at declaration when the seeds can never reach significance."""

from __future__ import annotations

from conftest import tiny_hypothesis, write


def test_check_warns_when_the_declared_test_cannot_reach_alpha(project, cli):
    write(project / "hypotheses" / "tiny.py", permutation(3))
    res = cli("check", "tiny")
    assert res.exit_code == 0, res.output
    assert "can never be supported or refuted" in res.output and "at least 5 seeds" in res.output
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=6))
    res = cli("check", "tiny")
    assert res.exit_code == 0 and "warning" not in res.output
    assert not (project / "runs" / "mlflow.db").exists()  # check writes nothing


def permutation(seeds: int) -> str:
    return tiny_hypothesis(seeds=seeds).replace('test="t"', 'test="permutation"')


def test_register_and_run_refuse_a_design_that_can_never_reach_a_verdict(project, cli):
    # issue 22, item 8: 4 seeds with the sign-flip test: smallest p = 1/16 > 0.05
    f = write(project / "hypotheses" / "tiny.py", permutation(4))
    res = cli("check", "tiny")
    assert res.exit_code == 0 and "0.0625" in res.output
    for cmd in ("register", "run"):
        res = cli(cmd, "tiny")
        assert res.exit_code == 2, res.output
        line = next(i for i, x in enumerate(f.read_text().splitlines(), 1) if x.strip().startswith("seeds="))
        assert f"tiny.py:{line}" in res.output  # located at seeds=
        assert "can never reach a verdict" in res.output and "at least 5 seeds" in res.output
        assert "test='t'" in res.output and "--exploratory" in res.output
    assert not (project / "runs" / "mlflow.db").exists()  # nothing registered


def test_exploratory_flag_lets_it_run_and_the_report_says_so(project, cli):
    write(project / "hypotheses" / "tiny.py", permutation(4))
    res = cli("register", "tiny", "--exploratory")
    assert res.exit_code == 0 and "EXPLORATORY design" in res.output, res.output
    res = cli("run", "tiny", "--exploratory")
    assert res.exit_code == 0, res.output
    res = cli("report", "tiny")
    assert res.exit_code == 0, res.output
    md = (project / "runs" / "reports" / "tiny" / "report.md").read_text()
    headline = md.split("## Verdict", 1)[1].split("**")[1]
    assert headline.startswith("EXPLORATORY design")  # in the headline itself
