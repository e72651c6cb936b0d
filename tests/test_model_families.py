"""The issue-20 families (made, realnvp, flow_matching, sundae) through the user's doors: the
catalogue, `harness check` on a bad Config value, and one study against the VAE end to end."""

from __future__ import annotations

import math
import re

import pytest
from conftest import write

from analysis import load
from harness import Hypothesis, Prediction
from harness.errors import DeclarationError

NEW = ["made", "realnvp", "flow_matching", "sundae"]
METRICS = {"made": ["nll", "bpd"], "realnvp": ["nll_bound", "bpd"], "flow_matching": ["fm_loss"],
           "sundae": ["denoise_ce", "unrolled_ce"]}
# One invalid value each: zero orderings / coupling layers / solver steps / unrolled steps.
BAD = {"made": ("orderings", 0), "realnvp": ("layers", 0), "flow_matching": ("sample_steps", 0),
       "sundae": ("unroll", 0)}

STUDY = '''
"""Smoke: the four issue-20 families against the VAE on FID, one tiny study."""
from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="Any of four newer families samples better than a VAE.",
    source="tests",
    dataset="digits",
    model="vae",
    fixed={"hidden": 16, "depth": 1, "latent_dim": 2, "layers": 2, "time_dim": 8, "sample_steps": 2},
    ablate={"model": ["vae", "made", "realnvp", "flow_matching", "sundae"]},
    prediction=Prediction(metric="fid", direction="lower", effect=1.0, test="t"),
    seeds=2,
    training=Training(steps=4, batch_size=32, eval_samples=2, n_samples=32, log_every=2, sample_metrics=True),
)
'''


def test_catalog_lists_the_new_families_with_their_fields(project, cli):
    r = cli("catalog", "models")
    assert r.exit_code == 0, r.output
    for name in NEW:
        assert re.search(rf"^{name}: ", r.output, re.M), name
    assert re.search(r"orderings: int = 1\s+input orderings", r.output)
    assert re.search(r"layers: int = 8\s+affine coupling layers", r.output)
    assert re.search(r"sampler: str = 'heun'\s+ODE solver", r.output)
    assert re.search(r"unroll: int = 2\s+denoising steps unrolled", r.output)


@pytest.mark.parametrize("name", NEW)
def test_invalid_config_value_is_a_located_declaration_error(name):
    field, value = BAD[name]
    with pytest.raises(DeclarationError) as err:
        Hypothesis(claim="c", model=name, ablate={field: [value, 2]},
                   prediction=Prediction(metric="fid", direction="lower", effect=1.0))
    assert f"ablate.{field}" in str(err.value) and field in str(err.value)


def test_check_exits_2_on_an_invalid_config_value(project, cli):
    write(project / "hypotheses" / "bad.py", STUDY.replace('"layers": 2', '"layers": 0'))
    r = cli("check", "bad")
    assert r.exit_code == 2, r.output
    assert "bad.py" in r.output and "fixed.layers" in r.output and "layers must be a positive integer" in r.output


def test_study_against_the_vae_check_run_report(project, cli):
    write(project / "hypotheses" / "families.py", STUDY)
    r = cli("check", "families")
    assert r.exit_code == 0, r.output
    assert "variants: 5; runs: 10" in r.output
    r = cli("run", "families")
    assert r.exit_code == 0, r.output
    assert "trained 10 runs (10 finished, 0 diverged)" in r.output
    frame = load("families")
    assert set(frame["variant"]) == {"vae", *NEW} and frame["value"].notna().all()
    for name in NEW:
        rows = frame[frame["variant"] == name]
        for metric in METRICS[name] + ["fid", "kid", "precision"]:
            assert all(math.isfinite(v) for v in rows[metric]), (name, metric)
    r = cli("report", "families")
    assert r.exit_code == 0, r.output
    assert re.search(r"(SUPPORTED|REFUTED|INCONCLUSIVE)", r.output)
    md = (project / "runs" / "reports" / "families" / "report.md").read_text()
    assert all(name in md for name in NEW)
