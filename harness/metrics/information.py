"""Information-through-the-bottleneck metrics: pure functions on numpy arrays (float64).

* :func:`active_units` -- Burda et al. (2016, IWAE paper): unit u is active when
  ``A_u = Cov_x(E_q[z_u | x]) > 0.01``; ``mu`` holds the posterior means E_q[z | x] of a set of
  inputs. The variance is the population variance over the inputs (ddof = 0).
* :func:`mutual_information` -- the minibatch estimate of I_q(x; z) for diagonal-Gaussian
  posteriors and a standard-normal prior (Hoffman & Johnson 2016: the rate
  ``E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z))``), with the aggregate posterior
  ``q(z)`` estimated by the mixture of the batch's B posteriors. Each term
  ``log q(z|x_i) - log (1/B) sum_j q(z|x_j)`` is at most ``log B``, so the estimate is capped at
  log B: report B (``MIEstimate.batch_size``) with it, and read an estimate near ``cap`` as "at
  least this much".
* :func:`principal_angles` -- angles in degrees between a linear decoder's column space and the
  top-d PCA subspace of the data (H5: a linear autoencoder recovers the PCA subspace, Baldi &
  Hornik 1989), by the SVD method of Bjorck & Golub (1973) with the sine refinement for small
  angles (Knyazev & Argentati 2002), which ``scipy.linalg.subspace_angles`` also uses.

Inputs may be numpy arrays or torch tensors (converted on the CPU; torch is not imported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "MIEstimate",
    "active_units",
    "gaussian_kl",
    "mutual_information",
    "pca_subspace",
    "principal_angles",
    "subspace_angles_deg",
    "unit_activity",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _np(a, name: str, ndim: int = 2) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


# -- active units ------------------------------------------------------------------------------


def unit_activity(mu) -> np.ndarray:
    """Per-unit activity ``A_u = Var_x(E_q[z_u | x])`` [d] from posterior means ``mu`` [N, d]."""
    mu = _np(mu, "mu")
    if len(mu) < 2:
        raise ValueError("unit activity needs the posterior means of at least 2 inputs")
    return mu.var(axis=0)


def active_units(mu, threshold: float = 0.01) -> int:
    """Number of active latent units: ``A_u > threshold`` (Burda et al. 2016: 0.01)."""
    return int((unit_activity(mu) > threshold).sum())


# -- mutual information ------------------------------------------------------------------------


@dataclass(frozen=True)
class MIEstimate:
    """A minibatch estimate of I_q(x; z) in nats, with what it needs to be read honestly."""

    mi: float  # the estimate of I_q(x; z), nats; never above ``cap``
    cap: float  # log(batch_size): the estimator's ceiling
    batch_size: int  # B, the number of posteriors in the aggregate q(z)
    rate: float  # E_x KL(q(z|x) || N(0, I)), analytic, nats
    marginal_kl: float  # rate - mi: the estimate of KL(q(z) || p(z))
    n_samples: int  # z samples drawn per posterior

    @property
    def saturated(self) -> bool:
        """True when the estimate is within 1 % of its cap (the true I may be larger)."""
        return self.mi >= 0.99 * self.cap


def gaussian_kl(mu, logvar) -> np.ndarray:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row [N], nats."""
    mu, logvar = _np(mu, "mu"), _np(logvar, "logvar")
    return 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar).sum(axis=1)


def mutual_information(mu, logvar, rng: np.random.Generator, n_samples: int = 1) -> MIEstimate:
    """Minibatch estimate of I_q(x; z) for posteriors N(mu_i, diag(exp(logvar_i))), i < B.

    ``mu`` and ``logvar`` are [B, d] (one row per input of the batch). For each i, draws
    ``n_samples`` z ~ q(z|x_i) with ``rng`` and averages
    ``log q(z|x_i) - log (1/B) sum_j q(z|x_j)``; the result is at most ``log B`` (returned as
    ``cap`` with ``batch_size``). The same quantity is ``E_x KL(q(z|x)||p) - KL(q(z)||p)``
    (Hoffman & Johnson 2016): ``rate`` is the first term (analytic) and ``marginal_kl`` =
    rate - mi. Larger batches raise the cap and reduce the downward bias. Cost O(B^2 d).
    """
    mu, logvar = _np(mu, "mu"), _np(logvar, "logvar")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu {mu.shape} and logvar {logvar.shape} must have the same shape")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    B, d = mu.shape
    if B < 2 or n_samples < 1:
        raise ValueError(
            "mutual_information needs a batch of at least 2 posteriors and n_samples >= 1"
        )
    var = np.exp(logvar)
    inv_var = 1.0 / var
    eps = rng.standard_normal((n_samples, B, d))
    z = (mu[None] + np.sqrt(var)[None] * eps).reshape(n_samples * B, d)  # row k*B + i from q(.|x_i)
    own = np.tile(np.arange(B), n_samples)
    # log q(z_r | x_j) for every sample r and posterior j, in chunks of rows to bound memory.
    const = -0.5 * (d * _LOG_2PI + logvar.sum(axis=1))  # [B]
    chunk = max(1, int(2**24 // max(1, B * d)))
    terms = np.empty(len(z))
    for s in range(0, len(z), chunk):
        zr = z[s : s + chunk]  # [r, d]
        # sum_d (z - mu_j)^2 / var_j, expanded to matmuls: [r, B]
        quad = (zr**2) @ inv_var.T - 2.0 * zr @ (mu * inv_var).T + (mu**2 * inv_var).sum(1)[None, :]
        logq = const[None, :] - 0.5 * quad  # [r, B]
        log_own = logq[np.arange(len(zr)), own[s : s + chunk]]
        terms[s : s + chunk] = log_own - (logsumexp(logq, axis=1) - math.log(B))
    cap = math.log(B)
    mi = float(min(terms.mean(), cap))  # each term <= log B up to rounding
    rate = float(gaussian_kl(mu, logvar).mean())
    return MIEstimate(
        mi=mi,
        cap=cap,
        batch_size=int(B),
        rate=rate,
        marginal_kl=rate - mi,
        n_samples=int(n_samples),
    )


# -- principal angles --------------------------------------------------------------------------


def _orth(a: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of ``a`` (rank by the usual SVD tolerance)."""
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    if s.size == 0:
        return u[:, :0]
    tol = s.max() * max(a.shape) * np.finfo(np.float64).eps
    return u[:, : int((s > tol).sum())]


def pca_subspace(X, d: int) -> np.ndarray:
    """Orthonormal basis [D, d] of the top-d principal subspace of ``X`` [N, D] (centred SVD)."""
    X = _np(X, "X")
    if not 1 <= d <= min(X.shape):
        raise ValueError(f"d={d} must be between 1 and min(N, D) = {min(X.shape)}")
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    return vt[:d].T


def subspace_angles_deg(a, b) -> np.ndarray:
    """Principal angles in degrees between span(a) and span(b) ([D, p], [D, q]), ascending.

    min(rank a, rank b) angles. Cosines are the singular values of Qa^T Qb; angles below 45
    degrees are recomputed from the sines (singular values of the residual) for accuracy.
    """
    qa, qb = _orth(_np(a, "a")), _orth(_np(b, "b"))
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(f"subspaces live in different spaces: {qa.shape[0]} vs {qb.shape[0]} rows")
    if qa.shape[1] == 0 or qb.shape[1] == 0:
        return np.zeros(0)
    m = qa.T @ qb
    cos = np.clip(np.linalg.svd(m, compute_uv=False), -1.0, 1.0)  # descending: angles ascending
    resid = qb - qa @ m if qa.shape[1] >= qb.shape[1] else qa - qb @ m.T
    sin = np.clip(np.linalg.svd(resid, compute_uv=False), -1.0, 1.0)[::-1]  # ascending
    sin = sin[: cos.size] if sin.size >= cos.size else np.pad(sin, (cos.size - sin.size, 0))
    theta = np.where(cos**2 >= 0.5, np.arcsin(sin), np.arccos(cos))
    return np.sort(np.degrees(theta))


def principal_angles(W_decoder, X) -> np.ndarray:
    """Angles (degrees, ascending, length d) between a linear decoder and the PCA subspace.

    ``W_decoder`` [D, d] maps a d-dimensional code to data space (its column space is what a
    linear autoencoder can reconstruct); ``X`` [N, D] is the data the PCA is fitted on
    (centred). Compared with the top-d principal subspace; 0 degrees everywhere means the
    decoder spans exactly the PCA subspace. If W has rank r < d (collapsed or duplicated code
    units), the d - r directions it cannot reach are reported as 90 degrees.
    """
    W, X = _np(W_decoder, "W_decoder"), _np(X, "X")
    if W.shape[0] != X.shape[1]:
        raise ValueError(
            f"W_decoder is [{W.shape[0]}, d] but X has {X.shape[1]} columns; expected [D, d] and [N, D]"
        )
    d = W.shape[1]
    angles = subspace_angles_deg(W, pca_subspace(X, d))
    if angles.size < d:
        angles = np.concatenate([angles, np.full(d - angles.size, 90.0)])
    return angles
