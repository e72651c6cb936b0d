"""analysis.stats_mean (paired t, bootstrap-t, t power) against scipy / statsmodels, and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from analysis.stats_inputs import paired_differences
from analysis.stats_mean import power_paired_t, seeds_for_power, t_interval, t_pvalue
from analysis.stats_paired import paired_test


# --------------------------------------------------------------------------- t
def test_t_matches_scipy_paired_t_and_interval():
    rng = np.random.default_rng(5)
    for n in (2, 3, 7, 20):
        c, t = rng.normal(5, 1, size=n), rng.normal(4.6, 1, size=n)
        d = c - t
        assert t_pvalue(d) == pytest.approx(sps.ttest_rel(c, t, alternative="greater").pvalue, abs=1e-12)
        assert t_pvalue(d, null=0.3, alternative="less") == pytest.approx(
            sps.ttest_1samp(d, 0.3, alternative="less").pvalue, abs=1e-12)
        ci = sps.ttest_1samp(d, 0.0).confidence_interval(confidence_level=0.9)
        assert t_interval(d, 0.05) == pytest.approx((ci.low, ci.high), abs=1e-10)


def test_t_nonsuperiority_matches_statsmodels_ttost_paired():
    rng = np.random.default_rng(6)
    for n, effect in ((5, 0.5), (12, 1.0), (30, 0.2)):
        control, treatment = rng.normal(10, 1, size=n), rng.normal(9.5, 1, size=n)
        d = paired_differences(control, treatment, "lower")
        # ttost_paired tests low < mean(x1 - x2) < upp; its second part is H1: mean < upp
        _, _, (_, p_upper, _) = ttost_paired(control, treatment, effect - 1e6, effect)
        ours = paired_test(d, test="t", effect=effect, alpha=0.05).p_nonsuperiority
        assert ours == pytest.approx(p_upper, abs=1e-10)


def test_t_hand_computed_and_degenerate_cases():
    # d = (1, 2, 3): t = 2 * sqrt(3), df = 2, and for df = 2: P(T > t) = 1/2 - t / (2 sqrt(2 + t^2))
    t = 2 * math.sqrt(3)
    assert t_pvalue([1.0, 2.0, 3.0]) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert t_pvalue([1.0, 1.0, 1.0]) == 0.0  # zero variance, all beyond the null: the limit
    assert t_pvalue([0.0, 0.0, 0.0]) == 1.0
    assert t_pvalue([1.0, 1.0, 1.0], alternative="less") == 1.0
    assert t_pvalue([2.5]) == 1.0  # one pair: no test
    assert t_interval([2.5], 0.05) == (-math.inf, math.inf)


# --------------------------------------------------------------------------- power
@pytest.mark.parametrize("effect,sd,n,alpha", [
    (0.5, 1.0, 10, 0.05), (1.0, 0.4, 5, 0.05), (0.2, 1.0, 40, 0.01), (2.0, 3.0, 3, 0.1), (0.0, 1.0, 10, 0.05),
])
def test_power_matches_statsmodels(effect, sd, n, alpha):
    theirs = TTestPower().power(effect_size=effect / sd, nobs=n, alpha=alpha, alternative="larger")
    assert power_paired_t(effect, sd, n, alpha) == pytest.approx(theirs, abs=1e-6)


@pytest.mark.parametrize("es,alpha", [(0.3, 0.05), (0.5, 0.05), (0.8, 0.05), (1.2, 0.0125), (0.25, 0.1)])
def test_seeds_for_power_matches_statsmodels(es, alpha):
    n = TTestPower().solve_power(effect_size=es, alpha=alpha, power=0.8, alternative="larger")
    assert seeds_for_power(es * 2.0, 2.0, alpha) == math.ceil(n)


def test_power_edge_cases():
    assert math.isnan(power_paired_t(0.5, 1.0, 1, 0.05))
    assert math.isnan(power_paired_t(0.5, math.nan, 5, 0.05))
    assert power_paired_t(0.5, 0.0, 5, 0.05) == 1.0
    assert power_paired_t(0.0, 0.0, 5, 0.05) == 0.05
    assert seeds_for_power(0.5, 0.0, 0.05) == 2
    assert seeds_for_power(0.0, 1.0, 0.05) == math.inf
    assert math.isnan(seeds_for_power(0.5, math.nan, 0.05))
    assert seeds_for_power(10.0, 1.0, 0.05) == 2
