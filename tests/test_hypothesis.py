"""Declaration validation: every bad input names the field, the value and what is allowed."""

from __future__ import annotations

import pytest

from harness import DeclarationError, Hypothesis, Prediction, Training


def make(**kw):
    base = dict(
        claim="c",
        model="vae",
        dataset="digits",
        ablate={"posterior": ["diagonal", "linear_iaf"]},
        prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.5),
        seeds=3,
        training=Training(steps=5),
    )
    base.update(kw)
    return Hypothesis(**base)


@pytest.mark.parametrize(
    "kw, field, value_text, allowed_text",
    [
        ({"model": "nope"}, "model", "nope", "vae"),
        ({"dataset": "imagenet"}, "dataset", "imagenet", "digits"),
        ({"prediction": Prediction(metric="sharpness", direction="lower", effect=1.0)}, "prediction.metric", "sharpness", "iwae_nll"),
        ({"fixed": {"latnet_dim": 4}}, "fixed.latnet_dim", "latnet_dim", "latent_dim"),
        ({"ablate": {"posterior": ["diagonal", "diagonal"]}}, "ablate.posterior", "diagonal", "duplicated"),
        ({"ablate": {"posterior": ["diagonal"]}}, "ablate.posterior", "diagonal", "at least 2 levels"),
        ({"ablate": {"posterior": ["diagonal", "flow"]}}, "ablate.posterior", "flow", "posterior must be one of"),
        ({"seeds": 1}, "seeds", "1", "at least 2 seeds"),
        ({"strata": {"latent_dim": [4, 4]}}, "strata.latent_dim", "4", "duplicated"),
        ({"ablate": {"posterior": ["diagonal", "linear_iaf"], "hidden": [1, 2]}}, "ablate", "hidden", "exactly one factor"),
        ({"fixed": {"posterior": "diagonal"}}, "ablate.posterior", "posterior", "one place only"),
    ],
)
def test_invalid_declarations_name_field_value_and_fix(kw, field, value_text, allowed_text):
    with pytest.raises(DeclarationError) as info:
        make(**kw)
    msg = str(info.value)
    assert info.value.field == field
    assert value_text in msg and allowed_text in msg


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"effect": -0.1}, "prediction.effect"),
        ({"alpha": 0.5}, "prediction.alpha"),
        ({"alpha": 0.0}, "prediction.alpha"),
        ({"direction": "down"}, "prediction.direction"),
        ({"test": "anova"}, "prediction.test"),
    ],
)
def test_invalid_predictions(kw, field):
    args = dict(metric="iwae_nll", direction="lower", effect=0.5)
    args.update(kw)
    with pytest.raises(DeclarationError) as info:
        Prediction(**args)
    assert info.value.field == field


def test_grid_expands_variants_and_strata():
    h = make(strata={"latent_dim": [4, 8]}, seeds=4)
    assert h.levels == ["diagonal", "linear_iaf"] and h.control == "diagonal"
    assert h.strata_ids == ["latent_dim=4", "latent_dim=8"]
    assert [v.id for v in h.variants] == [
        "diagonal|latent_dim=4", "linear_iaf|latent_dim=4", "diagonal|latent_dim=8", "linear_iaf|latent_dim=8",
    ]
    assert h.variants[2].model_config.latent_dim == 8
    assert h.n_runs == 16


def test_training_fields_are_grid_factors():
    h = make(ablate={"lr": [1e-3, 3e-3]}, fixed={"posterior": "linear_iaf"})
    assert [v.training.lr for v in h.variants] == [1e-3, 3e-3]
    assert all(v.model_config.posterior == "linear_iaf" for v in h.variants)


def test_version_hash_is_stable_and_content_addressed():
    a, b = make(), make()
    assert a.version == b.version
    assert make(seeds=4).version != a.version
    assert make(prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.6)).version != a.version


def test_model_can_be_the_ablated_factor():
    h = make(
        model="vae",
        ablate={"model": ["vae", "iaf_vae"]},
        fixed={"latent_dim": 4, "flow_steps": 1},  # flow_steps exists only in iaf_vae
        prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.5),
    )
    assert [v.model for v in h.variants] == ["vae", "iaf_vae"]
    assert h.variants[0].model_config.latent_dim == 4 and h.variants[1].model_config.flow_steps == 1
    assert set(h.canonical()["model_code"]) == {"vae", "iaf_vae"}
    with pytest.raises(DeclarationError) as info:
        make(ablate={"model": ["vae", "no_such_gan"]})
    assert info.value.field == "ablate.model" and "no_such_gan" in str(info.value)
    with pytest.raises(DeclarationError) as info:  # a metric one of the models does not report
        make(ablate={"model": ["vae", "ddpm"]}, prediction=Prediction(metric="iwae_nll", direction="lower", effect=1))
    assert info.value.field == "prediction.metric" and "'ddpm'" in str(info.value)
