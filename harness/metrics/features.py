"""A local feature extractor per dataset: no downloaded Inception weights.

Sample-quality metrics (FID, KID, precision / recall / density / coverage) compare feature
statistics of real and generated samples. Instead of Inception-v3 (a download, and meaningless
on 8x8 digits or 1-D sequences) the harness trains one small classifier per dataset on the
dataset's own train split and labels, with a fixed seed, once; it is cached on disk together
with its test accuracy, and its penultimate layer (after the ReLU) is the feature space.

Architectures (``ClassifierConfig.arch``), chosen per dataset by :func:`default_config`:

* ``mlp``   -- D -> hidden -> ReLU -> F -> ReLU (features) -> classes; sklearn digits (test
  accuracy 0.977). On MNIST-1D an MLP reaches 0.661 (Greydanus 2020: MLP 68 %).
* ``cnn1d`` -- three stride-2 1-D convolutions -> F -> ReLU; the MNIST-1D default (0.905;
  Greydanus 2020: CNN 94 %): its features separate the classes far better than the MLP's.
* ``cnn2d`` -- two conv + max-pool stages -> F -> ReLU; MNIST, Fashion-MNIST, CIFAR-10.

Inputs are the harness's flat [N, D] tensors on [0, 1] (or [N, *shape]); they are standardised
inside the module with the train split's scalar mean / std, so a caller feeds raw samples.

The cache file is ``<cache_dir>/<dataset>-<hash>.pt`` (default cache_dir
``runs/cache/classifiers``); the hash covers the dataset name, a fingerprint of its data and
labels, the config (seed included) and :data:`CACHE_VERSION`, so a changed dataset or config is
a new file, never a silent reuse. The file is written atomically (temp file + rename); two
processes racing to train the same classifier both produce the same file. Train on the CPU
(the default) for bit-reproducible weights; every number a study reports should come from one
cached classifier, whose path and accuracy the caller logs.

Example::

    from harness.metrics.features import get_feature_extractor
    fx = get_feature_extractor("digits")          # trains once (~2 s), then loads from cache
    fx.accuracy, fx.num_features                  # (0.977, 64)
    feats = fx.features(samples)                  # Tensor [N, 64], float32, CPU
    # torchmetrics accepts it directly:
    # FrechetInceptionDistance(feature=fx).update(samples, real=False)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.errors import HarnessError

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path("runs") / "cache" / "classifiers"


@dataclass(frozen=True)
class ClassifierConfig:
    """How the feature classifier is built and trained (every field enters the cache hash)."""

    arch: str = "mlp"  # "mlp" | "cnn1d" | "cnn2d"
    hidden: int = 256  # mlp: first hidden width; cnn: channels of the first conv
    num_features: int = 64  # width of the penultimate (feature) layer
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    # torch intra-op threads while training (restored afterwards); 0 = leave torch's setting.
    # 1 is faster for these small nets on a shared CPU (2 threads spin against other jobs) and
    # makes the weights independent of the machine's core count.
    threads: int = 1

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def default_config(dataset: str) -> ClassifierConfig:
    """The classifier the harness uses for a dataset.

    Measured test accuracies (CPU, torch 2.13, one training thread, seed 0): digits 0.977
    (MLP, ~1-2 s on 2 shared cores); MNIST-1D 0.905 (1-D CNN, ~5-8 s). The MLP
    ``ClassifierConfig("mlp", 256, 64, epochs=40, batch_size=100, lr=1e-2)`` reaches 0.661 on
    MNIST-1D in ~2 s (Greydanus 2020: MLP 68 %, CNN 94 %). MNIST / Fashion-MNIST / CIFAR-10
    use a small 2-D CNN (its accuracy is measured and stored when it is first trained).
    """
    if dataset in ("digits", "digits_binary"):
        return ClassifierConfig(
            arch="mlp", hidden=256, num_features=64, epochs=40, batch_size=128, lr=1e-3
        )
    if dataset == "mnist1d":
        return ClassifierConfig(
            arch="cnn1d", hidden=32, num_features=64, epochs=40, batch_size=100, lr=1e-2
        )
    if dataset in ("mnist", "fashion_mnist"):
        return ClassifierConfig(
            arch="cnn2d", hidden=32, num_features=128, epochs=4, batch_size=128, lr=2e-3, threads=0
        )
    if dataset == "cifar10":
        return ClassifierConfig(
            arch="cnn2d", hidden=32, num_features=128, epochs=10, batch_size=128, lr=2e-3, threads=0
        )
    return ClassifierConfig(
        arch="mlp", hidden=256, num_features=64, epochs=40, batch_size=128, lr=1e-3
    )


# -- networks --------------------------------------------------------------------------------


def _body(cfg: ClassifierConfig, shape: tuple[int, ...]) -> nn.Module:
    D = math.prod(shape)
    F = cfg.num_features
    if cfg.arch == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(D, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, F), nn.ReLU()
        )
    if cfg.arch == "cnn1d":
        c = cfg.hidden
        L = D
        for _ in range(3):
            L = (L + 1) // 2  # stride 2, "same" padding
        return nn.Sequential(
            nn.Unflatten(1, (1, D)),
            nn.Conv1d(1, c, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c * L, F),
            nn.ReLU(),
        )
    if cfg.arch == "cnn2d":
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise HarnessError(
                f"classifier arch 'cnn2d' needs image data (C, H, W) or (H, W), got shape {shape}"
            )
        C, H, W = shape
        c = cfg.hidden
        return nn.Sequential(
            nn.Unflatten(1, (C, H, W)),
            nn.Conv2d(C, c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * c * (H // 4) * (W // 4), F),
            nn.ReLU(),
        )
    raise HarnessError(f"unknown classifier arch {cfg.arch!r}; expected 'mlp', 'cnn1d' or 'cnn2d'")


class FeatureExtractor(nn.Module):
    """A trained classifier whose ``forward`` returns penultimate-layer features [N, F].

    ``num_features`` (an int attribute) is what torchmetrics' FID / KID read when this module is
    passed as ``feature=``; inputs are float tensors on [0, 1], flat [N, D] or [N, *shape]
    (integer tensors are read as 0..255 bytes and divided by 255).
    """

    def __init__(
        self,
        cfg: ClassifierConfig,
        shape: tuple[int, ...],
        num_classes: int,
        mean: float = 0.0,
        std: float = 1.0,
    ):
        super().__init__()
        self.config = cfg
        self.shape = tuple(int(s) for s in shape)
        self.dim = math.prod(self.shape)
        self.num_classes = int(num_classes)
        self.num_features = int(cfg.num_features)
        self.body = _body(cfg, self.shape)
        self.head = nn.Linear(cfg.num_features, num_classes)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.dataset: str = ""
        self.accuracy: float = float("nan")  # test accuracy of the classifier
        self.cache_path: Path | None = None
        self.train_seconds: float = float("nan")

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(x):  # uint8 images (torchmetrics' default) are 0..255
            x = x.float() / 255.0
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.dim:
            raise HarnessError(
                f"feature extractor for {self.dataset or 'this dataset'} expects {self.dim} values "
                f"per example (shape {self.shape}), got {x.shape[1]}"
            )
        x = x.to(dtype=self.mean.dtype, device=self.mean.device)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._prep(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(x))

    @torch.no_grad()
    def features(self, x, batch_size: int = 2048) -> torch.Tensor:
        """Penultimate features [N, F] (float32, CPU), in eval mode and without gradients."""
        x = torch.as_tensor(x)
        was = self.training
        self.eval()
        try:
            out = [
                self.forward(x[i : i + batch_size]).float().cpu()
                for i in range(0, x.shape[0], batch_size)
            ]
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.num_features)

    @torch.no_grad()
    def predict(self, x, batch_size: int = 2048) -> torch.Tensor:
        x = torch.as_tensor(x)
        self.eval()
        return torch.cat(
            [
                self.logits(x[i : i + batch_size]).argmax(1).cpu()
                for i in range(0, x.shape[0], batch_size)
            ]
        )

    def extra_repr(self) -> str:
        return f"dataset={self.dataset!r}, accuracy={self.accuracy:.4f}, num_features={self.num_features}"


# -- training --------------------------------------------------------------------------------


def train_classifier(
    train_x: torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    test_x: torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    shape: tuple[int, ...],
    config: ClassifierConfig,
    device: str | torch.device = "cpu",
) -> FeatureExtractor:
    """Train a classifier with a fixed seed (init and data order); returns it with ``.accuracy``.

    Everything random runs through ``torch.manual_seed(config.seed)`` inside a forked RNG
    state and one seeded ``torch.Generator`` for the minibatch order, so the caller's global RNG
    is untouched; training runs on ``config.threads`` intra-op threads (restored afterwards), so
    the weights are reproducible on the same device type whatever the machine's core count.
    """
    dev = torch.device(device)
    ytr = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    yte = torch.as_tensor(np.asarray(test_y), dtype=torch.long)
    xtr = train_x.reshape(train_x.shape[0], -1).float()
    if len(ytr) != len(xtr) or len(yte) != test_x.shape[0]:
        raise HarnessError(
            f"labels do not match data: {len(xtr)}/{len(ytr)} train, {test_x.shape[0]}/{len(yte)} test"
        )
    num_classes = int(max(int(ytr.max()), int(yte.max()) if len(yte) else 0) + 1)
    mean, std = float(xtr.mean()), float(xtr.std().clamp_min(1e-6))
    t0 = time.perf_counter()
    old_threads = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        model = _fit(xtr, ytr, shape, num_classes, mean, std, config, dev)
    finally:
        torch.set_num_threads(old_threads)
    model.eval()
    model.train_seconds = time.perf_counter() - t0
    pred = model.predict(test_x.to(dev))
    model.accuracy = float((pred == yte).float().mean()) if len(yte) else float("nan")
    return model


def _fit(
    xtr, ytr, shape, num_classes, mean, std, config: ClassifierConfig, dev
) -> FeatureExtractor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = FeatureExtractor(config, shape, num_classes, mean, std)
    model.to(dev)
    g = torch.Generator().manual_seed(config.seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(xtr)
    bsz = min(config.batch_size, n)
    steps_per_epoch = max(1, n // bsz)
    total = config.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=max(total, 1), pct_start=0.15
    )
    xtr_d, ytr_d = xtr.to(dev), ytr.to(dev)
    model.train()
    for _ in range(config.epochs):
        perm = torch.randperm(n, generator=g).to(dev)
        for j in range(steps_per_epoch):
            idx = perm[j * bsz : (j + 1) * bsz]
            loss = nn.functional.cross_entropy(model.logits(xtr_d[idx]), ytr_d[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model


# -- cache -----------------------------------------------------------------------------------


def _fingerprint(*arrays) -> str:
    """A cheap content hash: shapes, dtypes, sums and a strided sample of up to ~4M values."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a)).reshape(-1)
        h.update(f"{a.dtype}|{a.shape}|{float(np.sum(a, dtype=np.float64))!r}|".encode())
        step = max(1, a.size // 4_000_000)
        h.update(np.ascontiguousarray(a[::step]).tobytes())
    return h.hexdigest()


def cache_key(dataset_name: str, config: ClassifierConfig, train_x, train_y, test_x, test_y) -> str:
    payload = {
        "version": CACHE_VERSION,
        "dataset": dataset_name,
        "config": config.to_json(),
        "data": _fingerprint(train_x, train_y, test_x, test_y),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _save(model: FeatureExtractor, path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "version": CACHE_VERSION,
        "key": key,
        "dataset": model.dataset,
        "config": model.config.to_json(),
        "shape": list(model.shape),
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "accuracy": model.accuracy,
        "train_seconds": model.train_seconds,
        "torch_version": str(torch.__version__),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_cached(path: str | os.PathLike) -> FeatureExtractor:
    """Rebuild a cached classifier from its file (weights only: no code is unpickled)."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = ClassifierConfig(**blob["config"])
        model = FeatureExtractor(cfg, tuple(blob["shape"]), blob["num_classes"])
        model.load_state_dict(blob["state_dict"])
    except Exception as e:  # a half-written or foreign file: the caller retrains
        raise HarnessError(
            f"cached classifier {path} is unreadable ({e}); delete it to retrain"
        ) from e
    model.dataset = blob["dataset"]
    model.accuracy = float(blob["accuracy"])
    model.train_seconds = float(blob.get("train_seconds", float("nan")))
    model.cache_path = path
    model.eval()
    return model


_MEMO: dict[str, FeatureExtractor] = {}
_KEYS: dict[tuple, str] = {}


def get_feature_extractor(
    dataset: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    root: str | os.PathLike | None = None,
    config: ClassifierConfig | None = None,
    device: str | torch.device = "cpu",
    retrain: bool = False,
) -> FeatureExtractor:
    """The dataset's feature extractor: loaded from the cache, else trained once and cached.

    ``dataset`` is a registered dataset name with labels (see :func:`harness.data.labels`);
    ``root`` is passed to the loader for file-based datasets. Returns a
    :class:`FeatureExtractor` with ``.accuracy`` (test accuracy), ``.num_features``,
    ``.cache_path`` and ``.features(x)``; it is in eval mode, on the CPU, with gradients off.
    """
    from harness import data as hdata

    cfg = config or default_config(dataset)
    ds = hdata.load(dataset, root=root)
    ytr, yte = hdata.labels(dataset, root=root)
    fp_key = (dataset, cfg, id(ds.train), id(ds.test), ds.train.data_ptr(), ds.test.data_ptr())
    key = _KEYS.get(fp_key)
    if key is None:  # hashing a large dataset takes a moment: once per loaded dataset object
        key = _KEYS[fp_key] = cache_key(dataset, cfg, ds.train.numpy(), ytr, ds.test.numpy(), yte)
    cdir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    path = cdir / f"{dataset}-{key}.pt"
    memo = str(path.resolve())
    if not retrain and memo in _MEMO:
        return _MEMO[memo]
    model = None
    if path.exists() and not retrain:
        try:
            model = load_cached(path)
        except HarnessError:
            model = None  # unreadable (half-written by a killed process): train afresh
    if model is None:
        model = train_classifier(ds.train, ytr, ds.test, yte, ds.shape, cfg, device=device)
        model.dataset = dataset
        model.cpu()
        _save(model, path, key)
        model.cache_path = path
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    _MEMO[memo] = model
    return model
