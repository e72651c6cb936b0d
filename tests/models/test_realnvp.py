"""realnvp: invertibility, exact log-determinant, the dequantisation bound, seed independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.engine import train_block
from harness.hypothesis import Training
from harness.models.realnvp import RealNVP, checkerboard
from harness.registry import MODELS

from .helpers import assert_seed_equivalence, assert_vmapped_eval_equals_loop, noise_for, train_two_seeds

SMALL = {"layers": 4, "hidden": 32, "depth": 1}


def _randomised(model: RealNVP) -> RealNVP:
    """Non-zero coupling nets (they start as the identity), in float64."""
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def test_registered():
    assert MODELS["realnvp"] is RealNVP


def test_trains_two_seeds(digits):
    train_two_seeds(RealNVP, RealNVP.Config(**SMALL), digits)


def test_seed_alone_equals_seed_in_block(digits):
    assert_seed_equivalence(RealNVP, RealNVP.Config(**SMALL), digits)


def test_vmapped_eval_equals_loop(digits):
    assert_vmapped_eval_equals_loop(RealNVP, RealNVP.Config(**SMALL), digits)


def test_checkerboard_alternates_on_the_image_grid():
    assert checkerboard((2, 3)).tolist() == [0, 1, 0, 1, 0, 1]
    assert checkerboard((3, 2)).tolist() == [0, 1, 1, 0, 0, 1]
    assert checkerboard((4,)).tolist() == [0, 1, 0, 1]


def test_inverse_of_forward_is_the_identity(digits):
    torch.manual_seed(0)
    model = _randomised(RealNVP(RealNVP.Config(**SMALL), digits.shape, digits.levels))
    y = torch.rand(16, 64, dtype=torch.float64) * 0.98 + 0.01
    with torch.no_grad():
        z, _ = model.forward_flow(y)
        back = model.inverse_flow(z)
    assert (z - torch.logit(0.05 + 0.9 * y)).abs().max() > 0.1  # the couplings do something
    assert (back - y).abs().max().item() < 1e-5


def test_log_det_equals_autograd_slogdet():
    torch.manual_seed(1)
    model = _randomised(RealNVP(RealNVP.Config(layers=3, hidden=8, depth=2), (2, 2), 5))
    for _ in range(3):
        y = torch.rand(4, dtype=torch.float64) * 0.9 + 0.05
        jac = torch.autograd.functional.jacobian(lambda v: model.forward_flow(v)[0], y)
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign.item() == 1.0
        assert model.forward_flow(y)[1].item() == pytest.approx(logabs.item(), abs=1e-8)


def test_bound_is_minus_log_density_plus_D_log_L_and_importance_samples_tighten_it(digits):
    torch.manual_seed(2)
    model = RealNVP(RealNVP.Config(**SMALL), digits.shape, digits.levels)
    x = digits.test[:8]
    nz = noise_for(model, "evaluate", 8, 16)
    with torch.no_grad():
        many = model.evaluate(x, nz)["nll_bound"]
        one = model.evaluate(x, {"u": nz["u"][:1]})["nll_bound"]
        y = (torch.round(x * 16) + nz["u"][0]) / 17
        expected = -model.log_density(y) + 64 * np.log(17)
    torch.testing.assert_close(one, expected)
    # the K-sample bound is at most the mean of the one-sample bounds (Jensen)
    singles = torch.stack([model.evaluate(x, {"u": nz["u"][j : j + 1]})["nll_bound"] for j in range(16)])
    assert (many <= singles.mean(0) + 1e-4).all()


def test_the_bound_holds_against_the_exact_discrete_probability():
    # D = 2, L = 3: P(k) = L^-D * (mean of p over k's bin), by midpoint quadrature; the one-sample
    # bound averaged over the same points lies above -log P(k). The nine P(k) sum to a little
    # less than one: the flow's mass beyond the alpha-squeezed range of the logit is lost.
    torch.manual_seed(3)
    model = _randomised(RealNVP(RealNVP.Config(layers=2, hidden=8, depth=1), (2,), 3))
    g = (torch.arange(200, dtype=torch.float64) + 0.5) / 200
    u = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 1, 1, 2)  # [K, 1, n=1, D]
    total = 0.0
    for k in [(a, b) for a in range(3) for b in range(3)]:
        x = torch.tensor([k], dtype=torch.float64) / 2
        with torch.no_grad():
            p = model.log_density((torch.tensor(k, dtype=torch.float64) + u[:, 0]) / 3).exp().mean()
            exact = -(p.log() - 2 * np.log(3))
            singles = torch.stack([model._nll(model.log_density(model._dequantise(x, v))) for v in u[::97]])
            iw = model.evaluate(x, {"u": u[:, 0]})["nll_bound"]  # K = all quadrature points
        assert singles.mean().item() > exact.item()
        assert iw.item() == pytest.approx(exact.item(), abs=1e-9)
        total += float(torch.exp(-exact))
    assert 0.95 < total <= 1.0


def test_nll_improves_with_training_and_samples_are_on_the_levels(digits):
    cfg = RealNVP.Config(layers=4, hidden=64, depth=1)
    out = []
    for steps in (1, 150):
        t = Training(steps=steps, batch_size=64, lr=1e-3, eval_samples=1, n_samples=8, log_every=50)
        (r,) = train_block(RealNVP, cfg, t, digits, [0], device="cpu")
        assert r.status == "FINISHED"
        out.append(r)
    assert out[1].metrics["nll_bound"] < out[0].metrics["nll_bound"] - 10
    m, s = out[1].metrics, out[1].samples
    assert m["bpd"] == pytest.approx(m["nll_bound"] / (64 * np.log(2)), rel=1e-5)
    assert np.allclose(s * 16, np.round(s * 16), atol=1e-5) and s.min() >= 0 and s.max() <= 1


def test_continuous_data_gives_an_exact_density():
    torch.manual_seed(4)
    model = RealNVP(RealNVP.Config(layers=2, hidden=8, depth=1), (2,), None)
    x = torch.rand(5, 2)
    with torch.no_grad():
        m = model.evaluate(x, noise_for(model, "evaluate", 5, 3))
        s = model.sample(noise_for(model, "sample", 6, 1))
    torch.testing.assert_close(m["nll_bound"], -model.log_density(x))
    assert s.shape == (6, 2)


@pytest.mark.parametrize("field, value", [("layers", 0), ("hidden", 0), ("depth", 0), ("alpha", 0.5), ("alpha", 0.0)])
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        RealNVP.Config(**{field: value})
