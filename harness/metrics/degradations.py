"""Planted degradations of real images: the known answers a sample-quality metric must rank.

Each function takes flat images ``x`` [n, D] on [0, 1] of shape ``shape`` (H, W) or (C, H, W)
and returns a degraded copy of the same size; strength 0 is the identity. Used by the suite
(``tests/metrics/test_planted_degradations.py``) and by
``benchmarks/sample_metric_degradations.py``, which prints the table in docs/metrics.md.

Example::

    >>> import numpy as np
    >>> x = np.random.default_rng(0).uniform(size=(4, 64))
    >>> bool(dim(x, 0.5).max() <= 0.5)
    True
"""

from __future__ import annotations

import numpy as np

__all__ = ["LADDERS", "add_noise", "blur", "box_blur", "dim", "drop_classes"]


def add_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian pixel noise of std ``sigma``, clipped back to [0, 1]."""
    return np.clip(x + sigma * rng.normal(size=x.shape), 0.0, 1.0)


def dim(x: np.ndarray, factor: float) -> np.ndarray:
    """Intensities multiplied by ``factor`` (0.9 = dimmed by 10 %)."""
    return x * factor


def _image(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) not in (2, 3):
        raise ValueError(f"blur needs image data (H, W) or (C, H, W), got shape {shape}")
    return x.reshape(len(x), *((1, *shape) if len(shape) == 2 else shape))


def _separable(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    r = len(k) // 2
    pad = np.pad(img, [(0, 0), (0, 0), (r, r), (r, r)])  # zero border: digits' background
    h = sum(k[i] * pad[:, :, :, i : i + img.shape[3]] for i in range(len(k)))
    return sum(k[i] * h[:, :, i : i + img.shape[2], :] for i in range(len(k)))


def blur(x: np.ndarray, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian blur of std ``sigma`` pixels (kernel radius ceil(3 sigma), zero border)."""
    if sigma <= 0:
        return x.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2))
    return _separable(_image(x, shape), k / k.sum()).reshape(x.shape)


def box_blur(x: np.ndarray, shape: tuple[int, ...], width: int = 3) -> np.ndarray:
    """The ``width`` x ``width`` mean filter (the issue's "3x3 blur"), zero border."""
    return _separable(_image(x, shape), np.full(width, 1.0 / width)).reshape(x.shape)


def drop_classes(
    pool: np.ndarray, labels: np.ndarray, n_drop: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` images drawn from ``pool`` after removing the ``n_drop`` highest class labels
    (without replacement where the remaining classes hold ``n`` images)."""
    classes = np.unique(labels)
    idx = np.flatnonzero(np.isin(labels, classes[: len(classes) - n_drop]))
    return pool[rng.choice(idx, n, replace=len(idx) < n)]


# The strengths the suite and the benchmark use, from mild to strong.
LADDERS = {
    "noise": (0.05, 0.1, 0.2, 0.4),  # pixel std
    "blur": (0.5, 0.75, 1.0),  # Gaussian sigma, pixels
    "dim": (0.9, 0.8, 0.7, 0.5),  # intensity factor
    "drop": (2, 4, 6, 8),  # classes removed of 10
}
