"""vqvae: EMA codebook as a buffer update, dead-code restarts, two stages in one run, the
prior's NLL and the bound, stacked = alone."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from harness import Training
from harness.engine import build_model, train_block
from harness.models.vqvae import VQVAE

from .helpers import assert_seed_equivalence, noise_for, train_two_seeds

SMALL = {"n_codes": 4, "code_dim": 8, "codebook_size": 16, "hidden": 64, "depth": 1, "ae_steps": 4, "restart_after": 3}


def test_trains_both_stages_stacked(digits):
    res = train_two_seeds(VQVAE, VQVAE.Config(**SMALL), digits)
    h = res[0].history
    assert math.isfinite(h["recon_nll"][0][1]) and math.isnan(h["recon_nll"][-1][1])  # stage 1 only
    assert math.isnan(h["prior_nll"][0][1]) and math.isfinite(h["prior_nll"][-1][1])  # stage 2 only
    m = res[0].metrics
    assert 1 <= m["perplexity"] <= 16
    assert m["nll_bound"] == pytest.approx(m["recon_nll"] + m["prior_nll"], rel=1e-5)


def test_a_seed_alone_equals_the_same_seed_in_a_block(digits):
    assert_seed_equivalence(VQVAE, VQVAE.Config(**SMALL), digits)


def test_each_stage_trains_only_its_group(digits):
    cfg = VQVAE.Config(**{**SMALL, "ae_steps": 5})
    init = build_model(VQVAE, cfg, digits, 0).state_dict()
    t = Training(steps=5, batch_size=32, eval_samples=1, n_samples=2, log_every=5)
    after_ae = train_block(VQVAE, cfg, t, digits, [0], device="cpu", keep_state=True)[0].state
    after_prior = train_block(VQVAE, cfg, Training(steps=9, batch_size=32, eval_samples=1, n_samples=2, log_every=9),
                              digits, [0], device="cpu", keep_state=True)[0].state
    for name, v in after_ae.items():
        moved = not torch.equal(v, init[name])
        assert moved == (not name.startswith("prior.")), name
        assert torch.equal(after_prior[name], v) == (not name.startswith("prior.")), name


def test_ema_update_and_dead_code_restart():
    torch.manual_seed(0)
    cfg = VQVAE.Config(**{**SMALL, "restart_after": 1, "decay": 0.5})
    m = VQVAE(cfg, (64,), 17)
    x = torch.randint(0, 17, (32, 64)).float() / 16
    nz = noise_for(m, "loss", 32, 1)
    _, logs, new = m.ae_loss(x, nz)
    z_e, codes, onehot = m._encode(x)
    flat_z, flat_1h = z_e.detach().flatten(0, -2), onehot.flatten(0, -2)
    n_k = flat_1h.sum(0)
    used = n_k > 0
    count = 0.5 * m.ema_count + 0.5 * n_k
    count_s = (count + cfg.epsilon) / (count.sum() + 16 * cfg.epsilon) * count.sum()
    expect = (0.5 * m.ema_sum + 0.5 * flat_1h.T @ flat_z) / count_s[:, None]
    assert torch.allclose(new["codebook"][used], expect[used], atol=1e-5)
    assert (~used).any()  # some codes unused this batch: restarted from encoder outputs
    assert torch.allclose(new["codebook"][~used], flat_z[nz["restart"]][~used])
    assert torch.equal(new["unused"], torch.zeros(16)) and 1 <= logs["perplexity"] <= 16


def test_sampling_vmaps_over_members(digits):
    cfg = VQVAE.Config(**SMALL)
    models = [build_model(VQVAE, cfg, digits, s) for s in (0, 1)]
    params, buffers = stack_module_state(models)
    nz = {"u": torch.rand(2, 3, 4)}
    out = vmap(lambda p, b, n: functional_call(models[0], (p, b), (n,), kwargs={"method": "sample"}))(params, buffers, nz)
    for i in range(2):
        assert torch.allclose(out[i], models[i].sample({"u": nz["u"][i]}), atol=1e-6)


def test_the_prior_learns_the_codes(digits):
    cfg = VQVAE.Config(**{**SMALL, "ae_steps": 40})
    t = Training(steps=120, batch_size=64, eval_samples=1, n_samples=2, log_every=40, lr=3e-3)
    r = train_block(VQVAE, cfg, t, digits, [0], device="cpu")[0]
    assert r.status == "FINISHED"
    assert r.metrics["prior_nll"] < 0.8 * 4 * math.log(16)  # well below a uniform prior's


@pytest.mark.parametrize(
    "field, value",
    [("codebook_size", -1), ("n_codes", 0), ("decay", 1.0), ("beta", -0.1), ("restart_after", -1), ("likelihood", "gaussian")],
)
def test_invalid_config_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        VQVAE.Config(**{field: value})

