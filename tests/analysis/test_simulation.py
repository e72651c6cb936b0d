"""Seeded simulations of the decision rules' error rates and the intervals' coverage.

Run with ``python -m pytest tests/analysis/test_simulation.py -q -s`` to see the measured
rates. Each rate is compared with its bound plus 3 Monte Carlo standard errors,
3 * sqrt(bound * (1 - bound) / replicates). The vectorised functions of analysis.stats_* are the
ones analysis.decide calls, and the outcome rule is decide's own (``comparison_outcome``,
``family_outcome``); ``test_decide_end_to_end`` checks on full ``decide`` calls that the two
paths give identical p-values.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.comparison import comparison_outcome
from analysis.decide import decide, family_outcome
from analysis.stats_mean import power_paired_t, t_interval, t_pvalue
from analysis.stats_paired import adjust_pvalues
from analysis.stats_ranks import hodges_lehmann_interval, wilcoxon_pvalue
from analysis.stats_signflip import sign_flip_interval, sign_flip_pvalue
from harness import Prediction

ALPHA = 0.05
E = 0.5  # smallest effect of interest, in units of the SD of the paired differences
R = 2000  # replicates per scenario
SIZES = (5, 10, 20)


def mc_bound(rate: float, reps: int = R) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / reps)


def pvalues(test: str, d: np.ndarray, effect: float = E) -> tuple[np.ndarray, np.ndarray]:
    """(superiority, non-superiority) p-values, one per row of d."""
    if test == "t":
        return t_pvalue(d), t_pvalue(d, null=effect, alternative="less")
    if test == "wilcoxon":
        return wilcoxon_pvalue(d), wilcoxon_pvalue(d, null=effect, alternative="less")
    return sign_flip_pvalue(d), sign_flip_pvalue(d, null=effect, alternative="less")


def report(line: str) -> str:
    print(line)
    return line


@pytest.mark.parametrize("test", ["t", "permutation", "wilcoxon"])
def test_no_effect_is_rarely_supported(test):
    """True improvement 0: P(supported) <= alpha."""
    rng = np.random.default_rng(1)
    for n in SIZES:
        d = rng.normal(0.0, 1.0, size=(R, n))
        p_sup, p_non = pvalues(test, d)
        rate = float(np.mean(comparison_outcome(p_sup, p_non, ALPHA) == "supported"))
        msg = report(f"[null] {test:11s} n={n:2d}: P(supported) = {rate:.4f} (bound {mc_bound(ALPHA):.4f})")
        assert rate <= mc_bound(ALPHA), msg


@pytest.mark.parametrize("test", ["t", "permutation", "wilcoxon"])
def test_effect_at_the_smallest_effect_of_interest_is_rarely_refuted(test):
    """True improvement exactly E: P(refuted) <= alpha."""
    rng = np.random.default_rng(2)
    for n in SIZES:
        d = rng.normal(E, 1.0, size=(R, n))
        p_sup, p_non = pvalues(test, d)
        out = comparison_outcome(p_sup, p_non, ALPHA)
        rate = float(np.mean(out == "refuted"))
        power = float(np.mean(out == "supported"))
        msg = report(f"[at E] {test:11s} n={n:2d}: P(refuted) = {rate:.4f} (bound {mc_bound(ALPHA):.4f}); "
                     f"P(supported) = {power:.4f}, t-test power {power_paired_t(E, 1.0, n, ALPHA):.4f}")
        assert rate <= mc_bound(ALPHA), msg
        if test == "t":  # the power figure decide reports is the rule's real power
            target = power_paired_t(E, 1.0, n, ALPHA)
            assert abs(power - target) <= 3 * math.sqrt(target * (1 - target) / R) + 0.002, msg


@pytest.mark.parametrize("test", ["t", "permutation", "wilcoxon"])
def test_interval_coverage(test):
    """P(low <= true centre <= high) >= 1 - 2 alpha for symmetric differences."""
    rng = np.random.default_rng(3)
    centre = 0.3
    nominal = 1 - 2 * ALPHA
    tol = 3 * math.sqrt(nominal * (1 - nominal) / R)
    for n in SIZES:
        d = rng.normal(centre, 1.0, size=(R, n))
        if test == "t":
            low, high = t_interval(d, ALPHA)
        elif test == "wilcoxon":
            low, high = hodges_lehmann_interval(d, ALPHA)
        elif n <= 10:
            low, high = np.array([sign_flip_interval(row, ALPHA) for row in d]).T
        else:
            # 2^20 subset means per replicate is slow; the interval is exactly the set of centres
            # that neither one-sided test rejects (checked in test_stats), so coverage is
            # P(neither test rejects at the true centre).
            up = sign_flip_pvalue(d, null=centre)
            down = sign_flip_pvalue(d, null=centre, alternative="less")
            low = np.where(up > ALPHA, -np.inf, np.inf)
            high = np.where(down > ALPHA, np.inf, -np.inf)
        cover = float(np.mean((low <= centre) & (centre <= high)))
        msg = report(f"[coverage] {test:11s} n={n:2d}: {cover:.4f} (nominal {nominal:.2f}, "
                     f"tolerance {tol:.4f})")
        assert cover >= nominal - tol, msg


@pytest.mark.parametrize("test", ["t", "permutation"])
@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_family_wise_error_over_four_strata(test, correction):
    """Four strata, no effect anywhere: P(any comparison supported) <= alpha (Holm; BH too,
    since under the complete null the FDR is the FWER). Effect exactly E everywhere:
    P(any comparison refuted) <= alpha."""
    rng = np.random.default_rng(4)
    n, k = 10, 4
    rates = {}
    for label, shift, outcome in (("null", 0.0, "supported"), ("at E", E, "refuted")):
        d = rng.normal(shift, 1.0, size=(R * k, n))
        p_sup, p_non = (p.reshape(R, k) for p in pvalues(test, d))
        out = comparison_outcome(adjust_pvalues(p_sup, correction),
                                 adjust_pvalues(p_non, correction), ALPHA)
        rates[label] = float(np.mean((out == outcome).any(axis=1)))
    msg = report(f"[4 strata, {correction}] {test:11s} n={n}: P(any supported | no effect) = "
                 f"{rates['null']:.4f}; P(any refuted | effect = E) = {rates['at E']:.4f} "
                 f"(bound {mc_bound(ALPHA):.4f})")
    assert rates["null"] <= mc_bound(ALPHA), msg
    assert rates["at E"] <= mc_bound(ALPHA), msg


def test_overall_supported_needs_every_stratum():
    """Three strata with a large effect and one with none: P(overall supported) <= alpha."""
    rng = np.random.default_rng(5)
    n = 10
    shifts = np.array([1.5, 1.5, 1.5, 0.0])
    d = rng.normal(np.repeat(shifts[None, :], R, axis=0)[..., None], 1.0, size=(R, 4, n))
    p_sup, p_non = (p.reshape(R, 4) for p in pvalues("t", d.reshape(R * 4, n)))
    out = comparison_outcome(adjust_pvalues(p_sup, "holm"), adjust_pvalues(p_non, "holm"), ALPHA)
    rate = float(np.mean([family_outcome(row) == "supported" for row in out]))
    msg = report(f"[overall] t n={n}, effects (1.5, 1.5, 1.5, 0): P(overall supported) = {rate:.4f} "
                 f"(bound {mc_bound(ALPHA):.4f})")
    assert rate <= mc_bound(ALPHA), msg


def _null_frame(rng, n, strata=("a", "b")):
    rows = []
    for s in strata:
        control = rng.normal(50, 1, n)
        treatment = control + rng.normal(0, 1, n)
        for i in range(n):
            rows.append({"stratum": s, "variant": "base", "seed": i, "value": control[i]})
            rows.append({"stratum": s, "variant": "new", "seed": i, "value": treatment[i]})
    return pd.DataFrame(rows)


def test_decide_end_to_end():
    """Full decide() calls (fewer replicates): its p-values are the vectorised ones, and under
    no effect its family-wise rate of supported comparisons stays near alpha."""
    reps, n = 150, 10
    rng = np.random.default_rng(6)
    pred = Prediction(metric="nll", direction="lower", effect=E, test="permutation")
    any_supported = 0
    for r in range(reps):
        f = _null_frame(rng, n)
        v = decide(f, pred, "base", seed=r, n_bootstrap=200, power=False)
        d = np.stack([
            f[(f.stratum == s) & (f.variant == "base")].value.to_numpy()
            - f[(f.stratum == s) & (f.variant == "new")].value.to_numpy() for s in ("a", "b")
        ])
        np.testing.assert_array_equal(v.comparisons["p_value"].to_numpy(), sign_flip_pvalue(d))
        any_supported += bool((v.comparisons["outcome"] == "supported").any())
    rate = any_supported / reps
    msg = report(f"[decide] permutation n={n}, 2 strata, no effect: P(any supported) = {rate:.4f} "
                 f"over {reps} full calls (bound {mc_bound(ALPHA, reps):.4f})")
    assert rate <= mc_bound(ALPHA, reps), msg


def test_half_failing_treatment_is_not_supported_under_worst():
    """The treatment fails (NaN) on each seed with probability 1/2 and is 5 SD better when it
    finishes; under the "worst" policy it is almost never supported."""
    reps, n = 150, 10
    rng = np.random.default_rng(7)
    counts = {}
    for test in ("permutation", "t"):
        pred = Prediction(metric="nll", direction="lower", effect=E, test=test, failed="worst")
        supported = 0
        for r in range(reps):
            control = rng.normal(50, 1, n)
            treatment = control - 5 + rng.normal(0, 1, n)
            treatment[rng.random(n) < 0.5] = np.nan
            f = pd.DataFrame({"variant": ["base"] * n + ["new"] * n, "seed": list(range(n)) * 2,
                              "value": np.concatenate([control, treatment])})
            supported += decide(f, pred, "base", seed=r, n_bootstrap=200, power=False).outcome == "supported"
        counts[test] = supported / reps
    msg = report(f"[failures] half-failing treatment, n={n}: P(supported) = {counts} over {reps} "
                 f"calls each (bound {mc_bound(ALPHA, reps):.4f})")
    assert all(rate <= mc_bound(ALPHA, reps) for rate in counts.values()), msg
