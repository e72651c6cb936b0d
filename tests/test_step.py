"""harness/step.py: the captured step equals the eager one; tf32 is declared, a no-op on CPU;
a model the compiler cannot take falls back to eager with a warning."""

from __future__ import annotations

import dataclasses
import time
import warnings

import pytest
import torch

from harness import data, step
from harness.engine import train_block
from harness.errors import DeclarationError
from harness.hypothesis import Training
from harness.registry import MODELS

VAE = MODELS["vae"]
TRAIN = Training(steps=6, batch_size=32, lr=2e-3, eval_samples=3, log_every=3, n_samples=4)
CFG = VAE.Config(latent_dim=3, hidden=16, depth=1, posterior="diagonal")


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def _run(digits, training=TRAIN, **kw):
    return train_block(VAE, CFG, training, digits, [0, 1], "cpu", keep_state=True, **kw)


@pytest.mark.parametrize(
    "value, want", [(None, False), ("", False), ("0", False), ("1", True), ("true", True), ("on", True)]
)
def test_compile_is_an_engine_switch_read_from_the_environment(monkeypatch, value, want):
    monkeypatch.delenv(step.COMPILE_ENV, raising=False)
    if value is not None:
        monkeypatch.setenv(step.COMPILE_ENV, value)
    assert step.compile_wanted() is want
    assert step.compile_wanted(True) is True and step.compile_wanted(False) is False


def test_tf32_is_declared_and_changes_nothing_on_cpu(digits):
    assert Training(precision="tf32").precision == "tf32"
    with pytest.raises(DeclarationError, match="precision"):
        Training(precision="tf16")
    fp32 = _run(digits)
    with pytest.warns(UserWarning, match="tf32.*no effect on cpu"):
        tf32 = _run(digits, dataclasses.replace(TRAIN, precision="tf32"))
    for a, b in zip(fp32, tf32):
        assert a.metrics == b.metrics
        for k in a.state:
            assert torch.equal(a.state[k], b.state[k]), k


def test_tf32_flags_are_set_inside_the_block_only(monkeypatch):
    # No GPU here: the CUDA branch is exercised with a fake device type; the flags are plain
    # Python attributes of torch.backends, restored on exit.
    mm = torch.backends.cuda.matmul
    before = mm.fp32_precision if hasattr(mm, "fp32_precision") else mm.allow_tf32
    with step.tf32_matmuls(torch.device("cuda")):
        inside = mm.fp32_precision if hasattr(mm, "fp32_precision") else mm.allow_tf32
    after = mm.fp32_precision if hasattr(mm, "fp32_precision") else mm.allow_tf32
    assert inside in ("tf32", True) and after == before


def test_a_model_that_cannot_be_compiled_falls_back_to_eager(digits, monkeypatch):
    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler (simulated)")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(step, "_COMPILED", {})  # this test's broken compiles stay here
    eager = _run(digits, compile=False)
    with pytest.warns(UserWarning, match="could not be compiled.*simulated"):
        fallback = _run(digits, compile=True)
    with warnings.catch_warnings(record=True) as caught:  # the same model again: warned once only
        warnings.simplefilter("always")
        _run(digits, compile=True)
    assert not [w for w in caught if "HARNESS_COMPILE" in str(w.message)]
    for a, b in zip(eager, fallback):
        assert a.metrics == b.metrics
        for k in a.state:
            assert torch.equal(a.state[k], b.state[k]), k


@pytest.mark.slow
def test_compiled_step_equals_the_eager_step(digits, monkeypatch):
    """The one compiled run of the suite (inductor on CPU: 40-120 s of compilation on the
    shared 2-core machine, docs/benchmarks.md); a second block of the same model reuses it."""
    monkeypatch.setattr(step, "_COMPILED", {})
    torch._dynamo.reset()
    eager = _run(digits, compile=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = _run(digits, compile=True)
    print(f"compiled run: {time.perf_counter() - t0:.1f} s")
    # A fallback to eager would make the comparison vacuous.
    assert not [w for w in caught if "HARNESS_COMPILE" in str(w.message)], [str(w.message) for w in caught]
    for a, b in zip(eager, compiled):
        assert b.status == "FINISHED"
        for k in a.state:
            torch.testing.assert_close(a.state[k], b.state[k], rtol=1e-4, atol=1e-5, msg=k)
        for k in a.metrics:
            assert b.metrics[k] == pytest.approx(a.metrics[k], rel=1e-4), k
        for k in a.history:
            assert [s for s, _ in a.history[k]] == [s for s, _ in b.history[k]]
    assert len(step._COMPILED) == 1
    t0 = time.perf_counter()
    again = _run(digits, compile=True)  # the cached step: no new compilation
    print(f"second compiled block: {time.perf_counter() - t0:.1f} s")
    assert len(step._COMPILED) == 1 and next(iter(step._COMPILED.values())) is not None
    for a, b in zip(compiled, again):
        for k in a.state:
            torch.testing.assert_close(a.state[k], b.state[k], rtol=1e-6, atol=1e-7, msg=k)
