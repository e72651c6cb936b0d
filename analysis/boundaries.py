"""Group-sequential boundaries: Lan-DeMets alpha spending and efficacy boundaries (pure).

A design has K looks at cumulative seed counts n_1 < ... < n_K; the information fraction of
look k is t_k = n_k / n_K. Each comparison's one-sided p-value of the DECLARED test at look k is
read as a z statistic, Z_k = Phi^-1(1 - p_k). For a mean-type statistic of n_k iid pairs the
Z_k are (asymptotically) jointly normal with independent increments, Corr(Z_i, Z_j) =
sqrt(t_i / t_j); the efficacy boundary c_k is the value with

    P(Z_1 < c_1, ..., Z_(k-1) < c_(k-1), Z_k >= c_k) = alpha(t_k) - alpha(t_(k-1))

under H0, for a Lan-DeMets spending function alpha(t): O'Brien-Fleming-like
2 - 2 Phi(z_(1-alpha/2) / sqrt(t)) or Pocock-like alpha ln(1 + (e - 1) t). The probabilities
are computed by recursive numerical integration of the density of the score S_k = Z_k sqrt(t_k)
on a grid (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19). A look rejects
when its p-value is at or below the look's NOMINAL level a_k = 1 - Phi(c_k).

Below ``analysis.power``, ``analysis.decide`` and ``analysis.sequential``: numbers in, numbers
out, nothing from the rest of the package.

    >>> [round(c, 2) for c in boundaries((8, 16, 24, 32), 0.025, "obrien_fleming")]
    [4.33, 2.96, 2.36, 2.01]
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize
from scipy import stats as st

__all__ = ["SPENDING", "boundaries", "check_looks", "nominal_levels", "spent"]

SPENDING = ("obrien_fleming", "pocock")
_GRID = 401  # grid points per look for the numerical integration (error < 1e-5 on boundaries)


def spent(t: float, alpha: float, spending: str) -> float:
    """Lan-DeMets alpha spent by information fraction t in (0, 1].

    >>> round(spent(1.0, 0.025, "obrien_fleming"), 6), round(spent(1.0, 0.025, "pocock"), 6)
    (0.025, 0.025)
    """
    if not 0 < t <= 1 + 1e-12:
        raise ValueError(f"information fraction must be in (0, 1]; got {t!r}")
    t = min(t, 1.0)
    if spending == "obrien_fleming":
        return float(2 - 2 * st.norm.cdf(st.norm.isf(alpha / 2) / math.sqrt(t)))
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"spending must be one of {list(SPENDING)}; got {spending!r}")


def check_looks(looks) -> tuple[int, ...]:
    looks = tuple(int(n) for n in looks)
    if not looks or any(b <= a for a, b in zip(looks, looks[1:])) or looks[0] < 1:
        raise ValueError(f"looks must be strictly increasing positive seed counts; got {looks!r}")
    return looks


def _cross(c: float, tk: float, dt: float, grid: np.ndarray, mass: np.ndarray, target: float) -> float:
    """P(continue to look k-1, then Z_k >= c) - target, from the previous look's density."""
    return float((mass * st.norm.sf((c * math.sqrt(tk) - grid) / math.sqrt(dt))).sum()) - target


@lru_cache(maxsize=1024)
def _boundaries(looks: tuple[int, ...], alpha: float, spending: str) -> tuple[float, ...]:
    t = np.asarray(looks, float) / looks[-1]
    cum = [spent(x, alpha, spending) for x in t]
    bounds: list[float] = []
    # density of the score S = Z sqrt(t) on the continuation region of the previous look
    grid = weights = dens = None
    for k, tk in enumerate(t):
        target = cum[k] - (cum[k - 1] if k else 0.0)
        if target <= 1e-15:
            bounds.append(math.inf)
            c = math.inf
        elif k == 0:
            c = float(st.norm.isf(target))
            bounds.append(c)
        else:
            dt = tk - t[k - 1]

            args = (tk, dt, grid, weights * dens, target)
            c = (float(optimize.brentq(_cross, -10.0, 40.0, args=args, xtol=1e-10))
                 if _cross(-10.0, *args) > 0 else -10.0)
            bounds.append(c)
        # new continuation density on a grid below c sqrt(t_k), from -8 SD
        top = min(c, 8.0) * math.sqrt(tk)
        new_grid = np.linspace(-8.0 * math.sqrt(tk), top, _GRID)
        w = np.full(_GRID, (top + 8.0 * math.sqrt(tk)) / (_GRID - 1) / 3.0)
        w[1:-1:2] *= 4
        w[2:-1:2] *= 2
        if k == 0:
            new_dens = st.norm.pdf(new_grid / math.sqrt(tk)) / math.sqrt(tk)
        else:
            dt = tk - t[k - 1]
            kern = st.norm.pdf((new_grid[:, None] - grid[None, :]) / math.sqrt(dt)) / math.sqrt(dt)
            new_dens = kern @ (weights * dens)
        grid, weights, dens = new_grid, w, new_dens
    return tuple(bounds)


def boundaries(looks, alpha: float, spending: str = "obrien_fleming") -> list[float]:
    """One-sided efficacy boundaries c_1..c_K on the z scale for a level-``alpha`` test.

    Checked against gsDesign / rpact for 4 equally spaced looks, alpha = 0.025,
    O'Brien-Fleming-like: 4.333, 2.963, 2.359, 2.014; and, for both spending functions, by
    simulating the joint normal (tests/analysis/test_sequential.py).
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be strictly between 0 and 0.5; got {alpha!r}")
    if spending not in SPENDING:
        raise ValueError(f"spending must be one of {list(SPENDING)}; got {spending!r}")
    return list(_boundaries(check_looks(looks), round(float(alpha), 12), spending))


def nominal_levels(looks, alpha: float, spending: str = "obrien_fleming") -> list[float]:
    """Nominal one-sided p-value thresholds a_k = 1 - Phi(c_k) of the looks."""
    return [float(st.norm.sf(c)) for c in boundaries(looks, alpha, spending)]

