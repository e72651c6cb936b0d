"""analysis.pilot: a pilot's SDs -> power and seeds needed, by the machinery the report uses."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest
from scipy import stats

from analysis.pilot import comparison_seeds, pilot_estimate, sd_upper_bound
from analysis.power import overall_power, seeds_for_overall_power
from analysis.stats_mean import power_paired_t, seeds_for_power


def _pred(test="t", effect=1.0, alpha=0.05, correction="holm"):
    return NS(test=test, effect=effect, alpha=alpha, correction=correction)


def _comp(sd, n=5, treatment="b", stratum=""):
    return {"stratum": stratum, "control": "a", "treatment": treatment, "n_pairs": n, "effect": 0.3,
            "sd_difference": sd}


def test_the_upper_bound_is_the_chi_square_one_and_covers_sigma_80_percent_of_the_time():
    assert math.isclose(sd_upper_bound(2.0, 6), 2.0 * math.sqrt(5 / stats.chi2.ppf(0.2, 5)))
    assert sd_upper_bound(1.0, 6, 0.95) > sd_upper_bound(1.0, 6) > 1.0
    assert math.isnan(sd_upper_bound(1.0, 1)) and math.isnan(sd_upper_bound(math.nan, 5))
    rng = np.random.default_rng(0)
    sds = rng.standard_normal((20_000, 5)).std(axis=1, ddof=1)
    covered = np.mean([sd_upper_bound(s, 5) >= 1.0 for s in sds])
    assert abs(covered - 0.8) < 0.01


@pytest.mark.parametrize(("effect", "sd", "alpha"), [(1.0, 1.0, 0.05), (0.1, 0.37, 0.05), (0.5, 2.0, 0.025)])
def test_t_seeds_needed_is_statsmodels_answer(effect, sd, alpha):
    from statsmodels.stats.power import TTestPower

    want = math.ceil(TTestPower().solve_power(effect / sd, alpha=alpha, power=0.8, alternative="larger"))
    assert comparison_seeds("t", effect, sd, alpha, 0.8) == want == seeds_for_power(effect, sd, alpha, 0.8)


def test_one_comparison_overall_is_its_row_and_uses_e_not_the_pilot_effect():
    est = pilot_estimate([_comp(1.0)], _pred(), n_registered=10, target=0.9)
    row = est["rows"][0]
    assert est["m"] == 1 and est["target"] == 0.9
    assert row["seeds"] == seeds_for_power(1.0, 1.0, 0.05, 0.9)  # E = 1.0, not the pilot's 0.3
    assert row["power"] == power_paired_t(1.0, 1.0, 10, 0.05)
    assert row["seeds_upper"] == seeds_for_power(1.0, sd_upper_bound(1.0, 5), 0.05, 0.9) > row["seeds"]
    assert est["overall"] == {k: row[k] for k in ("power", "seeds", "power_upper", "seeds_upper")}


def test_a_family_is_tested_at_alpha_over_m_and_overall_as_decide_simulates_it():
    pred = _pred(effect=0.5)
    est = pilot_estimate([_comp(1.0), _comp(0.5, treatment="c")], pred, n_registered=12)
    assert est["m"] == 2 and est["target"] == 0.8
    assert est["rows"][0]["seeds"] == seeds_for_power(0.5, 1.0, 0.025, 0.8)
    assert est["overall"]["power"] == overall_power("t", [0.5, 1.0], [12, 12], 0.05, "holm")
    assert est["overall"]["seeds"] == seeds_for_overall_power("t", [0.5, 1.0], 0.05, "holm", target=0.8)


def test_a_rank_test_is_simulated_and_too_few_pairs_give_no_number():
    est = pilot_estimate([_comp(1.0, n=6)], _pred(test="permutation"), n_registered=8)
    row = est["rows"][0]
    assert row["power"] == overall_power("permutation", [1.0], [8], 0.05)
    assert row["seeds"] == seeds_for_overall_power("permutation", [1.0], 0.05, target=0.8, max_n=400)
    empty = pilot_estimate([_comp(1.0, n=1)], _pred(), n_registered=8)["rows"][0]
    assert all(math.isnan(empty[k]) for k in ("sd", "sd_upper", "power", "seeds"))
