"""ae, sparse_ae, linear_ae: training, seed independence, sparsity, channel rate, PCA subspace."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

import harness.models.autoencoder  # noqa: F401  (registers ae, sparse_ae, linear_ae)
from harness.models.autoencoder import Autoencoder, LinearAE, SparseAutoencoder
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, noise_for, train_two_seeds

PCA_ANGLE_BOUND = 5.0  # degrees: largest principal angle between the linear AE and PCA


def test_registered():
    assert MODELS["ae"] is Autoencoder and MODELS["sparse_ae"] is SparseAutoencoder
    assert MODELS["linear_ae"] is LinearAE


@pytest.mark.parametrize(
    "cls, config",
    [
        (Autoencoder, Autoencoder.Config(latent_dim=4, hidden=32, depth=1)),
        (Autoencoder, Autoencoder.Config(latent_dim=4, hidden=32, depth=1, likelihood="mse")),
        (
            SparseAutoencoder,
            SparseAutoencoder.Config(latent_dim=16, hidden=32, depth=1, sparsity="l1"),
        ),
        (
            SparseAutoencoder,
            SparseAutoencoder.Config(latent_dim=16, hidden=32, depth=1, sparsity="topk", k=3),
        ),
        (LinearAE, LinearAE.Config(latent_dim=4)),
    ],
)
def test_trains_two_seeds(digits, cls, config):
    train_two_seeds(cls, config, digits)


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(
        SparseAutoencoder, SparseAutoencoder.Config(latent_dim=16, hidden=32, depth=1, k=3), digits
    )


def test_topk_code_has_at_most_k_active_units(digits):
    torch.manual_seed(0)
    model = SparseAutoencoder(
        SparseAutoencoder.Config(latent_dim=16, hidden=32, k=3), digits.shape, digits.levels
    )
    z = model.encode(digits.test)
    assert ((z > 0).sum(-1) <= 3).all() and (z >= 0).all()
    m = model.evaluate(digits.test, noise_for(model, "evaluate", digits.test.shape[0], 2))
    assert (m["l0"] <= 3).all()
    # vmap-safe: the same codes come out of a vmapped call.
    zv = torch.func.vmap(model.encode)(digits.test.view(3, 100, 64)).view(300, 16)
    assert torch.equal(zv, z)


def test_l1_penalty_enters_the_loss(digits):
    torch.manual_seed(0)
    cfg = SparseAutoencoder.Config(latent_dim=16, hidden=32, sparsity="l1", l1_weight=0.5)
    model = SparseAutoencoder(cfg, digits.shape, digits.levels)
    x = digits.train[:32]
    _, logs = model.loss(x, {})
    assert logs["penalty"].item() == pytest.approx(
        0.5 * model.encode(x).abs().sum(-1).mean().item(), rel=1e-5
    )


def test_channel_rate_is_the_gaussian_kl_and_drops_when_the_prior_fits(digits):
    torch.manual_seed(0)
    model = Autoencoder(
        Autoencoder.Config(latent_dim=4, hidden=32, channel_sigma=0.2), digits.shape, digits.levels
    )
    x = digits.test
    with torch.no_grad():
        z = model.encode(x)
        sigma, s = 0.2, 1.0  # r = N(0, 1) at initialisation
        by_hand = (math.log(s / sigma) + (sigma**2 + z**2) / (2 * s**2) - 0.5).sum(-1)
        m = model.evaluate(x, noise_for(model, "evaluate", x.shape[0], 3))
        assert torch.allclose(m["rate"], by_hand, atol=1e-4)
        # The moment-matched r is the best Gaussian: the bound on I(x; z + sigma n) tightens.
        model.prior_mu.copy_(z.mean(0))
        model.prior_log_sigma.copy_(0.5 * torch.log(z.var(0, unbiased=False) + sigma**2))
        fitted = model.evaluate(x, noise_for(model, "evaluate", x.shape[0], 3))["rate"]
    assert fitted.mean() < m["rate"].mean() and (fitted.mean() > 0)
    # Distortion through the channel is no better than at the clean code, on average.
    assert m["distortion"].mean() >= m["clean_distortion"].mean() - 1e-3


def test_linear_ae_spans_the_pca_subspace(digits):
    d = 4
    x = digits.train
    torch.manual_seed(0)
    model = LinearAE(LinearAE.Config(latent_dim=d), digits.shape, digits.levels)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(1200):  # full batch; ~1 ms a step on one thread
        opt.zero_grad()
        model.loss(x, {})[0].backward()
        opt.step()
    W = model.decoder_weight().detach().double().numpy()
    assert W.shape == (64, d)
    pcs = PCA(n_components=d).fit(x.numpy().astype(np.float64)).components_.T
    angles = np.degrees(subspace_angles(W, pcs))
    assert angles.max() < PCA_ANGLE_BOUND, angles
    # Reconstruction error matches PCA's: the sum of the discarded eigenvalues.
    eig = np.linalg.eigvalsh(np.cov(x.numpy().astype(np.float64).T, bias=True))[::-1]
    sse = model.loss(x, {})[1]["distortion"].item()
    assert sse == pytest.approx(eig[d:].sum(), rel=1e-3)
