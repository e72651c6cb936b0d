"""analysis.aggregate: known answers against brute force and hand counts (issue 22, "Beyond the
anchors"): the stratified bootstrap, the pooled normalised IQM, the probability of improvement
averaged over strata, performance profiles, and the metric's direction."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.aggregate import (
    aggregate,
    normalise,
    performance_profile,
    pooled_iqm,
    prob_improvement,
    stratified_bootstrap_interval,
    stratified_resamples,
)
from analysis.decide import decide
from analysis.stats_descriptive import iqm_interval, prob_better_interval
from harness import Prediction


def frame(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """{(stratum, variant): values by seed 0, 1, ...} -> one row per run."""
    rows = [{"stratum": s, "variant": v, "seed": i, "value": x}
            for (s, v), xs in values.items() for i, x in enumerate(xs)]
    return pd.DataFrame(rows)


def test_normalise_is_min_max_within_each_stratum_in_the_metrics_direction():
    x = [1.0, 3.0, 2.0, 100.0, 300.0, math.nan, 7.0, 7.0]
    s = ["a", "a", "a", "b", "b", "b", "c", "c"]
    low = normalise(x, s, "lower")
    high = normalise(x, s, "higher")
    np.testing.assert_allclose(low[:5], [1.0, 0.0, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(high[:5], [0.0, 1.0, 0.5, 0.0, 1.0])
    assert math.isnan(low[5]) and math.isnan(high[5])  # a failed run is no score, and no extreme
    assert low[6:].tolist() == [0.5, 0.5]  # a stratum whose runs are all equal
    # scale-free: a stratum's units and offset do not matter
    np.testing.assert_allclose(normalise([3.0 * v + 7 for v in x], s, "lower")[:5], low[:5])
    with pytest.raises(ValueError, match="direction"):
        normalise(x, s, "down")


def test_stratified_resamples_never_mix_strata_and_keep_each_strata_size():
    a, b = np.array([0.0, 1.0, 2.0]), np.array([100.0, 101.0])
    parts = stratified_resamples([a, b], np.random.default_rng(0), 500)
    assert parts[0].shape == (500, 3) and parts[1].shape == (500, 2)
    assert np.isin(parts[0], a).all() and np.isin(parts[1], b).all()
    # an unstratified bootstrap of the pooled 5 values would give resamples with 0-5 from b
    pooled = np.concatenate(parts, axis=1)
    assert ((pooled >= 100).sum(axis=1) == 2).all()


def test_stratified_bootstrap_distribution_matches_enumeration():
    """Two strata of 2 runs: 2^2 x 2^2 = 16 equally likely resamples; the pooled mean's bootstrap
    distribution is the enumerated one (and not the unstratified bootstrap's)."""
    a, b = np.array([0.0, 1.0]), np.array([10.0, 30.0])
    exact = Counter()
    for ia in itertools.product(range(2), repeat=2):
        for ib in itertools.product(range(2), repeat=2):
            exact[float(np.mean(np.concatenate([a[list(ia)], b[list(ib)]])))] += 1 / 16
    parts = stratified_resamples([a, b], np.random.default_rng(7), 40_000)
    means = np.concatenate(parts, axis=1).mean(axis=1)
    seen = Counter(means.tolist())
    assert set(seen) == set(exact)
    for value, p in exact.items():
        assert seen[value] / means.size == pytest.approx(p, abs=0.01), value
    # the interval is the percentile interval of exactly these draws
    lo, hi = stratified_bootstrap_interval([a, b], lambda ps: np.concatenate(ps, axis=1).mean(axis=1), 0.05,
                                           np.random.default_rng(7), 40_000)
    assert (lo, hi) == tuple(np.quantile(means, [0.05, 0.95]))


def test_one_stratum_is_the_plain_bootstrap_draw_for_draw():
    x = np.random.default_rng(3).normal(size=9)
    assert stratified_bootstrap_interval([x], pooled_iqm, 0.05, np.random.default_rng(5), 999) == \
        iqm_interval(x, 0.05, np.random.default_rng(5), 999)
    assert stratified_bootstrap_interval([x], prob_improvement, 0.05, np.random.default_rng(5), 999) == \
        prob_better_interval(x, 0.05, np.random.default_rng(5), 999)


def test_aggregate_iqm_is_trim_mean_of_the_pooled_normalised_scores():
    rng = np.random.default_rng(1)
    f = frame({("s1", "c"): list(rng.normal(10, 1, 4)), ("s1", "t"): list(rng.normal(9, 1, 4)),
               ("s2", "c"): list(rng.normal(1000, 50, 4)), ("s2", "t"): list(rng.normal(900, 50, 4))})
    a = aggregate(f, "c", "lower", alpha=0.05, seed=0, n_bootstrap=300)
    scores = normalise(f["value"].to_numpy(), f["stratum"].to_numpy(), "lower")
    for v in ("c", "t"):
        row = a.table.set_index("variant").loc[v]
        assert row["iqm"] == pytest.approx(sps.trim_mean(scores[f["variant"] == v], 0.25))  # 8 runs: 2 cut each end
        assert row["iqm_ci_low"] <= row["iqm"] <= row["iqm_ci_high"]
        assert (row["n_strata"], row["n_runs"], row["n_analysed"], row["n_failed"]) == (2, 8, 8, 0)
    assert a.table["variant"].tolist() == ["c", "t"] and a.strata == ("s1", "s2")


def test_probability_of_improvement_is_the_hand_computed_average_over_strata():
    # lower is better: d = control - treatment. s1: d = 1, -1, 0, 2 -> 0.625; s2: 1, 1, 1, -1 -> 0.75
    f = frame({("s1", "c"): [5.0, 5.0, 5.0, 5.0], ("s1", "t"): [4.0, 6.0, 5.0, 3.0],
               ("s2", "c"): [50.0, 50.0, 50.0, 50.0], ("s2", "t"): [49.0, 49.0, 49.0, 51.0]})
    a = aggregate(f, "c", "lower", alpha=0.05, seed=0, n_bootstrap=300)
    t = a.table.set_index("variant").loc["t"]
    assert t["prob_improvement"] == pytest.approx((0.625 + 0.75) / 2)
    assert (t["strata_paired"], t["strata_unpaired"], t["strata_left_out"]) == (2, 0, 0)
    assert t["prob_improvement_ci_low"] <= t["prob_improvement"] <= t["prob_improvement_ci_high"]
    assert math.isnan(a.table.set_index("variant").loc["c", "prob_improvement"])
    # one stratum: exactly the per-comparison figure decide() reports
    one = f[f["stratum"] == "s1"]
    v = decide(one, Prediction(metric="value", direction="lower", effect=0.1, test="t"), control="c", power=False)
    assert aggregate(one, "c", "lower", alpha=0.05, seed=0).table["prob_improvement"].iloc[1] == \
        pytest.approx(v.comparisons["prob_better"].iloc[0])


def test_unpaired_stratum_uses_all_pairs_of_finished_runs():
    # s2: no seed where both runs finished -> P(t better) over all n m pairs, ties 1/2 (higher better):
    # control finished [1 (seed 0), 3 (seed 1)], treatment finished [2 (seed 2), 3 (seed 3)]
    f = frame({("s1", "c"): [1.0, 2.0, 3.0, 4.0], ("s1", "t"): [2.0, 3.0, 4.0, 5.0],
               ("s2", "c"): [1.0, 3.0, math.nan, math.nan], ("s2", "t"): [math.nan, math.inf, 2.0, 3.0]})
    a = aggregate(f, "c", "higher", alpha=0.05, seed=0, n_bootstrap=200)
    t = a.table.set_index("variant").loc["t"]
    unpaired = (1 + 1 + 0 + 0.5) / 4  # (c=1,t=2) (c=1,t=3) (c=3,t=2) (c=3,t=3)
    assert t["prob_improvement"] == pytest.approx((1.0 + unpaired) / 2)
    assert (t["strata_paired"], t["strata_unpaired"]) == (1, 1)
    assert (t["n_runs"], t["n_failed"], t["n_analysed"]) == (8, 2, 6)
    # a stratum where one arm has no finished run is left out of the average, and counted
    g = frame({("s1", "c"): [1.0, 2.0], ("s1", "t"): [2.0, 3.0],
               ("s2", "c"): [math.nan, math.nan], ("s2", "t"): [1.0, 2.0]})
    t = aggregate(g, "c", "higher", alpha=0.05, seed=0, n_bootstrap=200).table.set_index("variant").loc["t"]
    assert t["prob_improvement"] == 1.0 and t["strata_left_out"] == 1


def test_performance_profile_is_a_hand_count():
    scores = np.array([0.0, 0.25, 0.5, 0.5, 1.0])
    assert performance_profile(scores, [0.0, 0.25, 0.5, 0.99, 1.0]).tolist() == [0.8, 0.6, 0.2, 0.2, 0.0]
    f = frame({("s1", "c"): [1.0, 2.0, 3.0], ("s1", "t"): [3.0, 3.0, 5.0],
               ("s2", "c"): [10.0, 20.0, 30.0], ("s2", "t"): [0.0, 30.0, 40.0]})
    a = aggregate(f, "c", "higher", alpha=0.05, seed=0, n_bootstrap=200)
    p = a.profiles.set_index(["variant", "tau"])["fraction"]
    # normalised: s1 (1..5): c 0, .25, .5; t .5, .5, 1.  s2 (0..40): c .25, .5, .75; t 0, .75, 1.
    assert p[("c", 0.5)] == pytest.approx(1 / 6) and p[("t", 0.5)] == pytest.approx(3 / 6)
    assert p[("c", 0.0)] == pytest.approx(5 / 6) and p[("t", 1.0)] == 0.0
    band = a.profiles[a.profiles["variant"] == "t"]
    assert (band["ci_low"] <= band["fraction"] + 1e-12).all() and (band["fraction"] <= band["ci_high"] + 1e-12).all()
    assert len(band) == 101 and band["tau"].iloc[0] == 0.0 and band["tau"].iloc[-1] == 1.0


def test_direction_lower_is_better_means_lower_values_score_higher():
    f = frame({("s1", "c"): [10.0, 11.0, 12.0, 13.0], ("s1", "t"): [8.0, 9.0, 10.0, 11.0],
               ("s2", "c"): [1.0, 1.1, 1.2, 1.3], ("s2", "t"): [0.8, 0.9, 1.0, 1.1]})
    low = aggregate(f, "c", "lower", alpha=0.05, seed=0, n_bootstrap=300).table.set_index("variant")
    assert low.loc["t", "iqm"] > low.loc["c", "iqm"] and low.loc["t", "prob_improvement"] == 1.0
    high = aggregate(f, "c", "higher", alpha=0.05, seed=0, n_bootstrap=300).table.set_index("variant")
    assert high.loc["t", "prob_improvement"] == 0.0
    # lower on x is higher on -x, number for number (the same draws)
    neg = aggregate(f.assign(value=-f["value"]), "c", "higher", alpha=0.05, seed=0, n_bootstrap=300)
    pd.testing.assert_frame_equal(neg.table.set_index("variant"), low)


def test_aggregate_is_seeded_order_free_and_leaves_the_global_rng_alone():
    rng = np.random.default_rng(9)
    f = frame({(s, v): list(rng.normal(size=5)) for s in ("a", "b", "c") for v in ("x", "y", "z")})
    np.random.seed(1)
    before = np.random.get_state()[1].copy()
    one = aggregate(f, "x", "higher", alpha=0.1, seed=4, n_bootstrap=500)
    shuffled = aggregate(f.sample(frac=1, random_state=0), "x", "higher", alpha=0.1, seed=4, n_bootstrap=500)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    key = ["variant", "tau"]
    pd.testing.assert_frame_equal(one.table.set_index("variant").sort_index(),
                                  shuffled.table.set_index("variant").sort_index())
    pd.testing.assert_frame_equal(one.profiles.set_index(key).sort_index(), shuffled.profiles.set_index(key).sort_index())
    other = aggregate(f, "x", "higher", alpha=0.1, seed=5, n_bootstrap=500)
    assert not one.table["iqm_ci_low"].equals(other.table["iqm_ci_low"])
    assert one.confidence == pytest.approx(0.8)
    with pytest.raises(ValueError, match="control 'w'"):
        aggregate(f, "w", "higher", alpha=0.1, seed=4)
