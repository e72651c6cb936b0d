"""ddpm: training, seed independence, the full variational bound, sampling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.engine import train_block
from harness.hypothesis import Training
from harness.models import diffusion  # registers ddpm
from harness.models.diffusion import DDPM
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, noise_for, train_two_seeds

SMALL = {"hidden": 32, "depth": 1, "time_dim": 16}


def test_registered():
    assert MODELS["ddpm"] is DDPM


@pytest.mark.parametrize(
    "T, schedule, loss, variance",
    [
        (1, "cosine", "vlb", "learned"),
        (4, "linear", "simple", "beta"),
        (8, "cosine", "hybrid", "learned"),
        (8, "cosine", "simple", "posterior"),
    ],
)
def test_trains_two_seeds(digits, T, schedule, loss, variance):
    cfg = DDPM.Config(T=T, schedule=schedule, loss=loss, variance=variance, **SMALL)
    train_two_seeds(DDPM, cfg, digits)


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(
        DDPM, DDPM.Config(T=8, variance="learned", loss="hybrid", **SMALL), digits
    )


def test_bound_improves_with_training_and_samples_are_images(digits):
    cfg = DDPM.Config(T=8, hidden=64, depth=1, time_dim=16, loss="vlb", variance="learned")
    bounds = []
    for steps in (1, 150):
        training = Training(
            steps=steps, batch_size=64, lr=2e-3, eval_samples=1, n_samples=16, log_every=50
        )
        (r,) = train_block(DDPM, cfg, training, digits, [0], device="cpu")
        assert r.status == "FINISHED" and np.isfinite(r.metrics["nll_bound"])
        bounds.append(r.metrics["nll_bound"])
    assert bounds[1] < bounds[0] - 5  # nats per image
    # Samples: the data's shape, on [0, 1], on the data's 17 levels.
    assert r.samples.shape == (16, 8, 8) and r.samples.min() >= 0 and r.samples.max() <= 1
    assert np.allclose(r.samples * 16, np.round(r.samples * 16), atol=1e-5)
    assert r.metrics["bpd"] == pytest.approx(r.metrics["nll_bound"] / (64 * np.log(2)), rel=1e-5)


def test_evaluate_chunks_over_t_without_changing_the_bound(digits, monkeypatch):
    torch.manual_seed(0)
    model = DDPM(DDPM.Config(T=40, **SMALL), digits.shape, digits.levels)
    x = digits.test[:10]
    nz = noise_for(model, "evaluate", 10, 1)
    assert nz["eps"].shape == (40, 10, 64)
    with torch.no_grad():
        chunked = model.evaluate(x, nz)
        monkeypatch.setattr(diffusion, "T_CHUNK", 1000)
        whole = model.evaluate(x, nz)
    assert torch.allclose(chunked["nll_bound"], whole["nll_bound"], rtol=1e-5)


def test_training_vlb_is_an_unbiased_estimate_of_the_evaluated_bound(digits):
    # E_t[T * L_{t-1}] + L_T over uniform t equals the sum of all T terms that evaluate() computes;
    # stratify t (each step equally often) so only the y_t draws are random.
    torch.manual_seed(0)
    model = DDPM(DDPM.Config(T=4, variance="learned", **SMALL), digits.shape, digits.levels)
    x = digits.test[:5].repeat(800, 1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        full = model.evaluate(x, noise_for(model, "evaluate", x.shape[0], 1, seed=1))["nll_bound"]
        t = torch.arange(4).repeat(x.shape[0] // 4)
        estimate = model.loss(x, {"t": t, "eps": torch.randn(x.shape[0], 64, generator=g)})[1][
            "nll_bound"
        ]
    se = full.std().item() / x.shape[0] ** 0.5
    assert estimate.item() == pytest.approx(full.mean().item(), abs=6 * se)


def test_one_step_bound_is_prior_kl_plus_decoder(digits):
    torch.manual_seed(0)
    model = DDPM(DDPM.Config(T=1, **SMALL), digits.shape, digits.levels)
    with torch.no_grad():
        m = model.evaluate(digits.test[:10], noise_for(model, "evaluate", 10, 1))
        samples = model.sample(noise_for(model, "sample", 6, 1))
    assert torch.allclose(m["nll_bound"], m["prior_kl"] + m["decoder_nll"])
    assert (m["prior_kl"] >= 0).all() and samples.shape == (6, 64)


def test_continuous_data_gives_a_density_bound():
    torch.manual_seed(0)
    model = DDPM(DDPM.Config(T=4, **SMALL), (3,), None)
    x = torch.rand(7, 3)
    with torch.no_grad():
        m = model.evaluate(x, noise_for(model, "evaluate", 7, 1))
    assert torch.isfinite(m["nll_bound"]).all()


def test_respaced_sampling_keeps_the_marginals_and_all_steps_is_the_full_chain(digits):
    cfg = DDPM.Config(T=40, variance="learned", **SMALL)
    torch.manual_seed(0)
    full = DDPM(cfg, digits.shape, digits.levels)
    same = DDPM(DDPM.Config(T=40, variance="learned", sample_steps=40, **SMALL), digits.shape, digits.levels)
    few = DDPM(DDPM.Config(T=40, variance="learned", sample_steps=5, **SMALL), digits.shape, digits.levels)
    same.load_state_dict(full.state_dict())
    few.load_state_dict(full.state_dict())
    # K = T is the trained chain itself, bit for bit; K < T visits 5 of its timesteps, first and
    # last included, and its chain's abar's are the trained schedule's at those timesteps.
    assert torch.equal(full.s_coef_y0, full.coef_y0) and torch.allclose(full.s_log_beta, full.log_beta)
    assert few.s_t.long().tolist() == [0, 10, 20, 29, 39]
    assert torch.allclose(few.s_abar, full.abar[few.s_t.long()])
    assert torch.allclose(torch.cumprod(1 - few.s_log_beta.double().exp(), 0).float(), few.s_abar, rtol=1e-4)
    with torch.no_grad():
        noise = noise_for(full, "sample", 6, 1)
        assert torch.equal(full.sample(noise), same.sample(noise))
        x = few.sample(noise_for(few, "sample", 6, 1))
    assert noise["z"].shape[0] == 40 and x.shape == (6, 64) and ((x >= 0) & (x <= 1)).all()
    # Sampling steps change sampling only: the bound is the trained chain's.
    with torch.no_grad():
        ev = noise_for(full, "evaluate", 10, 1)
        assert torch.equal(full.evaluate(digits.test[:10], ev)["nll_bound"], few.evaluate(digits.test[:10], ev)["nll_bound"])


@pytest.mark.parametrize("k", [-1, 41, True, 2.0])
def test_sample_steps_must_be_between_zero_and_T(k):
    with pytest.raises(ValueError, match="sample_steps"):
        DDPM.Config(T=40, sample_steps=k)


# ------------------------------------------------------------------ DDIM and x0 (issue 19)
def test_ddim_is_deterministic_given_the_initial_noise(digits):
    cfg = DDPM.Config(T=8, sampler="ddim", **SMALL)
    torch.manual_seed(0)
    m = DDPM(cfg, digits.shape, digits.levels)
    g = torch.Generator().manual_seed(1)
    nz = m.noise("sample", 6, 1, g, torch.device("cpu"))
    assert set(nz) == {"y_T"}  # nothing else is random
    with torch.no_grad():
        a, b = m.sample(nz), m.sample({"y_T": nz["y_T"].clone()})
    assert torch.equal(a, b)
    # The ancestral sampler draws fresh noise at every step: another z, another sample.
    anc = DDPM(dataclasses.replace(cfg, sampler="ancestral"), digits.shape, digits.levels)
    anc.load_state_dict(m.state_dict())
    z1 = anc.noise("sample", 6, 1, torch.Generator().manual_seed(1), torch.device("cpu"))
    z2 = {**z1, "z": torch.randn_like(z1["z"])}
    with torch.no_grad():
        assert not torch.equal(anc.sample(z1), anc.sample(z2))


@pytest.mark.parametrize("sample_steps", [0, 3])
def test_ddim_samples_of_a_trained_model_are_finite_images(digits, sample_steps):
    cfg = DDPM.Config(T=8, sampler="ddim", sample_steps=sample_steps, **SMALL)
    tr = Training(steps=40, batch_size=64, lr=2e-3, eval_samples=1, n_samples=16, log_every=20)
    (r,) = train_block(DDPM, cfg, tr, digits, [0], device="cpu")
    assert r.status == "FINISHED" and np.isfinite(r.samples).all()
    assert r.samples.shape == (16, 8, 8) and r.samples.min() >= 0 and r.samples.max() <= 1
    assert r.samples.std() > 0  # not one constant image


@pytest.mark.parametrize("loss", ["simple", "vlb"])
def test_x0_parametrisation_trains_and_its_bound_is_finite(digits, loss):
    cfg = DDPM.Config(T=8, parametrisation="x0", loss=loss, hidden=64, depth=1, time_dim=16)
    bounds = []
    for steps in (1, 150):
        tr = Training(steps=steps, batch_size=64, lr=2e-3, eval_samples=1, n_samples=8, log_every=50)
        (r,) = train_block(DDPM, cfg, tr, digits, [0], device="cpu")
        assert r.status == "FINISHED" and np.isfinite(r.metrics["nll_bound"]), r.error
        bounds.append(r.metrics["nll_bound"])
    assert bounds[1] < bounds[0] - 5


def test_sampler_is_a_ddpm_field_only():
    from harness.errors import DeclarationError
    from harness.hypothesis import Hypothesis, Prediction

    def hyp(model, fixed):
        return Hypothesis(claim="c", model=model, fixed=fixed, ablate={"T" if model == "ddpm" else "latent_dim": [2, 4]},
                          prediction=Prediction(metric="bpd" if model == "ddpm" else "iwae_nll", direction="lower",
                                                effect=0.1))

    assert hyp("ddpm", {"sampler": "ddim", "parametrisation": "x0"}).variants[0].model_config.sampler == "ddim"
    for model, fixed in (("vae", {"sampler": "ddim"}), ("ddpm", {"samplr": "ddim"})):
        with pytest.raises(DeclarationError, match="unknown config field"):
            hyp(model, fixed)
    with pytest.raises(DeclarationError, match="sampler"):
        hyp("ddpm", {"sampler": "euler"})
