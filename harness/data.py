"""The built-in datasets: bundled and generated sets here, local files and fetched MNIST in
:mod:`harness.datasets_files` (imported below, so importing this module registers every
built-in dataset). The Dataset type and its fixed splits live in :mod:`harness.dataset`;
their public names are re-exported here (``harness.data.load``, ``harness.data.Dataset``).
"""

from __future__ import annotations

import random as _pyrandom
from collections.abc import Callable
from functools import cache

import numpy as np
import torch

from harness.dataset import (
    BINARIZE_TEST_SEED,
    BINARIZE_VALIDATION_SEED,
    SPLIT_SEED,
    VALIDATION_SEED,
    Dataset,
    binarize,
    fixed_split,
    labels,
    load,
    mark_unlabelled,
    register_labels,
    validation_view,
)
from harness.datasets_files import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    ArrayUnpickler,
    data_dir,
    read_idx,
)
from harness.errors import HarnessError
from harness.registry import register_dataset


@register_dataset("digits")
@cache
def digits() -> Dataset:
    """sklearn's 8x8 digits (1,797 images, bundled with scikit-learn): 17 levels, 300 test."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float32) / 16.0
    tr, te = fixed_split(len(x), 300)
    return Dataset("digits", torch.from_numpy(x[tr]), torch.from_numpy(x[te]), (8, 8), 17)


@register_dataset("digits_binary")
@cache
def digits_binary() -> Dataset:
    """The binarized view of digits (intensity >= 8 of 16 is on): 2 levels."""
    d = digits()
    return Dataset("digits_binary", (d.train >= 0.5).float(), (d.test >= 0.5).float(), d.shape, 2)


@register_labels("digits")
@register_labels("digits_binary")
def _digits_labels(root=None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    y = load_digits().target.astype(np.int64)
    tr, te = fixed_split(len(y), 300)  # exactly the split digits() uses
    return y[tr], y[te]


# =========================================================================================
# MNIST-1D (Greydanus 2020), generated locally by the ``mnist1d`` package.
# =========================================================================================
# ``mnist1d.data.get_dataset`` would try to download a pickle first; we call the generator
# ``mnist1d.data.make_dataset(get_dataset_args())`` directly: 5,000 sequences of length 40 with
# the package's default arguments (seed 42), split by the package itself into the canonical
# 4,000 train / 1,000 test (its split is fixed by that seed, never by a run's seed).
# The package standardises the whole set (mean 0, std 1); we map it to [0, 1] with the fixed
# affine map x01 = (x - lo) / (hi - lo), lo / hi the train split's min / max
# (lo = -5.479, hi = 4.534 for package version 0.0.2), then clip; no test value falls outside,
# so nothing is clipped in practice. Continuous: levels=None.


@cache
def _mnist1d_raw() -> dict:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise HarnessError(
            f"dataset 'mnist1d' needs the mnist1d package ({e}); install it with `pip install mnist1d`"
        ) from e
    # The generator reseeds numpy's and Python's global RNGs (mnist1d.utils.set_seed); keep
    # the caller's global state untouched.
    np_state, py_state = np.random.get_state(), _pyrandom.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        _pyrandom.setstate(py_state)
    x, xt = np.asarray(d["x"], np.float64), np.asarray(d["x_test"], np.float64)
    lo, hi = float(x.min()), float(x.max())

    def scale(a: np.ndarray) -> np.ndarray:
        return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)

    return {
        "train": scale(x),
        "test": scale(xt),
        "y": np.asarray(d["y"], np.int64),
        "y_test": np.asarray(d["y_test"], np.int64),
        "lo": lo,
        "hi": hi,
    }


@register_dataset("mnist1d")
def mnist1d(root=None) -> Dataset:
    """MNIST-1D: 4,000 train / 1,000 test sequences of length 40 on [0, 1], continuous.

    Generated locally (no download) by ``mnist1d.data.make_dataset`` with its default arguments.
    ``root`` is ignored (accepted so ``load(name, root=...)`` works for every dataset).
    """
    r = _mnist1d_raw()
    return Dataset(
        "mnist1d", torch.from_numpy(r["train"]), torch.from_numpy(r["test"]), (40,), None
    )


@register_labels("mnist1d")
def _mnist1d_labels(root=None) -> tuple[np.ndarray, np.ndarray]:
    r = _mnist1d_raw()
    return r["y"], r["y_test"]


# =========================================================================================
# 2-D toy densities (the FFJORD / RealNVP benchmark set), generated with a fixed Generator.
# =========================================================================================
# Each set draws 25,000 points from ``np.random.default_rng([SPLIT_SEED, k])`` (k fixed per
# set); the first 20,000 are train, the last 5,000 test. Raw float32 coordinates (not on
# [0, 1]), shape (2,), levels=None. Scales follow the common FFJORD ``toy_data`` conventions,
# so published plots and numbers line up; every set lies roughly inside [-4, 4]^2:
#   two_moons        sklearn-style moons, noise 0.1, then x * 2 + (-1, -0.2)
#   eight_gaussians  8 equal-weight Gaussians (std 0.5) at radius 4 on the unit-circle
#                    directions (0, 45, ..., 315 degrees), all divided by 1.414
#   checkerboard     uniform on the 8 dark cells of a 4x4 board over [-4, 4]^2
#   swiss_roll       sklearn-style swiss roll, noise 1.0, coordinates (x, z) / 5

TOY_TRAIN, TOY_TEST = 20_000, 5_000


def _two_moons(rng: np.random.Generator, n: int) -> np.ndarray:
    n_out = n // 2
    n_in = n - n_out
    t_out = rng.uniform(0.0, np.pi, n_out)
    t_in = rng.uniform(0.0, np.pi, n_in)
    outer = np.stack([np.cos(t_out), np.sin(t_out)], 1)
    inner = np.stack([1.0 - np.cos(t_in), 1.0 - np.sin(t_in) - 0.5], 1)
    x = np.concatenate([outer, inner])[rng.permutation(n)]
    x = x + rng.normal(0.0, 0.1, x.shape)
    return x * 2.0 + np.array([-1.0, -0.2])


def _eight_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    s = 1.0 / np.sqrt(2.0)
    centers = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    which = rng.integers(0, 8, n)
    return (rng.normal(0.0, 0.5, (n, 2)) + centers[which]) / 1.414


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    x1 = rng.uniform(0.0, 1.0, n) * 4.0 - 2.0
    x2 = rng.uniform(0.0, 1.0, n) - rng.integers(0, 2, n) * 2.0
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], 1) * 2.0


def _swiss_roll(rng: np.random.Generator, n: int) -> np.ndarray:
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(0.0, 1.0, n))
    y = 21.0 * rng.uniform(0.0, 1.0, n)  # the roll's height: dropped, kept for the stream
    x = np.stack([t * np.cos(t), y, t * np.sin(t)], 1) + rng.normal(0.0, 1.0, (n, 3))
    return x[:, [0, 2]] / 5.0


_TOYS: dict[str, tuple[int, Callable[[np.random.Generator, int], np.ndarray]]] = {
    "two_moons": (1, _two_moons),
    "eight_gaussians": (2, _eight_gaussians),
    "checkerboard": (3, _checkerboard),
    "swiss_roll": (4, _swiss_roll),
}


@cache
def _toy_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    k, fn = _TOYS[name]
    x = fn(np.random.default_rng([SPLIT_SEED, k]), TOY_TRAIN + TOY_TEST).astype(np.float32)
    return x[:TOY_TRAIN], x[TOY_TRAIN:]


def _register_toy(name: str) -> None:
    def loader(root=None) -> Dataset:
        tr, te = _toy_arrays(name)
        return Dataset(name, torch.from_numpy(tr), torch.from_numpy(te), (2,), None)

    loader.__name__ = name
    loader.__doc__ = (
        f"2-D toy density {name!r}: {TOY_TRAIN} train / {TOY_TEST} test points (fixed)."
    )
    register_dataset(name)(loader)
    mark_unlabelled(name)


for _name in _TOYS:
    _register_toy(_name)


__all__ = [
    "BINARIZE_TEST_SEED",
    "BINARIZE_VALIDATION_SEED",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "SPLIT_SEED",
    "TOY_TEST",
    "TOY_TRAIN",
    "VALIDATION_SEED",
    "ArrayUnpickler",
    "Dataset",
    "binarize",
    "data_dir",
    "digits",
    "digits_binary",
    "fixed_split",
    "labels",
    "load",
    "mnist1d",
    "read_idx",
    "register_labels",
    "validation_view",
]
