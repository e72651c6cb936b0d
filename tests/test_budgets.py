"""Budgets, EMA and measured compute: budget k of a long run IS the k-step run; EMA stays per
member; what is logged per budget; FLOPs counted and matched; bad declarations exit 2."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_hypothesis, write

from harness import compute, data, optim
from harness.collect import collect
from harness.engine import train_block
from harness.errors import DeclarationError
from harness.hypothesis import Training
from harness.registry import MODELS
from harness.tracking import Store

DDPM = MODELS["ddpm"]
CFG = DDPM.Config(T=4, hidden=32, depth=1, time_dim=8)
RTOL = 1e-5
ROOT = Path(__file__).resolve().parent.parent
# Versions of the shipped hypotheses before evaluate_at / ema / match existed (Training fields
# at their defaults are left out of the canonical form). diffusion_beats_vae and
# iterative_denoising use DDPM, whose code (and so version) changed with DDIM / x0 (issue 19).
VERSIONS = {
    "autoencoder_is_pca": "1e29e385d5b1",
    "iaf_tightens_bound": "97ca30f30b1a",
    "kl_bounds_information": "5c352df50fe7",
}


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.mark.parametrize("ema", [None, 0.9])
def test_budget_k_of_a_long_run_equals_a_k_step_run(digits, ema):
    # 60 steps is inside one noise chunk (64): the k-step runs' last chunk is cut short, the
    # long run's is not. DDPM's noise() draws t, then eps: both must still agree.
    tr = Training(steps=60, batch_size=32, lr=2e-3, eval_samples=1, log_every=20, n_samples=8,
                  evaluate_at=(20, 40), ema=ema)
    long = train_block(DDPM, CFG, tr, digits, [0, 1], "cpu", budget_samples=True)
    for k in (20, 40):
        short = train_block(DDPM, CFG, dataclasses.replace(tr, steps=k, evaluate_at=()), digits, [0, 1], "cpu")
        for a, b in zip(long, short):
            assert a.status == b.status == "FINISHED" and set(a.budgets) == {20, 40}
            for name, v in b.metrics.items():
                assert a.budgets[k][name] == pytest.approx(v, rel=RTOL, abs=1e-5), (k, name)
            np.testing.assert_allclose(a.budget_samples[k], b.samples, rtol=RTOL, atol=1e-5)
    assert long[0].budgets[20] != long[1].budgets[20]  # seeds are different runs
    assert long[0].budgets[20]["nll_bound"] != long[0].metrics["nll_bound"]
    assert long[0].params == sum(p.numel() for p in DDPM(CFG, digits.shape, digits.levels).parameters())


def test_ema_is_per_member_and_changes_what_is_evaluated(digits):
    tr = Training(steps=6, batch_size=32, eval_samples=1, log_every=3, n_samples=4, ema=0.5)
    alone = train_block(DDPM, CFG, tr, digits, [3], "cpu")[0]
    block = train_block(DDPM, CFG, tr, digits, [4, 3], "cpu")
    for name, v in alone.metrics.items():
        assert block[1].metrics[name] == pytest.approx(v, rel=1e-4, abs=1e-4), name
    plain = train_block(DDPM, CFG, dataclasses.replace(tr, ema=None), digits, [3], "cpu")[0]
    assert plain.metrics["nll_bound"] != alone.metrics["nll_bound"]


def test_ema_update_is_the_standard_form():
    w = torch.randn(2, 5)
    ema = optim.Ema(w, 0.9)
    ref = w.clone()
    for _ in range(3):
        w.add_(1.0)
        ema.update()
        ref = 0.9 * ref + 0.1 * w
    torch.testing.assert_close(ema.avg, ref)


@pytest.mark.parametrize("kw, what", [
    ({"evaluate_at": (10, 200)}, "budget above steps"),
    ({"evaluate_at": (20, 10)}, "not strictly increasing"),
    ({"evaluate_at": (10, 10)}, "not strictly increasing"),
    ({"evaluate_at": (0, 10)}, "not a positive integer"),
    ({"evaluate_at": (-5,)}, "not a positive integer"),
    ({"evaluate_at": (1.5,)}, "not a positive integer"),
    ({"evaluate_at": None}, "training.evaluate_at"),
    ({"evaluate_at": ""}, "training.evaluate_at"),
    ({"evaluate_at": 50}, "training.evaluate_at"),
    ({"evaluate_at": {10, 20}}, "training.evaluate_at"),
    ({"evaluate_at": tuple(range(1, 258)), "steps": 1000}, "too many budgets"),
    ({"ema": 1.0}, "training.ema"),
    ({"ema": 0}, "training.ema"),
    ({"ema": True}, "training.ema"),
    ({"match": "steps"}, "training.match"),
])
def test_bad_budget_ema_and_match_are_declaration_errors(kw, what):
    with pytest.raises(DeclarationError, match="hint:") as e:
        Training(**{"steps": 100, **kw})
    assert what in str(e.value)


def test_budgets_default_and_list_spelling():
    assert Training(steps=50).budgets == (50,)
    t = Training(steps=50, evaluate_at=[10, 20, 50])
    assert t.evaluate_at == (10, 20, 50) and t.budgets == (10, 20, 50)


def test_shipped_versions_are_unchanged_by_the_new_fields():
    for name, version in VERSIONS.items():
        assert collect(ROOT / "hypotheses" / f"{name}.py").hypothesis.version == version, name
    col = collect(ROOT / "hypotheses" / "iaf_tightens_bound.py")
    h = col.hypothesis
    with_ema = dataclasses.replace(h, training=dataclasses.replace(h.training, ema=0.999))
    assert with_ema.version != h.version and with_ema.canonical()["training"]["ema"] == 0.999


def test_check_refuses_a_bad_budget_in_a_file_and_writes_nothing(project, cli):
    text = tiny_hypothesis(seeds=2, steps=20).replace("n_samples=16)", "n_samples=16, evaluate_at=(5, 30))")
    f = write(project / "hypotheses" / "bad.py", text)
    r = cli("check", "bad")
    assert r.exit_code == 2 and f"{f}:" in r.output and "training.evaluate_at" in r.output, r.output
    assert "budget above steps" in r.output and "Traceback" not in r.output
    assert not (project / "runs").exists()


def test_flops_are_counted_and_matched_at_check(project, cli, digits):
    vae = compute.count(MODELS["vae"], MODELS["vae"].Config(), digits, 128)
    assert vae.flops_per_step > 0 and vae.params > 0
    assert compute.count(MODELS["vae"], MODELS["vae"].Config(), digits, 128) is vae  # cached
    text = tiny_hypothesis(seeds=2, steps=20).replace("n_samples=16)", 'n_samples=16, evaluate_at=(10,), match="flops")')
    write(project / "hypotheses" / "m.py", text)
    r = cli("check", "m")
    assert r.exit_code == 0, r.output
    h = collect(project / "hypotheses" / "m.py").hypothesis
    got = compute.matched_budgets(h, digits)
    f8, f16 = (compute.count(MODELS["tiny_vae"], v.model_config, digits, 64).flops_per_step for v in h.variants)
    assert got[("8", "")] == (20, (10,))  # the control trains what it declares
    assert got[("16", "")] == (math.floor(20 * f8 / f16 + 0.5), (math.floor(10 * f8 / f16 + 0.5),))
    assert "compute 16:" in r.output and f"evaluated at steps {got['16', ''][1][0]}, {got['16', ''][0]}" in r.output


def test_uncountable_flops_with_match_exit_2_at_check(project, cli):
    # A model with no matmul-class op: FlopCounterMode counts 0.
    text = tiny_hypothesis(seeds=2, steps=20).replace("n_samples=16)", 'n_samples=16, match="flops")')
    old = '        recon, kl = self._terms(x, noise["eps"])\n        return (recon + kl).mean(), {"neg_elbo": (recon + kl).mean()}'
    assert old in text
    text = text.replace(old, '        s = (x * 0).sum() + 0 * sum(p.sum() for p in self.parameters())\n        return s, {"neg_elbo": s}')
    f = write(project / "hypotheses" / "u.py", text)
    r = cli("check", "u")
    assert r.exit_code == 2 and f"{f}" in r.output and "FLOPs cannot be counted" in r.output, r.output
    assert "training.match" in r.output and "Traceback" not in r.output


def test_budgets_are_logged_as_histories(project, cli):
    text = tiny_hypothesis(seeds=2, steps=12).replace("n_samples=16)", "n_samples=16, evaluate_at=(4, 8))")
    write(project / "hypotheses" / "b.py", text)
    r = cli("run", "b", "--block-size", "2")
    assert r.exit_code == 0, r.output
    st = Store()
    version = st.registrations("b")[0].version
    runs = st.cell_runs("b", version)
    assert len(runs) == 4
    hist = st.metric_histories([x.info.run_id for x in runs], ["nll", "train_flops", "params"])
    for run in runs:
        rid = run.info.run_id
        assert json.loads(run.data.tags["harness.budgets"]) == [4, 8, 12]
        assert json.loads(run.data.tags["harness.declared_budgets"]) == [4, 8, 12]
        h = hist[rid]
        assert [s for s, _ in h["nll"]] == [4, 8, 12]
        assert h["nll"][-1][1] == pytest.approx(run.data.metrics["nll"])  # latest = final budget
        assert [s for s, _ in h["train_flops"]] == [4, 8, 12] and h["train_flops"][0][1] > 0
        assert h["train_flops"][2][1] == pytest.approx(3 * h["train_flops"][0][1])
        assert run.data.metrics["wall_seconds"] > 0 and run.data.metrics["params"] > 0
        assert h["nll"] == sorted(st.metric_history(rid, "nll"))


def test_tuning_trials_train_to_the_final_budget_only(project, cli):
    """Tuning scores each trial at the final step; evaluating its earlier budgets too would cost
    an evaluation of the validation split per budget for nothing."""
    text = tiny_hypothesis(seeds=2, steps=12).replace("n_samples=16)", "n_samples=16, evaluate_at=(4, 8)),\n"
                                                      "    tuning=Tuning(space={'lr': LogUniform(1e-3, 1e-2)}, "
                                                      "trials=2, seeds_per_trial=1, sampler='random')")
    text = text.replace("Training, register_model", "LogUniform, Training, Tuning, register_model")
    write(project / "hypotheses" / "b.py", text)
    r = cli("run", "b", "--block-size", "2")
    assert r.exit_code == 0, r.output
    st = Store()
    version = st.registrations("b")[0].version
    trials = st.trial_runs("b", version)
    assert len(trials) == 4
    for run in trials:  # the trained configuration, as logged, has no earlier budgets
        assert run.data.params["training.evaluate_at"] == "()", run.data.params
        assert run.data.params["training.steps"] == "12"
    runs = st.cell_runs("b", version)  # the confirmatory runs still evaluate every budget
    hist = st.metric_histories([x.info.run_id for x in runs], ["nll"])
    assert all([s for s, _ in hist[x.info.run_id]["nll"]] == [4, 8, 12] for x in runs)
