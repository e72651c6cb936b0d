"""Issue 23 on a real tiny tuned study: the report shows what each variant trained with (tuned
values marked, with their trial), and `harness run`'s plain progress has one display per phase."""

from __future__ import annotations

import json
import re

import pytest
from conftest import harness_subprocess
from test_tuning import tuned_file

from harness.tracking import Store


@pytest.fixture(scope="module")
def tuned_study(tmp_path_factory):
    project = tmp_path_factory.mktemp("tuned23")
    (project / "hypotheses").mkdir()
    tuned_file(project, "t23", trials=2)
    p = harness_subprocess("run", "t23", "--block-size", "2", cwd=project, threads=1)
    run_out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, run_out
    p = harness_subprocess("report", "t23", cwd=project, threads=1)
    report_out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, report_out
    return project, run_out


def test_progress_has_one_display_per_phase_and_no_carried_count(tuned_study):
    _, out = tuned_study
    lines = out.splitlines()
    tuning_at = lines.index("tuning: 4 runs planned")  # 2 variants x 2 trials x 1 seed per trial
    confirm_at = lines.index("confirmatory: 6 runs planned")
    assert tuning_at < confirm_at
    tuning, confirm = lines[tuning_at:confirm_at], lines[confirm_at:]
    # per-step progress while tuning (not only when a trial block ends)
    assert any(re.match(r"tuning: training \d+% of this phase's 4 runs' steps", s) for s in tuning), out
    assert any(re.match(r"tuning: runs \d/4 ended", s) for s in tuning), out
    # the confirmatory counters start again: 0..6 of 6, never 4 + ... carried from the tuning
    ended = [int(m) for m in re.findall(r"^confirmatory: runs (\d+)/6 ended", "\n".join(confirm), re.M)]
    assert ended and ended[0] == 0 and ended[-1] == 6, out
    assert any(re.match(r"confirmatory: training \d+% of this phase's 6 runs' steps", s) for s in confirm), out
    assert not any("of this phase's 4" in s or "/4 ended" in s for s in confirm), out
    assert all(re.search(r"eta (\?|[\d.]+ s|\d+ min \d+ s)", s) for s in lines if " ended; " in s), out


def test_report_shows_each_variants_tuned_configuration(tuned_study, monkeypatch):
    project, _ = tuned_study
    monkeypatch.chdir(project)
    st = Store()
    reg = st.registrations("t23")[0]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        best = json.loads(Path(st.download(reg.run_id, "tuning/best.json", Path(tmp))).read_text())
    html = (project / "runs" / "reports" / "t23" / "index.html").read_text()
    decl = html[html.index('id="declaration"'):]
    assert "(declared; tuned per variant)" in decl  # the declared lr is said to be the declared one
    for variant in ("diagonal", "linear_iaf"):
        chosen = best[variant]
        row = re.search(rf"<td>posterior = {variant}</td><td><code>([^<]*)</code>", decl)
        assert row, decl
        for name, value in chosen["params"].items():
            assert f"{name}={value:.4g} (tuned, trial {chosen['trial']})" in row.group(1), row.group(1)
        assert "latent_dim=4" in row.group(1) and "steps=12" in row.group(1)
