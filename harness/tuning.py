"""Equal tuning budgets: one Optuna study per (variant, stratum), trials stacked in blocks.

Every variant gets the same declared budget (``Tuning.trials`` COMPLETE trials), the same
sampler and the same sampler seed. With the random sampler and an identical search space this
means every variant is offered the *same* candidate configurations, trial for trial (common
random numbers): neither arm can win by drawing luckier hyper-parameters.

A trial trains ``seeds_per_trial`` seeds (numbered from ``TUNING_SEED_BASE``: never a
confirmatory seed) on the training split minus the fixed validation split
(:func:`harness.data.validation_view`) and is scored on that validation split by the
prediction's metric, in the metric's own better direction; the test split is never loaded into a trial. Trials are
asked from Optuna several at once (ask/tell) and trained as the members of one stacked block,
each member with its own hyper-parameters (``engine.train_block(members=...)``); trials whose
values change shapes are grouped by :func:`harness.engine.stack_key` into separate blocks.

Crash safety: one process tunes a given (variant, stratum) at a time (an ``flock`` it holds
while tuning; the kernel drops it when the process dies). So a trial found RUNNING by the lock's
holder belongs to a dead process: if all its MLflow runs had ended, the recorded value is told
to Optuna (nothing finished is trained again); otherwise the trial is marked FAIL and its budget
slot asked again. The budget counts COMPLETE trials only. A diverged trial (non-finite loss) is
a result, COMPLETE with the worst value (+inf when minimising), flagged ``diverged``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import failpoints
from harness.errors import HarnessError, describe
from harness.hypothesis import TUNING_SEED_BASE, Variant
from harness.redact import from_environment, redact

JOURNAL = "optuna.journal"


@dataclass
class Tuned:
    """The outcome of one variant's tuning."""

    variant: Variant  # the variant at its best trial's configuration
    best_trial: int | None
    best_value: float | None
    best_params: dict
    complete: int
    trained: int = 0  # trial runs trained by this call
    busy: bool = False  # another process holds this variant's tuning


def storage(url: str | None, root: Path):
    """``None``: a journal file under the store root (safe for several local processes); a
    database URL (``postgresql://``, ``mysql://``, ``sqlite:///``): Optuna's RDB storage; any
    other string: the path of a journal file."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url and "://" in url:
        url = from_environment(url, "--optuna-storage")
        kwargs = {}
        if url.startswith(("postgresql", "postgres://")):
            # Its own schema: Optuna's tables (and its alembic_version) must not meet MLflow's
            # when both share one database, as they do with --store postgresql://.
            url = url.replace("postgres://", "postgresql://", 1)
            _create_schema(url, PG_SCHEMA)
            kwargs = {"engine_kwargs": {"connect_args": {"options": f"-csearch_path={PG_SCHEMA}"}, "pool_pre_ping": True}}
        try:
            if kwargs:
                from harness.claims import pg_schema_lock

                with pg_schema_lock(url):  # Optuna creates its tables on first use
                    return optuna.storages.RDBStorage(url, **kwargs)
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as exc:  # noqa: BLE001  (bad URL, driver missing, server down)
            raise HarnessError(
                f"--optuna-storage {redact(url)}: cannot open it "
                f"({describe(exc)})\n"
                "  hint: a database URL Optuna supports (postgresql://user@host/db), or a journal file path"
            ) from None
    path = Path(url) if url else root / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


PG_SCHEMA = "optuna"


def _create_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    from harness.claims import pg_schema_lock

    try:
        eng = sa.create_engine(url)
        try:
            with pg_schema_lock(url), eng.begin() as con:
                con.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        finally:
            eng.dispose()
    except Exception as exc:  # noqa: BLE001  (server down, bad URL)
        raise HarnessError(
            f"--optuna-storage {redact(url)}: cannot open it ({describe(exc)})\n"
            "  hint: start PostgreSQL, or fix the URL (postgresql://USER@HOST:PORT/DB)"
        ) from None


def storage_label(url: str | None, root: Path) -> str:
    return redact(url) if url else str((root / JOURNAL).resolve())


def study_name(hyp_id: str, version: str, variant: Variant) -> str:
    return f"{hyp_id}/{version}/{variant.id}"


def _sampler(tuning):
    import optuna

    if tuning.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=tuning.sampler_seed)
    return optuna.samplers.RandomSampler(seed=tuning.sampler_seed)


def trial_seeds(tuning, number: int) -> list[int]:
    """The seeds of trial ``number``: disjoint from every confirmatory seed and every other trial."""
    k = tuning.seeds_per_trial
    return [TUNING_SEED_BASE + number * k + j for j in range(k)]


def tuning_direction(hyp, variant: Variant) -> str:
    """The direction a variant is tuned in: its metric's own "better" ("lower" or "higher"; the
    model's ``higher_is_better``, else the catalogue's), never the prediction's direction. A
    prediction that the treatment is *worse* ("the GAN's recall is lower") must not tune either
    arm towards the worse value: that would make the claim win by construction."""
    from harness.catalog import metric_direction
    from harness.registry import MODELS

    return metric_direction(hyp.prediction.metric, MODELS.get(variant.model))


def _objective(metrics: list[dict], metric: str, direction: str) -> tuple[float, bool]:
    """The trial's score: the mean of its seeds' validation metric; the worst value if any diverged."""
    vals = [m.get(metric, math.nan) for m in metrics]
    if not vals or any(not math.isfinite(v) for v in vals):
        return (math.inf if direction == "lower" else -math.inf), True
    return sum(vals) / len(vals), False


def _trial_values(store, hyp_id: str, version: str, variant: Variant) -> dict[int, list]:
    """trial number -> its MLflow runs (one per seed), for one variant."""
    out: dict[int, list] = {}
    for r in store.trial_runs(hyp_id, version):
        t = r.data.tags
        if t.get("harness.variant") == variant.level and t.get("harness.stratum") == variant.stratum:
            out.setdefault(int(t["harness.trial"]), []).append(r)
    return out


def tune_variant(
    col,
    store,
    reg,
    variant: Variant,
    storage_obj,
    *,
    device: str = "auto",
    block_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    claims=None,
    training: Callable[[float], None] | None = None,
    gpu_share: float | None = None,
) -> Tuned:
    """Run ``variant``'s tuning to its full budget (resuming what exists). Returns its best.

    ``claims`` (:mod:`harness.claims`, default flock files under the store root) makes this
    process the only one tuning the variant; its lease (or flock) is held throughout.
    ``progress(n)``: n trial runs ended (after each block); ``training(x)``: x trial runs trained
    so far, fractional, as a block's steps advance (the blocks' ``engine.train_block`` progress)."""
    import optuna
    from optuna.trial import TrialState

    from harness import data, engine, sample_metrics
    from harness.plan import FINISHED_STATUSES
    from harness.registration import provenance
    from harness.registry import MODELS

    hyp = col.hypothesis
    tuning = hyp.tuning
    pred = hyp.prediction
    better = tuning_direction(hyp, variant)  # the metric's own better, not the prediction's direction
    direction = "minimize" if better == "lower" else "maximize"
    name = study_name(col.id, reg.version, variant)
    dists = {k: d.optuna() for k, d in sorted(tuning.space.items())}
    from harness.claims import FlockClaims, tuning_key

    claims = claims if claims is not None else FlockClaims(store.root)
    lease_key = tuning_key(reg.version, variant)
    with claims.tuning(reg.version, variant) as held:
        study = optuna.create_study(
            study_name=name, storage=storage_obj, sampler=_sampler(tuning), direction=direction, load_if_exists=True
        )
        if not held:
            return _best(hyp, variant, study, busy=True)
        study.set_user_attr("harness.hypothesis", col.id)
        study.set_user_attr("harness.version", reg.version)
        trained = 0
        # Repair what a dead process left (we hold the lock: nobody else is tuning this variant).
        runs = _trial_values(store, col.id, reg.version, variant)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            rs = runs.get(t.number, [])
            ended = [r for r in rs if r.info.status in FINISHED_STATUSES]
            if len(ended) == tuning.seeds_per_trial:
                value, diverged = _objective(
                    [{pred.metric: r.data.metrics.get(pred.metric, math.nan)} for r in ended], pred.metric, better
                )
                study._storage.set_trial_user_attr(t._trial_id, "diverged", diverged)
                study.tell(t.number, value)
            else:
                for r in rs:
                    if r.info.status == "RUNNING":
                        store.kill(r.info.run_id)
                study.tell(t.number, state=TrialState.FAIL)

        ds_full = data.load(hyp.dataset)
        ds = data.validation_view(ds_full, tuning.validation)
        model_cls = MODELS[variant.model]
        scored = sample_metrics.wanted(hyp)
        dev = engine.pick_device(device)
        cap = block_size or engine.auto_block_size(model_cls, variant.model_config, variant.training, ds, dev,
                                                   gpu_share=gpu_share)
        per_round = max(1, cap // tuning.seeds_per_trial)
        while True:
            complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            if complete >= tuning.trials:
                break
            asked = [study.ask(dists) for _ in range(min(per_round, tuning.trials - complete))]
            groups: dict[tuple, list] = {}
            for trial in asked:
                tv = hyp.tuned_variant(variant, trial.params)
                key = engine.stack_key(model_cls, tv.model_config, tv.training)
                groups.setdefault(key, []).append((trial, tv))
            for members in groups.values():
                n = _train_trials(
                    col, store, reg, variant, members, ds, model_cls, dev, scored, name, study, provenance,
                    still_ours=(lambda: lease_key in claims.still_held([lease_key])) if claims.waits else None,
                    progress=None if training is None else (lambda x, base=trained: training(base + x)),
                )
                if n < 0:  # the lease was lost: the new holder repairs these trials and goes on
                    return _best(hyp, variant, study, busy=True)
                trained += n
                if progress is not None:
                    progress(trained)
        return dataclasses.replace(_best(hyp, variant, study), trained=trained)


def _train_trials(col, store, reg, variant, members, ds, model_cls, dev, scored, name, study, provenance,
                  still_ours=None, progress=None) -> int:
    """Train a group of asked trials of equal shape as one block, log them, tell Optuna.
    Returns the runs trained, or -1 when ``still_ours()`` says the variant's lease was lost:
    then nothing is told (the new holder fails these trials and asks again)."""
    from harness import engine, sample_metrics

    hyp = col.hypothesis
    tuning, pred = hyp.tuning, hyp.prediction
    seeds, member_cfgs, owner = [], [], []
    for trial, tv in members:
        # A trial is scored at the final step only: its earlier budgets would be evaluated for
        # nothing, so it trains without them (the confirmatory runs evaluate every budget).
        tv = dataclasses.replace(tv, training=dataclasses.replace(tv.training, evaluate_at=()))
        training = tv.training
        if scored:
            training = dataclasses.replace(training, n_samples=sample_metrics.n_samples_for(ds))
        for s in trial_seeds(tuning, trial.number):
            seeds.append(s)
            member_cfgs.append((tv.model_config, training))
            owner.append((trial, tv))
    tv0 = members[0][1]
    training0 = member_cfgs[0][1]
    from harness.failures import abandon, block_error
    from harness.likelihood import add_test_nll
    from harness.plan import Job

    run_ids, ended, phase = [], set(), "logging"
    per_trial: dict[int, list] = {}
    try:
        for s, (trial, tv) in zip(seeds, owner):
            params = {
                "model": tv.model,
                "dataset": hyp.dataset,
                **dataclasses.asdict(tv.model_config),
                **{f"training.{k}": v for k, v in dataclasses.asdict(tv.training).items()},
            }
            tags = {
                **provenance(str(dev)),
                "phase": "tune",
                "optuna_study": name,
                "trial": trial.number,
                "trial_params": json.dumps(trial.params, sort_keys=True),
                "block_size": len(seeds),
                "split": "validation",
            }
            run_ids.append(store.start_trial(reg, col.id, variant, trial.number, s, params, tags))
        failpoints.hit("trial.started")
        phase = "training"
        cb = None if progress is None else (lambda step, steps: progress(len(seeds) * step / steps))
        results = engine.train_block(
            model_cls, tv0.model_config, training0, ds, seeds, dev, members=member_cfgs, progress=cb
        )
        phase = "logging"
        for res, rid, (trial, _tv) in zip(results, run_ids, owner):
            add_test_nll(res.metrics, model_cls)  # a prediction on test_nll is tuned on it too
            if scored and res.samples is not None:
                res.metrics.update(sample_metrics.score(res.samples, ds, res.seed, store.root / "cache"))
            res.samples = None  # no sample grids for trials
            ok = store.finish_cell(rid, res, None, still_ours=still_ours)
            ended.add(rid)
            if not ok:
                for other in run_ids:
                    if other not in ended:
                        store.kill(other)
                return -1
            per_trial.setdefault(trial.number, []).append(res.metrics)
        if still_ours is not None and not still_ours():
            return -1
        for trial, _tv in members:
            value, diverged = _objective(per_trial[trial.number], pred.metric, tuning_direction(hyp, variant))
            trial.set_user_attr("diverged", diverged)
            study.tell(trial, value)
    except BaseException as exc:  # noqa: BLE001  (re-raised: no run and no trial may stay RUNNING)
        left = [rid for rid in run_ids if rid not in ended]
        marked = abandon(store, left, exc)
        from optuna.trial import TrialState

        for trial, _tv in members:  # unfinished trials' budget slots are asked again on the next run
            try:
                done = per_trial.get(trial.number, [])
                if len(done) == tuning.seeds_per_trial:  # its runs all ended: a result, keep it
                    study.tell(trial, _objective(done, pred.metric, tuning_direction(hyp, variant))[0], skip_if_finished=True)
                else:
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            except Exception:  # noqa: BLE001  (best effort: the next run fails them under its lock)
                pass
        raise block_error(exc, phase, col, Job(variant, seeds), store, left, marked) from None
    return len(seeds)


def complete_trials(col, reg, variant: Variant, storage_obj) -> int:
    """COMPLETE trials of ``variant``'s study (0 when it does not exist yet)."""
    from optuna.trial import TrialState

    study = _load(col, reg, variant, storage_obj)
    return 0 if study is None else len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def load_best(col, reg, variant: Variant, storage_obj) -> Tuned:
    """``variant``'s best configuration so far, read from the storage (the driver's view)."""
    study = _load(col, reg, variant, storage_obj)
    return Tuned(variant, None, None, {}, 0) if study is None else _best(col.hypothesis, variant, study)


def _load(col, reg, variant: Variant, storage_obj):
    import optuna

    name = study_name(col.id, reg.version, variant)
    if name not in {s.study_name for s in storage_obj.get_all_studies()}:
        return None
    return optuna.load_study(study_name=name, storage=storage_obj)


def _best(hyp, variant: Variant, study, busy: bool = False) -> Tuned:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not done:
        return Tuned(variant, None, None, {}, 0, busy=busy)
    sign = 1 if tuning_direction(hyp, variant) == "lower" else -1
    # Ties (and an all-diverged study) resolve to the lowest trial number: deterministic.
    best = min(done, key=lambda t: (sign * t.value if math.isfinite(t.value) else math.inf, t.number))
    return Tuned(hyp.tuned_variant(variant, best.params), best.number, best.value, dict(best.params), len(done), busy=busy)
