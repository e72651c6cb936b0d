"""Datasets: embedded, generated and file-based loaders, their labels and their errors.

The file-based loaders are exercised on tiny files written in the real formats (IDX, plain
and gzipped; CIFAR-10 python pickle batches), so no download is needed.
"""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from harness import data
from harness.errors import HarnessError

# -- writers for the real on-disk formats -------------------------------------------------


def write_idx(path, arr: np.ndarray, gz: bool) -> None:
    """IDX: 0, 0, type code 0x08 (ubyte), ndim, big-endian uint32 dims, then the bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_idx_set(folder, rng, n_train=6, n_test=4, gz=True, hw=(28, 28)):
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write_idx(folder / name, a, gz)
    return arrays


def make_cifar_set(folder, rng, per_batch=3, n_test=2, bytes_keys=True):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n)]
        d = {
            "batch_label": f"{name} of 6",
            "labels": y,
            "data": x,
            "filenames": [f"img{i}.png" for i in range(n)],
        }
        if bytes_keys:  # what a python-2 pickle of the real files gives with encoding="bytes"
            d = {k.encode(): (v.encode() if isinstance(v, str) else v) for k, v in d.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        out[name] = (x, np.array(y))
    return out


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


# -- digits (embedded) --------------------------------------------------------------------


def test_digits_labels_follow_the_fixed_split():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    tr, te = data.fixed_split(len(bunch.target), 300)
    ytr, yte = data.labels("digits")
    assert ytr.dtype == np.int64 and ytr.shape == (1497,) and yte.shape == (300,)
    np.testing.assert_array_equal(ytr, bunch.target[tr])
    np.testing.assert_array_equal(yte, bunch.target[te])
    # aligned with the images: the same rows of sklearn's data, in the same order
    d = data.load("digits")
    np.testing.assert_allclose(d.train.numpy(), bunch.data[tr] / 16.0, atol=1e-7)
    np.testing.assert_array_equal(data.labels("digits_binary")[1], yte)


# -- MNIST-1D (generated) -----------------------------------------------------------------


def test_mnist1d_generated_locally_scaled_and_labelled():
    state = np.random.get_state()
    d = data.load("mnist1d")
    assert d.train.shape == (4000, 40) and d.test.shape == (1000, 40)
    assert d.train.dtype == torch.float32 and d.shape == (40,) and d.levels is None
    assert float(d.train.min()) == 0.0 and float(d.train.max()) == 1.0
    assert 0.0 <= float(d.test.min()) and float(d.test.max()) <= 1.0
    ytr, yte = data.labels("mnist1d")
    assert ytr.shape == (4000,) and yte.shape == (1000,) and set(np.unique(ytr)) == set(range(10))

    # identical to the package's own generator, up to the documented affine map
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    raw = data._mnist1d_raw()
    lo, hi = raw["lo"], raw["hi"]
    np.testing.assert_allclose(d.test.numpy(), (ref["x_test"] - lo) / (hi - lo), atol=1e-6)
    np.testing.assert_array_equal(ytr, ref["y"])
    # our loader leaves numpy's global RNG as it found it (the generator reseeds it)
    np.random.set_state(state)
    data._mnist1d_raw.cache_clear()
    data._mnist1d_raw()
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2] == state[2]


# -- 2-D toy densities (generated) --------------------------------------------------------


@pytest.mark.parametrize("name", ["two_moons", "eight_gaussians", "checkerboard", "swiss_roll"])
def test_toy_density_shape_determinism_and_fixed_split(name):
    d = data.load(name, root="ignored")
    assert d.train.shape == (data.TOY_TRAIN, 2) and d.test.shape == (data.TOY_TEST, 2)
    assert d.train.dtype == torch.float32 and d.shape == (2,) and d.levels is None
    assert torch.isfinite(d.train).all() and float(d.train.abs().max()) < 6.0
    # regenerating under a different global seed gives the same points: the split is the
    # dataset's own, never a run's
    np.random.seed(999)
    torch.manual_seed(999)
    data._toy_arrays.cache_clear()
    again = data.load(name)
    assert torch.equal(again.train, d.train) and torch.equal(again.test, d.test)
    assert not torch.equal(d.train[: data.TOY_TEST], d.test)
    with pytest.raises(HarnessError, match="no class labels"):
        data.labels(name)


def test_toy_densities_have_their_shapes():
    eg = data.load("eight_gaussians").train.numpy()
    s = 1 / np.sqrt(2)
    centers = (
        4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]) / 1.414
    )
    nearest = np.linalg.norm(eg[:, None] - centers[None], axis=2).argmin(1)
    assert np.bincount(nearest, minlength=8).min() > data.TOY_TRAIN / 8 * 0.9  # 8 balanced modes

    cb = data.load("checkerboard").train.numpy()
    parity = (np.floor(cb[:, 0] / 2) + np.floor(cb[:, 1] / 2)) % 2
    assert np.all(parity == 0) and cb.min() >= -4 and cb.max() <= 4

    tm = data.load("two_moons").train.numpy()
    assert abs(tm.mean(0)[0]) < 0.1 and tm.std(0).min() > 0.5

    sr = data.load("swiss_roll").train.numpy()
    r = np.linalg.norm(sr, axis=1)
    assert 0.5 < np.median(r) < 2.5  # the roll's radius t / 5 runs from ~0.9 to ~2.8


# -- MNIST / Fashion-MNIST (IDX files) ----------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loader_reads_real_format(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = make_idx_set(tmp_path / "mnist", rng, gz=gz)
    d = data.load("mnist", root=str(tmp_path))
    assert d.shape == (28, 28) and d.levels == 256 and d.train.dtype == torch.float32
    assert d.train.shape == (6, 784) and d.test.shape == (4, 784)
    np.testing.assert_allclose(
        d.train.numpy(), arrays["train-images-idx3-ubyte"].reshape(6, -1) / 255.0, rtol=1e-6
    )
    ytr, yte = data.labels("mnist", root=str(tmp_path))
    np.testing.assert_array_equal(ytr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(yte, arrays["t10k-labels-idx1-ubyte"])
    assert ytr.dtype == np.int64


def test_idx_env_var_subfolders_and_torchvision_layout(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    mn = make_idx_set(tmp_path / "mnist", rng, gz=True)
    fa = make_idx_set(tmp_path / "FashionMNIST" / "raw", rng, gz=False, n_train=5)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    m, f = data.load("mnist"), data.load("fashion_mnist")
    assert m.train.shape == (6, 784) and f.train.shape == (5, 784)
    np.testing.assert_allclose(
        f.test.numpy(), fa["t10k-images-idx3-ubyte"].reshape(4, -1) / 255.0, rtol=1e-6
    )
    np.testing.assert_array_equal(data.labels("mnist")[0], mn["train-labels-idx1-ubyte"])
    # the dataset's own folder also works as root
    assert data.load("fashion_mnist", root=str(tmp_path / "FashionMNIST" / "raw")).train.shape == (
        5,
        784,
    )


def test_read_idx_parses_header_and_dims(tmp_path):
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / "x-idx3-ubyte", a, gz=False)
    out = data.read_idx(tmp_path / "x-idx3-ubyte", 2051)
    assert out.shape == (2, 3, 5) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)


def test_missing_directory_names_path_files_and_remedy(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(HarnessError) as e:
        data.load("mnist", root=str(missing))
    msg = str(e.value)
    assert str(missing) in msg and "does not exist" in msg
    for f in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert f in msg
    assert data.DATA_DIR_ENV in msg and "download" in msg.lower()
    with pytest.raises(HarnessError, match=data.DATA_DIR_ENV) as e:
        data.load("fashion_mnist")  # no root, no env var
    assert "t10k-images-idx3-ubyte" in str(e.value)


def test_partial_idx_set_names_the_missing_file(tmp_path):
    make_idx_set(tmp_path / "mnist", np.random.default_rng(2))
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(HarnessError, match=r"lacks t10k-labels-idx1-ubyte"):
        data.load("mnist", root=tmp_path)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_file_is_a_clear_error(tmp_path, gz):
    make_idx_set(tmp_path / "mnist", np.random.default_rng(3), gz=gz)
    target = tmp_path / "mnist" / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    target.write_bytes(target.read_bytes()[:-40])
    with pytest.raises(HarnessError) as e:
        data.load("mnist", root=tmp_path)
    msg = str(e.value)
    assert str(target) in msg and ("truncated" in msg or "corrupt" in msg)


def test_wrong_magic_and_garbage_are_clear_errors(tmp_path):
    rng = np.random.default_rng(4)
    make_idx_set(tmp_path / "mnist", rng, gz=False)
    img = tmp_path / "mnist" / "train-images-idx3-ubyte"
    write_idx(img, rng.integers(0, 10, 6, dtype=np.uint8), gz=False)  # a label file in its place
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").unlink(missing_ok=True)
    with pytest.raises(HarnessError, match=r"magic number 2049, expected 2051"):
        data.load("mnist", root=tmp_path)
    img.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(HarnessError, match=r"bad magic number"):
        data.load("mnist", root=tmp_path)


def test_image_label_count_mismatch(tmp_path):
    rng = np.random.default_rng(5)
    make_idx_set(tmp_path / "fashion_mnist", rng, gz=True)
    write_idx(
        tmp_path / "fashion_mnist" / "train-labels-idx1-ubyte",
        rng.integers(0, 10, 5, dtype=np.uint8),
        gz=True,
    )
    with pytest.raises(HarnessError, match=r"labels"):
        data.load("fashion_mnist", root=tmp_path)


# -- CIFAR-10 (python pickle batches) ------------------------------------------------------


@pytest.mark.parametrize(
    "layout,bytes_keys", [("cifar10/cifar-10-batches-py", True), ("cifar-10-batches-py", False)]
)
def test_cifar10_reads_pickle_batches(tmp_path, layout, bytes_keys):
    batches = make_cifar_set(tmp_path / layout, np.random.default_rng(6), bytes_keys=bytes_keys)
    d = data.load("cifar10", root=tmp_path)
    assert d.shape == (3, 32, 32) and d.levels == 256
    assert d.train.shape == (15, 3072) and d.test.shape == (2, 3072)
    xtr = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_allclose(d.train.numpy(), xtr / 255.0, rtol=1e-6)
    # channel-major flat order: pixel (c, i, j) of image 0 is data[0, c*1024 + i*32 + j]
    img = d.test.view(-1, 3, 32, 32)[0]
    assert (
        abs(float(img[2, 3, 4]) - batches["test_batch"][0][0, 2 * 1024 + 3 * 32 + 4] / 255.0) < 1e-6
    )
    ytr, yte = data.labels("cifar10", root=tmp_path)
    np.testing.assert_array_equal(
        ytr, np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    )
    np.testing.assert_array_equal(yte, batches["test_batch"][1])


def test_cifar10_numpy1_module_paths_load(tmp_path):
    # Files pickled by older numpy (as the distributed CIFAR-10 batches were) name
    # numpy.core.multiarray._reconstruct; the restricted unpickler allows that path too.
    folder = tmp_path / "cifar10"
    batches = make_cifar_set(folder, np.random.default_rng(9))
    for name in ["test_batch", "data_batch_1"]:
        raw = (folder / name).read_bytes()
        assert b"numpy._core.multiarray" in raw or b"numpy.core.multiarray" in raw
        (folder / name).write_bytes(
            raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        )
    d = data.load("cifar10", root=tmp_path)
    np.testing.assert_allclose(d.test.numpy(), batches["test_batch"][0] / 255.0, rtol=1e-6)


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(HarnessError) as e:
        data.load("cifar10", root=tmp_path / "none")
    msg = str(e.value)
    assert str(tmp_path / "none") in msg and "data_batch_1" in msg and "test_batch" in msg
    assert "cifar-10-python.tar.gz" in msg

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    make_cifar_set(folder, np.random.default_rng(7))
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:500])
    with pytest.raises(HarnessError) as e:
        data.load("cifar10", root=tmp_path)
    assert str(folder / "data_batch_3") in str(e.value) and "corrupt or truncated" in str(e.value)


def test_cifar10_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar_set(folder, np.random.default_rng(8))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(HarnessError, match=r"refusing to load \w+\.print"):
        data.load("cifar10", root=tmp_path)


def test_labels_errors_name_the_dataset():
    with pytest.raises(HarnessError, match="unknown dataset 'nope'"):
        data.labels("nope")
