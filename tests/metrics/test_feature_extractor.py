"""The local feature classifier: accuracy, cache, determinism, torchmetrics compatibility.

Stated accuracies (seed 0, CPU, one training thread): digits 0.977 (MLP); MNIST-1D 0.905 with
the default 1-D CNN and 0.661 with an MLP (Greydanus 2020: MLP 68 %, CNN 94 %). The
thresholds below leave a margin for BLAS / platform rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import data
from harness.errors import HarnessError
from harness.metrics import features as F
from harness.metrics.sample_quality import fid, kid

pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`:UserWarning")

DIGITS_MIN_ACC = 0.95
MNIST1D_MIN_ACC = 0.85  # default cnn1d (measured 0.905)
MNIST1D_MLP_MIN_ACC = 0.60  # MLP (measured 0.661)


@pytest.fixture
def cache(tmp_path):
    F._MEMO.clear()
    yield tmp_path / "classifiers"
    F._MEMO.clear()


def test_digits_classifier_accuracy_cache_and_features(cache, monkeypatch):
    fx = F.get_feature_extractor("digits", cache_dir=cache)
    assert fx.accuracy >= DIGITS_MIN_ACC, fx.accuracy
    assert fx.num_features == 64 and isinstance(fx, torch.nn.Module)
    files = list(cache.glob("digits-*.pt"))
    assert files == [fx.cache_path] and len(files[0].stem.split("-")[1]) == 16

    ds = data.load("digits")
    feats = fx.features(ds.test)
    assert feats.shape == (300, 64) and feats.dtype == torch.float32 and not feats.requires_grad
    torch.testing.assert_close(fx(ds.test[:5]), feats[:5])  # forward returns the features
    assert torch.equal(fx.features(ds.test.view(-1, 8, 8)), feats)  # [N, *shape] accepted

    # a second process (memo cleared) loads the cache instead of training
    F._MEMO.clear()
    monkeypatch.setattr(
        F, "train_classifier", lambda *a, **k: pytest.fail("retrained despite cache")
    )
    again = F.get_feature_extractor("digits", cache_dir=cache)
    assert again is not fx and again.accuracy == fx.accuracy
    assert torch.equal(again.features(ds.test), feats)
    assert F.get_feature_extractor("digits", cache_dir=cache) is again  # in-process memo


def test_training_is_deterministic_and_a_corrupt_cache_retrains(cache):
    fx = F.get_feature_extractor("digits", cache_dir=cache)
    path = fx.cache_path
    ref = {k: v.clone() for k, v in fx.state_dict().items()}
    path.write_bytes(b"half-written")
    F._MEMO.clear()
    fresh = F.get_feature_extractor("digits", cache_dir=cache)
    assert fresh.accuracy == fx.accuracy
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert F.load_cached(path).accuracy == fx.accuracy  # rewritten, readable


def test_config_change_is_a_new_cache_entry(cache):
    import dataclasses

    a = F.get_feature_extractor("digits", cache_dir=cache)
    b = F.get_feature_extractor(
        "digits", cache_dir=cache, config=dataclasses.replace(F.default_config("digits"), seed=1)
    )
    assert a.cache_path != b.cache_path and len(list(cache.glob("digits-*.pt"))) == 2


def test_mnist1d_classifier_reaches_stated_accuracy(cache):
    fx = F.get_feature_extractor("mnist1d", cache_dir=cache)
    assert fx.config.arch == "cnn1d"
    assert fx.accuracy >= MNIST1D_MIN_ACC, fx.accuracy
    assert fx.features(data.load("mnist1d").test[:10]).shape == (10, 64)
    mlp = F.ClassifierConfig("mlp", 256, 64, epochs=40, batch_size=100, lr=1e-2)
    fm = F.get_feature_extractor("mnist1d", cache_dir=cache, config=mlp)
    assert fm.accuracy >= MNIST1D_MLP_MIN_ACC, fm.accuracy


def test_torchmetrics_accepts_the_extractor_and_agrees(cache):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fx = F.get_feature_extractor("digits", cache_dir=cache)
    ds = data.load("digits")
    real, fake = ds.test, ds.train[:300].clamp(0, 1) * 0.9  # any float images on [0, 1]
    fr, fg = fx.features(real).double().numpy(), fx.features(fake).double().numpy()

    m = FrechetInceptionDistance(feature=fx)  # reads fx.num_features; float input as-is
    m.update(real, real=True)
    m.update(fake, real=False)
    assert float(m.compute()) == pytest.approx(fid(fr, fg), rel=1e-4)

    k = KernelInceptionDistance(feature=fx, subsets=2, subset_size=300)
    k.update(real, real=True)
    k.update(fake, real=False)
    assert float(k.compute()[0]) == pytest.approx(
        kid(fr, fg, 2, 300, np.random.default_rng(0))[0], rel=1e-4
    )


def test_datasets_without_labels_are_refused(cache):
    with pytest.raises(HarnessError, match="no class labels"):
        F.get_feature_extractor("two_moons", cache_dir=cache)


@pytest.mark.parametrize(
    "arch,shape", [("cnn1d", (40,)), ("cnn2d", (12, 12)), ("cnn2d", (3, 8, 8))]
)
def test_cnn_architectures_train_on_tiny_data(arch, shape):
    g = torch.Generator().manual_seed(0)
    D = int(np.prod(shape))
    y = torch.arange(64) % 2
    x = torch.rand(64, D, generator=g) * 0.5 + y[:, None] * 0.5  # separable by brightness
    cfg = F.ClassifierConfig(
        arch=arch, hidden=8, num_features=16, epochs=15, batch_size=16, lr=1e-2
    )
    fx = F.train_classifier(x[:48], y[:48].numpy(), x[48:], y[48:].numpy(), shape, cfg)
    assert fx.features(x).shape == (64, 16) and fx.accuracy >= 0.9
