"""analysis.stats_descriptive: probability of improvement and IQM with seeded bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from analysis.stats_descriptive import iqm, iqm_interval, prob_better, prob_better_interval
from analysis.stats_paired import paired_test
from analysis.stats_signflip import sign_flip_interval, sign_flip_pvalue


# --------------------------------------------------------------------------- descriptive
def test_prob_better_and_interval():
    assert prob_better([1.0, -1.0, 0.0, 2.0]) == 0.625
    d = np.random.default_rng(1).normal(0.5, 1, size=12)
    lo, hi = prob_better_interval(d, 0.05, np.random.default_rng(3))
    assert 0 <= lo <= prob_better(d) <= hi <= 1
    assert (lo, hi) == prob_better_interval(d, 0.05, np.random.default_rng(3))


def test_iqm_matches_trim_mean_and_interval_is_seeded():
    x = np.random.default_rng(2).normal(size=13)
    assert iqm(x) == pytest.approx(sps.trim_mean(x, 0.25), abs=1e-15)
    assert iqm([1.0, 2.0, 3.0, 100.0]) == 2.5
    a = iqm_interval(x, 0.05, np.random.default_rng(4))
    assert a == iqm_interval(x, 0.05, np.random.default_rng(4))
    assert a[0] <= iqm(x) <= a[1]


def test_resampling_uses_only_the_given_generator():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    d = np.random.default_rng(0).normal(size=25)
    sign_flip_pvalue(d, rng=np.random.default_rng(1))
    sign_flip_interval(d, 0.05, rng=np.random.default_rng(1))
    prob_better_interval(d, 0.05, np.random.default_rng(1))
    iqm_interval(d, 0.05, np.random.default_rng(1))
    paired_test(d, test="wilcoxon", effect=0.1, alpha=0.05)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
