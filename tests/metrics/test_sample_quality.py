"""FID / KID / PRDC / MMD test, cross-checked against peer implementations on identical arrays.

Peers: torchmetrics' FrechetInceptionDistance and KernelInceptionDistance (fed our fixed
feature arrays through an identity feature module that declares ``num_features``) and the
``prdc`` package (Naeem et al.'s reference code).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, pdist

from harness.metrics.sample_quality import fid, kid, mmd2_polynomial, mmd_permutation_test, prdc

torchmetrics = pytest.importorskip("torchmetrics")
from torchmetrics.image.fid import FrechetInceptionDistance  # noqa: E402
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`:UserWarning")


class FixedFeatures(torch.nn.Module):
    """Identity 'feature extractor': torchmetrics sees exactly the arrays we pass in."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def _cases():
    rng = np.random.default_rng(0)
    F = 12
    A = rng.normal(size=(F, F)) / np.sqrt(F)
    yield "shift", rng.normal(size=(600, F)), rng.normal(size=(500, F)) + 0.3
    yield "scale+corr", rng.normal(size=(600, F)), rng.normal(size=(400, F)) @ A * 1.5
    yield (
        "relu-like",
        np.maximum(rng.normal(size=(800, F)), 0),
        np.maximum(rng.normal(size=(700, F)) + 0.2, 0),
    )
    yield "same", (x := rng.normal(size=(300, F)) * 3 + 1), x.copy()


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: c[0])
def test_fid_matches_torchmetrics(case):
    _, real, fake = case
    m = FrechetInceptionDistance(feature=FixedFeatures(real.shape[1]))
    m.update(torch.from_numpy(real), real=True)
    m.update(torch.from_numpy(fake), real=False)
    ref = float(m.compute())  # float64 features in, float64 result out
    ours = fid(real, fake)
    assert ours == pytest.approx(ref, rel=1e-8, abs=1e-8)


def test_fid_one_dimensional_closed_form():
    rng = np.random.default_rng(1)
    a, b = rng.normal(2.0, 1.0, (200, 1)), rng.normal(0.5, 3.0, (300, 1))
    va, vb = a.var(ddof=1), b.var(ddof=1)
    expected = (a.mean() - b.mean()) ** 2 + va + vb - 2 * np.sqrt(va * vb)
    assert fid(a, b) == pytest.approx(expected, rel=1e-10)
    assert abs(fid(a, a)) < 1e-9


def test_kid_full_subsets_match_torchmetrics():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(300, 10)), rng.normal(size=(300, 10)) * 1.2 + 0.1
    m = KernelInceptionDistance(feature=FixedFeatures(10), subsets=4, subset_size=300)
    m.update(torch.from_numpy(real), real=True)
    m.update(torch.from_numpy(fake), real=False)
    ref_mean, ref_std = (float(v) for v in m.compute())
    mean, std = kid(real, fake, 4, 300, np.random.default_rng(0))
    # every subset is a permutation of all points, so the random draws cannot differ
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std < 1e-12 and ref_std < 1e-12


def test_kid_per_subset_mmd_matches_torchmetrics_poly_mmd():
    rng = np.random.default_rng(3)
    for n in (50, 200):
        a, b = rng.normal(size=(n, 16)), rng.normal(size=(n, 16)) + 0.2
        ref = float(poly_mmd(torch.from_numpy(a), torch.from_numpy(b)))
        assert mmd2_polynomial(a, b) == pytest.approx(ref, rel=1e-10)


def test_kid_unequal_sizes_against_brute_force():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(45, 5)) + 0.5

    def k(u, v):
        return (u @ v / 5 + 1) ** 3

    m, n = len(a), len(b)
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    assert mmd2_polynomial(a, b) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_subsets_agree_with_torchmetrics_in_distribution():
    # Different random subsets (torch's RNG vs our Generator), same estimand: the means agree
    # within their Monte Carlo error.
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)) + 0.15
    S, size = 60, 100
    torch.manual_seed(0)
    m = KernelInceptionDistance(feature=FixedFeatures(8), subsets=S, subset_size=size)
    m.update(torch.from_numpy(real), real=True)
    m.update(torch.from_numpy(fake), real=False)
    ref_mean, ref_std = (float(v) for v in m.compute())
    mean, std = kid(real, fake, S, size, np.random.default_rng(1))
    assert abs(mean - ref_mean) < 4 * np.sqrt((std**2 + ref_std**2) / S)
    assert 0.5 < std / ref_std < 2.0
    # reproducible from the Generator, and sensitive to it
    assert kid(real, fake, S, size, np.random.default_rng(1)) == (mean, std)
    assert kid(real, fake, S, size, np.random.default_rng(2)) != (mean, std)
    with pytest.raises(ValueError, match="subset_size"):
        kid(real, fake, 2, 500, np.random.default_rng(0))


def _prdc_cases():
    rng = np.random.default_rng(6)
    yield "shift", rng.normal(size=(400, 8)), rng.normal(size=(300, 8)) + 0.5
    yield "collapse", rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) * 0.3
    yield "spread", rng.normal(size=(250, 32)), rng.normal(size=(350, 32)) * 2.0


@pytest.mark.parametrize("case", list(_prdc_cases()), ids=lambda c: c[0])
@pytest.mark.parametrize("k", [3, 5])
def test_prdc_matches_reference_package(case, k):
    prdc_pkg = pytest.importorskip("prdc")
    _, real, fake = case
    ref = prdc_pkg.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    ours = prdc(real, fake, k=k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-12), key


def test_prdc_radius_excludes_the_point_itself():
    # Four points on a line: with k = 1 each radius is the gap to the nearest other point.
    real = np.array([[0.0], [1.0], [3.0], [6.0]])
    fake = np.array([[0.5], [5.0]])
    out = prdc(real, fake, k=1)
    # radii 1, 1, 2, 3: 0.5 lies in the balls of 0 and 1 (2 balls), 5.0 in the ball of 6 (1)
    assert out["precision"] == 1.0
    assert out["density"] == pytest.approx((2 + 1) / 2)
    assert out["coverage"] == pytest.approx(3 / 4)  # 0, 1, 6 have a fake inside their ball


def _brute_mmd_gauss(x, y, sigma):
    def k(a, b):
        return np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def test_mmd_permutation_test_statistic_bandwidth_and_power():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(150, 2)), rng.normal(size=(120, 2)) + np.array([0.6, 0.0])
    res = mmd_permutation_test(x, y, np.random.default_rng(0), n_permutations=300)
    assert res.bandwidth == pytest.approx(np.median(pdist(np.concatenate([x, y]))), rel=1e-12)
    assert res.statistic == pytest.approx(_brute_mmd_gauss(x, y, res.bandwidth), rel=1e-9)
    assert res.p_value == pytest.approx(1 / 301)  # no permutation reaches a real shift
    assert (res.n_x, res.n_y, res.n_permutations) == (150, 120, 300)
    again = mmd_permutation_test(x, y, np.random.default_rng(0), n_permutations=300)
    assert again == res


def test_mmd_permutation_test_is_calibrated_under_the_null():
    rng = np.random.default_rng(8)
    ps = []
    for _ in range(40):
        x, y = rng.normal(size=(60, 2)), rng.normal(size=(60, 2))
        ps.append(mmd_permutation_test(x, y, rng, n_permutations=199).p_value)
    ps = np.array(ps)
    assert ps.min() >= 1 / 200 and ps.max() <= 1.0
    assert np.all(np.isclose((ps * 200) % 1, 0) | np.isclose((ps * 200) % 1, 1))  # k / (B + 1)
    assert 0.3 < ps.mean() < 0.7 and (ps < 0.1).mean() <= 0.25


def test_mmd_permutation_test_subsamples_large_inputs():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(3000, 2)), rng.normal(size=(2500, 2))
    res = mmd_permutation_test(x, y, rng, n_permutations=50, max_n=400)
    assert (res.n_x, res.n_y) == (400, 400)
    with pytest.raises(TypeError, match="Generator"):
        mmd_permutation_test(x, y, 0)
