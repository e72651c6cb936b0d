"""Group-sequential boundaries: against published values, and spending by simulation of the
joint normal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

import analysis.boundaries as B


def test_obrien_fleming_boundaries_match_gsdesign():
    # gsDesign / rpact, sfLDOF, k = 4 equally spaced, one-sided alpha = 0.025
    c = B.boundaries((8, 16, 24, 32), 0.025, "obrien_fleming")
    np.testing.assert_allclose(c, [4.333, 2.963, 2.359, 2.014], atol=2e-3)


def test_single_look_is_the_fixed_test():
    assert B.boundaries((20,), 0.05)[0] == pytest.approx(st.norm.isf(0.05))


@pytest.mark.parametrize("spending", B.SPENDING)
@pytest.mark.parametrize("looks", [(5, 10), (8, 16, 24, 32), (4, 10, 12)])
def test_boundaries_spend_alpha_as_declared_under_the_joint_normal(spending, looks):
    alpha = 0.05
    c = np.array(B.boundaries(looks, alpha, spending))
    t = np.asarray(looks, float) / looks[-1]
    rng = np.random.default_rng(0)
    inc = rng.standard_normal((200_000, len(looks))) * np.sqrt(np.diff(np.r_[0.0, t]))
    z = inc.cumsum(axis=1) / np.sqrt(t)
    crossed = z >= c
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    for k, tk in enumerate(t):
        se = math.sqrt(alpha / 200_000)
        assert (first == k).mean() + ((first >= 0) & (first < k)).mean() == pytest.approx(
            B.spent(tk, alpha, spending), abs=4 * se + 1e-4)


def test_spending_functions():
    assert B.spent(1.0, 0.05, "obrien_fleming") == pytest.approx(0.05)
    assert B.spent(0.5, 0.05, "pocock") == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 2))
    assert B.spent(0.25, 0.05, "obrien_fleming") < B.spent(0.25, 0.05, "pocock")
    with pytest.raises(ValueError, match="spending"):
        B.boundaries((5, 10), 0.05, "linear")
    with pytest.raises(ValueError, match="increasing"):
        B.boundaries((10, 5), 0.05)
