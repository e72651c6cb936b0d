"""A verdict at every budget (issue 19), on synthetic frames: the confirmatory budgets form one
family (Holm checked against statsmodels), the others are exploratory; a frame with one budget
decides exactly as without; ranking flips and the still-improving warning; declarations."""

from __future__ import annotations

import dataclasses
import glob
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.budgets import confirmatory_mask, final_budget, ranking_flips, still_improving
from analysis.curves import budget_section
from analysis.decide import decide
from analysis.sequential import analyse_look
from harness import Prediction, Sequential, Training
from harness.collect import collect, smoke_version
from harness.errors import DeclarationError

ROOT = Path(__file__).resolve().parents[2]
PRED = dict(metric="nll", direction="lower", effect=0.1)
# Every shipped hypothesis's version (and its smoke version's). budgets="final" (the default) is
# left out of the canonical form, so adding Prediction.budgets moved none of them; a file that
# is deliberately re-registered (a new version) updates its line here, nothing else may move.
VERSIONS = {
    "autoencoder_is_pca": ("1e29e385d5b1", "5a286d54f906"),
    "diffusion_beats_vae": ("fbf1545fe4d4", "16715c836654"),
    "families_at_matched_compute": ("4c34e74c6df1", "d92d5bcb2e7e"),
    "gan_drops_modes": ("b641485dd937", "7fd053c80ad4"),
    "gan_sharp_samples": ("49da9d6acc56", "ad114197e788"),
    "iaf_tightens_bound": ("97ca30f30b1a", "f5193b6430e5"),
    "iaf_tightens_bound_mnist": ("64ba120c1d4f", "e819779a3fee"),
    "iaf_tightens_bound_mnist_cpu": ("1ee8234ab2b5", "c640feafe358"),
    "iterative_denoising": ("8393ce9813ca", "b26f25378937"),
    "kl_bounds_information": ("5c352df50fe7", "21fc68031d94"),
    "likelihood_families": ("80fdbe2735e7", "851e9857a726"),
    "predictive_coding_samples": ("13a30cc70db1", "5ee5709bba9d"),
}


def budget_frame(shift_of, budgets=(10, 20, 40), n=8, variants=("a", "b", "c"), noise=0.2, seed=0):
    """One row per (variant, seed, budget); ``shift_of(variant, budget)`` is the treatment's
    improvement (lower nll) over the control."""
    rng = np.random.default_rng(seed)
    base = rng.normal(5.0, 0.3, n)  # a seed's own level, shared by every variant: pairing matters
    rows = []
    for b in budgets:
        for v in variants:
            for s in range(n):
                rows.append({"variant": v, "seed": s, "stratum": "", "budget": b, "budget_steps": b,
                             "value": base[s] - shift_of(v, b) + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_one_budget_decides_exactly_as_without_budgets():
    f = budget_frame(lambda v, b: 0.5 * (v != "a"), budgets=(40,))
    with_b = decide(f, Prediction(**PRED), control="a", power=False)
    without = decide(f.drop(columns=["budget", "budget_steps"]), Prediction(**PRED), control="a", power=False)
    assert list(with_b.comparisons["budget"]) == [40, 40]
    pd.testing.assert_frame_equal(with_b.comparisons.drop(columns="budget"), without.comparisons)
    assert (with_b.outcome, with_b.p_value, with_b.ci, with_b.family_size) == (
        without.outcome, without.p_value, without.ci, without.family_size)
    assert with_b.headline["budget"] == 40 and without.by_budget is None


def test_all_budgets_form_one_holm_family():
    f = budget_frame(lambda v, b: {"a": 0, "b": 0.15, "c": 0.3}[v] * b / 40)
    v = decide(f, Prediction(**PRED, budgets="all"), control="a", power=False)
    c = v.comparisons
    assert v.family_size == 6 and len(c) == 6  # 2 comparisons x 1 stratum x 3 budgets
    assert sorted(zip(c["budget"], c["treatment"])) == sorted((b, t) for b in (10, 20, 40) for t in "bc")
    expected = multipletests(c["p_value"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(c["p_adjusted"].to_numpy(), expected, rtol=1e-12)
    expected = multipletests(c["p_nonsup"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(c["p_nonsup_adjusted"].to_numpy(), expected, rtol=1e-12)
    assert v.by_budget["confirmatory"].all() and len(v.by_budget) == 6
    assert "Budgets: the confirmatory budgets are every evaluated budget" in v.rules
    # the overall outcome follows the family rules over every member
    from analysis.decide import family_outcome

    assert v.outcome == family_outcome(c["outcome"])
    assert v.headline["budget"] in (10, 20, 40) and v.headline["stratum"] == ""


def test_named_budgets_confirm_and_the_others_are_exploratory():
    f = budget_frame(lambda v, b: 0.6 * (v != "a"))
    v = decide(f, Prediction(**PRED, budgets=(20, 40)), control="a")
    assert v.family_size == 4 and set(v.comparisons["budget"]) == {20, 40}
    t = v.by_budget
    exploratory = t[~t["confirmatory"]]
    assert set(exploratory["budget"]) == {10} and (exploratory["outcome"] == "exploratory").all()
    assert exploratory["p_adjusted"].isna().all() and exploratory["effect"].notna().all()
    assert np.isfinite(exploratory["ci_low"]).all()
    # the exploratory budget's effect is decide()'s on that budget alone
    alone = decide(f[f.budget == 10].drop(columns=["budget", "budget_steps"]), Prediction(**PRED), control="a",
                   power=False)
    np.testing.assert_allclose(exploratory["effect"].to_numpy(), alone.comparisons["effect"].to_numpy())
    # the default ("final") decides the last budget only
    final = decide(f, Prediction(**PRED), control="a", power=False)
    assert set(final.comparisons["budget"]) == {40} and final.family_size == 2
    with pytest.raises(ValueError, match=r"budget\(s\) \[30\] are not in the frame"):
        decide(f, Prediction(**PRED, budgets=(30,)), control="a")


def test_final_budget_and_mask():
    f = budget_frame(lambda v, b: 0.0).assign(run_id=lambda d: d["variant"] + d["seed"].astype(str))
    assert len(final_budget(f)) == 24 and set(final_budget(f)["budget"]) == {40}
    assert confirmatory_mask(f, "all").all() and confirmatory_mask(f, (10,)).sum() == 24
    plain = f.drop(columns=["budget", "budget_steps"])
    assert final_budget(plain) is plain


def test_a_flipping_effect_is_a_finding():
    # b beats a early (0.5 at 10 and 20 steps) and loses late (-0.5 at 40): the ranking flips
    f = budget_frame(lambda v, b: (0.5 if b < 40 else -0.5) * (v == "b"), variants=("a", "b"))
    v = decide(f, Prediction(**PRED, budgets="all"), control="a", power=False)
    flips = ranking_flips(v.by_budget)
    assert [(x["from"], x["to"], x["clear"]) for x in flips] == [(20, 40, True)]
    decl = {"ablate": {"model": ["a", "b"]}, "training": {}}
    out = budget_section(f.assign(status="FINISHED"), v, Prediction(**PRED, budgets="all"), decl, "model",
                         " nats", False, {})
    assert len(out["findings"]) == 1
    assert "the ranking flips between 20 and 40 steps" in out["findings"][0]
    assert out["budgets"]["confirmatory"] == [10, 20, 40] and out["budgets"]["figure"].svg.startswith(b"<?xml")
    steady = budget_frame(lambda v, b: 0.5 * (v == "b"), variants=("a", "b"))
    assert ranking_flips(decide(steady, Prediction(**PRED, budgets="all"), control="a", power=False).by_budget) == []


def test_still_improving_fires_above_half_the_effect_and_not_when_flat():
    e = 0.2
    # the treatment improves (nll falls) by 0.3 > E/2 between the last two budgets (a doubling)
    moving = budget_frame(lambda v, b: 0.3 * (v == "b") * (b == 40), variants=("a", "b"), noise=0.0)
    hits = still_improving(moving, e, higher_is_better=False)
    assert [(h["variant"], h["from"], h["to"]) for h in hits] == [("b", 20, 40)]
    assert hits[0]["gain"] == pytest.approx(0.3)
    # 0.3 over 10 -> 40 steps (two doublings) is 0.15 per doubling: above E/2 = 0.1, not above 0.4/2
    spread = budget_frame(lambda v, b: 0.3 * (v == "b") * (b == 40), budgets=(10, 40), variants=("a", "b"), noise=0.0)
    assert still_improving(spread, e, higher_is_better=False)[0]["gain"] == pytest.approx(0.15)
    assert still_improving(spread, 0.4, higher_is_better=False) == []
    flat = budget_frame(lambda v, b: 0.3 * (v == "b"), variants=("a", "b"), noise=0.0)  # no change across budgets
    assert still_improving(flat, e, higher_is_better=False) == []
    # worsening is not improving; in a higher-is-better metric the same fall is a worsening
    assert still_improving(moving, e, higher_is_better=True) == []
    # in the report: the warning's words
    v = decide(moving, Prediction(**PRED, budgets="all"), control="a", power=False)
    decl = {"ablate": {"model": ["a", "b"]}, "training": {}}
    out = budget_section(moving, v, Prediction(metric="nll", direction="lower", effect=e), decl, "model", "", False, {})
    assert [w["kind"] for w in out["warnings"]] == ["still improving"]
    assert "the verdict may not hold with more training" in out["warnings"][0]["text"]


def test_one_budget_checks_the_training_history_or_says_it_needs_evaluate_at():
    f = budget_frame(lambda v, b: 0.5 * (v == "b"), budgets=(100,), variants=("a", "b"))
    v = decide(f, Prediction(**PRED), control="a", power=False)
    decl = {"ablate": {"model": ["a", "b"]}, "training": {}}
    out = budget_section(f, v, Prediction(**PRED), decl, "model", "", False, {"loss": {}})
    assert out["warnings"] == [] and any("evaluate_at" in n for n in out["notes"])
    falling = [(s, 10 - 2 * np.log2(s)) for s in range(10, 101, 5)]  # 2 nats per doubling
    out = budget_section(f, v, Prediction(**PRED), decl, "model", "", False, {"nll": {"model = b": [falling]}})
    assert [w["kind"] for w in out["warnings"]] == ["still improving"] and not out["notes"]


def test_sequential_looks_use_the_final_budget():
    f = budget_frame(lambda v, b: 0.5 * (v == "b") * (b == 40), variants=("a", "b"), n=8)
    design = Sequential(looks=(4, 8))
    with_b = analyse_look(f, Prediction(**PRED), design, 1, control="a")
    final = f[f.budget == 40].drop(columns=["budget", "budget_steps"])
    assert with_b == analyse_look(final, Prediction(**PRED), design, 1, control="a")


# --------------------------------------------------------------------------- declarations
@pytest.mark.parametrize("budgets, what", [
    ("last", "invalid value"), ((), "invalid value"), ((0, 10), "invalid value"), ((10, 10), "duplicate budgets"),
    ((True,), "invalid value"), (10, "invalid value"),
])
def test_bad_budgets_are_declaration_errors(budgets, what):
    with pytest.raises(DeclarationError, match="prediction.budgets") as e:
        Prediction(**PRED, budgets=budgets)
    assert what in str(e.value) and "hint:" in str(e.value)


def test_budgets_canonical_form_and_versions():
    assert Prediction(**PRED, budgets=[40, 20]).budgets == (20, 40)  # JSON's list is the tuple it means
    for name, (version, smoke) in VERSIONS.items():
        col = collect(ROOT / "hypotheses" / f"{name}.py")
        assert (col.hypothesis.version, smoke_version(col.hypothesis).version) == (version, smoke), name
        declared = col.hypothesis.prediction.budgets
        assert ("budgets" in col.hypothesis.canonical()["prediction"]) == (declared != "final"), name
    assert sorted(VERSIONS) == sorted(Path(p).stem for p in glob.glob(str(ROOT / "hypotheses" / "*.py")))
    h = collect(ROOT / "hypotheses" / "iaf_tightens_bound.py").hypothesis
    t = dataclasses.replace(h.training, evaluate_at=(100,))
    h2 = dataclasses.replace(h, training=t, prediction=dataclasses.replace(h.prediction, budgets="all"))
    assert h2.canonical()["prediction"]["budgets"] == "all" and h2.confirmatory_budgets == (100, h.training.steps)
    h3 = dataclasses.replace(h2, prediction=dataclasses.replace(h.prediction, budgets=(100,)))
    assert h3.canonical()["prediction"]["budgets"] == [100] and h3.version != h2.version
    # the smoke version's named budgets shrink with its steps, as evaluate_at does
    assert smoke_version(h3).prediction.budgets == smoke_version(h3).training.evaluate_at


def test_a_budget_that_is_not_evaluated_is_refused_with_the_evaluated_ones():
    h = collect(ROOT / "hypotheses" / "iaf_tightens_bound.py").hypothesis
    t = dataclasses.replace(h.training, evaluate_at=(100,))
    with pytest.raises(DeclarationError, match="budget not evaluated") as e:
        dataclasses.replace(h, training=t, prediction=dataclasses.replace(h.prediction, budgets=(150,)))
    assert "prediction.budgets" in str(e.value) and f"[100, {h.training.steps}]" in str(e.value)
    with pytest.raises(DeclarationError, match="Sequential"):
        dataclasses.replace(h, training=t, seeds=Sequential(looks=(4, 8)),
                            prediction=dataclasses.replace(h.prediction, budgets="all"))


def test_a_prediction_without_budgets_still_decides():
    """A duck-typed prediction (no budgets attribute) on a frame with budgets: "final"."""
    f = budget_frame(lambda v, b: 0.5 * (v != "a"))
    pred = SimpleNamespace(metric="nll", direction="lower", effect=0.1, alpha=0.05, test="t", correction="holm",
                           failed="worst")
    v = decide(f, pred, control="a", power=False)
    assert set(v.comparisons["budget"]) == {40} and not math.isnan(v.effect)
    assert Training(steps=50, evaluate_at=(10,)).budgets == (10, 50)
