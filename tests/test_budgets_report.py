"""A verdict at every training budget, end to end (issue 19, the analysis side): a tiny study
with evaluate_at trained for real, read back by analysis.load (one row per run and budget),
decided per budget and reported with the compute curve and the per-budget table; budgets that
are not evaluated exit 2 at check."""

from __future__ import annotations

import json

from conftest import tiny_hypothesis, write

import analysis
from analysis.budgets import final_budget
from harness.tracking import Store


def budget_study(budgets: str = "all", extra: str = "evaluate_at=(4, 8)") -> str:
    text = tiny_hypothesis(seeds=3, steps=12).replace("n_samples=16)", f"n_samples=16, {extra})")
    assert 'effect=0.1, test="t")' in text  # the tiny study's prediction, as tests/conftest.py writes it
    return text.replace('effect=0.1, test="t")', f'effect=0.1, test="t", budgets={budgets})')


def test_budgets_are_read_decided_and_reported(project, cli):
    write(project / "hypotheses" / "b.py", budget_study('"all"'))
    write(project / "hypotheses" / "plain.py", tiny_hypothesis(seeds=2, steps=6))
    for h in ("b", "plain"):
        r = cli("run", h, "--block-size", "3")
        assert r.exit_code == 0, r.output

    # load: one row per (run, budget), the declared budget, the steps and FLOPs at it
    frame = analysis.load("b")
    assert len(frame) == 6 * 3 and frame.attrs["budgets"] == [4, 8, 12]
    for _, g in frame.groupby("run_id"):
        assert g["budget"].tolist() == [4, 8, 12] == g["budget_steps"].tolist()
        assert (g["status"] == "FINISHED").all() and g["value"].notna().all()
        flops = g["train_flops"].to_numpy()
        assert flops[0] > 0 and abs(flops[2] - 3 * flops[0]) < 1e-6 * flops[2]
    hist = Store().metric_histories(list(frame["run_id"].unique()), ["nll"])
    for r in frame.itertuples():
        assert r.value == dict(hist[r.run_id]["nll"])[r.budget]
    final = final_budget(frame)
    assert len(final) == 6 and (final["budget"] == 12).all() and final["seconds"].notna().all()
    plain = analysis.load("plain")  # no evaluate_at: one budget, the steps; one row per run
    assert len(plain) == 4 and plain["budget"].tolist() == [6] * 4 and final_budget(plain).equals(plain)

    # decide: every budget is a member of the family
    from harness import Prediction

    v = analysis.decide(frame, Prediction(metric="nll", direction="lower", effect=0.1, budgets="all"), control="8")
    assert v.family_size == 3 and sorted(v.comparisons["budget"]) == [4, 8, 12]

    r = cli("report", "b")
    assert r.exit_code == 0, r.output
    out = project / "runs" / "reports" / "b"
    html, md = (out / "index.html").read_text(), (out / "report.md").read_text()
    assert 'alt="compute curve: effect and interval at every budget"' in html and (out / "budgets.svg").exists()
    table = html[html.index('id="budgets"'):]
    table = table[: table.index("</table>")]
    assert table.count('class="confirmatory"') == 3 and "hidden = 16 vs 8" in table
    assert "## Budgets" in md and "Confirmatory budgets: 4, 8, 12 steps" in md
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].split(",")[:2] == ["stratum", "budget"] and len(csv) == 4
    # compute in "What was trained", never in the secondary-metrics table
    decl = html[html.index('id="declaration"'):]
    assert "parameters;" in decl and "FLOPs per step x 12 steps" in decl and "wall time" in decl
    sec = html[html.index('id="secondary"'):html.index('id="declaration"')]
    for m in ("train_flops", "params", "wall_seconds", "seconds"):
        assert f"<code>{m}</code>" not in sec, m

    # the plain study's report has no budget section, and says what the improvement check needs
    r = cli("report", "plain")
    assert r.exit_code == 0, r.output
    html = (project / "runs" / "reports" / "plain" / "index.html").read_text()
    assert 'id="budgets"' not in html and "evaluate_at" in html


def test_flops_matched_budgets_pair_by_position(project, cli):
    write(project / "hypotheses" / "m.py", budget_study('"all"', 'evaluate_at=(6,), match="flops"'))
    r = cli("run", "m", "--block-size", "3")
    assert r.exit_code == 0, r.output
    frame = analysis.load("m")
    ctrl, trt = frame[frame.variant == "8"], frame[frame.variant == "16"]
    assert set(ctrl["budget"]) == set(trt["budget"]) == {6, 12}  # labelled by the control's steps
    assert ctrl["budget_steps"].tolist() == ctrl["budget"].tolist()
    steps = json.loads(Store().cell_runs("m", frame.attrs["version"])[0].data.tags["harness.declared_budgets"])
    assert steps == [6, 12]
    assert (trt["budget_steps"] < trt["budget"]).all()  # the wider model trains fewer steps
    r = cli("report", "m")
    assert r.exit_code == 0, r.output
    svg = (project / "runs" / "reports" / "m" / "budgets.svg").read_text()
    assert "training FLOPs" in svg


def test_a_budget_that_is_not_evaluated_exits_2_at_check(project, cli):
    f = write(project / "hypotheses" / "nb.py", budget_study("(5,)"))
    r = cli("check", "nb")
    assert r.exit_code == 2, r.output
    assert f"{f}:" in r.output and "prediction.budgets" in r.output and "[4, 8, 12]" in r.output
    assert "budget not evaluated" in r.output and "Traceback" not in r.output
    assert not (project / "runs").exists()
