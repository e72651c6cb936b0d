"""Equal tuning budgets: declaration, validation split, stacked trials, the two phases, resume.

Real Optuna journal storage and a real sqlite MLflow store in tmp dirs, real training (tiny).
"""

from __future__ import annotations

import dataclasses
import math
import re
import signal
import time

import numpy as np
import pytest
import torch
from conftest import harness_subprocess, write

from harness import Choice, DeclarationError, Hypothesis, IntUniform, LogUniform, Prediction, Training, Tuning, Uniform
from harness.hypothesis import TUNING_SEED_BASE

TINY_TRAINING = "Training(steps=12, batch_size=64, eval_samples=2, log_every=6, n_samples=8)"

TUNED = '''
"""A tuned tiny study (tests)."""
import torch
from harness import Hypothesis, LogUniform, Prediction, Training, Tuning, Uniform, register_dataset
from harness import data

@register_dataset("{dataset}")
def _digits(root=None):
    d = data.load("digits")
    return data.Dataset("{dataset}", d.train, d.test, d.shape, d.levels)

hypothesis = Hypothesis(
    claim="A linear IAF posterior lowers the beta-VAE's NLL (tuned).",
    dataset="{dataset}",
    model="beta_vae",
    fixed={{"latent_dim": 4, "hidden": 32}},
    ablate={{"posterior": ["diagonal", "linear_iaf"]}},
    prediction=Prediction(metric="neg_elbo", direction="lower", effect=0.5, test="t"),
    seeds=3,
    training={training},
    tuning=Tuning(space={{"lr": LogUniform(1e-3, 3e-2), "beta": Uniform(0.5, 2.0)}}, trials={trials}),
)
'''


def tuned_file(project, name="tuned", *, trials=3, training=TINY_TRAINING):
    return write(project / "hypotheses" / f"{name}.py",
                 TUNED.format(dataset=f"ds_{name}", trials=trials, training=training))


def poisoned_file(project, name="poisoned"):
    """The conftest's tiny user model (NaN in, NaN out: no categorical indexing) on digits whose
    test split is all NaN, with a tuned learning rate."""
    from conftest import TINY_HYPOTHESIS

    model_part = TINY_HYPOTHESIS[: TINY_HYPOTHESIS.index("hypothesis = Hypothesis(")].format()
    return write(project / "hypotheses" / f"{name}.py", model_part + f'''
from harness import LogUniform, Tuning, data, register_dataset


@register_dataset("ds_{name}")
def _poisoned(root=None):
    d = data.load("digits")
    return data.Dataset("ds_{name}", d.train, torch.full_like(d.test, float("nan")), d.shape, d.levels)


hypothesis = Hypothesis(
    claim="Wider hidden layers lower the tiny VAE's NLL (tuned).",
    dataset="ds_{name}", model="tiny_vae", fixed={{"latent_dim": 2}}, ablate={{"hidden": [8, 16]}},
    prediction=Prediction(metric="nll", direction="lower", effect=0.1, test="t"), seeds=3,
    training=Training(steps=12, batch_size=64, eval_samples=2, log_every=6, n_samples=8),
    tuning=Tuning(space={{"lr": LogUniform(1e-3, 3e-2)}}, trials=3),
)
''')


def _hyp(**kw):
    base = dict(
        claim="c", dataset="digits", model="beta_vae", fixed={"latent_dim": 4, "hidden": 32},
        ablate={"posterior": ["diagonal", "linear_iaf"]},
        prediction=Prediction(metric="neg_elbo", direction="lower", effect=0.5), seeds=2,
        training=Training(steps=5),
    )
    base.update(kw)
    return Hypothesis(**base)


# ----------------------------------------------------------------- declaration
@pytest.mark.parametrize(
    "tuning, field",
    [
        (lambda: Tuning(space={"posterior": Choice(["diagonal", "iaf"])}), "tuning.space.posterior"),
        (lambda: Tuning(space={"no_such_field": Uniform(0, 1)}), "tuning.space.no_such_field"),
        (lambda: Tuning(space={"latent_dim": IntUniform(2, 8)}), "tuning.space.latent_dim"),  # also fixed
        (lambda: Tuning(space={"beta": Uniform(-1.0, 2.0)}), "tuning.space.beta"),  # beta < 0 invalid
    ],
)
def test_tuning_declaration_errors_name_the_field(tuning, field):
    with pytest.raises(DeclarationError) as e:
        _hyp(tuning=tuning())
    assert field in str(e.value)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: Uniform(2.0, 1.0), "Uniform(low=2.0, high=1.0)"),
        (lambda: Uniform(1.0, 1.0), "Uniform(low=1.0, high=1.0)"),
        (lambda: LogUniform(0.0, 1.0), "LogUniform.low"),
        (lambda: Tuning(space={"lr": LogUniform(1e-4, 1e-2)}, trials=0), "tuning.trials"),
        (lambda: Tuning(space={}), "tuning.space"),
        (lambda: Tuning(space={"lr": (1e-4, 1e-2)}), "tuning.space.lr"),
    ],
)
def test_search_range_errors(make, field):
    with pytest.raises(DeclarationError) as e:
        make()
    assert field in str(e.value)


def test_tuning_is_part_of_the_version_hash():
    a = _hyp(tuning=Tuning(space={"lr": LogUniform(1e-4, 1e-2)}, trials=8))
    b = _hyp(tuning=Tuning(space={"lr": LogUniform(1e-4, 1e-2)}, trials=9))
    c = _hyp(tuning=Tuning(space={"lr": LogUniform(1e-4, 2e-2)}, trials=8))
    d = _hyp(tuning=Tuning(space={"lr": LogUniform(1e-4, 1e-2)}, trials=8, sampler="tpe"))
    assert len({a.version, b.version, c.version, d.version, _hyp().version}) == 5
    assert a.n_tuning_runs == 2 * 8


def test_check_refuses_tuning_the_ablated_factor(project, cli):
    f = write(project / "hypotheses" / "bad.py", f'''
        from harness import Hypothesis, Prediction, Training, Tuning, Choice
        hypothesis = Hypothesis(
            claim="c", dataset="digits", model="beta_vae",
            ablate={{"posterior": ["diagonal", "linear_iaf"]}},
            prediction=Prediction(metric="neg_elbo", direction="lower", effect=0.5), seeds=2,
            training={TINY_TRAINING},
            tuning=Tuning(space={{"posterior": Choice(["diagonal", "iaf"])}}),
        )
    ''')
    res = cli("check", f)
    assert res.exit_code == 2
    assert "tuning.space.posterior" in res.output and "both tuned and tested" in res.output
    assert not (project / "runs").exists()


def test_check_prints_the_tuning_plan(project, cli):
    f = tuned_file(project, trials=5)
    res = cli("check", f)
    assert res.exit_code == 0, res.output
    assert "5 trials per variant" in res.output
    assert "10 tuning runs" in res.output and "6 confirmatory runs" in res.output


# ----------------------------------------------------------------- validation split
def test_validation_split_is_fixed_and_carved_from_train():
    from harness import data

    ds = data.load("digits")
    a, b = data.validation_view(ds, 0.2), data.validation_view(ds, 0.2)
    assert torch.equal(a.test, b.test) and torch.equal(a.train, b.train)
    assert a.held_out == "validation" and a.name == ds.name
    assert a.train.shape[0] + a.test.shape[0] == ds.train.shape[0]
    assert a.test.shape[0] == round(0.2 * ds.train.shape[0])
    rows = lambda t: {tuple(r.tolist()) for r in t}  # noqa: E731
    val, tr, test = rows(a.test), rows(a.train), rows(ds.test)
    assert val <= rows(ds.train)
    # digits has exact duplicate images; no validation *row* is drawn from the test split
    assert len(val & test) < len(val) // 10 and len(val - tr) > 0


# ----------------------------------------------------------------- stacked trials
def test_stacked_trials_equal_single_trials():
    from harness import data
    from harness.engine import train_block
    from harness.registry import MODELS

    ds = data.validation_view(data.load("digits"), 0.2)
    model = MODELS["beta_vae"]
    cfg = model.Config(latent_dim=4, hidden=32)
    tr = Training(steps=10, batch_size=32, eval_samples=2, log_every=5, n_samples=8)
    members = [
        (dataclasses.replace(cfg, beta=b), dataclasses.replace(tr, lr=lr, grad_clip=gc))
        for b, lr, gc in [(0.5, 1e-3, None), (4.0, 1e-2, 5.0), (1.5, 3e-3, None)]
    ]
    seeds = [TUNING_SEED_BASE + i for i in range(3)]
    stacked = train_block(model, cfg, tr, ds, seeds, "cpu", members=members)
    for i, (c, t) in enumerate(members):
        alone = train_block(model, c, t, ds, [seeds[i]], "cpu", members=[(c, t)])[0]
        for k, v in alone.metrics.items():
            assert stacked[i].metrics[k] == pytest.approx(v, rel=1e-4, abs=1e-5), (i, k)
    # the members really differ: different beta/lr give different results
    assert len({round(r.metrics["neg_elbo"], 3) for r in stacked}) == 3


def test_members_that_change_shapes_are_refused():
    from harness import data
    from harness.engine import train_block
    from harness.errors import HarnessError
    from harness.registry import MODELS

    ds = data.load("digits")
    model = MODELS["beta_vae"]
    cfg = model.Config(latent_dim=4, hidden=32)
    tr = Training(steps=2)
    with pytest.raises(HarnessError, match="changes shapes"):
        train_block(model, cfg, tr, ds, [1, 2], "cpu",
                    members=[(cfg, tr), (dataclasses.replace(cfg, hidden=16), tr)])


# ----------------------------------------------------------------- the two phases
def _optuna_counts(root, hyp_id, version):
    import optuna

    from harness import tuning

    st = tuning.storage(None, root)
    out = {}
    for s in optuna.get_all_study_summaries(st):
        if s.study_name.startswith(f"{hyp_id}/{version}/"):
            study = optuna.load_study(study_name=s.study_name, storage=st)
            states = [t.state.name for t in study.trials]
            out[s.study_name.rsplit("/", 1)[1]] = {x: states.count(x) for x in set(states)}
    return out


def test_tuning_never_reads_the_test_split_and_confirmation_does(project, cli):
    from harness.collect import collect
    from harness.registration import current_registration
    from harness.tracking import Store

    f = poisoned_file(project)
    res = cli("run", f)
    assert res.exit_code == 0, res.output
    st = Store(None)
    col = collect(f)
    reg = current_registration(col, st)
    trials = st.trial_runs(col.id, reg.version)
    assert len(trials) == 2 * 3
    # every trial scored finite on validation although the test split is all NaN
    assert all(r.info.status == "FINISHED" and math.isfinite(r.data.metrics["nll"]) for r in trials)
    assert all(r.data.tags["harness.split"] == "validation" for r in trials)
    counts = _optuna_counts(st.root, col.id, reg.version)
    assert counts == {"8": {"COMPLETE": 3}, "16": {"COMPLETE": 3}}
    # the confirmatory runs read the (poisoned) test split: non-finite metrics, reported diverged
    cells = st.cell_runs(col.id, reg.version)
    assert len(cells) == 2 * 3
    assert all(r.info.status == "FAILED" for r in cells)
    assert all("non-finite test metric" in r.data.tags.get("harness.error", "") for r in cells)


def test_equal_budget_disjoint_seeds_and_best_config(project, cli):
    from harness.collect import collect
    from harness.registration import current_registration
    from harness.tracking import Store

    f = tuned_file(project, "clean", trials=4)
    assert cli("run", f).exit_code == 0
    st = Store(None)
    col = collect(f)
    reg = current_registration(col, st)
    counts = _optuna_counts(st.root, col.id, reg.version)
    assert counts == {"diagonal": {"COMPLETE": 4}, "linear_iaf": {"COMPLETE": 4}}
    trials = st.trial_runs(col.id, reg.version)
    cells = st.cell_runs(col.id, reg.version)
    tseeds = {int(r.data.tags["harness.seed"]) for r in trials}
    cseeds = {int(r.data.tags["harness.seed"]) for r in cells}
    assert cseeds == {0, 1, 2} and min(tseeds) >= TUNING_SEED_BASE and not tseeds & cseeds
    # the random sampler with one seed offers every variant the same candidates
    per_variant = {}
    for r in trials:
        per_variant.setdefault(r.data.tags["harness.variant"], set()).add(r.data.tags["harness.trial_params"])
    assert per_variant["diagonal"] == per_variant["linear_iaf"]
    # confirmatory runs train at the variant's best trial's configuration
    import optuna

    from harness import tuning

    storage = tuning.storage(None, st.root)
    for v in col.hypothesis.variants:
        best = optuna.load_study(study_name=tuning.study_name(col.id, reg.version, v), storage=storage).best_trial
        runs = [r for r in cells if r.data.tags["harness.variant"] == v.level]
        assert runs and all(float(r.data.params["training.lr"]) == pytest.approx(best.params["lr"]) for r in runs)
        assert all(float(r.data.params["beta"]) == pytest.approx(best.params["beta"]) for r in runs)
        assert all(r.data.tags["harness.phase"] == "confirm" for r in runs)
    # the verdict uses confirmatory runs only; the report shows the tuning
    res = cli("report", "clean")
    assert res.exit_code == 0, res.output
    html = (st.root / "reports" / "clean" / "index.html").read_text()
    assert 'id="tuning"' in html and "Expected best" in html and "4 trials x 1 seed" in html
    # a rerun trains nothing
    again = cli("run", f)
    assert "trained 0 trial runs" in again.output and "trained 0 runs" in again.output


@pytest.mark.slow
def test_sigkill_during_tuning_then_rerun_keeps_the_budget_exact(project):
    from harness.collect import collect
    from harness.registration import current_registration
    from harness.tracking import Store

    f = tuned_file(project, "killed", trials=6, training="Training(steps=40, batch_size=64, eval_samples=2, log_every=20, n_samples=8)")
    p = harness_subprocess("run", f, "--block-size", "1", cwd=project)
    journal = project / "runs" / "optuna.journal"
    deadline = time.time() + 120
    # kill once some (not all) trials of the first variant have completed
    while time.time() < deadline:
        if journal.exists() and len(re.findall(r'"state":\s*1\b', journal.read_text())) >= 2:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    st = Store(None)
    col = collect(f)
    reg = current_registration(col, st)
    before = _optuna_counts(st.root, col.id, reg.version)
    assert 2 <= sum(c.get("COMPLETE", 0) for c in before.values()) < 12, before  # killed mid-tuning
    out = harness_subprocess("run", f, "--block-size", "1", cwd=project).communicate(timeout=300)[0]
    assert "trained" in out, out
    st = Store(None)
    col = collect(f)
    reg = current_registration(col, st)
    counts = _optuna_counts(st.root, col.id, reg.version)
    assert {v: c.get("COMPLETE") for v, c in counts.items()} == {"diagonal": 6, "linear_iaf": 6}, counts
    assert all(c.get("RUNNING", 0) == 0 for c in counts.values())
    finished = _finished_per(st.trial_runs(col.id, reg.version), "harness.trial")
    assert all(n == 1 for n in finished.values())  # nothing that had finished was trained again
    assert sum(1 for (v, _t) in finished if v == "diagonal") >= 6
    per_cell = _finished_per(st.cell_runs(col.id, reg.version), "harness.seed")
    assert per_cell == {(v, str(s)): 1 for v in ("diagonal", "linear_iaf") for s in range(3)}


def _finished_per(runs, tag: str) -> dict:
    """(variant, tag value) -> number of FINISHED runs."""
    import collections

    return dict(collections.Counter(
        (r.data.tags["harness.variant"], r.data.tags[tag]) for r in runs if r.info.status == "FINISHED"
    ))


def test_expected_best_matches_brute_force():
    from analysis.tuning import expected_best

    rng = np.random.default_rng(0)
    v = rng.normal(size=7)
    n, mean, sd = expected_best(v, "higher", estimator="dodge")  # draws with replacement: Dodge et al.
    # brute force over all 7^n draws with replacement for n = 1..3 (Tang et al.'s default is tested in tests/analysis)
    import itertools

    for k in (1, 2, 3):
        best = np.array([max(c) for c in itertools.product(v, repeat=k)])
        assert mean[k - 1] == pytest.approx(best.mean(), rel=1e-12)
        assert sd[k - 1] == pytest.approx(best.std(), rel=1e-9)
    n, mean_lo, _ = expected_best(v, "lower")
    assert mean_lo[0] == pytest.approx(v.mean()) and mean_lo[-1] < mean_lo[0]
    assert np.all(np.diff(mean) >= -1e-12)
    # a diverged trial counts as the worst draw
    _, m_inf, _ = expected_best(np.r_[v, np.inf], "lower")
    assert np.all(np.isfinite(m_inf))


def test_edge_warning():
    from analysis.tuning import edge_warnings

    space = {"lr": {"type": "LogUniform", "low": 1e-4, "high": 1e-2}, "beta": {"type": "Uniform", "low": 0, "high": 8}}
    w = edge_warnings({"lr": 9.9e-3, "beta": 4.0}, space)
    assert len(w) == 1 and "lr" in w[0] and "upper end" in w[0]


def test_an_exception_in_a_trial_is_the_users_error_and_leaves_nothing_running(project, cli):
    from conftest import TINY_HYPOTHESIS

    from harness.collect import collect
    from harness.registration import current_registration
    from harness.tracking import Store

    src = TINY_HYPOTHESIS.format(claim="c", seeds=2, steps=6)
    src = src.replace("    def loss(self, x, noise):\n", "    def loss(self, x, noise):\n        raise ValueError('broken loss')\n")
    src = src.replace("training=Training(", "tuning=__import__('harness').Tuning(space={'lr': __import__('harness').LogUniform(1e-3, 1e-2)}, trials=2),\n    training=Training(")
    f = write(project / "hypotheses" / "broken.py", src)
    res = cli("run", f)
    assert res.exit_code == 2, res.output
    assert "broken.py:" in res.output and "broken loss" in res.output
    st = Store(None)
    col = collect(f)
    reg = current_registration(col, st)
    trials = st.trial_runs(col.id, reg.version)
    assert trials and all(r.info.status == "KILLED" for r in trials)
    counts = _optuna_counts(st.root, col.id, reg.version)
    assert all(set(c) == {"FAIL"} for c in counts.values()), counts


def test_a_prediction_of_worse_still_tunes_every_arm_towards_the_metrics_better(project, cli):
    """A prediction that the treatment is worse (direction opposite to the metric's own better:
    "the GAN's recall is lower") must not tune the arms towards the worse value, or the claim wins
    by construction (found in gan_drops_modes, whose tuning picked a collapsed GAN, recall 0).
    Every variant is tuned towards its metric's better; the best trial is the best by that."""
    import optuna

    from harness import tuning
    from harness.collect import collect
    from harness.registration import current_registration
    from harness.tracking import Store

    f = write(project / "hypotheses" / "worse.py",
              TUNED.format(dataset="ds_worse", trials=4, training=TINY_TRAINING)
              .replace('direction="lower"', 'direction="higher"'))
    res = cli("run", f)
    assert res.exit_code == 0, res.output
    st = Store(None)
    col = collect(f)
    reg = current_registration(col, st)
    storage = tuning.storage(None, st.root)
    for v in col.hypothesis.variants:
        assert tuning.tuning_direction(col.hypothesis, v) == "lower"  # neg_elbo: lower is better
        study = optuna.load_study(study_name=tuning.study_name(col.id, reg.version, v), storage=storage)
        assert study.direction == optuna.study.StudyDirection.MINIMIZE
        values = [t.value for t in study.trials if t.value is not None]
        assert study.best_trial.value == min(values) and len(set(values)) > 1
