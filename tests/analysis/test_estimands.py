"""Declared estimands: validation, hash, the test each one gets, readings, and calibration
under symmetric and skewed paired differences (fast: 1000 replicates, 3-SE tolerances; the
full tables come from scripts/calibrate.py, see docs/statistics.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import error_rate
from analysis.decide import decide
from harness import DeclarationError, Prediction

ALPHA, R = 0.05, 1000
TOL = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / R)  # 0.0707


def frame(d):
    base = np.arange(len(d), dtype=float) + 10
    return pd.DataFrame({"variant": ["a"] * len(d) + ["b"] * len(d), "seed": list(range(len(d))) * 2,
                         "value": np.concatenate([base, base - np.asarray(d, float)])})


def test_estimand_picks_its_test_and_rejects_an_invalid_one():
    assert Prediction("nll", "lower", 0.5).test == "permutation"
    assert Prediction("nll", "lower", 0.5, estimand="mean").test == "t"  # issue 22
    assert Prediction("nll", "lower", 0.5, estimand="median").test == "sign"
    assert Prediction("nll", "lower", 0.5, estimand="pseudomedian", test="wilcoxon").test == "wilcoxon"
    with pytest.raises(DeclarationError, match="estimand='median'"):
        Prediction("nll", "lower", 0.5, estimand="median", test="t")
    with pytest.raises(DeclarationError, match="estimand"):
        Prediction("nll", "lower", 0.5, estimand="mode")


def test_estimand_is_part_of_the_hash_and_none_keeps_old_hashes():
    from harness.canonical import prediction_canonical as _prediction_canonical

    old = _prediction_canonical(Prediction("nll", "lower", 0.5))
    assert "estimand" not in old and old["test"] == "permutation"
    assert _prediction_canonical(Prediction("nll", "lower", 0.5, estimand="pseudomedian"))["estimand"] == "pseudomedian"
    assert _prediction_canonical(Prediction("nll", "lower", 0.5, estimand="mean")) != old


def test_median_estimand_reports_the_median_and_the_sign_test():
    d = np.array([0.1, 0.2, 0.3, 0.4, 5.0, 0.6, 0.7, 0.8, 0.9, 1.0])
    v = decide(frame(d), Prediction("nll", "lower", 0.05, estimand="median"), control="a")
    row = v.comparisons.iloc[0]
    assert v.estimand == "median" and row["estimator"] == "median"
    assert row["effect"] == pytest.approx(np.median(d))
    assert row["p_value"] == pytest.approx(2.0**-10)  # all 10 positive
    assert (row["ci_low"] > 0) == (row["p_value"] <= ALPHA)


def test_readings_effect_shown_and_equivalence():
    # seed 0: none of these normal draws is flagged as skewed (seed 1's first one is, by
    # chance, and Cochran's rule then caps the mean at inconclusive; issue 22)
    rng = np.random.default_rng(0)
    big = decide(frame(2.0 + 0.1 * rng.standard_normal(12)), Prediction("nll", "lower", 0.5, test="t"), control="a")
    assert big.outcome == "supported" and big.reading == "effect >= E shown"
    tiny = decide(frame(0.01 * rng.standard_normal(12)), Prediction("nll", "lower", 0.5, test="t"), control="a")
    assert tiny.outcome == "refuted" and tiny.reading == "equivalent within +-E (TOST)"
    worse = decide(frame(-2.0 + 0.1 * rng.standard_normal(12)), Prediction("nll", "lower", 0.5, test="t"), control="a")
    assert worse.outcome == "refuted" and worse.reading == "refuted (< E shown)"


def test_skewed_differences_raise_a_warning():
    d = np.exp(1.2 * np.random.default_rng(2).standard_normal(15))
    v = decide(frame(d - d.mean() + 0.3), Prediction("nll", "lower", 0.5, test="t"), control="a")
    assert bool(v.comparisons.iloc[0]["skew_warning"])
    assert any("skewed" in n and "estimand='median'" in n for n in v.notes)


# --------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("test", ["t", "permutation", "wilcoxon", "sign", "bootstrap_t"])
def test_every_test_holds_its_level_under_normal_differences(test):
    assert error_rate(test, "normal", 1, n=10, truth="null", replicates=R, seed=1) <= TOL
    assert error_rate(test, "normal", 1, n=10, truth="effect", replicates=R, seed=2) <= TOL


@pytest.mark.parametrize("dist", ["lognormal0.5", "lognormal1"])
@pytest.mark.parametrize("sign", [-1, 1])
def test_sign_test_is_exact_for_the_median_under_any_skew(dist, sign):
    for truth in ("null", "effect"):
        assert error_rate("sign", dist, sign, n=10, truth=truth, replicates=R, seed=3) <= TOL
    assert error_rate("sign", dist, sign, n=10, truth="null", strata=4, replicates=R, seed=4) <= TOL


def test_skew_breaks_the_t_test_for_the_mean_and_the_bootstrap_t_repairs_most_of_it():
    # right-skewed lognormal (sigma 1), mean exactly E: P(refuted) t ~0.20, bootstrap-t ~0.11
    # (the raw tests: cochran=False; issue 22's Cochran cap is measured just below)
    t = error_rate("t", "lognormal1", 1, n=10, truth="effect", replicates=R, seed=5, cochran=False)
    bt = error_rate("bootstrap_t", "lognormal1", 1, n=10, truth="effect", replicates=R, seed=5,
                    cochran=False)
    assert t > 0.12 and bt < t - 0.04
    capped = error_rate("t", "lognormal1", 1, n=10, truth="effect", replicates=R, seed=5)
    assert capped < t  # it helps (0.18 -> 0.13 at 2000 reps) but does not reach alpha
    # left-skewed sigma 0.5, mean 0: the sign-flip test read as a test of the MEAN over-rejects
    mismatch = error_rate("permutation", "lognormal0.5", -1, n=10, truth="null", estimand="mean",
                          replicates=R, seed=6)
    assert mismatch > ALPHA + 0.02
    matched = error_rate("permutation", "lognormal0.5", -1, n=10, truth="null", replicates=R, seed=6)
    assert matched <= TOL
