"""The CLI end to end on real components: a real sqlite MLflow store in a tmp dir, real training."""

from __future__ import annotations

import re

import pytest
from conftest import tiny_hypothesis, write

from analysis import load
from harness.tracking import Store


def test_new_check_register_run_report(project, cli):
    r = cli("new", "my_idea")
    assert r.exit_code == 0, r.output
    assert (project / "hypotheses" / "my_idea.py").exists()
    r = cli("check", "my_idea")  # the template itself is a valid hypothesis
    assert r.exit_code == 0, r.output
    assert "runs: 20" in r.output and not (project / "runs").exists()

    # A user-defined model in the hypothesis file, registered with the decorator.
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(claim="Tiny <script>alert(1)</script> claim."))
    r = cli("check", "hypotheses/tiny.py")
    assert r.exit_code == 0, r.output
    assert "variants: 2; runs: 6" in r.output
    assert not (project / "runs").exists(), "check must write nothing"

    r = cli("register", "tiny")
    assert r.exit_code == 0, r.output
    assert "registered tiny version 1" in r.output
    r = cli("register", "tiny")
    assert r.exit_code == 0 and "already registered" in r.output and "nothing to do" in r.output

    r = cli("run", "tiny")
    assert r.exit_code == 0, r.output
    assert "trained 6 runs (6 finished, 0 diverged)" in r.output
    assert "next: harness report tiny" in r.output

    frame = load("tiny")
    assert len(frame) == 6 and set(frame["variant"]) == {"8", "16"}
    assert frame["value"].notna().all()
    run = Store().client.get_run(frame["run_id"][0])
    tags = run.data.tags
    for key in ("harness.hypothesis", "harness.version", "harness.variant", "harness.seed", "harness.git_commit",
                "harness.git_dirty", "harness.device", "harness.torch_version", "mlflow.parentRunId"):
        assert key in tags, key
    assert run.data.params["hidden"] in ("8", "16") and run.data.params["training.steps"] == "20"
    history = Store().metric_history(run.info.run_id, "train/neg_elbo")
    assert [s for s, _ in history] == [5, 10, 15, 20]
    assert Store().client.list_artifacts(run.info.run_id, "samples")

    r = cli("run", "tiny")  # rerun of a finished study trains nothing
    assert r.exit_code == 0 and "trained 0 runs" in r.output and "6 were already done" in r.output

    r = cli("report", "tiny")
    assert r.exit_code == 0, r.output
    assert re.search(r"(SUPPORTED|REFUTED|INCONCLUSIVE)", r.output)
    html = (project / "runs" / "reports" / "tiny" / "index.html").read_text()
    md = (project / "runs" / "reports" / "tiny" / "report.md").read_text()
    assert "Tiny &lt;script&gt;alert(1)&lt;/script&gt; claim." in html and "<script>" not in html
    assert 'id="verdict"' in html and "Study wall time" in html
    assert "## Verdict" in md
    assert (project / "runs" / "reports" / "index.html").exists()
    reg = Store().registrations("tiny")[0]
    assert Store().client.list_artifacts(reg.run_id, "report")

    r = cli("list")
    assert r.exit_code == 0 and "tiny" in r.output and "6 / 6" in r.output and "my_idea" in r.output


def test_changed_declaration_needs_new_version(project, cli):
    f = write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    assert cli("run", "tiny").exit_code == 0
    write(f, tiny_hypothesis(seeds=2, steps=6))
    r = cli("run", "tiny")
    assert r.exit_code == 2
    assert "declaration changed" in r.output and "training" in r.output and "--new-version" in r.output
    assert len(Store().registrations("tiny")) == 1
    r = cli("run", "tiny", "--new-version")
    assert r.exit_code == 0 and "trained 4 runs" in r.output, r.output
    regs = Store().registrations("tiny")
    assert [g.number for g in regs] == [1, 2]
    assert len(load("tiny")) == 4 and set(load("tiny")["version"]) == {regs[1].version}
    assert len(load("tiny", version=regs[0].version)) == 4


def test_seeds_option_runs_a_prefix_and_refuses_more(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=3, steps=5))
    r = cli("run", "tiny", "--seeds", "2")
    assert r.exit_code == 0 and "trained 4 runs" in r.output, r.output
    r = cli("run", "tiny", "--seeds", "5")
    assert r.exit_code == 2 and "seeds=3" in r.output
    r = cli("run", "tiny")
    assert "trained 2 runs" in r.output and "4 were already done" in r.output


BAD_FILES = {
    "syntax": ("hypothesis = Hypothesis(\n", "syntax error"),
    "no_hypothesis": ("x = 1\n", "no module-level `hypothesis"),
    "unknown_model": (
        "from harness import Hypothesis, Prediction\n"
        "hypothesis = Hypothesis(claim='c', model='no_such_gan', ablate={'a': [1, 2]},\n"
        "    prediction=Prediction(metric='iwae_nll', direction='lower', effect=1.0))\n",
        "model = 'no_such_gan'",
    ),
    "bad_alpha": (
        "from harness import Hypothesis, Prediction\n"
        "p = Prediction(metric='iwae_nll', direction='lower', effect=1.0, alpha=0.7)\n",
        "prediction.alpha = 0.7",
    ),
    "import_error": ("import not_a_module_xyz\n", "ModuleNotFoundError"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["check", "register", "run"])
def test_bad_files_exit_2_with_location_and_write_nothing(project, cli, name, command):
    text, expected = BAD_FILES[name]
    write(project / "hypotheses" / f"{name}.py", text)
    r = cli(command, name)
    assert r.exit_code == 2, r.output
    assert f"{name}.py" in r.output and expected in r.output and "hint:" in r.output
    assert "Traceback" not in r.output
    assert not (project / "runs").exists(), "nothing may be written for bad input"


def test_declaration_error_points_at_the_line(project, cli):
    write(project / "hypotheses" / "bad.py", BAD_FILES["bad_alpha"][0])
    r = cli("check", "bad")
    assert re.search(r"bad\.py:2: ", r.output), r.output


@pytest.mark.parametrize(
    "args, expected",
    [
        (["check", "missing_id"], "no such hypothesis file"),
        (["run", "tiny", "--device", "tpu"], "--device 'tpu'"),
        (["run", "tiny", "--workers", "0"], "--workers 0"),
        (["run", "tiny", "--block-size", "0"], "--block-size 0"),
        (["report", "tiny"], "no tracking store"),
        (["new", "bad name"], "not a valid hypothesis ID"),
    ],
)
def test_bad_arguments_exit_2(project, cli, args, expected):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    r = cli(*args)
    assert r.exit_code == 2, r.output
    assert expected in r.output
    assert not (project / "runs").exists()


def test_smoke_mode_is_labelled_and_separate(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=5, steps=50))
    r = cli("run", "tiny", "--smoke")
    assert r.exit_code == 0 and "trained 4 runs" in r.output and "smoke" in r.output, r.output
    assert "next: harness report tiny --smoke" in r.output
    assert Store().registrations("tiny") == []  # the real study is untouched
    assert Store().registrations("tiny@smoke")[0].declaration["smoke"] is True
    r = cli("report", "tiny", "--smoke")
    assert r.exit_code == 0, r.output
    html = (project / "runs" / "reports" / "tiny@smoke" / "index.html").read_text()
    assert "SMOKE RUN" in html and "not evidence" in html


def test_report_is_reproducible_bit_for_bit(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=4, steps=5))
    assert cli("run", "tiny").exit_code == 0
    md = project / "runs" / "reports" / "tiny" / "report.md"
    assert cli("report", "tiny").exit_code == 0
    first = [line for line in md.read_text().splitlines() if "|" in line or "CI" in line]
    assert cli("report", "tiny").exit_code == 0
    second = [line for line in md.read_text().splitlines() if "|" in line or "CI" in line]
    assert first == second
