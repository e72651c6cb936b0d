"""The Dataset type and its fixed splits: what every loader returns and every run reads.

The split is fixed by the dataset (a permutation with a constant seed), never by the run's
seed, so every seed of every variant is scored on the same test images. Loaders live in
:mod:`harness.data` (generated and bundled sets) and :mod:`harness.datasets_files` (local
files and fetched MNIST); they register with ``@register_dataset`` and ``@register_labels``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from harness.errors import HarnessError
from harness.registry import DATASETS
from harness.seeds import stream_seed

SPLIT_SEED = 20240101  # the dataset's own split; never the run's seed
VALIDATION_SEED = SPLIT_SEED + 1  # the validation split's own permutation; never a run's seed


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors of shape [N, *shape] with values on [0, 1].

    `levels` is the number of discrete intensity levels (17 for digits: 0..16), or None for
    continuous data. Discrete likelihoods model value * (levels - 1) as a category.

    `dynamic_binarization`: `train` holds grey levels p on [0, 1] and the engine draws every
    training minibatch as x ~ Bernoulli(p) from each seed's own "binarize" stream (levels is
    2); `test` (and the validation split of a tuning view) is binarized once with a fixed seed,
    so every run is scored on the same binary images.
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    shape: tuple[int, ...]
    levels: int | None
    held_out: str = "test"  # what `test` holds: "test", or "validation" in a tuning view
    dynamic_binarization: bool = False
    source: str = ""  # where the numbers came from (shown by `harness catalog datasets`)

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))


def load(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Load a registered dataset by name: ``load("digits").train.shape == (1497, 64)``."""
    if name not in DATASETS:
        raise HarnessError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    return DATASETS[name](root=root) if root is not None else DATASETS[name]()


def binarize(x: torch.Tensor, seed: int) -> torch.Tensor:
    """x ~ Bernoulli(p) elementwise for grey levels ``p`` on [0, 1], from a generator seeded
    with ``seed`` (the same ``seed`` gives the same binary images on every machine's CPU).

    ``binarize(torch.tensor([0.0, 1.0]), 0).tolist() == [0.0, 1.0]``.
    """
    g = torch.Generator().manual_seed(int(seed))
    return (torch.rand(x.shape, generator=g, dtype=x.dtype) < x).to(x.dtype)


# The fixed binarizations' seeds: constant per purpose, never a run's seed.
BINARIZE_TEST_SEED = stream_seed(SPLIT_SEED, "binarize_test")
BINARIZE_VALIDATION_SEED = stream_seed(VALIDATION_SEED, "binarize_validation")


def validation_view(ds: Dataset, fraction: float) -> Dataset:
    """The tuning view of ``ds``: train = training split minus a fixed validation split, and
    the validation split in the place of the test split (so code that scores "the test split"
    scores validation during tuning and can never read the real test split).

    The validation rows are fixed by the dataset and ``fraction`` alone (a permutation with a
    constant seed), never by a run's seed: every trial of every variant is scored on the same
    images. A dynamically binarized dataset's validation rows are binarized once, with a fixed
    seed, as its test split is. ``validation_view(load("digits"), 0.2).test.shape == (299, 64)``.
    """
    if not 0 < fraction < 1:
        raise HarnessError(f"validation fraction {fraction!r}: expected a number strictly between 0 and 1")
    n = ds.train.shape[0]
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 2:
        raise HarnessError(f"dataset {ds.name!r}: {n} training examples are too few to hold out {n_val} for validation")
    perm = torch.from_numpy(np.random.default_rng(VALIDATION_SEED).permutation(n))
    train_idx, val_idx = perm[n_val:].sort().values, perm[:n_val].sort().values
    val = ds.train[val_idx]
    if ds.dynamic_binarization:
        val = binarize(val, BINARIZE_VALIDATION_SEED)
    return dataclasses.replace(ds, train=ds.train[train_idx], test=val, held_out="validation")


def fixed_split(n: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return perm[n_test:], perm[:n_test]


# =========================================================================================
# Labels: the feature classifier behind FID / KID / PRDC trains on them.
# =========================================================================================
# ``Dataset`` carries no labels (its fields are fixed); ``labels(name)`` returns them for the
# same fixed split, in the same order as ``load(name).train`` / ``.test``.

_LABELS: dict[str, Callable] = {}
_UNLABELLED: set[str] = set()


def register_labels(name: str) -> Callable[[Callable], Callable]:
    """Register ``fn(root=None) -> (train_labels, test_labels)`` for dataset ``name``.

    A user dataset registered with ``@register_dataset`` can register its labels the same way
    to get sample-quality metrics (a feature classifier needs labels to train on).
    """

    def deco(fn: Callable) -> Callable:
        _LABELS[name] = fn
        return fn

    return deco


def mark_unlabelled(name: str) -> None:
    """Say that dataset ``name`` has no class labels (a 2-D toy density): ``labels(name)``
    then explains how sample quality is measured on it instead."""
    _UNLABELLED.add(name)


def labels(name: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Integer class labels ``(train, test)`` (int64 numpy arrays) aligned with ``load(name)``.

    Example: ``ytr, yte = labels("digits"); ytr.shape == (1497,)``. A dataset without labels
    (the 2-D toy densities) raises :class:`HarnessError`.
    """
    if name not in _LABELS:
        if name in _UNLABELLED:
            raise HarnessError(
                f"dataset {name!r} has no class labels (it is a 2-D toy density); sample quality "
                "on it is measured with harness.metrics.sample_quality.mmd_permutation_test, "
                "which needs no feature classifier"
            )
        known = sorted(set(DATASETS) | set(_LABELS))
        if name not in DATASETS:
            raise HarnessError(f"unknown dataset {name!r}; available: {known}")
        raise HarnessError(
            f"dataset {name!r} has no registered labels; register them with "
            f"@harness.data.register_labels({name!r}) on a function returning (train, test) arrays"
        )
    fn = _LABELS[name]
    ytr, yte = fn(root=root) if root is not None else fn()
    return np.asarray(ytr, dtype=np.int64).copy(), np.asarray(yte, dtype=np.int64).copy()


__all__ = [
    "BINARIZE_TEST_SEED",
    "BINARIZE_VALIDATION_SEED",
    "SPLIT_SEED",
    "VALIDATION_SEED",
    "Dataset",
    "binarize",
    "fixed_split",
    "labels",
    "load",
    "mark_unlabelled",
    "register_labels",
    "validation_view",
]
