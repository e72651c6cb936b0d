"""Datasets, resident as float tensors on [0, 1] with a fixed train/test split.

The split is fixed by the dataset (a permutation with a constant seed), never by the run's
seed, so every seed of every variant is scored on the same test images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from harness.errors import HarnessError
from harness.registry import DATASETS, register_dataset

SPLIT_SEED = 20240101  # the dataset's own split; never the run's seed


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors of shape [N, *shape] with values on [0, 1].

    `levels` is the number of discrete intensity levels (17 for digits: 0..16), or None for
    continuous data. Discrete likelihoods model value * (levels - 1) as a category.
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    shape: tuple[int, ...]
    levels: int | None

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))


def load(name: str, root: str | None = None) -> Dataset:
    """Load a registered dataset by name: ``load("digits").train.shape == (1497, 64)``."""
    if name not in DATASETS:
        raise HarnessError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    return DATASETS[name](root=root) if root is not None else DATASETS[name]()


def fixed_split(n: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return perm[n_test:], perm[:n_test]


@register_dataset("digits")
@lru_cache(maxsize=None)
def digits() -> Dataset:
    """sklearn's 8x8 digits (1,797 images, bundled with scikit-learn): 17 levels, 300 test."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float32) / 16.0
    tr, te = fixed_split(len(x), 300)
    return Dataset("digits", torch.from_numpy(x[tr]), torch.from_numpy(x[te]), (8, 8), 17)


@register_dataset("digits_binary")
@lru_cache(maxsize=None)
def digits_binary() -> Dataset:
    """The binarized view of digits (intensity >= 8 of 16 is on): 2 levels."""
    d = digits()
    return Dataset("digits_binary", (d.train >= 0.5).float(), (d.test >= 0.5).float(), d.shape, 2)
