"""Shared ground of the pure statistics modules: constants, input checks, paired differences.

Everything in ``analysis/stats_*.py`` works on numpy arrays and nothing else: no MLflow, no
files, no global state. The unit of analysis is a vector ``d`` of paired differences, one per
seed, expressed in the predicted direction (``d > 0`` means the treatment did better; see
:func:`paired_differences`). Functions whose first argument is ``d`` accept a 1-D array (one
sample) or a 2-D array (one sample per row, pairs along the last axis) where noted.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ALTERNATIVES",
    "MAX_EXACT",
    "N_BOOTSTRAP",
    "N_PERMUTATIONS",
    "REL_TOL",
    "as_pairs",
    "check_alpha",
    "check_alternative",
    "check_count",
    "check_rng",
    "paired_differences",
    "scalar_or_array",
]

ALTERNATIVES = ("greater", "less")
MAX_EXACT = 20  # sign-flip tests enumerate all 2^n patterns up to this many pairs
N_PERMUTATIONS = 9999  # random sign patterns beyond MAX_EXACT pairs
N_BOOTSTRAP = 4999  # bootstrap resamples for descriptive intervals
REL_TOL = 1e-10  # ties in sums of differences: relative to sum(|d|); float error is ~n*eps


# --------------------------------------------------------------------------- input checks
def as_pairs(d: object, name: str = "d", *, max_ndim: int = 2) -> np.ndarray:
    x = np.asarray(d, dtype=np.float64)
    if x.ndim == 0 or x.ndim > max_ndim:
        raise ValueError(
            f"{name} must be a 1-D array of paired differences"
            + (" (or 2-D, one sample per row)" if max_ndim == 2 else "")
            + f"; got an array of shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name} contains NaN or infinite values; apply the failed-run policy first "
            "(analysis.decide replaces or drops failed runs before testing)"
        )
    return x


def check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be a number strictly between 0 and 0.5; got {alpha!r}")
    return float(alpha)


def check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {list(ALTERNATIVES)}; got {alternative!r}")
    return alternative


def check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(0); "
            f"got {type(rng).__name__}"
        )
    return rng


def check_count(value: object, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def scalar_or_array(out: np.ndarray, one_d: bool):
    return float(out.reshape(())) if one_d else out


# --------------------------------------------------------------------------- differences
def paired_differences(control: object, treatment: object, direction: str) -> np.ndarray:
    """Per-seed improvement of the treatment over the control, in the predicted direction.

    ``direction="lower"`` (lower is better): ``d = control - treatment``;
    ``direction="higher"``: ``d = treatment - control``. Either way ``d > 0`` means the
    treatment did better on that seed. NaN (a failed run) propagates: apply the failed-run
    policy before testing.

    >>> paired_differences([10.0, 12.0], [9.0, 12.5], "lower").tolist()
    [1.0, -0.5]
    """
    c = np.asarray(control, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.float64)
    if c.shape != t.shape or c.ndim != 1:
        raise ValueError(
            "control and treatment must be 1-D arrays of equal length, one value per seed pair; "
            f"got shapes {c.shape} and {t.shape}"
        )
    if direction == "lower":
        return c - t
    if direction == "higher":
        return t - c
    raise ValueError(f"direction must be 'lower' or 'higher'; got {direction!r}")
