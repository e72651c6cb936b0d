"""Helpers shared by the model-family tests."""

from __future__ import annotations

import math

import pytest
import torch

from harness.engine import train_block
from harness.hypothesis import Training

# Tiny runs: few steps keep float32 drift between a lone seed and a stacked block tiny.
FAST = Training(steps=8, batch_size=32, eval_samples=4, n_samples=4, log_every=4)
SEED_RTOL = 1e-4  # lone seed vs the same seed in a block of two, after FAST training


def train_two_seeds(model_cls, config, dataset, training: Training = FAST):
    """Train seeds [0, 1] as one block; assert both finished with finite metrics and samples."""
    results = train_block(model_cls, config, training, dataset, [0, 1], device="cpu")
    for r in results:
        assert r.status == "FINISHED", r.error
        assert set(r.metrics) == set(model_cls.metrics)
        assert all(math.isfinite(v) for v in r.metrics.values()), r.metrics
        assert r.samples.shape == (training.n_samples, *dataset.shape)
        assert r.samples.min() >= 0 and r.samples.max() <= 1
    return results


def assert_seed_equivalence(
    model_cls, config, dataset, training: Training = FAST, rtol: float = SEED_RTOL
):
    """Seed 3 trained alone and stacked with seed 4 ends with the same metrics (within rtol)."""
    alone = train_block(model_cls, config, training, dataset, [3], device="cpu")[0]
    block = train_block(model_cls, config, training, dataset, [3, 4], device="cpu")
    assert block[0].seed == 3 and alone.status == block[0].status == "FINISHED"
    for name, value in alone.metrics.items():
        assert block[0].metrics[name] == pytest.approx(value, rel=rtol, abs=1e-4), name
    # ...and the block's other seed really is a different run.
    assert any(block[1].metrics[k] != block[0].metrics[k] for k in alone.metrics)


def noise_for(model, method: str, n: int, k: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return model.noise(method, n, k, g, torch.device("cpu"))


def quick_fit(model, x: torch.Tensor, steps: int = 60, lr: float = 3e-3, seed: int = 0):
    """A few full-batch Adam steps on ``model.loss`` so the posterior moves off the prior."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(x, model.noise("loss", x.shape[0], 1, g, torch.device("cpu")))[0].backward()
        opt.step()
    return model


def assert_vmapped_eval_equals_loop(model_cls, config, dataset, training: Training = FAST):
    """CUDA evaluates and samples the seeds in one vmap, a CPU one after another: run both here."""
    import numpy as np

    from harness import engine

    blk = engine._Block(model_cls, config, training, dataset, [0, 1], torch.device("cpu"), "vmap")
    blk.run()
    with torch.no_grad():
        loop_metrics, loop_samples = blk.evaluate(), blk.sample()
        blk.vmap_eval = True
        vmap_metrics, vmap_samples = blk.evaluate(), blk.sample()
    for k in loop_metrics:
        torch.testing.assert_close(vmap_metrics[k], loop_metrics[k], rtol=1e-5, atol=1e-4, msg=k)
    np.testing.assert_allclose(vmap_samples, loop_samples, rtol=1e-5, atol=1e-6)
