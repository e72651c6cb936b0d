"""Issue 22 (Statistics III): each test reproduces a defect and failed before its fix."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.decide import decide
from analysis.estimands import ESTIMANDS
from analysis.stats_paired import paired_test
from harness import Prediction


def pred(**kw):
    base = {"metric": "nll", "direction": "lower", "effect": 0.5, "alpha": 0.05, "test": "permutation"}
    base.update(kw)
    return Prediction(**base)


def frame(strata_d: dict, n: int = 10, seed: int = 0) -> pd.DataFrame:
    """One stratum per key; d = control - treatment per seed (None: every run failed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, d in strata_d.items():
        base = 10 + rng.normal(0, 1, n)
        for i in range(n):
            failed = d is None
            rows.append({"stratum": s, "variant": "base", "seed": i, "value": math.nan if failed else base[i]})
            rows.append({"stratum": s, "variant": "new", "seed": i,
                         "value": math.nan if failed else base[i] - d[i]})
    return pd.DataFrame(rows)


# 1 ------------------------------------------------------------------ every run failed
@pytest.mark.parametrize("test", ["t", "permutation", "sign", "wilcoxon"])
def test_a_stratum_where_every_run_failed_is_inconclusive_not_refuted(test):
    good = {s: 1.5 + np.linspace(-0.5, 0.5, 10) + 0.01 * i for i, s in enumerate("abc")}
    v = decide(frame({**good, "dead": None}), pred(test=test), control="base", power=False)
    comp = v.comparisons.set_index("stratum")
    assert comp.loc["dead", "outcome"] == "inconclusive"
    assert comp.loc["dead", "n_pairs"] == 0
    assert "every run failed" in comp.loc["dead", "why_inconclusive"]
    assert (comp.loc[["a", "b", "c"], "outcome"] == "supported").all()
    assert v.outcome == "inconclusive"  # the family rule: one comparison undecided
    assert any("dead" in n and "every run failed" in n for n in v.notes)


def test_pairs_where_both_runs_failed_are_excluded_one_sided_failures_follow_the_policy():
    d = 1.5 + np.random.default_rng(2).normal(0, 0.3, 10)
    f = frame({"": d})
    both = f["seed"].isin([0, 1])
    f.loc[both, "value"] = math.nan  # both runs of seeds 0 and 1 failed
    f.loc[(f["seed"] == 2) & (f["variant"] == "new"), "value"] = math.nan  # one-sided
    row = decide(f, pred(test="t"), control="base", power=False).comparisons.iloc[0]
    assert row["n_pairs"] == 8  # 10 - 2 both-failed; the one-sided failure is imputed ("worst")
    assert row["n_both_failed"] == 2


def test_no_finished_pair_is_inconclusive():
    f = frame({"": np.full(6, 1.0)}, n=6)
    f.loc[(f["variant"] == "new") & (f["seed"] % 2 == 0), "value"] = math.nan
    f.loc[(f["variant"] == "base") & (f["seed"] % 2 == 1), "value"] = math.nan
    v = decide(f, pred(test="t"), control="base", power=False)
    assert v.outcome == "inconclusive"
    assert "no pair in which both runs finished" in v.comparisons.iloc[0]["why_inconclusive"]


# 2 ------------------------------------------------------------------ zero variance
@pytest.mark.parametrize("test", ["t", "bootstrap_t"])
def test_zero_variance_does_not_give_p_zero(test):
    d = np.full(10, 0.6)
    r = paired_test(d, test=test, effect=0.5, alpha=0.05, rng=np.random.default_rng(0))
    exact = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                   alternative="greater").pvalue
    assert r.p_superiority == pytest.approx(2.0**-10) == pytest.approx(exact)
    assert r.p_superiority > 0
    assert r.fallback == "permutation"
    v = decide(frame({"": d}), pred(test=test, estimand="mean"), control="base", power=False)
    assert v.p_value == pytest.approx(2.0**-10)
    assert any("zero variance" in n and "sign-flip" in n for n in v.notes)


@pytest.mark.parametrize("test", ["permutation", "wilcoxon", "sign"])
def test_exact_tests_give_their_smallest_attainable_p_under_zero_variance(test):
    r = paired_test(np.full(10, 0.6), test=test, effect=0.5, alpha=0.05)
    assert r.p_superiority == pytest.approx(2.0**-10)


# 3 ------------------------------------------------------------------ the mean's default test
def test_the_means_default_test_is_t():
    assert ESTIMANDS["mean"][0] == "t"
    assert Prediction(metric="nll", direction="lower", effect=0.5, estimand="mean").test == "t"


def test_no_shipped_hypothesis_declares_the_mean_without_a_test():
    import re
    from pathlib import Path
    for path in Path(__file__).resolve().parents[2].joinpath("hypotheses").glob("*.py"):
        src = path.read_text()
        if re.search(r"estimand\s*=\s*['\"]mean['\"]", src):
            assert re.search(r"test\s*=", src), path  # else its version would change


def test_cochran_rule_caps_a_skewed_mean_at_inconclusive():
    # Strongly right-skewed improvements, mean well above E: the t-test would support, but
    # n = 10 <= 25 g1^2, so the mean's verdict is at most inconclusive, naming the median.
    d = np.array([0.55, 0.6, 0.58, 0.62, 0.57, 0.61, 0.59, 0.6, 0.58, 6.0])
    v = decide(frame({"": d}), pred(test="t", estimand="mean"), control="base", power=False)
    row = v.comparisons.iloc[0]
    assert 10 <= 25 * row["skewness"] ** 2
    assert row["outcome"] == "inconclusive" and v.outcome == "inconclusive"
    assert "Cochran" in row["why_inconclusive"]
    assert any("estimand='median'" in n and "Cochran" in n for n in v.notes)
    # the same data under the median estimand is decided as before
    assert decide(frame({"": d}), pred(test="sign", estimand="median"), control="base",
                  power=False).outcome == "supported"


def test_cochran_rule_leaves_symmetric_data_alone():
    d = 1.5 + np.random.default_rng(3).normal(0, 0.3, 10)
    v = decide(frame({"": d}), pred(test="t", estimand="mean"), control="base", power=False)
    assert v.outcome == "supported" and v.comparisons.iloc[0]["why_inconclusive"] == ""


def test_a_registered_mean_keeps_its_recorded_test():
    # A study registered before issue 22 stored the RESOLVED test in its canonical declaration;
    # the report rebuilds the Prediction from that dict (analysis/report_data.py), so it keeps
    # bootstrap_t although the mean's default is now t.
    from harness.canonical import prediction_canonical
    stored = prediction_canonical(Prediction(metric="nll", direction="lower", effect=0.5,
                                             estimand="mean", test="bootstrap_t"))
    assert stored["test"] == "bootstrap_t"
    assert Prediction(**stored).test == "bootstrap_t"
    import inspect

    import analysis.report_data as rd
    assert 'Prediction(**decl["prediction"])' in inspect.getsource(rd)


# 9 ------------------------------------------------------------------ expected best of n
def test_expected_best_is_the_mean_over_every_n_subset():
    import itertools

    from analysis.tuning import expected_best
    v = np.array([3.1, 0.4, 2.2, 5.0, 1.7, 4.4, 0.9])
    for direction, pick in (("lower", min), ("higher", max)):
        ns, mean, sd = expected_best(v, direction)
        for n in ns:
            best = [pick(c) for c in itertools.combinations(v, int(n))]
            assert mean[n - 1] == pytest.approx(np.mean(best), rel=1e-12)
            assert sd[n - 1] == pytest.approx(np.std(best), rel=1e-9, abs=1e-12)
        assert mean[-1] == pick(v)  # a budget of every trial found the observed best


def test_dodge_estimator_is_kept_as_an_option_with_replacement():
    import itertools

    from analysis.tuning import expected_best
    v = np.array([3.0, 1.0, 2.0, 0.5])
    _, mean, _ = expected_best(v, "lower", estimator="dodge")
    brute = np.mean([min(c) for c in itertools.product(v, repeat=3)])
    assert mean[2] == pytest.approx(brute)
    assert mean[-1] > v.min()  # with replacement: biased away from the best at n = N


# 7 ------------------------------------------------------------------ the verdict's words
def test_headline_names_the_estimate_and_the_test_behind_p():
    from analysis.report_data import _verdict_sentence  # noqa: PLC2701 (same-package test of a helper)
    d = 1.5 + np.linspace(-0.5, 0.5, 10)
    for test, estimate in (("wilcoxon", "Hodges-Lehmann pseudo-median"), ("sign", "median"), ("t", "mean")):
        v = decide(frame({"": d}), pred(test=test), control="base", power=False)
        s = _verdict_sentence(v, v.prediction, "base", ["base", "new"], "", True, 20, 20)
        assert f"{estimate} improvement" in s and f", one-sided {test}" in s, s
