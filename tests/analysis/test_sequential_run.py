"""`harness run` with a sequential design: trains look by look, logs each look to the parent
run, stops when decided, resumes at the right look and never reopens a decided study."""

from __future__ import annotations

import json

from conftest import tiny_hypothesis, write

from harness.tracking import Store

SEQ = "Sequential(looks=(3, 6), spending='pocock', futility=True)"


def _hyp() -> str:
    text = tiny_hypothesis(steps=10).replace("seeds=3,", f"seeds={SEQ},")
    return text.replace("from harness import GenerativeModel,", "from harness import Sequential, GenerativeModel,")


def test_sequential_study_runs_look_by_look_and_is_never_reopened(project, cli):
    write(project / "hypotheses" / "tiny.py", _hyp())
    # a kill after training look 0's seeds but before its analysis: the prefix is in the store
    first = cli("run", "tiny", "--seeds", "3", "--block-size", "3")
    assert first.exit_code == 0, first.output
    res = cli("run", "tiny", "--block-size", "3")
    assert res.exit_code == 0, res.output
    assert "look 0 at 3 seeds" in res.output
    st = Store()
    reg = st.registrations("tiny")[0]
    stop = int(reg.tags["harness.sequential_stop"])
    look = json.loads(reg.tags[f"harness.look.{stop}"])
    assert look["stop"] and look["n"] == (3, 6)[stop] and len(look["boundaries_z"]) == 2
    assert reg.tags["harness.verdict.sequential"] == look["overall"]
    assert "harness.look.0" in reg.tags
    finished = [r for r in st.cell_runs("tiny", reg.version) if r.info.status in ("FINISHED", "FAILED")]
    assert len(finished) == 2 * look["n"]  # trained no further than the stopping look
    again = cli("run", "tiny", "--block-size", "3")
    assert again.exit_code == 0 and "never reopened" in again.output and "trained 0 runs" in again.output
    rep = cli("report", "tiny")
    assert rep.exit_code == 0, rep.output
    md = (project / "runs" / "reports" / "tiny" / "report.md").read_text()
    html = (project / "runs" / "reports" / "tiny" / "index.html").read_text()
    assert "## Sequential looks" in md and f"(stopped: {look['overall']})" in md
    assert 'id="looks"' in html
    assert "## Estimand and assumptions" in md and "Reading: **" in md and 'id="skew"' in html
    # the headline and the verdict tag are the design's decision, never the fixed-design test's
    assert f"{look['overall'].upper()} under the pre-registered sequential design (stopped at look {stop}" in rep.output
    assert "(interim)" not in st.registrations("tiny")[0].tags["harness.verdict"]
    assert st.registrations("tiny")[0].tags["harness.verdict"] == look["overall"]
