"""Group-sequential designs: look decisions, the declaration, and calibration by simulation
(fast: a few hundred replicates, 3-SE tolerances; full tables from scripts/calibrate.py).
The boundaries themselves: test_boundaries.py."""

from __future__ import annotations

import json
import math
import pickle

import pytest

import analysis.boundaries as B
import analysis.sequential as Q
from analysis.calibration import sequential_rates
from harness import DeclarationError, Sequential


def test_look_decisions_are_never_reopened_and_holm_recycles_alpha():
    looks = (10, 20, 30)
    a = B.nominal_levels(looks, 0.05)
    b = B.nominal_levels(looks, 0.025)
    d0 = Q.decide_look(0, looks, [a[0] / 2, 0.5], [0.9, 0.9], alpha=0.05)
    assert d0.outcomes == ("continue", "continue")  # a[0]/2 > b[0]: not at alpha / 2
    d0 = Q.decide_look(0, looks, [b[0] / 2, 0.5], [0.9, 0.9], alpha=0.05)
    assert d0.outcomes == ("supported", "continue") and not d0.stop
    # the second is now tested at the full alpha's boundary (Holm)
    d1 = Q.decide_look(1, looks, [0.9, a[1] * 0.99], [0.01, 0.9], alpha=0.05, previous=d0.outcomes)
    assert d1.outcomes == ("supported", "supported") and d1.stop and d1.overall == "supported"
    last = Q.decide_look(2, looks, [0.9, 0.9], [0.9, 0.9], alpha=0.05, previous=("supported", "continue"))
    assert last.outcomes == ("supported", "inconclusive") and last.overall == "inconclusive" and last.stop
    ref = Q.decide_look(1, looks, [0.5, 0.5], [1e-6, 0.5], alpha=0.05)
    assert ref.overall == "refuted" and ref.stop
    nofut = Q.decide_look(1, looks, [0.5, 0.5], [1e-6, 0.5], alpha=0.05, futility=False)
    assert nofut.overall == "continue"


def test_sequential_declaration():
    s = Sequential(looks=(8, 16, 24, 32), spending="pocock", futility=True)
    assert int(s) == 32 and list(range(s)) == list(range(32)) and s.looks == (8, 16, 24, 32)
    assert pickle.loads(pickle.dumps(s)).canonical() == s.canonical()
    assert json.loads(json.dumps(s.canonical())) == {"looks": [8, 16, 24, 32], "spending": "pocock", "futility": True}
    for bad in ({"looks": (8,)}, {"looks": (8, 8)}, {"looks": (2, 4)}, {"looks": (8, 16), "spending": "x"},
                {"looks": (8, 16), "futility": "yes"}):
        with pytest.raises(DeclarationError):
            Sequential(**bad)


def test_sequential_design_is_part_of_the_version_hash():
    from harness import Hypothesis, Prediction

    def hyp(seeds):
        return Hypothesis(claim="c", prediction=Prediction("iwae_nll", "lower", 0.5), ablate={"posterior": ["diagonal", "linear_iaf"]},
                          seeds=seeds)

    fixed, seq = hyp(32), hyp(Sequential(looks=(8, 16, 24, 32)))
    pocock = hyp(Sequential(looks=(8, 16, 24, 32), spending="pocock"))
    assert len({fixed.version, seq.version, pocock.version}) == 3
    assert seq.n_runs == fixed.n_runs  # planning sees the maximum
    assert seq.canonical()["seeds"]["looks"] == [8, 16, 24, 32]


# --------------------------------------------------------------------------- calibration
R = 500
TOL = 0.05 + 3 * math.sqrt(0.05 * 0.95 / R)  # 0.079


@pytest.mark.parametrize("test,looks,spending", [("t", (8, 16, 24, 32), "obrien_fleming"),
                                                 ("permutation", (6, 12), "pocock"),
                                                 ("t", (10, 20, 30), "pocock")])
def test_sequential_error_rates_hold(test, looks, spending):
    null = sequential_rates(test, "normal", 1, looks, theta=0.0, spending=spending, replicates=R, seed=1)
    at_e = sequential_rates(test, "normal", 1, looks, theta=0.5, spending=spending, replicates=R, seed=2)
    assert null["supported"] <= TOL and at_e["refuted"] <= TOL


def test_pocock_saves_seeds_and_obrien_fleming_keeps_power():
    looks = (8, 16, 24, 32)
    p0 = sequential_rates("t", "normal", 1, looks, theta=0.0, spending="pocock", replicates=R, seed=3)
    pe = sequential_rates("t", "normal", 1, looks, theta=0.5, spending="pocock", replicates=R, seed=4)
    assert p0["expected_seeds"] <= 0.7 * 32 + 1 and pe["expected_seeds"] <= 0.7 * 32 + 1
    of = sequential_rates("t", "normal", 1, looks, theta=0.5, spending="obrien_fleming", replicates=R, seed=4)
    assert of["supported"] >= of["fixed_supported"] - 0.05
    assert of["expected_seeds"] < 0.85 * 32


def test_holm_family_spending_over_four_strata():
    # every stratum at 0: P(any comparison supported) is the family-wise error of "supported";
    # every stratum at E: P(any refuted), the family-wise error of "refuted"
    r0 = sequential_rates("t", "normal", 1, (10, 20), theta=0.0, strata=4, spending="pocock", replicates=R, seed=5)
    re = sequential_rates("t", "normal", 1, (10, 20), theta=0.5, strata=4, spending="pocock", replicates=R, seed=6)
    assert r0["any_supported"] <= TOL and re["any_refuted"] <= TOL
