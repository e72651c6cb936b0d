"""Regression tests for the six defects a reviewer found (issue 12); each failed before the fix."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.decide import decide
from analysis.power import overall_power
from harness import Prediction


def pred(**kw):
    base = {"metric": "nll", "direction": "lower", "effect": 0.5, "alpha": 0.05, "test": "permutation"}
    base.update(kw)
    return Prediction(**base)


def paired(d, levels=None, control=None, strata=("",)):
    """Frame whose paired differences (control - treatment) are d; extra levels: {name: d}."""
    rng = np.random.default_rng(0)
    rows = []
    for s in strata:
        base = 10 + rng.normal(0, 1, len(d)) if control is None else np.asarray(control, float)
        for i, b in enumerate(base):
            rows.append({"stratum": s, "variant": "base", "seed": i, "value": b})
            for name, dd in {"new": d, **(levels or {})}.items():
                rows.append({"stratum": s, "variant": name, "seed": i, "value": b - dd[i]})
    return pd.DataFrame(rows)


# 1 ------------------------------------------------------------------ power of the declared test
def test_power_is_that_of_the_declared_test_not_the_t_formula():
    # 3 pairs: the sign-flip p cannot go below 1/8 > 0.05, so power is 0 (t formula said 0.61).
    v = decide(paired(np.array([1.0, 0.4, 0.7])), pred(effect=0.5), control="base")
    row = v.comparisons.iloc[0]
    assert row["power"] == 0.0 and v.power == 0.0
    assert row["seeds_for_80_power"] >= 5
    assert "0.61" not in v.explanation and "Power of the permutation test" in v.explanation
    for n, expected in ((3, 0.0), (4, 0.0)):
        assert overall_power("permutation", [2.0], [n], 0.05) == expected
    assert overall_power("permutation", [2.0], [5], 0.05) > 0.5


def test_overall_power_covers_every_comparison_together():
    d = np.array([1.2, 0.4, 0.9, 1.5, 0.2, 0.8, 1.1, 0.6])
    v = decide(paired(d, strata=("a", "b", "c", "d")), pred(effect=0.8), control="base")
    delta = 0.8 / d.std(ddof=1)
    # the decision needs all four Holm-adjusted comparisons at once: less likely than one alone
    assert v.power == overall_power("permutation", [delta] * 4, [8] * 4, 0.05, "holm")
    assert v.seeds_for_80_power >= 2


# 2 ------------------------------------------------------------------ imputation from the pair only
def test_adding_a_poor_arm_changes_only_the_multiplicity_adjustment():
    rng = np.random.default_rng(3)
    control = 10 + rng.normal(0, 0.3, 10)
    d_good = 1.2 + rng.normal(0, 0.3, 10)
    two = paired(d_good, control=control)
    two.loc[(two.variant == "new") & (two.seed == 2), "value"] = np.nan  # one failed run
    three = paired(d_good, levels={"poor": np.full(10, -40.0) + rng.normal(0, 1, 10)}, control=control)
    three.loc[(three.variant == "new") & (three.seed == 2), "value"] = np.nan
    a = decide(two, pred(test="t"), control="base").comparisons.set_index("treatment").loc["new"]
    b = decide(three, pred(test="t"), control="base").comparisons.set_index("treatment").loc["new"]
    for col in ("effect", "ci_low", "ci_high", "p_value", "p_nonsup", "imputed_value", "d_z"):
        assert a[col] == b[col], col
    assert a["p_adjusted"] < b["p_adjusted"]  # the family grew from 1 to 2: only this moves


# 3 ------------------------------------------------------------------ Wilcoxon zeros and ties
def test_wilcoxon_verdict_and_interval_agree_with_zeros():
    d = np.array([1, 0, -1, 1.5, 1, 1, 0, 1.5, 0.5])
    v = decide(paired(d, control=np.arange(9) + 10.0), pred(test="wilcoxon", effect=1.0), control="base")
    row = v.comparisons.iloc[0]
    assert (row["ci_low"] > 0) == (row["p_value"] <= 0.05)


# 4 ------------------------------------------------------------------ row order
def test_monte_carlo_results_do_not_depend_on_row_order():
    rng = np.random.default_rng(4)
    f = paired(0.35 + rng.normal(0, 1, 25), levels={"other": 0.2 + rng.normal(0, 1, 25)},
               strata=("x", "y"))
    a = decide(f, pred(), control="base", n_permutations=999, n_bootstrap=200)
    shuffled = f.sample(frac=1, random_state=1).reset_index(drop=True)
    b = decide(shuffled, pred(), control="base", n_permutations=999, n_bootstrap=200)
    key = ["stratum", "treatment"]
    ca, cb = a.comparisons.sort_values(key).reset_index(drop=True), b.comparisons.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(ca, cb)
    ia = a.iqm.sort_values(["stratum", "variant"]).reset_index(drop=True)
    ib = b.iqm.sort_values(["stratum", "variant"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ia, ib)
    assert a.p_value == b.p_value


# 5 ------------------------------------------------------------------ import and metric column
def test_import_analysis_then_decide_works_like_the_readme():
    code = (
        "import analysis, pandas as pd\n"
        "from harness import Prediction\n"
        "f = pd.DataFrame({'variant': ['a'] * 5 + ['b'] * 5, 'seed': list(range(5)) * 2,\n"
        "                  'value': [10, 11, 12, 13, 14, 8.9, 10.1, 10.8, 12.2, 12.9]})\n"
        "v = analysis.decide(f, Prediction(metric='nll', direction='lower', effect=0.5, test='t'), control='a')\n"
        "import analysis.decide\n"
        "v2 = analysis.decide(f, Prediction(metric='nll', direction='lower', effect=0.5, test='t'), control='a')\n"
        "print(v.outcome, v2.outcome, analysis.Verdict.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["supported", "supported", "Verdict"]


def test_decide_analyses_the_column_the_prediction_names():
    rng = np.random.default_rng(5)
    n = 8
    rate_c, dist_c = 10 + rng.normal(0, 0.2, n), 30 + rng.normal(0, 0.2, n)
    f = pd.DataFrame({
        "variant": ["base"] * n + ["new"] * n, "seed": list(range(n)) * 2,
        "rate": np.concatenate([rate_c, rate_c - 1.3]),
        "distortion": np.concatenate([dist_c, dist_c + 4.0 + rng.normal(0, 0.2, n)]),
    })
    f["value"] = f["rate"]  # analysis.load fills value with the registered metric
    v = decide(f, pred(metric="distortion", test="t", effect=0.5), control="base")
    assert v.outcome == "refuted" and v.effect == pytest.approx(-4.0, abs=0.3)
    w = decide(f, pred(metric="rate", test="t", effect=0.5), control="base")
    assert w.outcome == "supported" and w.effect == pytest.approx(1.3)
    # a FAILED run's logged metric is not a result
    f["status"] = "FINISHED"
    f.loc[(f.variant == "new") & (f.seed == 0), "status"] = "FAILED"
    v = decide(f, pred(metric="distortion", test="t", effect=0.5, failed="exclude"), control="base")
    assert v.comparisons.iloc[0]["n_failed_treatment"] == 1


# 6 ------------------------------------------------------------------ adjusted flags, d_z
def test_negligible_uses_the_adjusted_test_and_d_z_is_reported():
    # four strata; unadjusted interval clears E = 0.5 but the Holm-adjusted test cannot show it
    rng = np.random.default_rng(4)
    d = 0.75 + 0.25 * rng.standard_normal(10)
    v = decide(paired(d, strata=("a", "b", "c", "d")), pred(test="t"), control="base")
    row = v.comparisons.iloc[0]
    assert row["ci_low"] >= 0.5 > row["adj_ci_low"]
    assert row["outcome"] == "supported" and bool(row["negligible"])
    assert row["reading"] == "supported, E not shown" and v.reading == "supported, E not shown"
    assert row["d_z"] == pytest.approx(row["mean_difference"] / row["sd_difference"])
    assert "d_z =" in v.explanation


def test_significantly_worse_wording_uses_the_adjusted_interval():
    rng = np.random.default_rng(0)
    d = -0.2 + 0.3 * rng.standard_normal(10)
    v = decide(paired(d, strata=("a", "b", "c", "d")), pred(test="t"), control="base")
    head = v.comparisons.set_index(["stratum"]).loc[v.headline["stratum"]]
    assert v.outcome == "refuted"
    assert head["ci_high"] < 0 <= head["adj_ci_high"]
    assert "significantly worse" not in v.explanation
