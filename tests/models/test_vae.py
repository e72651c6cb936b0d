"""vae: samples as the decoder's mean (default) or as draws from the likelihood."""

from __future__ import annotations

import pytest
import torch

from harness.models._util import categorical_mean
from harness.models.vae import VAE

from .helpers import noise_for, train_two_seeds

SMALL = {"latent_dim": 4, "hidden": 32, "depth": 1}


def test_draws_train_and_sample_in_a_stacked_block(digits):
    train_two_seeds(VAE, VAE.Config(sample="draw", **SMALL), digits)


def test_a_categorical_draw_is_on_the_level_grid_and_averages_to_the_mean(digits):
    torch.manual_seed(0)
    mean_model = VAE(VAE.Config(**SMALL), digits.shape, digits.levels)
    draw_model = VAE(VAE.Config(sample="draw", **SMALL), digits.shape, digits.levels)
    draw_model.load_state_dict(mean_model.state_dict())
    assert set(noise_for(mean_model, "sample", 3, 1)) == {"z"}  # the mean's stream is unchanged
    n, levels = 4000, digits.levels
    noise = noise_for(draw_model, "sample", n, 1)
    noise["z"] = noise["z"][:1].expand(n, -1)  # one z: the draws' average is its mean image
    with torch.no_grad():
        x = draw_model.sample(noise)
        mean = mean_model.sample({"z": noise["z"][:1]})[0]
        logits = draw_model.decoder(noise["z"][:1]).view(1, 64, levels)
    grid = x * (levels - 1)
    assert torch.allclose(grid, grid.round()) and x.min() >= 0 and x.max() <= 1
    assert torch.allclose(mean, categorical_mean(logits, levels)[0])
    assert (x.mean(0) - mean).abs().max() < 0.03  # 4000 draws: standard error <= 0.008


def test_a_bernoulli_draw_is_binary(digits_binary):
    model = VAE(VAE.Config(likelihood="bernoulli", sample="draw", **SMALL), digits_binary.shape, digits_binary.levels)
    with torch.no_grad():
        x = model.sample(noise_for(model, "sample", 50, 1))
    assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_sample_mode_is_validated():
    with pytest.raises(ValueError, match="sample must be one of"):
        VAE.Config(sample="mode")
