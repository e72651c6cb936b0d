"""analysis.stats_inputs: paired differences and the input checks every test shares."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.stats_inputs import paired_differences
from analysis.stats_mean import t_pvalue


# --------------------------------------------------------------------------- differences
def test_paired_differences_direction_and_checks():
    c, t = np.array([10.0, 12.0, 8.0]), np.array([9.0, 12.5, 8.0])
    np.testing.assert_array_equal(paired_differences(c, t, "lower"), [1.0, -0.5, 0.0])
    np.testing.assert_array_equal(paired_differences(c, t, "higher"), [-1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="direction"):
        paired_differences(c, t, "down")
    with pytest.raises(ValueError, match="equal length"):
        paired_differences(c, t[:2], "lower")


def test_nan_differences_are_refused_with_a_hint():
    with pytest.raises(ValueError, match="failed-run policy"):
        t_pvalue([1.0, np.nan, 2.0])
