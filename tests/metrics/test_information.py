"""Active units, the minibatch MI estimate, principal angles (vs sklearn PCA + scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.decomposition import PCA

from harness.metrics.information import (
    active_units,
    gaussian_kl,
    mutual_information,
    pca_subspace,
    principal_angles,
    subspace_angles_deg,
    unit_activity,
)

# -- active units ----------------------------------------------------------------------------


def test_active_units_counts_variance_of_posterior_means():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5000, 5)) * np.array([1.0, 0.3, 0.05, 0.01, 0.0]) + 3.0
    var = unit_activity(z)
    np.testing.assert_allclose(var, z.var(axis=0))
    # variances ~ 1, 0.09, 0.0025, 0.0001, 0: two above Burda's 0.01
    assert active_units(z) == 2
    assert active_units(z, threshold=0.001) == 3
    assert active_units(torch.from_numpy(z).float()) == 2  # tensors accepted


# -- mutual information ----------------------------------------------------------------------


def test_mi_is_zero_when_every_posterior_is_the_same():
    mu = np.tile(np.array([[0.3, -1.0, 2.0]]), (64, 1))
    logvar = np.full_like(mu, -0.7)
    est = mutual_information(mu, logvar, np.random.default_rng(0), n_samples=4)
    assert abs(est.mi) < 1e-12
    assert est.rate == pytest.approx(est.marginal_kl)
    assert est.rate == pytest.approx(gaussian_kl(mu, logvar)[0])


def test_mi_saturates_at_log_batch_size():
    B = 128
    mu = np.arange(B, dtype=float)[:, None] * 50.0  # far apart relative to std 0.01
    logvar = np.full_like(mu, 2 * math.log(0.01))
    est = mutual_information(mu, logvar, np.random.default_rng(1))
    assert est.cap == pytest.approx(math.log(B)) and est.batch_size == B
    assert est.mi == pytest.approx(math.log(B), abs=1e-9) and est.saturated


def test_mi_never_exceeds_its_cap():
    rng = np.random.default_rng(2)
    for B in (2, 17, 100):
        mu, logvar = rng.normal(size=(B, 6)) * 3, rng.normal(size=(B, 6)) - 2
        est = mutual_information(mu, logvar, rng, n_samples=3)
        assert est.mi <= math.log(B) + 1e-12
        assert est.mi + est.marginal_kl == pytest.approx(est.rate)


def test_mi_recovers_the_gaussian_channel():
    # x ~ N(0, 1) per dimension, q(z|x) = N(a x, s^2): I = 0.5 log(1 + a^2 / s^2) per dim,
    # rate E KL(q(z|x)||N(0,1)) = 0.5 (a^2 + s^2 - 1 - log s^2), KL(q(z)||p) = rate - I.
    rng = np.random.default_rng(3)
    B, d, a, s = 2000, 3, 1.0, 0.8
    x = rng.normal(size=(B, d))
    mu, logvar = a * x, np.full((B, d), 2 * math.log(s))
    est = mutual_information(mu, logvar, np.random.default_rng(4), n_samples=2)
    true_mi = d * 0.5 * math.log(1 + a**2 / s**2)
    true_rate = d * 0.5 * (a**2 + s**2 - 1 - math.log(s**2))
    assert est.mi == pytest.approx(true_mi, abs=0.05)  # minibatch estimate, biased slightly low
    assert est.rate == pytest.approx(true_rate, abs=0.1)
    assert est.marginal_kl == pytest.approx(true_rate - true_mi, abs=0.12)
    same = mutual_information(
        torch.from_numpy(mu), torch.from_numpy(logvar), np.random.default_rng(4), n_samples=2
    )
    assert same == est  # tensors accepted; the Generator fixes the result


# -- principal angles --------------------------------------------------------------------------


def _low_rank_data(rng, N=600, D=20, r=4):
    basis = np.linalg.qr(rng.normal(size=(D, r)))[0]
    scales = np.array([5.0, 4.0, 3.0, 2.0])[:r]
    return (
        rng.normal(size=(N, r)) * scales @ basis.T
        + 0.1 * rng.normal(size=(N, D))
        + rng.normal(size=D)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_principal_angles_match_sklearn_pca_and_scipy(seed):
    rng = np.random.default_rng(seed)
    X = _low_rank_data(rng)
    d = 4
    W = rng.normal(size=(20, d)) + 0.5 * pca_subspace(X, d)  # a generic decoder
    ours = principal_angles(W, X)
    pcs = PCA(n_components=d).fit(X).components_.T  # [D, d]
    ref = np.sort(np.degrees(scipy.linalg.subspace_angles(W, pcs)))
    assert ours.shape == (d,) and np.all(np.diff(ours) >= 0)
    np.testing.assert_allclose(ours, ref, atol=1e-8)


def test_decoder_spanning_the_pca_subspace_has_zero_angles():
    rng = np.random.default_rng(3)
    X = _low_rank_data(rng)
    pcs = PCA(n_components=4).fit(X).components_.T
    W = pcs @ rng.normal(size=(4, 4))  # any invertible mix of the principal directions
    assert principal_angles(W, X).max() < 1e-6
    # a decoder off by a known rotation inside one plane: that angle, the rest zero
    theta = np.deg2rad(7.5)
    other = np.linalg.qr(np.concatenate([pcs, rng.normal(size=(20, 1))], 1))[0][:, 4]
    W2 = pcs.copy()
    W2[:, 0] = np.cos(theta) * pcs[:, 0] + np.sin(theta) * other
    np.testing.assert_allclose(principal_angles(W2, X), [0, 0, 0, 7.5], atol=1e-8)


def test_tiny_angles_are_accurate_and_rank_deficiency_reads_90():
    D = 6
    e = np.eye(D)
    eps = 1e-9
    a = e[:, :2]
    b = np.stack([e[:, 0], np.cos(eps) * e[:, 1] + np.sin(eps) * e[:, 2]], 1)
    ang = subspace_angles_deg(a, b)
    assert ang[0] == pytest.approx(0.0, abs=1e-14)
    assert ang[1] == pytest.approx(np.degrees(eps), rel=1e-6)  # arccos alone would give 0
    rng = np.random.default_rng(4)
    X = _low_rank_data(rng)
    W = PCA(n_components=4).fit(X).components_.T
    W[:, 3] = W[:, 2]  # two code units decode to the same direction: rank 3
    out = principal_angles(W, X)
    assert out.shape == (4,) and out[-1] == 90.0 and out[:3].max() < 1e-6
    with pytest.raises(ValueError, match="W_decoder"):
        principal_angles(np.ones((5, 2)), X)
