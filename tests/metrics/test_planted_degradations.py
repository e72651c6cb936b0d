"""Planted degradations: the sample metrics must rank known-bad samples as bad.

Real training images (never in the test split) are degraded in known ways and scored against
the test split exactly as a run's samples are (``harness.sample_metrics.score``, the cached
digits classifier). FID is the verdict metric for sample quality (docs/metrics.md): it must be
finite for any input, near zero for real-vs-real, monotone worse along every ladder, and rank
blurred digits above a constant image. KID must pass all of these but the last (its cubic
kernel weighs a collapse of variance by 1/d against a shift of the mean; docs/metrics.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import data
from harness import sample_metrics as smx
from harness.metrics import degradations as dg
from harness.metrics.sample_quality import fit_standardiser, memorisation

N = 300


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cache = tmp_path_factory.mktemp("classifiers")
    ds = data.load("digits")
    train = ds.train.numpy().reshape(len(ds.train), -1).astype(np.float64)
    base = train[np.random.default_rng(0).choice(len(train), N, replace=False)]
    ytr, _ = data.labels("digits")

    def score(x):
        return smx.score(x, ds, 0, cache)

    return ds, train, ytr, base, score


def ladder(setup, kind):
    ds, train, ytr, base, _ = setup
    for s in dg.LADDERS[kind]:
        if kind == "noise":
            yield dg.add_noise(base, s, np.random.default_rng(1))
        elif kind == "blur":
            yield dg.blur(base, s, ds.shape)
        elif kind == "dim":
            yield dg.dim(base, s)
        else:
            yield dg.drop_classes(train, ytr, s, N, np.random.default_rng(2))


def test_scores_are_finite_for_any_input(setup):
    ds, train, _, base, score = setup
    rng = np.random.default_rng(3)
    inputs = {
        "uniform": rng.uniform(size=base.shape),
        "zeros": np.zeros_like(base),
        "ones": np.ones_like(base),
        "saturated": (base >= 0.5).astype(float),
        "out of range": rng.normal(0, 50, size=base.shape),  # clipped to [0, 1]
        "constant": np.repeat(train.mean(0, keepdims=True), N, 0),
    }
    for name, x in inputs.items():
        out = score(x)
        assert all(math.isfinite(v) for v in out.values()), (name, out)
        assert out["kid"] < 100 and out["fid"] < 1e3, (name, out)  # was KID 8e34 on uniform
    nan = score(np.where(np.arange(base.size).reshape(base.shape) == 5, np.nan, base))
    assert math.isnan(nan["fid"]) and math.isnan(nan["kid"])


def test_real_versus_real_is_near_zero(setup):
    _, _, _, base, score = setup
    out = score(base)
    assert abs(out["kid"]) < smx.noise_floor("digits", "kid") / 2
    assert 0 < out["fid"] < smx.noise_floor("digits", "fid")  # FID's finite-sample bias is > 0


@pytest.fixture(scope="module")
def ladder_scores(setup):
    score, base = setup[4], setup[3]
    real = score(base)
    return {kind: [real] + [score(x) for x in ladder(setup, kind)] for kind in dg.LADDERS}


@pytest.mark.parametrize("kind", sorted(dg.LADDERS))
@pytest.mark.parametrize("metric", ["fid", "kid"])
def test_every_ladder_is_monotone_worse(ladder_scores, kind, metric):
    values = [out[metric] for out in ladder_scores[kind]]
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert values[-1] > values[0] + smx.noise_floor("digits", metric)  # strongest: out of noise


def test_fid_ranks_blurred_digits_above_a_constant_image(setup):
    ds, train, _, base, score = setup
    constant = score(np.repeat(train.mean(0, keepdims=True), N, 0))["fid"]
    assert score(dg.box_blur(base, ds.shape))["fid"] < constant  # the 3x3 blur
    for x in ladder(setup, "blur"):
        assert score(x)["fid"] < constant
    assert constant < score(np.random.default_rng(4).uniform(size=base.shape))["fid"]


def test_dead_features_are_dropped_and_scales_floored():
    rng = np.random.default_rng(5)
    real = np.column_stack([rng.normal(size=200), np.zeros(200), 1e-9 * rng.normal(size=200)])
    s = fit_standardiser(real)
    assert s.keep.tolist() == [True, False, False] and s.n_dead == 2
    wide = np.column_stack([rng.normal(size=200), 1e-6 * rng.normal(size=200)])
    scale = fit_standardiser(wide).scale
    assert scale[1] == pytest.approx(1e-2 * np.median(wide.std(0)))  # floored, not 1e-6
    # A sample that switches a dead feature on moves nothing.
    assert s(np.array([[0.0, 1e6, 1e6]])).shape == (1, 1)
    with pytest.raises(ValueError, match="constant"):
        fit_standardiser(np.ones((10, 3)))


def test_memorisation_separates_copies_from_fresh_data(setup):
    ds, train, _, base, score = setup
    test = ds.test.numpy().reshape(len(ds.test), -1).astype(np.float64)
    copies = score(train[:N])
    assert copies["nn_train_ratio"] == 0 and copies["copy_fraction"] == 1
    fresh = memorisation(test, train, test)  # the test split itself: the baseline
    assert fresh["nn_train_ratio"] == pytest.approx(1.0) and fresh["copy_fraction"] <= 0.05
    noisy = score(dg.add_noise(test, 0.3, np.random.default_rng(6)))
    assert noisy["nn_train_ratio"] > 1.5 and noisy["copy_fraction"] == 0


def test_noise_floor_table():
    assert smx.noise_floor("digits", "fid") > 0 and smx.noise_floor("digits", "kid") > 0
    assert smx.noise_floor("digits", "iwae_nll") is None
    assert smx.noise_floor("cifar10", "fid") is None
