"""`harness run FILE --set FIELD=VALUE`: an exploratory version, stored apart (ID@explore),
labelled exploratory everywhere, never mixing with the registered study."""

from __future__ import annotations

from conftest import tiny_hypothesis, write

from harness.tracking import Store


def test_an_exploratory_run_is_stored_apart_and_labelled(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=6))
    assert cli("run", "tiny").exit_code == 0
    st = Store()
    (reg,) = st.registrations("tiny")
    before = sorted(r.info.run_id for r in st.cell_runs("tiny", reg.version))

    r = cli("run", "tiny", "--set", "training.steps=4", "--set", "fixed.latent_dim=3", "--set", "seeds=3")
    assert r.exit_code == 0, r.output
    assert "EXPLORATORY run (--set training.steps=4 --set fixed.latent_dim=3 --set seeds=3)" in r.output
    assert "tiny@explore v1 (EXPLORATORY: not the registered study): trained 6 runs" in r.output
    assert "next: harness report tiny@explore" in r.output

    # the registered study is untouched: one version, the same runs, and `run` has nothing to do
    st = Store()
    assert [x.version for x in st.registrations("tiny")] == [reg.version]
    assert sorted(r.info.run_id for r in st.cell_runs("tiny", reg.version)) == before
    (ex,) = st.registrations("tiny@explore")
    assert ex.version != reg.version
    assert ex.declaration["exploratory"] == ["training.steps=4", "fixed.latent_dim=3", "seeds=3"]
    assert ex.declaration["training"]["steps"] == 4 and ex.declaration["fixed"]["latent_dim"] == 3
    assert len(st.cell_runs("tiny@explore", ex.version)) == 6
    r = cli("run", "tiny")
    assert r.exit_code == 0 and "trained 0 runs" in r.output and "EXPLORATORY" not in r.output

    r = cli("list")
    assert "tiny@explore (exploratory: training.steps=4 fixed.latent_dim=3 seeds=3)" in r.output
    r = cli("report", "tiny@explore")
    assert r.exit_code == 0, r.output
    assert "EXPLORATORY (--set training.steps=4 --set fixed.latent_dim=3 --set seeds=3)" in r.output
    html = (project / "runs" / "reports" / "tiny@explore" / "index.html").read_text()
    assert "EXPLORATORY" in html and "--set training.steps=4" in html


def test_a_bad_override_exits_2_naming_the_set_argument(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=6))
    cases = {
        "training.stepz=4": "did you mean 'steps'?",
        "training.steps=-1": "training.steps = -1",
        "training.steps=abs(": "is not a Python literal",
        "fixed.latnt_dim=3": "did you mean 'latent_dim'?",
        "fixed.hidden=64": "ablated or a stratifying factor",
        "nonsense=1": "unknown field 'nonsense'",
        "training.steps": "expected FIELD=VALUE",
    }
    for arg, why in cases.items():
        r = cli("run", "tiny", "--set", arg)
        assert r.exit_code == 2, (arg, r.output)
        assert f"--set {arg}" in r.output and why in r.output, (arg, r.output)
    assert not (project / "runs" / "mlflow.db").exists() or Store().registrations("tiny@explore") == []
