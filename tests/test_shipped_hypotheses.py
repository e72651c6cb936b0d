"""Every shipped hypothesis runs end to end in the labelled smoke mode (2 seeds, tiny budget)."""

from __future__ import annotations

import pytest
from conftest import ROOT

import analysis
from harness.collect import collect, discover
from harness.hypothesis import SAMPLE_METRICS

SHIPPED = sorted(p.stem for p in (ROOT / "hypotheses").glob("*.py") if not p.name.startswith("_"))


def test_there_are_worked_hypotheses_for_every_seed_claim():
    assert {"iaf_tightens_bound", "predictive_coding_samples", "kl_bounds_information",
            "iterative_denoising", "autoencoder_is_pca", "diffusion_beats_vae"} <= set(SHIPPED)


# Datasets read from the fetched MNIST: the session's fetched copy is pointed at, so a shipped
# study on real data runs wherever the tests run (fetched once per session, see conftest.py).
FETCHED = {"mnist", "binarized_mnist"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_hypothesis_smoke_run_and_report(name, tmp_path, cli, monkeypatch, request):
    monkeypatch.chdir(ROOT)
    assert name in [p.stem for p in discover()]
    full = collect(name).hypothesis
    if full.dataset in FETCHED:
        monkeypatch.setenv("HARNESS_DATA_DIR", str(request.getfixturevalue("mnist_data_dir")))
    assert full.source and full.claim and not full.smoke
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = cli("run", name, "--smoke", "--store", store)
    assert r.exit_code == 0, r.output
    assert "smoke" in r.output and f"trained {len(full.variants) * 2} runs" in r.output, r.output
    r = cli("report", name, "--smoke", "--store", store)
    assert r.exit_code == 0, r.output
    html = (tmp_path / "reports" / f"{name}@smoke" / "index.html").read_text()
    assert "SMOKE RUN" in html and "not evidence" in html
    frame = analysis.load(f"{name}@smoke", store=store)  # one row per (run, budget)
    from analysis.budgets import final_budget

    assert len(final_budget(frame)) == len(full.variants) * 2
    if full.prediction.metric in SAMPLE_METRICS:
        assert {"fid", "kid", "precision", "recall", "density", "coverage", "classifier_accuracy",
                "nn_train_ratio", "copy_fraction"} <= set(frame)
        assert frame["classifier_accuracy"].min() > 0.9
