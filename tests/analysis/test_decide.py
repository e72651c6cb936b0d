"""analysis.decide: the pre-registered decision on a tidy frame of runs."""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

import analysis.comparison as comparison
import analysis.decide as D
import analysis.explain as explain
import analysis.tidy as tidy
from analysis.decide import Verdict, decide
from analysis.stats_mean import power_paired_t, seeds_for_power
from analysis.stats_ranks import hodges_lehmann
from analysis.stats_signflip import sign_flip_pvalue
from harness import Prediction

SPEC_COLUMNS = [
    "stratum", "control", "treatment", "n_pairs", "n_failed_control", "n_failed_treatment",
    "effect", "relative_effect", "ci_low", "ci_high", "p_value", "p_adjusted", "p_nonsup",
    "p_nonsup_adjusted", "prob_better", "prob_better_ci_low", "prob_better_ci_high", "outcome",
    "negligible", "power", "seeds_for_80_power",
]


def pred(**kw):
    base = {"metric": "nll", "direction": "lower", "effect": 0.5, "alpha": 0.05, "test": "t"}
    base.update(kw)
    return Prediction(**base)


def frame_from(control, treatments, strata=("",), seeds=None, control_name="base"):
    """control: {stratum: values}; treatments: {name: {stratum: values}}."""
    rows = []
    for s in strata:
        n = len(control[s])
        for i, sd in enumerate(seeds or range(n)):
            rows.append({"stratum": s, "variant": control_name, "seed": sd, "value": control[s][i]})
            for name, vals in treatments.items():
                rows.append({"stratum": s, "variant": name, "seed": sd, "value": vals[s][i]})
    return pd.DataFrame(rows)


def simple(control, treatment):
    return pd.DataFrame({
        "variant": ["base"] * len(control) + ["new"] * len(treatment),
        "seed": list(range(len(control))) + list(range(len(treatment))),
        "value": list(control) + list(treatment),
    })


RNG = np.random.default_rng(2024)
CONTROL = 80 + RNG.normal(0, 1, size=10)
NOISE = RNG.normal(0, 0.3, size=10)


def test_docstring_examples_run():
    results = [doctest.testmod(m, raise_on_error=False) for m in (D, comparison, explain, tidy)]
    result = doctest.TestResults(sum(r.failed for r in results), sum(r.attempted for r in results))
    assert result.attempted >= 3 and result.failed == 0


# --------------------------------------------------------------------------- single comparison
def test_single_comparison_matches_scipy_t():
    treatment = CONTROL - 1.2 + NOISE
    v = decide(simple(CONTROL, treatment), pred(test="t"), control="base")
    d = CONTROL - treatment
    assert v.outcome == "supported"
    assert v.family_size == 1
    assert v.effect == pytest.approx(d.mean(), abs=1e-12)
    assert v.p_value == pytest.approx(sps.ttest_rel(CONTROL, treatment, alternative="greater").pvalue, abs=1e-12)
    ci = sps.ttest_1samp(d, 0).confidence_interval(0.9)
    assert v.ci == pytest.approx((ci.low, ci.high), abs=1e-10)
    row = v.comparisons.iloc[0]
    assert row["p_adjusted"] == row["p_value"]
    assert row["relative_effect"] == pytest.approx(d.mean() / CONTROL.mean())
    assert row["prob_better"] == 1.0
    assert v.confidence == pytest.approx(0.9)
    assert "Supported" in v.explanation and "alpha = 0.05" in v.explanation


@pytest.mark.parametrize("test", ["permutation", "wilcoxon"])
def test_single_comparison_matches_the_rank_and_permutation_tests(test):
    treatment = CONTROL - 0.9 + NOISE
    d = CONTROL - treatment
    v = decide(simple(CONTROL, treatment), pred(test=test), control="base")
    if test == "permutation":
        assert v.p_value == pytest.approx(sign_flip_pvalue(d), abs=1e-15)
        assert v.effect == pytest.approx(d.mean())
        assert v.p_value == 1 / 1024  # all 10 differences positive
    else:
        assert v.p_value == pytest.approx(sps.wilcoxon(CONTROL, treatment, alternative="greater").pvalue)
        assert v.effect == pytest.approx(hodges_lehmann(d))
        assert v.comparisons["estimator"].iloc[0] == "hodges-lehmann"


def test_direction_higher_flips_the_difference():
    treatment = CONTROL + 1.0 + NOISE
    v = decide(simple(CONTROL, treatment), pred(direction="higher"), control="base")
    assert v.effect == pytest.approx((treatment - CONTROL).mean())
    assert v.outcome == "supported"
    v2 = decide(simple(CONTROL, treatment), pred(direction="lower"), control="base")
    assert v2.effect == pytest.approx(-v.effect)
    assert v2.outcome == "refuted"
    assert "significantly worse" in v2.explanation


def test_refuted_when_confidently_below_the_smallest_effect_of_interest():
    treatment = CONTROL - 0.05 + 0.05 * NOISE  # a tiny but real improvement, E = 0.5
    v = decide(simple(CONTROL, treatment), pred(effect=0.5), control="base")
    row = v.comparisons.iloc[0]
    assert v.outcome == "refuted"
    assert row["p_value"] <= 0.05 and row["p_nonsup"] <= 0.05  # significant AND below E
    assert v.negligible and bool(row["negligible"])
    assert v.p_value == pytest.approx(row["p_nonsup"])
    assert v.ci[1] < 0.5
    assert "significant but smaller than the smallest effect of interest" in v.explanation


def test_supported_but_negligible_is_flagged():
    treatment = CONTROL - 0.45 + 0.25 * NOISE  # significant, interval straddles E = 0.5
    v = decide(simple(CONTROL, treatment), pred(effect=0.5), control="base")
    row = v.comparisons.iloc[0]
    assert v.outcome == "supported"
    assert row["ci_low"] < 0.5 < row["ci_high"]
    assert v.negligible and bool(row["negligible"])
    assert "significant but possibly smaller than the smallest effect of interest" in v.explanation


def test_supported_and_not_negligible_when_interval_clears_e():
    treatment = CONTROL - 2.0 + 0.1 * NOISE
    v = decide(simple(CONTROL, treatment), pred(effect=0.5), control="base")
    assert v.outcome == "supported" and not v.negligible
    assert v.ci[0] >= 0.5
    assert "at or above 0.5" in v.explanation


def test_inconclusive_reports_power():
    spread = np.array([2.0, -2.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 0.2, -0.2])
    treatment = CONTROL - 0.3 - spread  # d = 0.3 + spread: mean 0.3, SD 1.3
    v = decide(simple(CONTROL, treatment), pred(effect=0.5), control="base")
    row = v.comparisons.iloc[0]
    assert v.outcome == "inconclusive"
    assert v.p_value == pytest.approx(row["p_value"])
    d = CONTROL - treatment
    # the power of the decision ("supported"), simulated: for the t test it is close to the
    # noncentral-t formula (which ignores the rare refuted-and-significant overlap)
    assert row["power"] == pytest.approx(power_paired_t(0.5, d.std(ddof=1), 10, 0.05), abs=0.04)
    assert abs(row["seeds_for_80_power"] - seeds_for_power(0.5, d.std(ddof=1), 0.05)) <= 3
    assert v.power == row["power"] and v.seeds_for_80_power == row["seeds_for_80_power"]
    assert "Inconclusive" in v.explanation and "Power" in v.explanation


def test_control_defaults_to_first_variant_in_order_of_appearance():
    f = simple(CONTROL, CONTROL - 1 + NOISE)
    assert decide(f, pred()).control == "base"
    assert decide(f.iloc[::-1].reset_index(drop=True), pred()).control == "new"


# --------------------------------------------------------------------------- families
def four_strata(shifts, n=10, seed=0, noise=None):
    rng = np.random.default_rng(seed)
    strata = [f"z={k}" for k in range(len(shifts))]
    noise = noise or [0.3] * len(shifts)
    control = {s: 50 + rng.normal(0, 1, n) for s in strata}
    treat = {s: control[s] - shifts[i] + rng.normal(0, noise[i], n) for i, s in enumerate(strata)}
    return frame_from(control, {"new": treat}, strata=strata)


@pytest.mark.parametrize("correction,method", [("holm", "holm"), ("bh", "fdr_bh")])
def test_family_adjustment_matches_statsmodels(correction, method):
    v = decide(four_strata([1.5, 0.2, 0.8, 0.0]), pred(correction=correction), control="base")
    c = v.comparisons
    assert v.family_size == 4 and len(c) == 4
    np.testing.assert_allclose(c["p_adjusted"], multipletests(c["p_value"], method=method)[1], atol=1e-12)
    np.testing.assert_allclose(c["p_nonsup_adjusted"], multipletests(c["p_nonsup"], method=method)[1], atol=1e-12)
    assert list(c["stratum"]) == ["z=0", "z=1", "z=2", "z=3"]


def test_family_all_supported():
    v = decide(four_strata([2.0, 2.5, 3.0, 2.2]), pred(), control="base")
    assert (v.comparisons["outcome"] == "supported").all()
    assert v.outcome == "supported"
    worst = v.comparisons["p_adjusted"].idxmax()
    assert v.p_value == v.comparisons.loc[worst, "p_adjusted"]
    assert v.headline == {"stratum": v.comparisons.loc[worst, "stratum"], "treatment": "new"}
    assert "all 4 comparisons" in v.explanation


def test_family_one_inconclusive_makes_it_inconclusive():
    v = decide(four_strata([2.0, 2.5, 0.3, 2.2], noise=[0.3, 0.3, 1.5, 0.3]), pred(), control="base")
    out = list(v.comparisons["outcome"])
    assert out.count("supported") == 3 and "refuted" not in out
    assert v.outcome == "inconclusive"
    assert v.headline["stratum"] == "z=2"
    assert v.p_value == v.comparisons.loc[2, "p_adjusted"] > 0.05
    assert "3 of 4" in v.explanation


def test_family_any_refuted_refutes():
    v = decide(four_strata([2.0, 2.5, 0.0, 2.2], n=20), pred(), control="base")
    assert v.comparisons.loc[2, "outcome"] == "refuted"
    assert v.outcome == "refuted"
    assert v.headline["stratum"] == "z=2"
    assert v.p_value == v.comparisons.loc[2, "p_nonsup_adjusted"] <= 0.05
    assert "Refuted" in v.explanation and "3 of 4" in v.explanation


def test_several_treatment_levels_share_one_family():
    control = {"": CONTROL}
    f = frame_from(control, {"iaf": {"": CONTROL - 2 + NOISE}, "linear": {"": CONTROL - 1 + NOISE}})
    v = decide(f, pred(), control="base")
    assert v.family_size == 2 and v.treatments == ("iaf", "linear")
    assert list(v.comparisons["treatment"]) == ["iaf", "linear"]
    assert len(v.iqm) == 3 and list(v.iqm["variant"]) == ["base", "iaf", "linear"]


# --------------------------------------------------------------------------- failed runs
def diverging(n_failed, policy, test):
    treatment = CONTROL - 10.0 + NOISE  # survivors are hugely better...
    treatment[:n_failed] = np.nan  # ... but these seeds diverged
    return decide(simple(CONTROL, treatment), pred(test=test, failed=policy), control="base")


@pytest.mark.parametrize("test", ["permutation", "wilcoxon", "t"])
def test_half_diverging_treatment_is_not_supported_under_worst(test):
    v = diverging(5, "worst", test)
    row = v.comparisons.iloc[0]
    assert v.outcome != "supported", v.explanation
    assert row["p_value"] >= 0.5  # the failures outweigh the survivors
    assert row["n_failed_treatment"] == 5 and row["n_pairs"] == 10
    assert row["prob_better"] == 0.5
    assert row["effect_finished_pairs"] == pytest.approx((CONTROL - (CONTROL - 10 + NOISE))[5:].mean())


@pytest.mark.parametrize("test", ["permutation", "t"])
def test_exclude_policy_tests_survivors_and_reports_counts(test):
    v = diverging(5, "exclude", test)
    row = v.comparisons.iloc[0]
    assert v.outcome == "supported"  # what a survivors-only analysis would conclude
    assert row["n_pairs"] == 5 and row["n_failed_treatment"] == 5
    assert v.failures.set_index("variant").loc["new", "n_failed"] == 5
    assert math.isnan(v.failures.set_index("variant").loc["new", "imputed_value"])


def test_worst_imputation_value_and_ties():
    control = np.array([10.0, 11.0, 12.0, 13.0, np.nan, 14.0])
    treatment = np.array([9.0, np.nan, 11.5, 12.0, np.nan, 15.0])
    v = decide(simple(control, treatment), pred(test="t", failed="worst"), control="base")
    # finished values span 9 .. 15: worst (lower is better) is 15, moved by the range 6 -> 21
    fails = v.failures.set_index("variant")
    assert fails.loc["new", "imputed_value"] == 21.0 and fails.loc["new", "failed_seeds"] == "1,4"
    assert fails.loc["base", "n_failed"] == 1
    d = np.array([1.0, 11.0 - 21.0, 0.5, 1.0, -1.0])  # seed 4: both failed -> left out (issue 22)
    assert v.effect == pytest.approx(d.mean())
    row = v.comparisons.iloc[0]
    assert row["n_pairs"] == 5 and row["n_both_failed"] == 1 and row["n_failed_control"] == 1 and row["n_failed_treatment"] == 2
    higher = decide(simple(control, treatment), pred(direction="higher"), control="base")
    assert higher.failures.set_index("variant").loc["new", "imputed_value"] == 3.0  # 9 - 6


def test_infinite_values_count_as_failed():
    treatment = CONTROL - 1 + NOISE
    treatment[0] = np.inf
    v = decide(simple(CONTROL, treatment), pred(), control="base")
    assert v.comparisons.iloc[0]["n_failed_treatment"] == 1


def test_all_pairs_excluded_is_inconclusive_not_a_crash():
    treatment = np.full(10, np.nan)
    v = decide(simple(CONTROL, treatment), pred(failed="exclude", test="permutation"), control="base")
    assert v.outcome == "inconclusive" and v.comparisons.iloc[0]["n_pairs"] == 0
    assert any("no pair left" in n for n in v.notes)


def test_too_few_seeds_for_significance_is_noted():
    v = decide(simple(CONTROL[:4], CONTROL[:4] - 5), pred(test="permutation"), control="base")
    assert v.outcome == "inconclusive" and v.p_value == 1 / 16
    assert any("cannot reach significance" in n for n in v.notes)


# --------------------------------------------------------------------------- reproducibility
def assert_same_verdict(a: Verdict, b: Verdict):
    for f in dataclasses.fields(Verdict):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, pd.DataFrame):
            assert_frame_equal(x, y, check_exact=True)
        else:
            assert x == y, f.name


@pytest.mark.parametrize("test", ["permutation", "wilcoxon", "t"])
def test_same_seed_same_verdict_bit_for_bit(test):
    f = four_strata([1.0, 0.5, 0.8, 0.2], n=24)  # 24 pairs: the Monte Carlo sign-flip path
    p = pred(test=test)
    np.random.seed(1)
    state = np.random.get_state()[1].copy()
    a, b = decide(f, p, "base", seed=7), decide(f, p, "base", seed=7)
    assert_same_verdict(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched
    c = decide(f, p, "base", seed=8)
    assert not c.comparisons["prob_better_ci_low"].equals(a.comparisons["prob_better_ci_low"]) or \
        not c.iqm["iqm_ci_low"].equals(a.iqm["iqm_ci_low"])
    if test == "permutation":
        assert a.comparisons["monte_carlo"].all()


def test_to_dict_is_json():
    v = decide(four_strata([1.0, 0.5]), pred(), "base")
    out = json.loads(json.dumps(v.to_dict()))
    assert out["outcome"] == v.outcome and len(out["comparisons"]) == 2
    assert out["prediction"]["effect"] == 0.5


def test_verdict_has_the_contract_fields():
    v = decide(four_strata([1.0, 0.5]), pred(), "base")
    for col in SPEC_COLUMNS:
        assert col in v.comparisons.columns
    assert v.outcome in D.OUTCOMES
    assert isinstance(v.ci, tuple) and len(v.ci) == 2
    assert "Decision rules" in v.rules and "Overall: supported if every comparison" in v.rules
    assert set(v.iqm.columns) >= {"stratum", "variant", "iqm", "iqm_ci_low", "iqm_ci_high"}


# --------------------------------------------------------------------------- bad input
def test_missing_columns_error_names_them():
    f = simple(CONTROL, CONTROL).rename(columns={"value": "rate"})
    with pytest.raises(ValueError, match=r"neither a column 'nll'.*nor 'value'.*received columns.*Fix"):
        decide(f, pred())
    with pytest.raises(ValueError, match=r"missing column\(s\) \['seed'\].*received columns.*Fix"):
        decide(simple(CONTROL, CONTROL).drop(columns="seed"), pred())


def test_unknown_control():
    with pytest.raises(ValueError, match=r"control 'diag' is not a value of column 'variant'.*\['base', 'new'\].*Fix"):
        decide(simple(CONTROL, CONTROL), pred(), control="diag")


def test_fewer_than_two_variants():
    f = simple(CONTROL, CONTROL)
    with pytest.raises(ValueError, match=r"at least 2 variants.*\['base'\].*Fix"):
        decide(f[f["variant"] == "base"], pred())


def test_no_pairs():
    f = simple(CONTROL, CONTROL)
    f.loc[f["variant"] == "new", "seed"] += 100
    with pytest.raises(ValueError, match=r"no pairs for treatment 'new' vs control 'base'.*Fix"):
        decide(f, pred())


def test_missing_treatment_in_one_stratum_is_no_pairs():
    f = four_strata([1.0, 1.0])
    f = f[~((f["stratum"] == "z=1") & (f["variant"] == "new"))]
    with pytest.raises(ValueError, match="in stratum 'z=1'"):
        decide(f, pred(), "base")


def test_other_bad_inputs():
    f = simple(CONTROL, CONTROL - 1)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        decide(f.to_dict(), pred())
    bad = f.astype({"value": object})
    bad.loc[0, "value"] = "oops"
    with pytest.raises(ValueError, match="column 'value' must be numeric.*oops"):
        decide(bad, pred())
    dup = pd.concat([f, f.iloc[:1]])
    with pytest.raises(ValueError, match="more than one row for the same"):
        decide(dup, pred())
    fl = f.assign(seed=f["seed"] + 0.5)
    with pytest.raises(ValueError, match="column 'seed' must hold integers"):
        decide(fl, pred())
    duck = SimpleNamespace(**{**dataclasses.asdict(pred()), "test": "z"})
    with pytest.raises(ValueError, match=r"prediction.test = 'z'; expected one of"):
        decide(f, duck)
    duck = SimpleNamespace(**{**dataclasses.asdict(pred()), "alpha": 0.7})
    with pytest.raises(ValueError, match=r"prediction.alpha = 0.7"):
        decide(f, duck)
    with pytest.raises(TypeError, match="prediction has no attribute 'metric'"):
        decide(f, object())
    with pytest.raises(ValueError, match="empty"):
        decide(f.iloc[:0], pred())


def test_unpaired_runs_are_reported():
    f = simple(CONTROL, CONTROL - 1 + NOISE)
    f = f.drop(index=f.index[(f["variant"] == "new") & (f["seed"] == 3)])
    v = decide(f, pred(), "base")
    row = v.comparisons.iloc[0]
    assert row["n_pairs"] == 9 and row["n_unpaired"] == 1
    assert any("without a partner seed" in n for n in v.notes)
