"""`harness check FILE --pilot N` (issue 22, "power before running"): a pilot of N seeds outside
the confirmatory range, stored apart as ID@pilot, never evidence; the seeds needed it prints are
analysis.power's (statsmodels' TTestPower for a t test); `run` records the pilot on the study and
refuses confirmatory seeds that reach it. Real training (tiny), a real sqlite store in tmp."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from conftest import tiny_hypothesis, write
from scipy import stats

from analysis import load
from analysis.budgets import final_budget
from analysis.pilot import sd_upper_bound
from analysis.stats_mean import power_paired_t, seeds_for_power
from harness import Hypothesis, Prediction, Sequential, Tuning, Uniform
from harness.errors import HarnessError
from harness.pilot import PILOT_SEED_BASE, check_pilot_n, pilot_seeds, pilot_version
from harness.tracking import Store


def _hyp(**kw) -> Hypothesis:
    return Hypothesis(claim="c", model="vae", ablate={"latent_dim": [2, 4]},
                      prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.1), **kw)


# ---------------------------------------------------------------- the seed rule, the version
@pytest.mark.parametrize(("first_seed", "seeds", "n", "expected"), [
    (10, 20, 5, range(0, 5)),  # room below first_seed: 0 .. N-1
    (5, 20, 5, range(0, 5)),
    (3, 20, 5, range(PILOT_SEED_BASE, PILOT_SEED_BASE + 5)),  # no room: the reserved range
    (0, 10, 3, range(PILOT_SEED_BASE, PILOT_SEED_BASE + 3)),
    (899_998, 4, 3, range(0, 3)),  # a range reaching the reserved one has room below it
    (990_000, 10_000, 10_000, range(0, 10_000)),
])
def test_pilot_seeds_are_disjoint_from_the_confirmatory_seeds(first_seed, seeds, n, expected):
    h = _hyp(seeds=seeds, first_seed=first_seed)
    got = pilot_seeds(h, n)
    assert got == expected
    assert not set(got) & set(h.confirmatory_seeds())


def test_the_pilot_version_has_its_own_hash_and_runs_the_declared_values():
    h = _hyp(seeds=Sequential(looks=(4, 8)), tuning=Tuning(space={"lr": Uniform(1e-4, 1e-3)}, trials=4))
    p = pilot_version(h, 3)
    assert p.pilot and p.seeds == 3 and p.first_seed == PILOT_SEED_BASE and p.tuning is None
    assert p.training == h.training and p.prediction == h.prediction and p.variants == h.variants
    assert p.canonical()["pilot"] is True and "pilot" not in h.canonical()  # older hashes unchanged
    assert p.version != h.version and pilot_version(h, 4).version != p.version


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True, 10_001])
def test_a_bad_pilot_size_names_the_option(bad):
    with pytest.raises(HarnessError, match=re.escape(f"--pilot {bad}: expected an integer from 2")):
        check_pilot_n(bad)


# ---------------------------------------------------------------- end to end
def _row(output: str, name: str) -> list[str]:
    line = next(ln for ln in output.splitlines() if ln.startswith("│") and name in ln)
    return [c.strip() for c in line.strip("│").split("│")]


def test_a_bad_n_exits_2_and_writes_nothing(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=4, steps=6))
    for bad in ("1", "0", "-2"):
        r = cli("check", "tiny", "--pilot", bad)
        assert r.exit_code == 2, r.output
        assert f"--pilot {bad}: expected an integer from 2" in r.output and "Traceback" not in r.output
    r = cli("check", "tiny", "--pilot", "three")
    assert r.exit_code == 2 and "--pilot" in r.output
    assert not (project / "runs").exists(), "a refused pilot writes nothing"


def test_a_pilot_is_stored_apart_prints_the_seeds_needed_and_is_recorded_by_run(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=4, steps=6))
    r = cli("check", "tiny", "--pilot", "3")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "PILOT (exploratory, never evidence): tiny@pilot v1" in out
    assert "pilot seeds: seeds 900000..900002, the reserved pilot range" in out
    assert "tuning is not run for a pilot" in out and "no power target declared: 0.8 used" in out
    assert "ESTIMATES from 3 seeds per variant" in out

    # stored apart: ID@pilot, its own version, seeds outside 0..3; the study is not registered
    st = Store()
    assert st.registrations("tiny") == []
    (preg,) = st.registrations("tiny@pilot")
    assert preg.declaration["pilot"] is True and preg.declaration["first_seed"] == PILOT_SEED_BASE
    pilot = final_budget(load("tiny@pilot"))
    assert sorted(set(pilot["seed"])) == [900000, 900001, 900002] and len(pilot) == 6

    # the printed SD is the paired differences' (direction lower: control - treatment), and the
    # printed power and seeds needed are analysis.power's, and statsmodels' TTestPower's
    wide = pilot.pivot(index="seed", columns="variant", values="value")
    d = (wide["8"] - wide["16"]).to_numpy()
    sd, effect = float(np.std(d, ddof=1)), 0.1
    cells = _row(out, "16 vs 8")
    assert cells[1] == "3" and cells[2] == f"{d.mean():.4g}" and cells[3] == f"{sd:.4g}"
    upper = sd * math.sqrt(2 / stats.chi2.ppf(0.2, 2))
    assert cells[4] == f"{upper:.4g}" and math.isclose(sd_upper_bound(sd, 3), upper)
    assert cells[5] == f"{power_paired_t(effect, sd, 4, 0.05):.2f} / {power_paired_t(effect, upper, 4, 0.05):.2f}"
    need, need_upper = (int(x) for x in cells[6].split(" / "))
    assert need == seeds_for_power(effect, sd, 0.05, 0.8) and need_upper == seeds_for_power(effect, upper, 0.05, 0.8)
    try:
        from statsmodels.stats.power import TTestPower
    except ImportError:  # the noncentral t directly
        assert stats.nct.sf(stats.t.isf(0.05, need - 1), need - 1, effect / sd * math.sqrt(need)) >= 0.8
    else:
        assert need == math.ceil(TTestPower().solve_power(effect / sd, alpha=0.05, power=0.8, alternative="larger"))
        assert math.isclose(TTestPower().power(effect / sd, 4, 0.05, alternative="larger"),
                            power_paired_t(effect, sd, 4, 0.05), rel_tol=1e-6)
    assert f"seeds needed for power 0.8 (no power target declared: 0.8 used) at the smallest effect E = 0.1, " \
           f"t test, alpha 0.05: {need} at the pilot's SD, {need_upper} at its 80% upper confidence bound" in out

    # a second identical pilot resumes: nothing trained again, the same numbers
    r2 = cli("check", "tiny", "--pilot", "3")
    assert r2.exit_code == 0 and _row(r2.output, "16 vs 8") == cells
    assert len(Store().registrations("tiny@pilot")) == 1

    # run: the study's seeds are 0..3 only, the pilot's runs are not in its analysis, and the
    # registration records the pilot (tag, then the report's provenance)
    r = cli("run", "tiny")
    assert r.exit_code == 0, r.output
    assert "note: pilot run before this study: tiny@pilot v1" in r.output
    study = load("tiny")
    assert sorted(set(study["seed"])) == [0, 1, 2, 3] and len(final_budget(study)) == 8
    assert not set(study["run_id"]) & set(pilot["run_id"])
    (reg,) = Store().registrations("tiny")
    tag = reg.tags["harness.pilot"]
    assert "N = 3 seeds per variant, seeds 900000..900002" in tag and "NOT part of the evidence" in tag
    assert "disjoint from the confirmatory seeds 0..3" in tag
    r = cli("report", "tiny")
    assert r.exit_code == 0, r.output
    md = (project / "runs" / "reports" / "tiny" / "report.md").read_text()
    assert "- pilot: pilot run before this study: tiny@pilot v1" in md
    assert "PILOT" not in md.split("## Verdict")[1].split("##")[0]  # the study's verdict is its own

    # the pilot's own report and `list` label it
    r = cli("report", "tiny@pilot")
    assert r.exit_code == 0 and "PILOT (exploratory; 3 seeds outside the confirmatory range" in r.output
    assert "tiny@pilot (pilot: exploratory, not evidence)" in cli("list").output

    # a confirmatory range that reaches the pilot's seeds: check warns, run refuses (exit 2,
    # located at first_seed=), and registers nothing
    text = (project / "hypotheses" / "tiny.py").read_text().replace("seeds=4,", "seeds=4,\n    first_seed=899_998,")
    (project / "hypotheses" / "tiny.py").write_text(text)
    line = text.splitlines().index("    first_seed=899_998,") + 1
    r = cli("check", "tiny")
    assert r.exit_code == 0 and "reach the seeds 900000..900002 of the pilot tiny@pilot v1" in r.output
    r = cli("run", "tiny", "--new-version")
    assert r.exit_code == 2, r.output
    assert f"tiny.py:{line}: the confirmatory seeds reach a pilot's seeds: first_seed = 899998" in r.output
    assert "Fix: first_seed=900003" in r.output
    assert len(Store().registrations("tiny")) == 1
