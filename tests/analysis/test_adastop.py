"""Side by side with AdaStop (Mathieu et al. 2023) on the same simulated data (few replicates;
the full comparison is in docs/statistics.md, from scripts/calibrate.py)."""

from __future__ import annotations

import pytest

from analysis.calibration import adastop_side_by_side_rates

pytest.importorskip("adastop")


def test_both_find_a_large_effect_at_about_the_same_cost():
    r = adastop_side_by_side_rates(1.0, replicates=6, seed=3)
    assert r["harness Pocock"]["supported"] >= 5 / 6 and r["AdaStop"]["supported"] >= 4 / 6
    # within one look (8 seeds) of each other; AdaStop's alpha = 0.1 spends more early
    assert abs(r["harness Pocock"]["expected_seeds"] - r["AdaStop"]["expected_seeds"]) <= 8
    assert r["harness OBF"]["refuted"] == r["AdaStop"]["refuted"] == 0.0


def test_under_no_effect_futility_stops_the_harness_design_early():
    r = adastop_side_by_side_rates(0.0, replicates=6, seed=4)
    assert r["harness Pocock"]["supported"] == 0.0 and r["AdaStop"]["supported"] <= 1 / 6
    # AdaStop (beta = 0) cannot stop for "equal" before the last look
    assert r["harness Pocock"]["expected_seeds"] < r["AdaStop"]["expected_seeds"]
