"""Issue 22 item 9: FID extrapolated to infinite samples (Chong & Forsyth 2020), on Gaussians
whose true Frechet distance is known."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.sample_quality import fid, fid_extrapolated


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_fid_inf_removes_most_of_the_finite_sample_bias(shift):
    # real N(0, I_8) (many samples), fake N(mu, I_8) with |mu|^2 = shift: true FID = shift.
    rng = np.random.default_rng(0)
    F, n = 16, 300
    real = rng.standard_normal((20_000, F))
    mu = np.zeros(F)
    mu[0] = np.sqrt(shift)
    errs_n, errs_inf = [], []
    for _ in range(10):
        fake = rng.standard_normal((n, F)) + mu
        out = fid_extrapolated(real, fake, rng)
        errs_n.append(fid(real, fake) - shift)
        errs_inf.append(out["fid_inf"] - shift)
        assert out["fid_half"] > fid(real, fake) - 0.05  # fewer samples, more bias
    # the bias at n (about F (F + 1) / (2 n) for the covariance part) is positive ...
    assert np.mean(errs_n) > 0.1
    # ... and the extrapolation removes most of it
    assert abs(np.mean(errs_inf)) < 0.35 * np.mean(errs_n)
