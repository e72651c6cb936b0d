"""The stacked engine: a seed's result never depends on its block; divergence stays per seed.

Fast (tiny models, few steps); the chunk sizes are shrunk so that chunk boundaries of the
per-seed random streams are crossed within a few steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from harness import GenerativeModel, data, device, engine, evaluation, optim
from harness.device import pick_device
from harness.engine import auto_block_size, build_model, train_block
from harness.errors import DeclarationError, HarnessError
from harness.hypothesis import Training
from harness.registry import MODELS

VAE = MODELS["vae"]
TRAIN = Training(steps=7, batch_size=32, lr=2e-3, eval_samples=3, log_every=3, n_samples=4)
RTOL = 1e-5


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # Draw noise 3 steps at a time and evaluate in several chunks: the streams must not depend
    # on the block even across chunk boundaries.
    monkeypatch.setattr(engine, "CHUNK_STEPS", 3)
    monkeypatch.setattr(evaluation, "EVAL_CHUNK_ELEMENTS", 3 * 64 * 17 * 40)


def tiny_vae(posterior: str):
    return VAE.Config(latent_dim=3, hidden=16, depth=1, posterior=posterior)


def assert_same_run(a, b, rtol=RTOL):
    assert a.status == b.status == "FINISHED", (a.error, b.error)
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=rtol, atol=1e-6, msg=k)
    for k, v in a.metrics.items():
        assert b.metrics[k] == pytest.approx(v, rel=rtol, abs=1e-5), k
    for k, pts in a.history.items():
        np.testing.assert_allclose(np.array(pts), np.array(b.history[k]), rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(a.samples, b.samples, rtol=rtol, atol=1e-5)


# ------------------------------------------------------------------ equivalence
@pytest.mark.parametrize("posterior", ["diagonal", "linear_iaf"])
@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_seed_alone_equals_seed_in_block(digits, posterior, mode):
    cfg = tiny_vae(posterior)
    alone = train_block(VAE, cfg, TRAIN, digits, [3], "cpu", mode=mode, keep_state=True)[0]
    block = train_block(VAE, cfg, TRAIN, digits, [5, 3, 4], "cpu", mode=mode, keep_state=True)
    assert [r.seed for r in block] == [5, 3, 4]
    assert_same_run(alone, block[1])
    # The other seeds are other runs: different init, data order and noise.
    assert block[0].metrics["iwae_nll"] != block[1].metrics["iwae_nll"]
    assert not torch.equal(block[0].state["decoder.0.weight"], block[1].state["decoder.0.weight"])
    assert len(alone.history["neg_elbo"]) == 3  # steps 3, 6 and the last, 7
    assert [s for s, _ in alone.history["neg_elbo"]] == [3, 6, 7]


def test_vmap_and_loop_modes_agree(digits):
    cfg = tiny_vae("linear_iaf")
    a = train_block(VAE, cfg, TRAIN, digits, [0, 1], "cpu", mode="vmap", keep_state=True)
    b = train_block(VAE, cfg, TRAIN, digits, [0, 1], "cpu", mode="loop", keep_state=True)
    for x, y in zip(a, b):
        assert_same_run(x, y, rtol=1e-4)


def test_engine_matches_a_plain_training_loop(digits):
    """One seed, rebuilt by hand: its init, its batches and noise from the engine's streams, a
    plain nn.Module, torch.optim.Adam and clip_grad_norm_. Same parameters at the end."""
    cfg = tiny_vae("diagonal")
    tr = Training(steps=5, batch_size=32, lr=1e-2, grad_clip=0.5, eval_samples=2, log_every=5, n_samples=2)
    (res,) = train_block(VAE, cfg, tr, digits, [7], "cpu", keep_state=True)

    blk = engine._Block(VAE, cfg, tr, digits, [7], torch.device("cpu"), "loop")
    idx = blk._draw_indices(tr.steps)[0]  # [steps, B]
    noise = {k: v[:, 0] for k, v in blk._draw_noise(3).items()}  # chunks of 3 (fixture)
    noise2 = {k: v[:, 0] for k, v in blk._draw_noise(2).items()}
    noise = {k: torch.cat([noise[k], noise2[k]]) for k in noise}
    model = build_model(VAE, cfg, digits, 7)
    opt = torch.optim.Adam(model.parameters(), lr=tr.lr)
    clipped = 0
    for t in range(tr.steps):
        loss, _ = model.loss(digits.train[idx[t]], {k: v[t] for k, v in noise.items()})
        opt.zero_grad()
        loss.backward()
        clipped += float(torch.nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)) > tr.grad_clip
        opt.step()
    assert clipped > 0, "the clip must be active for this test to mean anything"
    for name, p in model.named_parameters():
        torch.testing.assert_close(res.state[name], p.detach(), rtol=1e-5, atol=1e-6, msg=name)


def test_per_seed_clipping_equals_clipping_alone(digits):
    cfg = tiny_vae("diagonal")
    clip = Training(steps=6, batch_size=32, lr=1e-2, grad_clip=0.3, eval_samples=2, log_every=3, n_samples=2)
    free = Training(steps=6, batch_size=32, lr=1e-2, grad_clip=None, eval_samples=2, log_every=3, n_samples=2)
    alone = train_block(VAE, cfg, clip, digits, [2], "cpu", keep_state=True)[0]
    # Seed 9 with a huge learning-rate-free gradient scale would dominate a global norm; per-seed
    # clipping leaves seed 2 untouched by it.
    block = train_block(VAE, cfg, clip, digits, [9, 2, 11], "cpu", keep_state=True)
    assert_same_run(alone, block[1])
    unclipped = train_block(VAE, cfg, free, digits, [2], "cpu", keep_state=True)[0]
    assert not torch.allclose(alone.state["encoder.0.weight"], unclipped.state["encoder.0.weight"])


# ------------------------------------------------------------------ divergence
@dataclass(frozen=True)
class DivergerConfig:
    rate: float = 1.0


class Diverger(GenerativeModel):
    """a starts at 1 and is pulled towards the seed's own target t = rand() (a buffer drawn at
    init); log(a - 0.5) turns the loss NaN once a crosses 0.5, i.e. only for seeds whose t < 0.5,
    and only after some steps."""

    Config = DivergerConfig
    metrics = ("dist",)

    def __init__(self, config, shape, levels):
        super().__init__(config, shape, levels)
        self.a = nn.Parameter(torch.ones(1))
        self.register_buffer("t", torch.rand(1))
        self.lin = nn.Linear(self.dim, 1)

    def noise(self, method, n, k, generator, device):
        return {"e": torch.randn(n, generator=generator, device=device)}

    def loss(self, x, noise):
        d = ((self.a - self.t) ** 2).sum()
        fit = (self.lin(x).squeeze(-1) - noise["e"]).pow(2).mean()
        return d + 0.0 * torch.log(self.a - 0.5).sum() + 1e-3 * fit, {"d": d, "fit": fit}

    def evaluate(self, x, noise):
        return {"dist": ((self.a - self.t) ** 2).expand(x.shape[0]) + 0 * noise["e"]}

    def sample(self, noise):
        return torch.sigmoid(self.lin.weight.expand(noise["e"].shape[0], -1))


def _target(seed, digits):
    return float(build_model(Diverger, DivergerConfig(), digits, seed).t)


def test_a_diverging_seed_is_masked_and_the_others_finish(digits):
    targets = {s: _target(s, digits) for s in range(40)}
    bad = next(s for s, t in targets.items() if t < 0.3)
    good = [s for s, t in targets.items() if t > 0.7][:2]
    tr = Training(steps=40, batch_size=64, lr=0.05, eval_samples=1, log_every=10, n_samples=2)
    block = train_block(Diverger, DivergerConfig(), tr, digits, [good[0], bad, good[1]], "cpu", keep_state=True)
    failed = block[1]
    assert failed.status == "FAILED" and failed.seed == bad
    assert failed.failed_at_step is not None and 0 < failed.failed_at_step < tr.steps
    assert "diverged" in failed.error and str(failed.failed_at_step) in failed.error
    assert all(math.isnan(v) for v in failed.metrics.values()) and failed.samples is None
    # Its history is finite before the divergence and NaN from the window that holds it.
    pts = failed.history["d"]
    assert all(math.isfinite(v) for s, v in pts if s <= failed.failed_at_step)
    assert all(math.isnan(v) for s, v in pts if s > failed.failed_at_step)
    # The others finish exactly as they do without the diverging seed beside them.
    alone = train_block(Diverger, DivergerConfig(), tr, digits, good, "cpu", keep_state=True)
    for r, ref in zip((block[0], block[2]), alone):
        assert r.status == "FINISHED" and r.failed_at_step is None
        assert_same_run(ref, r)
        assert r.metrics["dist"] < 0.01  # and they actually trained


# ------------------------------------------------------------------ data order
def test_data_order_differs_between_seeds_and_is_reproducible(digits):
    cpu = torch.device("cpu")
    blk = engine._Block(VAE, tiny_vae("diagonal"), TRAIN, digits, [0, 1], cpu, "vmap")
    steps = 2 * blk.per_epoch + 5  # crosses epoch draws
    idx = blk._draw_indices(steps)
    assert idx.shape == (2, steps, TRAIN.batch_size)
    assert not torch.equal(idx[0], idx[1])
    alone = engine._Block(VAE, tiny_vae("diagonal"), TRAIN, digits, [1], cpu, "vmap")._draw_indices(steps)
    assert torch.equal(alone[0], idx[1])
    # Within an epoch every batch is distinct examples (a shuffle without replacement).
    epoch = idx[0, : blk.per_epoch].reshape(-1)
    assert epoch.unique().numel() == epoch.numel()
    # Drawn in pieces or at once: the same stream.
    again = engine._Block(VAE, tiny_vae("diagonal"), TRAIN, digits, [0], cpu, "vmap")
    parts = torch.cat([again._draw_indices(4), again._draw_indices(steps - 4)], dim=1)
    assert torch.equal(parts[0], idx[0])


def test_noise_chunks_do_not_depend_on_the_block(digits):
    cpu = torch.device("cpu")
    a = engine._Block(VAE, tiny_vae("diagonal"), TRAIN, digits, [4], cpu, "vmap")._draw_noise(3)
    b = engine._Block(VAE, tiny_vae("diagonal"), TRAIN, digits, [8, 4], cpu, "vmap")._draw_noise(3)
    assert torch.equal(a["eps"][:, 0], b["eps"][:, 1])
    assert not torch.equal(b["eps"][:, 0], b["eps"][:, 1])
    assert not torch.equal(a["eps"][0], a["eps"][1])  # a fresh draw every step


# ------------------------------------------------------------------ device, precision, block size
def test_device_auto_is_cpu_without_cuda_and_cuda_with_it(monkeypatch, digits):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(HarnessError, match="no CUDA device"):
        pick_device("cuda")
    with pytest.raises(HarnessError, match="expected auto, cpu or cuda"):
        pick_device("tpu")
    (r,) = train_block(VAE, tiny_vae("diagonal"), TRAIN, digits, [0], device="auto")
    assert r.status == "FINISHED"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")


def test_precision_is_a_validated_declared_setting(digits):
    assert Training().precision == "fp32"
    with pytest.raises(DeclarationError, match="precision"):
        Training(precision="fp8")
    with pytest.raises(DeclarationError, match="precision"):
        Training(precision="bfloat16")
    cfg = tiny_vae("diagonal")
    fp32 = train_block(VAE, cfg, TRAIN, digits, [0], "cpu")[0]
    bf16 = train_block(VAE, cfg, dataclasses.replace(TRAIN, precision="bf16"), digits, [0], "cpu")[0]
    assert bf16.status == "FINISHED" and math.isfinite(bf16.metrics["iwae_nll"])
    assert bf16.metrics["iwae_nll"] != fp32.metrics["iwae_nll"]  # it really ran in bf16...
    assert bf16.metrics["iwae_nll"] == pytest.approx(fp32.metrics["iwae_nll"], rel=0.02)  # ...and trained


def test_fp16_keeps_a_loss_scale_per_seed(digits):
    cfg = tiny_vae("diagonal")
    tr = dataclasses.replace(TRAIN, precision="fp16")
    alone = train_block(VAE, cfg, tr, digits, [3], "cpu", keep_state=True)[0]
    block = train_block(VAE, cfg, tr, digits, [5, 3], "cpu", keep_state=True)
    assert alone.status == "FINISHED" and math.isfinite(alone.metrics["iwae_nll"])
    assert_same_run(alone, block[1])


def test_auto_block_size_on_cpu_is_the_cap(digits):
    cfg = tiny_vae("diagonal")
    assert auto_block_size(VAE, cfg, TRAIN, digits, "cpu") == engine.CPU_MAX_BLOCK
    assert auto_block_size(VAE, cfg, TRAIN, digits, "cpu", cap=3) == 3
    with pytest.raises(HarnessError, match="cap"):
        auto_block_size(VAE, cfg, TRAIN, digits, "cpu", cap=0)


def test_mode_is_validated_and_progress_is_reported(digits):
    with pytest.raises(HarnessError, match="mode"):
        train_block(VAE, tiny_vae("diagonal"), TRAIN, digits, [0], "cpu", mode="fast")
    seen = []
    train_block(VAE, tiny_vae("diagonal"), TRAIN, digits, [0, 1], "cpu", progress=lambda s, n: seen.append((s, n)))
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert train_block(VAE, tiny_vae("diagonal"), TRAIN, digits, [], "cpu") == []


def test_vmapped_evaluation_equals_the_per_seed_loop(digits):
    """CUDA evaluates and samples all seeds in one vmap; a CPU one seed after another. Both
    paths run here (on CPU) and agree."""
    cfg = tiny_vae("linear_iaf")
    blk = engine._Block(VAE, cfg, TRAIN, digits, [0, 1, 2], torch.device("cpu"), "vmap")
    blk.run()
    with torch.no_grad():
        loop_metrics, loop_samples = blk.evaluate(), blk.sample()
        blk.vmap_eval = True
        vmap_metrics, vmap_samples = blk.evaluate(), blk.sample()
    assert set(loop_metrics) == set(VAE.metrics)
    for k in loop_metrics:
        torch.testing.assert_close(vmap_metrics[k], loop_metrics[k], rtol=1e-5, atol=1e-4, msg=k)
    np.testing.assert_allclose(vmap_samples, loop_samples, rtol=1e-5, atol=1e-6)
    assert vmap_samples.shape == (3, TRAIN.n_samples, *digits.shape)


def test_adam_matches_torch_optim_fused_and_plain():
    torch.manual_seed(0)
    p0 = torch.randn(3, 50)
    grads = [torch.randn(3, 50) for _ in range(5)]
    ours = optim.Adam(p0.clone(), lr=1e-2)
    plain = optim.Adam(p0.clone(), lr=1e-2)
    plain.fused = False
    ref = p0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=1e-2)
    for g in grads:
        ours.step(g)
        plain.step(g)
        ref.grad = g.clone()
        opt.step()
    torch.testing.assert_close(ours.param, ref.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(plain.param, ref.detach(), rtol=1e-6, atol=1e-7)


def test_training_does_not_import_torch_dynamo(tmp_path):
    """torch.optim and torch.func.grad import torch._dynamo (1.5 s of start-up on 2 cores);
    the engine uses neither."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from harness import data\n"
        "from harness.engine import train_block\n"
        "from harness.hypothesis import Training\n"
        "from harness.registry import MODELS\n"
        "V = MODELS['vae']\n"
        "r = train_block(V, V.Config(latent_dim=2, hidden=8, depth=1), Training(steps=2, batch_size=16,"
        " eval_samples=2, n_samples=2), data.load('digits'), [0, 1], 'cpu')\n"
        "assert r[0].status == 'FINISHED'\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch._dynamo')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_cpu_allocator_tuning_can_be_declined(monkeypatch):
    monkeypatch.setattr(device, "_allocator_tuned", False)
    monkeypatch.setenv(device.ALLOCATOR_ENV, "default")
    assert device.tune_cpu_allocator() is False
    monkeypatch.delenv(device.ALLOCATOR_ENV)
    import sys

    expected = sys.platform.startswith("linux")
    assert device.tune_cpu_allocator() in (expected, False)  # False off glibc (e.g. musl)
