"""test_nll: one name for every family's test NLL (harness/likelihood.py)."""

from __future__ import annotations

import pytest

from harness import data
from harness.engine import train_block
from harness.errors import DeclarationError
from harness.hypothesis import Hypothesis, Prediction, Training, metrics_of
from harness.likelihood import add_test_nll, source_of
from harness.registry import MODELS

TINY = Training(steps=3, batch_size=16, eval_samples=2, n_samples=4)


@pytest.mark.parametrize("name, source", [("vae", "iwae_nll"), ("made", "nll"), ("ddpm", "nll_bound"),
                                          ("realnvp", "nll_bound"), ("gan", None), ("flow_matching", None)])
def test_each_family_names_its_likelihood_source(name, source):
    cls = MODELS[name]
    assert source_of(cls) == source
    assert ("test_nll" in metrics_of(cls)) == (source is not None)


@pytest.mark.parametrize("name, config", [("vae", {"latent_dim": 2, "hidden": 16}), ("made", {"hidden": 16})])
def test_test_nll_is_the_source_metric_of_each_run(name, config):
    cls = MODELS[name]
    res = train_block(cls, cls.Config(**config), TINY, data.load("digits"), [0, 1], "cpu")
    for r in res:
        assert "test_nll" not in r.metrics  # the engine returns the model's own metrics
        logged = add_test_nll(dict(r.metrics), cls)  # what jobs.execute and tuning log
        assert logged["test_nll"] == r.metrics[source_of(cls)]


def test_a_cross_family_likelihood_prediction_checks_and_a_gan_is_refused():
    ok = Hypothesis(claim="c", model="vae", ablate={"model": ["vae", "made"]},
                    prediction=Prediction(metric="test_nll", direction="lower", effect=1.0))
    assert [v.model for v in ok.variants] == ["vae", "made"]
    with pytest.raises(DeclarationError, match="test_nll"):
        Hypothesis(claim="c", model="vae", ablate={"model": ["vae", "gan"]},
                   prediction=Prediction(metric="test_nll", direction="lower", effect=1.0))


def test_grouped_models_pass_check_and_count_flops_per_update(project, cli):
    """A GAN (two parameter groups) is checked through its own update methods and its FLOPs per
    step are those of its D and G updates, not of a `loss` it does not have."""
    from harness.compute import count

    gan = MODELS["gan"]
    ds = data.load("digits")
    one = count(gan, gan.Config(d_steps=1), ds, 32)
    two = count(gan, gan.Config(d_steps=2), ds, 32)
    assert one.flops_per_step > 0 and two.flops_per_step > one.flops_per_step  # a second D update costs more
    (project / "hypotheses" / "g.py").write_text(
        "from harness import Hypothesis, Prediction, Training\n"
        "hypothesis = Hypothesis(claim='c', model='vae', ablate={'model': ['vae', 'gan']},\n"
        "    prediction=Prediction(metric='precision', direction='higher', effect=0.05),\n"
        "    training=Training(steps=5, batch_size=16, sample_metrics=True))\n")
    r = cli("check", "g")
    assert r.exit_code == 0, r.output
    assert "FLOPs not countable" not in r.output, r.output


def test_a_run_logs_test_nll_beside_the_models_own_metrics(project, cli):
    """End to end: a cross-family prediction on test_nll runs and reports (real store, real training)."""
    import analysis

    (project / "hypotheses" / "ll.py").write_text(
        "from harness import Hypothesis, Prediction, Training\n"
        "hypothesis = Hypothesis(claim='c', model='vae', ablate={'model': ['vae', 'made']},\n"
        "    fixed={'hidden': 16, 'latent_dim': 2},\n"
        "    prediction=Prediction(metric='test_nll', direction='lower', effect=1.0, test='t'), seeds=2,\n"
        "    training=Training(steps=4, batch_size=16, eval_samples=2, n_samples=4))\n")
    r = cli("run", "ll")
    assert r.exit_code == 0, r.output
    frame = analysis.load("ll")
    assert set(frame["variant"]) == {"vae", "made"} and frame["value"].notna().all()
    r = cli("report", "ll")
    assert r.exit_code == 0, r.output
