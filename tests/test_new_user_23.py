"""Issue 23, what a new user trips on: errors located at the bad field with a did-you-mean,
one report folder per version, human durations, hints that name `harness fetch mnist` first."""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_hypothesis, write

from analysis.outputs import duration

ROOT = Path(__file__).resolve().parent.parent

TYPO = '''"""A typo in the model's name."""
from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="c",
    dataset="digits",
    model="vea",
    fixed={{"latent_dim": 2}},
    ablate={{"posterior": ["diagonal", "linear_iaf"]}},
    prediction=Prediction(metric="{metric}", direction="lower", effect=1.0),
    seeds=2,
    training=Training(steps=2),
)
'''


def test_error_points_at_the_bad_field_with_a_did_you_mean(project, cli):
    p = write(project / "hypotheses" / "typo.py", TYPO.format(metric="iwae_nll"))
    r = cli("check", "typo")
    assert r.exit_code == 2
    assert f"{p.resolve()}:7: unknown model: model = 'vea'" in r.output  # the `model=` line, not `Hypothesis(`
    assert "did you mean 'vae'?" in r.output
    p.write_text(p.read_text().replace('"vea"', '"vae"').replace('"latent_dim"', '"latnt_dim"'))
    r = cli("check", "typo")
    assert r.exit_code == 2 and f"{p.resolve()}:8: unknown config field" in r.output
    assert "did you mean 'latent_dim'?" in r.output
    p.write_text(p.read_text().replace('"latnt_dim"', '"latent_dim"').replace('"iwae_nll"', '"iwae_nl"'))
    r = cli("check", "typo")
    assert r.exit_code == 2 and f"{p.resolve()}:10: unknown metric" in r.output
    assert "did you mean 'iwae_nll'?" in r.output


def test_durations_read_as_a_person_reads_them():
    assert duration(905.469) == "15 min 5 s"
    assert duration(42.2) == "42 s" and duration(0.4) == "0.4 s" and duration(7384) == "2 h 3 min"


def test_mnist_hint_names_harness_fetch_first(project, monkeypatch):
    import pytest

    from harness import data
    from harness.errors import HarnessError

    (project / "empty").mkdir()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(project / "empty"))
    with pytest.raises(HarnessError) as e:
        data.load("mnist")
    msg = str(e.value)
    assert "harness fetch mnist" in msg and msg.index("harness fetch mnist") < msg.index("yann")


def test_readme_documents_smoke():
    readme = (ROOT / "README.md").read_text()
    assert "--smoke" in readme and "ID@smoke" in readme


def test_a_v2_report_keeps_v1s_folder(project, cli):
    p = write(project / "hypotheses" / "two.py", tiny_hypothesis(seeds=2, steps=6))
    assert cli("run", "two").exit_code == 0
    assert cli("report", "two").exit_code == 0
    base = project / "runs" / "reports" / "two"
    v1 = (base / "v1" / "index.html").read_text()
    assert (base / "index.html").read_text() == v1
    assert "Study wall time" in v1 and " s (first run start" in v1
    p.write_text(p.read_text().replace("Wider hidden layers", "Wider hidden layers (v2)"))
    r = cli("run", "two", "--new-version")
    assert r.exit_code == 0, r.output
    r = cli("report", "two")
    assert r.exit_code == 0, r.output
    v2 = (base / "v2" / "index.html").read_text()
    assert "(v2)" in v2 and "(v2)" not in (base / "v1" / "index.html").read_text()  # v1 is kept
    assert (base / "index.html").read_text() == v2  # the top-level report is the latest version
    assert (base / "v1" / "report.md").exists() and (base / "v2" / "table.csv").exists()
    index = (project / "runs" / "reports" / "index.html").read_text()
    assert 'href="two/v1/index.html"' in index and 'href="two/v2/index.html"' in index
