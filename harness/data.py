"""Datasets, resident as float tensors on [0, 1] with a fixed train/test split.

The split is fixed by the dataset (a permutation with a constant seed), never by the run's
seed, so every seed of every variant is scored on the same test images.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import random as _pyrandom
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

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
    held_out: str = "test"  # what `test` holds: "test", or "validation" in a tuning view

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))


def load(name: str, root: str | None = None) -> Dataset:
    """Load a registered dataset by name: ``load("digits").train.shape == (1497, 64)``."""
    if name not in DATASETS:
        raise HarnessError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    return DATASETS[name](root=root) if root is not None else DATASETS[name]()


VALIDATION_SEED = SPLIT_SEED + 1  # the validation split's own permutation; never a run's seed


def validation_view(ds: Dataset, fraction: float) -> Dataset:
    """The tuning view of ``ds``: train = training split minus a fixed validation split, and
    the validation split in the place of the test split (so code that scores "the test split"
    scores validation during tuning and can never read the real test split).

    The validation rows are fixed by the dataset and ``fraction`` alone (a permutation with a
    constant seed), never by a run's seed: every trial of every variant is scored on the same
    images. ``validation_view(load("digits"), 0.2).test.shape == (299, 64)``.
    """
    if not 0 < fraction < 1:
        raise HarnessError(f"validation fraction {fraction!r}: expected a number strictly between 0 and 1")
    n = ds.train.shape[0]
    n_val = max(1, int(round(n * fraction)))
    if n - n_val < 2:
        raise HarnessError(f"dataset {ds.name!r}: {n} training examples are too few to hold out {n_val} for validation")
    perm = torch.from_numpy(np.random.default_rng(VALIDATION_SEED).permutation(n))
    train_idx, val_idx = perm[n_val:].sort().values, perm[:n_val].sort().values
    return Dataset(ds.name, ds.train[train_idx], ds.train[val_idx], ds.shape, ds.levels, held_out="validation")


def fixed_split(n: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return perm[n_test:], perm[:n_test]


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


# =========================================================================================
# Labels: the feature classifier behind FID / KID / PRDC trains on them.
# =========================================================================================
# ``Dataset`` carries no labels (its fields are fixed); ``labels(name)`` returns them for the
# same fixed split, in the same order as ``load(name).train`` / ``.test``.

_LABELS: dict[str, Callable] = {}


def register_labels(name: str) -> Callable[[Callable], Callable]:
    """Register ``fn(root=None) -> (train_labels, test_labels)`` for dataset ``name``.

    A user dataset registered with ``@register_dataset`` can register its labels the same way
    to get sample-quality metrics (a feature classifier needs labels to train on).
    """

    def deco(fn: Callable) -> Callable:
        _LABELS[name] = fn
        return fn

    return deco


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
_UNLABELLED: set[str] = set()


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
    _UNLABELLED.add(name)


for _name in _TOYS:
    _register_toy(_name)


# =========================================================================================
# MNIST / Fashion-MNIST / CIFAR-10 from a local directory (no downloads at run time).
# =========================================================================================
# Where the files are looked for, first match wins (``root`` is the ``root`` argument, else
# the environment variable HARNESS_DATA_DIR):
#   mnist          <root>/mnist/  <root>/mnist/raw/  <root>/MNIST/raw/  <root>/
#   fashion_mnist  <root>/fashion_mnist/  <root>/fashion_mnist/raw/  <root>/FashionMNIST/raw/  <root>/
#   cifar10        <root>/cifar10/cifar-10-batches-py/  <root>/cifar10/
#                  <root>/cifar-10-batches-py/  <root>/
# i.e. one subfolder per dataset under one data directory (torchvision's layout also works);
# ``root`` may also be the dataset's own folder. MNIST-style files are the four standard IDX
# files, each plain or gzipped (``.gz``); CIFAR-10 is the "python version" pickle batches.
# Tensors are flat [N, D] like every Dataset (D = 784 or 3,072), values k / 255, 256 levels;
# CIFAR-10's flat order is its native channel-major order, so ``x.view(-1, 3, 32, 32)`` works.
# The split is the official train / test split (60k/10k, 50k/10k).

DATA_DIR_ENV = "HARNESS_DATA_DIR"

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_SOURCES = {
    "mnist": (
        "MNIST",
        "`harness fetch mnist` (pinned, hash-checked), or http://yann.lecun.com/exdb/mnist/ "
        "(mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
    ),
    "fashion_mnist": (
        "FashionMNIST",
        "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)",
    ),
}
_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
_CIFAR_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it: tar xzf ...)"
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FILE_CACHE: dict[tuple, tuple[Dataset, np.ndarray, np.ndarray]] = {}


def data_dir(root: str | os.PathLike | None = None, dataset: str | None = None) -> Path:
    """The local data directory: ``root`` if given, else ``$HARNESS_DATA_DIR``."""
    if root is None:
        root = os.environ.get(DATA_DIR_ENV) or None
    if root is None:
        what = f"dataset {dataset!r} is read from local files, but there is no" if dataset else "no"
        raise HarnessError(
            f"{what} data directory: pass --data-dir DIR to `harness check` / `run` / `report` "
            f"(root=... in Python) or set {DATA_DIR_ENV}=/path/to/data. "
            f"{_expected(dataset) if dataset else ''}".rstrip()
        )
    return Path(root).expanduser()


def _expected(name: str) -> str:
    if name == "cifar10":
        return (
            f"Expected files: $HARNESS_DATA_DIR/cifar10/cifar-10-batches-py/"
            f"{{{','.join(_CIFAR_FILES)}}}; get them from {_CIFAR_SOURCE}."
        )
    files = ", ".join(f"{b}[.gz]" for b in _IDX_FILES.values())
    return f"Expected files in $HARNESS_DATA_DIR/{name}/: {files}; get them from {_IDX_SOURCES[name][1]}."


def _missing_dir_note(root: Path) -> str:
    return "" if root.is_dir() else f" (the data directory {root} does not exist)"


def _idx_candidates(name: str, root: Path) -> list[Path]:
    tv = _IDX_SOURCES[name][0]
    return [root / name, root / name / "raw", root / tv / "raw", root]


def _find_idx_files(name: str, root: Path) -> dict[str, Path]:
    def find(folder: Path, base: str) -> Path | None:
        for cand in (folder / base, folder / f"{base}.gz"):
            if cand.is_file():
                return cand
        return None

    searched = _idx_candidates(name, root)
    partial: list[str] = []
    for folder in searched:
        found = {k: find(folder, base) for k, base in _IDX_FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
        if any(found.values()):
            missing = [_IDX_FILES[k] for k, v in found.items() if v is None]
            partial.append(f"{folder} lacks {', '.join(missing)}")
    expected = ", ".join(f"{b}[.gz]" for b in _IDX_FILES.values())
    where = "; ".join(str(p) for p in searched)
    detail = f" ({'; '.join(partial)})" if partial else ""
    raise HarnessError(
        f"dataset {name!r}: the IDX files were not found{detail}{_missing_dir_note(root)}. Looked in: {where}. "
        f"Expected files: {expected}. Provide them by downloading from {_IDX_SOURCES[name][1]} "
        f"into {root / name} (gzipped or not), then pass --data-dir {str(root)!r} or set {DATA_DIR_ENV}."
    )


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise HarnessError(f"cannot read {path}: {e}") from e
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise HarnessError(
                f"{path} is a corrupt or truncated gzip file ({e}); download it again"
            ) from e
    return raw


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Parse one IDX file (plain or gzipped) into a numpy array of its declared shape.

    Header: two zero bytes, a type code (0x08 = unsigned byte, ...), the number of dimensions,
    then one big-endian uint32 per dimension; the magic number is the first four bytes read as
    a big-endian int (2051 for MNIST image files, 2049 for label files). A wrong magic number
    or a body shorter / longer than the dimensions declare raises :class:`HarnessError`.
    """
    path = Path(path)
    buf = _read_bytes(path)
    what = {2051: "an IDX image file", 2049: "an IDX label file"}.get(
        expect_magic or 0, "an IDX file"
    )
    if len(buf) < 4:
        raise HarnessError(f"{path} is truncated: {len(buf)} bytes, too short for {what} header")
    magic = struct.unpack(">I", buf[:4])[0]
    code, ndim = buf[2], buf[3]
    if buf[:2] != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        raise HarnessError(f"{path} is not {what}: bad magic number {magic} (0x{magic:08x})")
    if expect_magic is not None and magic != expect_magic:
        raise HarnessError(f"{path}: magic number {magic}, expected {expect_magic} for {what}")
    head = 4 + 4 * ndim
    if len(buf) < head:
        raise HarnessError(f"{path} is truncated inside its header ({len(buf)} bytes)")
    dims = struct.unpack(f">{ndim}I", buf[4:head])
    dtype = _IDX_DTYPES[code]
    need = math.prod(dims) * dtype.itemsize  # Python ints: four uint32 dims overflow int64
    have = len(buf) - head
    if have != need:
        state = "truncated" if have < need else "longer than its header says"
        raise HarnessError(
            f"{path} is {state}: dimensions {tuple(dims)} need {need} data bytes, found {have}; "
            "download the file again"
        )
    return (
        np.frombuffer(buf, dtype=dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))
    )


def _stat_key(paths) -> tuple:
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)


def _load_idx_dataset(name: str, root) -> tuple[Dataset, np.ndarray, np.ndarray]:
    base = data_dir(root, name)
    files = _find_idx_files(name, base)
    key = (name, _stat_key(files.values()))
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    xtr = read_idx(files["train_images"], 2051)
    ytr = read_idx(files["train_labels"], 2049)
    xte = read_idx(files["test_images"], 2051)
    yte = read_idx(files["test_labels"], 2049)
    for x, y, px, py in (
        (xtr, ytr, "train_images", "train_labels"),
        (xte, yte, "test_images", "test_labels"),
    ):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise HarnessError(
                f"dataset {name!r}: {files[px]} holds {x.shape} images but {files[py]} holds "
                f"{y.shape} labels; expected [N, H, W] images and N labels"
            )
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise HarnessError(
                f"dataset {name!r}: {files[px]} / {files[py]} must hold unsigned bytes"
            )
    if xtr.shape[1:] != xte.shape[1:]:
        raise HarnessError(
            f"dataset {name!r}: train images are {xtr.shape[1:]} but test images are {xte.shape[1:]}"
        )
    shape = tuple(int(s) for s in xtr.shape[1:])

    def to01(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)

    out = (
        Dataset(name, to01(xtr), to01(xte), shape, 256),
        ytr.astype(np.int64),
        yte.astype(np.int64),
    )
    _FILE_CACHE[key] = out
    return out


@register_dataset("mnist")
def mnist(root=None) -> Dataset:
    """MNIST from local IDX files (see the layout above): 60,000 / 10,000, (28, 28), 256 levels."""
    return _load_idx_dataset("mnist", root)[0]


@register_dataset("fashion_mnist")
def fashion_mnist(root=None) -> Dataset:
    """Fashion-MNIST from local IDX files: 60,000 / 10,000, (28, 28), 256 levels."""
    return _load_idx_dataset("fashion_mnist", root)[0]


@register_labels("mnist")
def _mnist_labels(root=None):
    return _load_idx_dataset("mnist", root)[1:]


@register_labels("fashion_mnist")
def _fashion_mnist_labels(root=None):
    return _load_idx_dataset("fashion_mnist", root)[1:]


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file never runs code."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _find_cifar_dir(root: Path) -> Path:
    searched = [
        root / "cifar10" / "cifar-10-batches-py",
        root / "cifar10",
        root / "cifar-10-batches-py",
        root,
    ]
    partial = []
    for folder in searched:
        present = [f for f in _CIFAR_FILES if (folder / f).is_file()]
        if len(present) == len(_CIFAR_FILES):
            return folder
        if present:
            partial.append(
                f"{folder} lacks {', '.join(f for f in _CIFAR_FILES if f not in present)}"
            )
    detail = f" ({'; '.join(partial)})" if partial else ""
    raise HarnessError(
        f"dataset 'cifar10': the python pickle batches were not found{detail}{_missing_dir_note(root)}. Looked in: "
        f"{'; '.join(str(p) for p in searched)}. Expected files: {', '.join(_CIFAR_FILES)} "
        f"(the folder cifar-10-batches-py). Provide them by downloading {_CIFAR_SOURCE} into "
        f"{root / 'cifar10'}, then pass --data-dir {str(root)!r} or set {DATA_DIR_ENV}."
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OSError,
        MemoryError,
    ) as e:
        raise HarnessError(
            f"{path} is not a readable CIFAR-10 python batch (corrupt or truncated: {e}); "
            f"download and extract {_CIFAR_SOURCE} again"
        ) from e
    if not isinstance(d, dict):
        raise HarnessError(
            f"{path}: expected a pickled dict with 'data' and 'labels', got {type(d).__name__}"
        )
    # python-2 pickles (the distributed files) give bytes keys under encoding="bytes"
    x = d.get(b"data", d.get("data"))
    y = d.get(b"labels", d.get("labels"))
    if x is None or y is None:
        raise HarnessError(f"{path}: the pickled dict lacks 'data' or 'labels' (keys: {list(d)})")
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or y.shape != (len(x),):
        raise HarnessError(
            f"{path}: expected data uint8 [N, 3072] and N labels, got data {x.dtype} {x.shape} "
            f"and labels {y.shape}"
        )
    return x, y.astype(np.int64)


def _load_cifar10(root) -> tuple[Dataset, np.ndarray, np.ndarray]:
    folder = _find_cifar_dir(data_dir(root, "cifar10"))
    paths = [folder / f for f in _CIFAR_FILES]
    key = ("cifar10", _stat_key(paths))
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    parts = [_read_cifar_batch(p) for p in paths]
    xtr = np.concatenate([p[0] for p in parts[:5]])
    ytr = np.concatenate([p[1] for p in parts[:5]])
    xte, yte = parts[5]
    out = (
        Dataset(
            "cifar10",
            torch.from_numpy(xtr.astype(np.float32) / 255.0),
            torch.from_numpy(xte.astype(np.float32) / 255.0),
            (3, 32, 32),
            256,
        ),
        ytr,
        yte,
    )
    _FILE_CACHE[key] = out
    return out


@register_dataset("cifar10")
def cifar10(root=None) -> Dataset:
    """CIFAR-10 from the local python batches: 50,000 / 10,000, (3, 32, 32), 256 levels."""
    return _load_cifar10(root)[0]


@register_labels("cifar10")
def _cifar10_labels(root=None):
    return _load_cifar10(root)[1:]
