"""sundae: corruption, unrolled denoising, iterative sampling, seed independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.engine import train_block
from harness.hypothesis import Training
from harness.models.sundae import SUNDAE
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, assert_vmapped_eval_equals_loop, noise_for, train_two_seeds

SMALL = {"hidden": 32, "depth": 1, "sample_steps": 3}


def test_registered():
    assert MODELS["sundae"] is SUNDAE


@pytest.mark.parametrize("unroll, update_fraction", [(1, 1.0), (2, 0.5), (3, 1.0)])
def test_trains_two_seeds(digits, unroll, update_fraction):
    train_two_seeds(SUNDAE, SUNDAE.Config(unroll=unroll, update_fraction=update_fraction, **SMALL), digits)


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(SUNDAE, SUNDAE.Config(**SMALL), digits)


def test_vmapped_eval_equals_loop(digits):
    assert_vmapped_eval_equals_loop(SUNDAE, SUNDAE.Config(update_fraction=0.7, **SMALL), digits)


def test_corruption_replaces_the_drawn_fraction_by_uniform_tokens():
    model = SUNDAE(SUNDAE.Config(**SMALL), (4000,), 5)
    g = torch.Generator().manual_seed(0)
    tokens = torch.zeros(3, 4000, dtype=torch.long)
    frac = torch.tensor([0.0, 0.5, 1.0])
    out = model._corrupt(tokens, frac, torch.rand(3, 4000, generator=g), torch.rand(3, 4000, generator=g))
    assert (out[0] == 0).all()
    # a replaced token is uniform on 0..4, so it is still 0 with chance 1/5
    changed = (out != 0).float().mean(-1)
    assert changed[1].item() == pytest.approx(0.5 * 0.8, abs=0.03)
    assert changed[2].item() == pytest.approx(0.8, abs=0.03)
    assert torch.bincount(out[2], minlength=5).min() > 700


def test_unrolled_loss_feeds_the_models_own_samples_back(digits):
    torch.manual_seed(1)
    model = SUNDAE(SUNDAE.Config(unroll=2, **SMALL), digits.shape, digits.levels)
    x = digits.train[:16]
    nz = noise_for(model, "loss", 16, 1)
    with torch.no_grad():
        ces = model._unrolled(x, nz)  # [2, 1, 16]
        x0 = model._tokens(x)
        first = model.logits(model._corrupt(x0, nz["frac"], nz["u_keep"], nz["u_token"]))
        from harness.models._util import categorical_from_uniform, categorical_logpmf

        second_in = categorical_from_uniform(torch.log_softmax(first, -1), nz["u_unroll"][0])
        expected = -categorical_logpmf(model.logits(second_in), x, digits.levels).sum(-1)
        total, logs = model.loss(x, nz)
    torch.testing.assert_close(ces[1], expected)
    torch.testing.assert_close(total, ces.sum(0).mean())
    torch.testing.assert_close(logs["denoise_ce"], ces[0].mean())
    # the sample is cut from the graph: the second step's gradient flows through its own logits only
    model.zero_grad()
    model.loss(x, nz)[0].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_training_improves_denoising_and_samples_are_on_the_levels(digits):
    cfg = SUNDAE.Config(hidden=64, depth=1, sample_steps=4, update_fraction=0.8)
    out = []
    for steps in (1, 150):
        t = Training(steps=steps, batch_size=64, lr=2e-3, eval_samples=2, n_samples=8, log_every=50)
        (r,) = train_block(SUNDAE, cfg, t, digits, [0], device="cpu")
        out.append(r)
    m0, m1 = out[0].metrics, out[1].metrics
    assert m1["denoise_ce"] < m0["denoise_ce"] - 20 and m1["unrolled_ce"] < m0["unrolled_ce"] - 40
    s = out[1].samples
    assert np.allclose(s * 16, np.round(s * 16), atol=1e-5) and s.min() >= 0 and s.max() <= 1


def test_sampling_keeps_unselected_tokens_and_temperature_sharpens():
    torch.manual_seed(2)
    model = SUNDAE(SUNDAE.Config(hidden=16, depth=1, sample_steps=1, update_fraction=0.3), (50,), 4)
    nz = noise_for(model, "sample", 40, 1)
    with torch.no_grad():
        x = model.sample(nz)
    start = torch.clamp((nz["u_init"] * 4).long(), max=3).float() / 3
    kept = nz["u_update"][0] >= 0.3
    assert torch.equal(x[kept], start[kept]) and (x[~kept] != start[~kept]).any()
    # temperature -> 0 is the argmax: every updated token takes the most likely value
    cold = SUNDAE(SUNDAE.Config(hidden=16, depth=1, sample_steps=1, temperature=1e-4), (50,), 4)
    cold.load_state_dict(model.state_dict())
    with torch.no_grad():
        x = cold.sample(nz)
        best = cold.logits(torch.clamp((nz["u_init"] * 4).long(), max=3)).argmax(-1).float() / 3
    assert (x != best).sum().item() <= 2, (x != best).sum().item()  # bar near-ties of the logits


@pytest.mark.parametrize(
    "field, value",
    [("unroll", 0), ("sample_steps", 0), ("temperature", 0.0), ("update_fraction", 0.0), ("update_fraction", 1.5), ("hidden", 0)],
)
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        SUNDAE.Config(**{field: value})


def test_needs_discrete_data():
    with pytest.raises(ValueError, match="discrete"):
        SUNDAE(SUNDAE.Config(), (2,), None)
