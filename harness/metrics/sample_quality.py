"""Sample-quality metrics: pure functions on feature arrays (computed in float64).

``real`` and ``fake`` are [N, F] arrays of features (from
:func:`harness.metrics.features.get_feature_extractor`, or raw 2-D points for the toy
densities). Every random choice goes through a ``numpy.random.Generator`` the caller passes,
so a metric reproduces bit for bit from its seed.

* :func:`fid` -- Frechet distance between Gaussian fits (Heusel et al. 2017):
  ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``, covariances with ddof = 1 (as
  torchmetrics and pytorch-fid), the square root by ``scipy.linalg.sqrtm``, real part taken.
* :func:`kid` -- kernel distance (Binkowski et al. 2018): unbiased MMD^2 with the polynomial
  kernel ``k(a, b) = (a.b / F + 1)^3`` on ``subsets`` random subsets of ``subset_size`` drawn
  without replacement; returns (mean, std) over subsets, std with ddof = 0 (as torchmetrics).
* :func:`prdc` -- precision / recall (Kynkaanniemi et al. 2019) and density / coverage
  (Naeem et al. 2020) with k-NN balls, radius = distance to the k-th nearest neighbour
  excluding the point itself (the ``prdc`` package's definition).
* :func:`mmd_permutation_test` -- two-sample test for 2-D data: Gaussian-kernel unbiased MMD^2
  with the median-heuristic bandwidth, p-value ``(1 + #{perm >= observed}) / (1 + B)``.
* :func:`fit_standardiser` -- the feature normalisation, fitted on real data only: drops the
  features that are dead (zero variance) on real data and floors the others' scale, so no
  sample can score millions of standard deviations away (see docs/metrics.md).
* :func:`memorisation` -- nearest-neighbour distances of samples to the train split against
  the test split's own distances to it (Meehan et al. 2020's data-copying comparison).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = [
    "MMDTest",
    "Standardiser",
    "fid",
    "fid_extrapolated",
    "fit_standardiser",
    "kid",
    "memorisation",
    "mmd2_polynomial",
    "mmd_permutation_test",
    "nn_distance",
    "prdc",
]


def _as2d(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, F], got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _same_width(real: np.ndarray, fake: np.ndarray) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real has {real.shape[1]} features but fake has {fake.shape[1]}")


# -- FID -------------------------------------------------------------------------------------


def fid(real, fake) -> float:
    """Frechet distance between Gaussians fitted to ``real`` and ``fake`` features [N, F].

    ``|mu_r - mu_g|^2 + Tr(S_r) + Tr(S_g) - 2 Tr((S_r S_g)^(1/2))`` in float64. If the
    product is singular enough that ``sqrtm`` returns non-finite values, both covariances get
    ``1e-6 I`` added (as pytorch-fid does). Needs at least 2 samples on each side; with
    N <= F the covariance is singular and the estimate is high-variance (use more samples).
    """
    real, fake = _as2d("real", real), _as2d("fake", fake)
    _same_width(real, fake)
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("fid needs at least 2 samples in both real and fake")
    mu_r, mu_g = real.mean(0), fake.mean(0)
    s_r = np.atleast_2d(np.cov(real, rowvar=False))
    s_g = np.atleast_2d(np.cov(fake, rowvar=False))
    covmean = _sqrtm(s_r @ s_g)
    if not np.all(np.isfinite(covmean)):
        eps = 1e-6 * np.eye(s_r.shape[0])
        covmean = _sqrtm((s_r + eps) @ (s_g + eps))
    diff = mu_r - mu_g
    return float(diff @ diff + np.trace(s_r) + np.trace(s_g) - 2.0 * np.trace(np.real(covmean)))


def fid_extrapolated(real, fake, rng: np.random.Generator, points: int = 5, repeats: int = 3) -> dict:
    """FID at two sample sizes and extrapolated to infinitely many samples (Chong & Forsyth
    2020, "Effectively unbiased FID"): FID's bias at finite n depends on the model (it is not
    the same for two models scored with the same n), and to first order it is linear in 1/n,
    so FID is computed on random subsets of ``fake`` at ``points`` sizes from n/2 to n
    (``repeats`` subsets each below n), a least-squares line is fitted to FID against 1/n, and
    its intercept is FID-infinity.

    Returns ``{"fid_half": FID at n // 2 (mean over its subsets), "fid_inf": the intercept}``.
    """
    real, fake = _as2d("real", real), _as2d("fake", fake)
    n = len(fake)
    if n < 8:
        return {"fid_half": float("nan"), "fid_inf": float("nan")}
    sizes = np.unique(np.linspace(n // 2, n, points).astype(int))
    values = []
    for k in sizes:
        reps = 1 if k == n else repeats
        values.append(np.mean([fid(real, fake[rng.choice(n, k, replace=False)]) for _ in range(reps)]))
    slope, intercept = np.polyfit(1.0 / sizes, np.asarray(values), 1)
    return {"fid_half": float(values[0]), "fid_inf": float(intercept)}


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "singular matrix" / deprecations: checked by caller
        out = scipy.linalg.sqrtm(a)
    if isinstance(out, tuple):  # scipy < 1.16 with disp=False style returns
        out = out[0]
    return np.asarray(out)


# -- KID -------------------------------------------------------------------------------------


def mmd2_polynomial(a, b, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD^2 between samples ``a`` [m, F] and ``b`` [n, F], kernel (a.b / F + coef)^degree."""
    a, b = _as2d("a", a), _as2d("b", b)
    _same_width(a, b)
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        raise ValueError("unbiased MMD^2 needs at least 2 samples on each side")
    gamma = 1.0 / a.shape[1]
    k_aa = (a @ a.T * gamma + coef) ** degree
    k_bb = (b @ b.T * gamma + coef) ** degree
    k_ab = (a @ b.T * gamma + coef) ** degree
    s_aa = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    s_bb = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(s_aa + s_bb - 2.0 * k_ab.mean())


def kid(
    real, fake, subsets: int, subset_size: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Kernel Inception (here: local-feature) Distance: (mean, std) of MMD^2 over subsets.

    Each subset draws ``subset_size`` rows of ``real`` and of ``fake`` without replacement
    (independently per subset) with ``rng``; ``subset_size`` larger than either sample is an
    error (torchmetrics' rule too). Typical: ``kid(r, g, 100, min(1000, len(r), len(g)), rng)``.
    """
    real, fake = _as2d("real", real), _as2d("fake", fake)
    _same_width(real, fake)
    if subsets < 1 or subset_size < 2:
        raise ValueError(
            f"kid needs subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}"
        )
    if subset_size > len(real) or subset_size > len(fake):
        raise ValueError(
            f"subset_size={subset_size} exceeds the samples available (real {len(real)}, fake {len(fake)})"
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    vals = np.empty(subsets)
    for i in range(subsets):
        ir = rng.choice(len(real), subset_size, replace=False)
        ig = rng.choice(len(fake), subset_size, replace=False)
        vals[i] = mmd2_polynomial(real[ir], fake[ig])
    return float(vals.mean()), float(vals.std())


# -- precision / recall / density / coverage ----------------------------------------------


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # |a|^2 + |b|^2 - 2 a.b, clipped at 0: exact enough in float64 for k-NN radii.
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = _pairwise(x, x)
    np.fill_diagonal(d, 0.0)
    # index k in the sorted row: position 0 is the point itself (distance 0), so this is the
    # k-th nearest *other* point.
    return np.partition(d, k, axis=1)[:, k]


def prdc(real, fake, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` with k-NN balls.

    precision: share of fake points inside some real point's k-NN ball;
    recall:    share of real points inside some fake point's k-NN ball;
    density:   (1/k) * mean over fake points of the number of real balls containing it;
    coverage:  share of real points whose own ball contains at least one fake point.
    Comparisons are strict (``<``), as in the reference implementation. Memory O(N M).
    """
    real, fake = _as2d("real", real), _as2d("fake", fake)
    _same_width(real, fake)
    if k < 1 or k >= len(real) or k >= len(fake):
        raise ValueError(
            f"prdc needs 1 <= k < number of real ({len(real)}) and fake ({len(fake)}) points; k={k}"
        )
    r_real = _kth_radius(real, k)
    r_fake = _kth_radius(fake, k)
    d = _pairwise(real, fake)  # [N_real, N_fake]
    inside_real = d < r_real[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < r_real).mean()),
    }


# -- MMD permutation test (2-D data) -------------------------------------------------------


@dataclass(frozen=True)
class MMDTest:
    """Result of :func:`mmd_permutation_test`."""

    statistic: float  # unbiased MMD^2 of the (possibly subsampled) samples
    p_value: float  # (1 + #{permuted >= observed}) / (1 + n_permutations)
    bandwidth: float  # sigma of k(a, b) = exp(-|a - b|^2 / (2 sigma^2))
    n_permutations: int
    n_x: int
    n_y: int


def mmd_permutation_test(
    x,
    y,
    rng: np.random.Generator,
    n_permutations: int = 500,
    bandwidth: float | None = None,
    max_n: int | None = 1000,
) -> MMDTest:
    """Two-sample permutation test of ``x`` [n, d] vs ``y`` [m, d] with a Gaussian-kernel MMD.

    The bandwidth is the median heuristic (sigma = median pairwise Euclidean distance of the
    pooled sample, zero distances excluded) unless given. Each sample larger than ``max_n`` is
    first subsampled without replacement with ``rng`` (the pooled kernel matrix is
    (n + m)^2 floats); ``max_n=None`` keeps everything. The statistic is the unbiased MMD^2
    (U-statistic); permutations relabel the pooled sample with ``rng``. Meant for the 2-D toy
    densities; it works on any feature arrays.
    """
    x, y = _as2d("x", x), _as2d("y", y)
    _same_width(x, y)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if n_permutations < 1:
        raise ValueError("n_permutations must be >= 1")
    if max_n is not None:
        if len(x) > max_n:
            x = x[rng.choice(len(x), max_n, replace=False)]
        if len(y) > max_n:
            y = y[rng.choice(len(y), max_n, replace=False)]
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("mmd_permutation_test needs at least 2 points in each sample")
    z = np.concatenate([x, y])
    d2 = np.maximum((z * z).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * z @ z.T, 0.0)
    if bandwidth is None:
        iu = np.triu_indices(len(z), 1)
        dist = np.sqrt(d2[iu])
        dist = dist[dist > 0]
        bandwidth = float(np.median(dist)) if dist.size else 1.0
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    K = np.exp(-d2 / (2.0 * bandwidth**2))
    np.fill_diagonal(K, 0.0)  # U-statistic: drop the i == j terms

    def stats(masks: np.ndarray) -> np.ndarray:
        # masks [N, B] boolean: True where the pooled point is labelled "x".
        s = masks.astype(np.float64)
        t = 1.0 - s
        Ks, Kt = K @ s, K @ t
        xx = (s * Ks).sum(0) / (n * (n - 1))
        yy = (t * Kt).sum(0) / (m * (m - 1))
        xy = (s * Kt).sum(0) / (n * m)
        return xx + yy - 2.0 * xy

    observed = float(stats(np.concatenate([np.ones(n, bool), np.zeros(m, bool)])[:, None])[0])
    N = n + m
    count = 0
    chunk = max(1, min(n_permutations, 2**22 // N))
    done = 0
    while done < n_permutations:
        b = min(chunk, n_permutations - done)
        masks = np.zeros((N, b), dtype=bool)
        for j in range(b):
            masks[rng.permutation(N)[:n], j] = True
        count += int((stats(masks) >= observed).sum())
        done += b
    p = (1.0 + count) / (1.0 + n_permutations)
    return MMDTest(observed, float(p), float(bandwidth), int(n_permutations), n, m)


# -- feature normalisation ----------------------------------------------------------------

# A feature is dead on real data when its std is below DEAD_TOL x the largest feature std (a
# ReLU unit that never fires on real images has std exactly 0); live features' scales are
# floored at SCALE_FLOOR x the median live std, so a near-dead unit cannot blow up either.
DEAD_TOL = 1e-6
SCALE_FLOOR = 1e-2


@dataclass(frozen=True)
class Standardiser:
    """Per-feature standardisation fitted on real features; ``s(features)`` applies it."""

    keep: np.ndarray  # bool [F]: features live on the real data
    mean: np.ndarray  # [F_live] real mean
    scale: np.ndarray  # [F_live] real std, floored

    @property
    def n_dead(self) -> int:
        return int((~self.keep).sum())

    def __call__(self, features) -> np.ndarray:
        f = _as2d("features", features)
        if f.shape[1] != self.keep.shape[0]:
            raise ValueError(f"expected {self.keep.shape[0]} features, got {f.shape[1]}")
        return (f[:, self.keep] - self.mean) / self.scale


def fit_standardiser(real) -> Standardiser:
    """Fit the normalisation on ``real`` features [N, F] (never on samples being scored).

    Dead features (std <= ``DEAD_TOL`` x the largest std) are dropped: they carry no
    information about real data, and dividing by ``std + eps`` turned any sample that switches
    one on into a 1e7-sigma outlier (KID 8e34 on uniform noise). The remaining scales are
    floored at ``SCALE_FLOOR`` x their median. Example::

        >>> s = fit_standardiser(np.array([[0.0, 1.0], [0.0, 3.0]]))
        >>> s.n_dead, s(np.array([[5.0, 2.0]])).tolist()
        (1, [[0.0]])
    """
    real = _as2d("real", real)
    if len(real) < 2:
        raise ValueError("fit_standardiser needs at least 2 real samples")
    sd = real.std(0)
    keep = sd > DEAD_TOL * sd.max() if sd.max() > 0 else np.zeros_like(sd, dtype=bool)
    if not keep.any():
        raise ValueError("every feature is constant on the real data: nothing to compare")
    live = sd[keep]
    return Standardiser(keep, real[:, keep].mean(0), np.maximum(live, SCALE_FLOOR * np.median(live)))


# -- memorisation -------------------------------------------------------------------------


def nn_distance(a, b, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance of each row of ``a`` [n, D] to its nearest row of ``b`` [m, D]."""
    a, b = _as2d("a", a), _as2d("b", b)
    _same_width(a, b)
    best = np.full(len(a), np.inf)
    for i in range(0, len(b), chunk):  # chunks of b keep memory at n x chunk
        best = np.minimum(best, _pairwise(a, b[i : i + chunk]).min(1))
    return best


def memorisation(samples, train, test, quantile: float = 0.05, test_to_train=None) -> dict[str, float]:
    """How close samples lie to the training data, against fresh real data as the baseline.

    With d(x) the distance of x to its nearest train point (pixel space), returns
    ``nn_train_ratio`` = median d(sample) / median d(test point): 1 for a model whose samples
    are as close to the train split as unseen real data, -> 0 for one that copies training
    images, > 1 for samples farther away than real data (poor quality, not copying); and
    ``copy_fraction`` = the share of samples closer to the train split than the ``quantile``
    (5 %) of the test points' distances: ``quantile`` for fresh data, -> 1 for a copier.
    Comparing with the test split's own distances to train (not samples-to-train against
    samples-to-test) keeps the train split's larger size from biasing the comparison.
    ``test_to_train`` may pass precomputed d(test points). Example::

        >>> tr = np.eye(4); te = np.eye(4)[:2] * 0.9
        >>> memorisation(tr[:2], tr, te)["copy_fraction"]
        1.0
    """
    d_test = nn_distance(test, train) if test_to_train is None else np.asarray(test_to_train)
    d_s = nn_distance(samples, train)
    base = float(np.median(d_test))
    return {
        "nn_train_ratio": float(np.median(d_s) / base) if base > 0 else float("nan"),
        "copy_fraction": float((d_s < np.quantile(d_test, quantile)).mean()),
    }
