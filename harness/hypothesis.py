"""The declaration objects: Hypothesis, Prediction, Training.

Everything is validated at construction, so a broken hypothesis file fails when it is imported
(``harness check``), never half-way through a study. The content hash of the canonical
declaration is the study's *version*: a changed declaration is a new version and never joins an
old version's results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness.errors import DeclarationError

DIRECTIONS = ("lower", "higher")
TESTS = ("permutation", "wilcoxon", "t", "sign", "bootstrap_t")
# Prediction.estimand -> the tests valid for it (the first is the default); see
# docs/statistics.md "What is estimated". None keeps the pre-estimand behaviour: the test's
# own centre (pseudo-median for permutation / wilcoxon, mean for t).
ESTIMANDS = {"mean": ("bootstrap_t", "t"), "median": ("sign",), "pseudomedian": ("permutation", "wilcoxon")}
CORRECTIONS = ("holm", "bh")
FAILED_POLICIES = ("worst", "exclude")
PRECISIONS = ("fp32", "bf16", "fp16")  # Training.precision: never switched on silently
# Bounds checked at declaration, so a runaway value fails in `check`, not minutes into `run`
# (seeds=10**9 once spent 85 s building a job list before a MemoryError).
MAX_SEEDS = 10_000
MAX_LEVELS = 1_000  # per ablated or stratifying factor
MAX_RUNS = 200_000  # variants x seeds
MAX_LEVEL_CHARS = 500  # a level's id is a tag value and part of every run's key and name
MAX_SIZE = 65_536  # any integer of a model's Config (latent_dim, hidden, T, ...)
TRAINING_MAX = {"steps": 10_000_000, "batch_size": 65_536, "eval_samples": 10_000, "log_every": 10_000_000,
                "n_samples": 10_000}


@dataclass(frozen=True)
class Prediction:
    """A falsifiable prediction: which metric moves, which way, by at least how much.

    Example::

        Prediction(metric="iwae_nll", direction="lower", effect=0.5, alpha=0.05)

    reads "the treatment lowers test IWAE NLL by at least 0.5 nats, tested at one-sided 5%".
    """

    metric: str
    direction: str  # "lower" or "higher": which way the treatment moves the metric
    effect: float  # smallest effect of interest, in metric units (>= 0)
    alpha: float = 0.05  # one-sided significance level, family-wise across comparisons
    test: str | None = None  # paired test: exact sign-flip "permutation", "wilcoxon",
    # "t", exact "sign" (median) or studentised "bootstrap_t" (mean); None: the estimand's default
    correction: str = "holm"  # multiplicity control over the family: "holm" or "bh"
    failed: str = "worst"  # failed/diverged runs: "worst" outcome for their variant, or "exclude"
    estimand: str | None = None  # what "improves by E" means: "mean", "median" or
    # "pseudomedian" (centre of a symmetric law); None = implied by the test (old files)

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise DeclarationError("prediction.metric", self.metric, "a metric name such as 'iwae_nll'")
        _choice("prediction.direction", self.direction, DIRECTIONS)
        if self.estimand is not None:
            _choice("prediction.estimand", self.estimand, tuple(ESTIMANDS))
            if self.test is None:  # the estimand's own test (frozen: set once, here)
                object.__setattr__(self, "test", ESTIMANDS[self.estimand][0])
        elif self.test is None:
            object.__setattr__(self, "test", "permutation")
        _choice("prediction.test", self.test, TESTS)
        if self.estimand is not None and self.test not in ESTIMANDS[self.estimand]:
            raise DeclarationError(
                "prediction.test", self.test,
                f"a test valid for estimand={self.estimand!r}: {list(ESTIMANDS[self.estimand])} "
                "(sign: exact for the median; permutation / wilcoxon: need symmetry; "
                "bootstrap_t / t: the mean)",
            )
        _choice("prediction.correction", self.correction, CORRECTIONS)
        _choice("prediction.failed", self.failed, FAILED_POLICIES)
        if not _is_real(self.effect) or self.effect < 0 or not math.isfinite(self.effect):
            raise DeclarationError(
                "prediction.effect", self.effect,
                "the smallest effect of interest: a finite number >= 0, in the metric's units",
            )
        if not _is_real(self.alpha) or not 0 < self.alpha < 0.5:
            raise DeclarationError(
                "prediction.alpha", self.alpha, "a significance level strictly between 0 and 0.5, e.g. 0.05"
            )

    def sentence(self, control: str, treatment: str) -> str:
        """The prediction in plain words."""
        verb = "lowers" if self.direction == "lower" else "raises"
        return (
            f"{treatment} {verb} {self.metric} relative to {control} by at least {self.effect:g} "
            f"(one-sided alpha = {self.alpha:g}, {self.test} test, {self.correction} correction)"
        )


SPENDINGS = ("obrien_fleming", "pocock")  # Lan-DeMets spending functions (analysis.sequential)


class Sequential(int):
    """A group-sequential seed design, usable as ``Hypothesis(seeds=...)``.

    Example::

        seeds=Sequential(looks=(8, 16, 24, 32), spending="obrien_fleming", futility=True)

    ``looks``: cumulative seed counts at which the study is analysed; alpha is spent over them
    with a Lan-DeMets ``spending`` function ("obrien_fleming": little early, most at the end;
    "pocock": evenly); ``futility=True`` also stops for "refuted" (improvement significantly
    below the smallest effect of interest). The value as an int is the maximum seed count, so
    planning code that reads ``hypothesis.seeds`` as a number still plans for the most seeds.
    """

    looks: tuple[int, ...]
    spending: str
    futility: bool

    def __new__(cls, looks: tuple[int, ...] = (), spending: str = "obrien_fleming", futility: bool = True):
        if (not isinstance(looks, (tuple, list)) or not 2 <= len(looks) <= 10
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in looks)
                or looks[0] < 3 or any(b <= a for a, b in zip(looks, looks[1:]))):
            raise DeclarationError(
                "seeds.looks", looks,
                "2 to 10 strictly increasing cumulative seed counts, the first >= 3, e.g. (8, 16, 24, 32)")
        _choice("seeds.spending", spending, SPENDINGS)
        if not isinstance(futility, bool):
            raise DeclarationError("seeds.futility", futility, "True or False")
        obj = super().__new__(cls, looks[-1])
        obj.looks, obj.spending, obj.futility = tuple(looks), spending, futility
        return obj

    def __repr__(self) -> str:
        return f"Sequential(looks={self.looks!r}, spending={self.spending!r}, futility={self.futility!r})"

    def __reduce__(self):  # pickles (process pools) as the design, not as a bare int
        return (Sequential, (self.looks, self.spending, self.futility))

    def canonical(self) -> dict:
        return {"looks": list(self.looks), "spending": self.spending, "futility": self.futility}


@dataclass(frozen=True)
class Training:
    """How each (variant, seed) run is trained and evaluated. Any field may be a grid factor."""

    steps: int = 2000  # optimiser steps per run
    batch_size: int = 128  # minibatch size
    lr: float = 1e-3  # Adam learning rate (constant; the same for every seed)
    grad_clip: float | None = None  # per-seed global-norm clip, None for no clipping
    eval_samples: int = 100  # importance samples K for the IWAE bound on the test split
    log_every: int = 50  # steps between logged points of the training histories
    n_samples: int = 64  # samples drawn for the sample grid
    sample_metrics: bool = False  # also score samples (FID, KID, PRDC on local features); on
    # automatically when the prediction's metric is one of them
    precision: str = "fp32"  # training arithmetic: "fp32", or autocast "bf16" / "fp16" (fp32
    # master weights and optimiser state; fp16 adds per-seed loss scaling; evaluation is fp32)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_samples", "log_every", "n_samples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DeclarationError(f"training.{name}", v, "a positive integer")
            if v > TRAINING_MAX[name]:
                raise DeclarationError(f"training.{name}", v, f"at most {TRAINING_MAX[name]:,}", what="value too large")
        if not _is_real(self.lr) or not self.lr > 0:
            raise DeclarationError("training.lr", self.lr, "a positive learning rate, e.g. 1e-3")
        if self.grad_clip is not None and (not _is_real(self.grad_clip) or self.grad_clip <= 0):
            raise DeclarationError("training.grad_clip", self.grad_clip, "None or a positive norm")
        _choice("training.precision", self.precision, PRECISIONS)


TRAINING_FIELDS = tuple(f.name for f in dataclasses.fields(Training))
# Training fields that may differ between the members of one stacked block (trials tuned
# together): they enter the step as per-member numbers. Every other field changes shapes or the
# loop (steps, batch size, ...) and groups trials into separate blocks.
STACKABLE_TRAINING = ("lr", "grad_clip")

SAMPLERS = ("random", "tpe")
MAX_TRIALS = 10_000
# Seeds of tuning trials start here; confirmatory seeds are bounded below it, so the two never
# overlap (a trial's seed j of trial t is TUNING_SEED_BASE + t * seeds_per_trial + j).
TUNING_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class Uniform:
    """A float searched uniformly on [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _bounds(self, log=False)

    def optuna(self):
        import optuna

        return optuna.distributions.FloatDistribution(float(self.low), float(self.high))


@dataclass(frozen=True)
class LogUniform:
    """A positive float searched uniformly in log space on [low, high] (learning rates)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _bounds(self, log=True)

    def optuna(self):
        import optuna

        return optuna.distributions.FloatDistribution(float(self.low), float(self.high), log=True)


@dataclass(frozen=True)
class IntUniform:
    """An integer searched on [low, high] (inclusive); ``log=True`` for sizes."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise DeclarationError(f"IntUniform.{name}", v, "an integer")
        _bounds(self, log=self.log)

    def optuna(self):
        import optuna

        return optuna.distributions.IntDistribution(self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    """One of a few values (strings, numbers or booleans)."""

    values: tuple

    def __post_init__(self) -> None:
        vals = tuple(self.values) if isinstance(self.values, (list, tuple)) else None
        if not vals or len(vals) < 2:
            raise DeclarationError("Choice.values", self.values, "a list of at least 2 values")
        ids = [_level_id(v) for v in vals]
        if len(set(ids)) != len(ids):
            raise DeclarationError("Choice.values", list(vals), "distinct values")
        object.__setattr__(self, "values", vals)

    def optuna(self):
        import optuna

        return optuna.distributions.CategoricalDistribution(list(self.values))


DISTRIBUTIONS = (Uniform, LogUniform, IntUniform, Choice)


def _bounds(dist, log: bool) -> None:
    name = type(dist).__name__
    for f in ("low", "high"):
        v = getattr(dist, f)
        if not _is_real(v) or not math.isfinite(v):
            raise DeclarationError(f"{name}.{f}", v, "a finite number")
    if not dist.low < dist.high:
        raise DeclarationError(
            f"{name}(low={dist.low!r}, high={dist.high!r})", (dist.low, dist.high),
            "low < high (an empty or inverted range searches nothing)", what="invalid search range",
        )
    if log and dist.low <= 0:
        raise DeclarationError(f"{name}.low", dist.low, "a positive lower bound (the range is searched in log space)")


@dataclass(frozen=True)
class Tuning:
    """The pre-registered tuning budget: the same for every variant.

    Example::

        Tuning(space={"lr": LogUniform(1e-4, 3e-2), "beta": Uniform(0.5, 8)}, trials=24)

    Each (variant, stratum) gets its own Optuna study with ``trials`` COMPLETE trials, drawn by
    the same ``sampler`` with the same ``sampler_seed``. A trial trains ``seeds_per_trial`` seeds
    (from a range disjoint from the confirmatory seeds) on the training split minus a fixed
    validation split (``validation``: its fraction of the training split) and is scored by the
    prediction's metric, in its direction, on that validation split; the test split is never
    read. The confirmatory runs then train each variant at its best trial's configuration.
    """

    space: dict[str, Any]  # field -> Uniform / LogUniform / IntUniform / Choice
    trials: int = 16  # COMPLETE trials per variant and stratum: the budget
    seeds_per_trial: int = 1  # seeds a trial averages its validation score over
    sampler: str = "random"  # "random" (E[best] curves are exact for it) or "tpe"
    sampler_seed: int = 0  # the same for every variant's study
    validation: float = 0.2  # fraction of the training split held out for scoring trials

    def __post_init__(self) -> None:
        if not isinstance(self.space, dict) or not self.space:
            raise DeclarationError("tuning.space", self.space, "a dict field -> LogUniform(...) / Uniform(...) / ...")
        for name, dist in self.space.items():
            if not isinstance(dist, DISTRIBUTIONS):
                raise DeclarationError(
                    f"tuning.space.{name}", dist,
                    "a search range: harness.LogUniform(lo, hi), Uniform(lo, hi), IntUniform(lo, hi) or Choice([...])",
                )
        if not isinstance(self.trials, int) or isinstance(self.trials, bool) or not 1 <= self.trials <= MAX_TRIALS:
            raise DeclarationError("tuning.trials", self.trials, f"an integer from 1 to {MAX_TRIALS}: trials per variant")
        if not isinstance(self.seeds_per_trial, int) or isinstance(self.seeds_per_trial, bool) or not 1 <= self.seeds_per_trial <= 64:
            raise DeclarationError("tuning.seeds_per_trial", self.seeds_per_trial, "an integer from 1 to 64")
        _choice("tuning.sampler", self.sampler, SAMPLERS)
        if not isinstance(self.sampler_seed, int) or isinstance(self.sampler_seed, bool) or self.sampler_seed < 0:
            raise DeclarationError("tuning.sampler_seed", self.sampler_seed, "a non-negative integer")
        if not _is_real(self.validation) or not 0.05 <= self.validation <= 0.5:
            raise DeclarationError("tuning.validation", self.validation, "a fraction of the training split from 0.05 to 0.5")

    def canonical(self) -> dict:
        return {
            "space": {k: {"type": type(v).__name__, **_jsonable(dataclasses.asdict(v))} for k, v in sorted(self.space.items())},
            "trials": self.trials,
            "seeds_per_trial": self.seeds_per_trial,
            "sampler": self.sampler,
            "sampler_seed": self.sampler_seed,
            "validation": self.validation,
        }

    @property
    def n_runs_per_variant(self) -> int:
        return self.trials * self.seeds_per_trial

# Computed by the harness on a model's samples (local-classifier features vs the test split)
# when Training(sample_metrics=True).
SAMPLE_METRICS = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage")


def metrics_of(model_cls: type) -> tuple[str, ...]:
    """The metrics a model's runs report: its own plus the harness's sample-quality metrics."""
    from harness.models.base import GenerativeModel

    extra = SAMPLE_METRICS if model_cls.sample is not GenerativeModel.sample else ()
    return tuple(model_cls.metrics) + extra


@dataclass(frozen=True)
class Variant:
    """One cell of the grid before seeds: the ablated level in one stratum."""

    level: str  # the ablated factor's level, as a string id ("linear_iaf")
    stratum: str  # "" when there are no strata, else "factor=value,factor=value"
    model_config: Any  # the model's Config instance
    training: Training
    model: str = ""  # registered model name (differs between variants when `model` is a factor)

    @property
    def id(self) -> str:
        return self.level if not self.stratum else f"{self.level}|{self.stratum}"


@dataclass
class Hypothesis:
    """A claim, a falsifiable prediction and the ablation grid that tests it.

    Example (a whole hypothesis file is this plus a docstring)::

        hypothesis = Hypothesis(
            claim="A full-covariance posterior tightens the VAE bound.",
            source="Kingma et al. 2016",
            dataset="digits",
            model="vae",
            fixed={"latent_dim": 8},
            ablate={"posterior": ["diagonal", "linear_iaf"]},
            prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.5),
            seeds=10,
        )
    """

    claim: str
    prediction: Prediction
    ablate: dict[str, list]
    model: str = "vae"
    dataset: str = "digits"
    source: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    strata: dict[str, list] = field(default_factory=dict)
    seeds: int = 10  # or Sequential(looks=..., ...): a group-sequential design (int value: the max)
    training: Training = field(default_factory=Training)
    tuning: Tuning | None = None  # the pre-registered tuning budget (None: the declared values as they are)
    smoke: bool = False  # a labelled smoke run: tiny budget, never evidence
    first_seed: int = 0  # confirmatory seeds are first_seed .. first_seed + seeds - 1: start a
    # confirmatory version past the seeds its pilot used, so the pilot is never in its sample

    def __post_init__(self) -> None:
        from harness.registry import DATASETS, MODELS, _load_builtins

        _load_builtins()
        if not isinstance(self.claim, str) or not self.claim.strip():
            raise DeclarationError("claim", self.claim, "one sentence stating the claim")
        if not isinstance(self.prediction, Prediction):
            raise DeclarationError("prediction", self.prediction, "a harness.Prediction(...)")
        if not isinstance(self.training, Training):
            raise DeclarationError("training", self.training, "a harness.Training(...)")
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 2:
            raise DeclarationError("seeds", self.seeds, "an integer >= 2: a paired test needs at least 2 seeds")
        if self.seeds > MAX_SEEDS:
            raise DeclarationError("seeds", self.seeds, f"at most {MAX_SEEDS:,} seeds per variant", what="too many seeds")
        if not isinstance(self.first_seed, int) or isinstance(self.first_seed, bool) or self.first_seed < 0:
            raise DeclarationError("first_seed", self.first_seed, "an integer >= 0: the first confirmatory seed")
        if self.first_seed + self.seeds > TUNING_SEED_BASE:
            raise DeclarationError(
                "first_seed", self.first_seed,
                f"at most {TUNING_SEED_BASE - self.seeds:,}: the confirmatory seeds first_seed .. first_seed + "
                f"{self.seeds - 1} must stay below {TUNING_SEED_BASE:,}, where the tuning seeds start",
                what="seed range overlaps the tuning seeds",
            )
        if self.dataset not in DATASETS:
            raise DeclarationError("dataset", self.dataset, f"one of {sorted(DATASETS)}", what="unknown dataset")
        if not isinstance(self.ablate, dict) or len(self.ablate) != 1:
            raise DeclarationError(
                "ablate", self.ablate, "a dict with exactly one factor: {'factor': [control, treatment, ...]}"
            )
        if isinstance(self.fixed, dict) and "model" in self.fixed:
            raise DeclarationError("fixed.model", self.fixed["model"], "set the model with Hypothesis(model=...)")
        # `model` may itself be the ablated or a stratifying factor (VAE vs DDPM, AE vs VAE).
        where_model = next((w for w, m in (("ablate", self.ablate), ("strata", self.strata))
                            if isinstance(m, dict) and "model" in m), None)
        names = list(getattr(self, where_model)["model"]) if where_model else [self.model]
        # Every model name given is checked, also Hypothesis(model=...) when `model` is a factor.
        for where, name in [(f"{where_model}.model" if where_model else "model", n) for n in names] + (
                [("model", self.model)] if where_model else []):
            if not isinstance(name, str) or name not in MODELS:
                raise DeclarationError(
                    where, name,
                    f"one of {sorted(MODELS)}, or a model registered with @register_model in the hypothesis file",
                    what="unknown model",
                )
        self._model_names = list(dict.fromkeys(names))
        models = [MODELS[n] for n in self._model_names]
        for name, model_cls in zip(self._model_names, models):
            allowed_metrics = metrics_of(model_cls)
            if self.prediction.metric not in allowed_metrics:
                raise DeclarationError(
                    "prediction.metric", self.prediction.metric,
                    f"a metric model {name!r} reports: {list(allowed_metrics)}", what="unknown metric",
                )
        config_fields = {f.name for m in models for f in dataclasses.fields(m.Config)} | {"model"}
        allowed = sorted(config_fields | set(TRAINING_FIELDS))
        for where, mapping in (("fixed", self.fixed), ("ablate", self.ablate), ("strata", self.strata)):
            if not isinstance(mapping, dict):
                raise DeclarationError(where, mapping, "a dict of config field -> value(s)")
            for name in mapping:
                if name not in config_fields and name not in TRAINING_FIELDS:
                    raise DeclarationError(
                        f"{where}.{name}", name, f"a config field of model {'/'.join(self._model_names)} or training: {allowed}",
                        what="unknown config field",
                    )
        seen: dict[str, str] = {}
        for where, mapping in (("fixed", self.fixed), ("ablate", self.ablate), ("strata", self.strata)):
            for name in mapping:
                if name in seen:
                    raise DeclarationError(
                        f"{where}.{name}", name, f"each field may be set in one place only; it is also in {seen[name]}"
                    )
                seen[name] = where
        for where, mapping in (("ablate", self.ablate), ("strata", self.strata)):
            for name, levels in mapping.items():
                if not isinstance(levels, (list, tuple)) or len(levels) < 2:
                    raise DeclarationError(f"{where}.{name}", levels, "a list of at least 2 levels")
                if len(levels) > MAX_LEVELS:
                    raise DeclarationError(f"{where}.{name}", f"<{len(levels)} levels>", f"at most {MAX_LEVELS:,} levels",
                                           what="too many levels")
                ids = [_level_id(v) for v in levels]
                long = next((i for i in ids if len(i) > MAX_LEVEL_CHARS), None)
                if long is not None:
                    raise DeclarationError(f"{where}.{name}", long[:60] + "...",
                                           f"a level of at most {MAX_LEVEL_CHARS} characters (got {len(long)})",
                                           what="level name too long")
                dups = sorted({i for i in ids if ids.count(i) > 1} | _equal_levels(levels))
                if dups:
                    raise DeclarationError(
                        f"{where}.{name}", list(levels), f"distinct levels; duplicated: {dups}",
                        what="duplicate levels",
                    )
        n_runs = self.seeds
        for levels in [*self.ablate.values(), *self.strata.values()]:
            n_runs *= len(levels)
        if n_runs > MAX_RUNS:
            raise DeclarationError("ablate", f"<{n_runs:,} runs>", f"a grid of at most {MAX_RUNS:,} runs (variants x seeds)",
                                   what="grid too large")
        # Build every variant now: an invalid value for a config field fails here, not mid-study.
        self._variants = self._expand()
        if self.tuning is not None:
            self._check_tuning(config_fields)

    # ----------------------------------------------------------------- the grid
    @property
    def factor(self) -> str:
        """The ablated factor's name."""
        return next(iter(self.ablate))

    @property
    def levels(self) -> list[str]:
        """The ablated factor's level ids; the first is the control."""
        return [_level_id(v) for v in self.ablate[self.factor]]

    @property
    def control(self) -> str:
        return self.levels[0]

    @property
    def strata_ids(self) -> list[str]:
        if not self.strata:
            return [""]
        names = list(self.strata)
        return [
            ",".join(f"{n}={_level_id(v)}" for n, v in zip(names, combo))
            for combo in itertools.product(*(self.strata[n] for n in names))
        ]

    @property
    def variants(self) -> list[Variant]:
        return list(self._variants)

    @property
    def n_runs(self) -> int:
        return len(self._variants) * self.seeds

    def confirmatory_seeds(self, n: int | None = None) -> list[int]:
        """The declared confirmatory seeds, or their first ``n`` (``--seeds N``, a sequential look).

        Example: ``Hypothesis(..., seeds=20, first_seed=10).confirmatory_seeds(5)`` is
        ``[10, 11, 12, 13, 14]``.
        """
        n = int(self.seeds) if n is None else n
        return list(range(self.first_seed, self.first_seed + n))

    def _expand(self) -> list[Variant]:
        from harness.registry import MODELS

        names = list(self.strata)
        combos = list(itertools.product(*(self.strata[n] for n in names))) if names else [()]
        out = []
        for combo in combos:
            stratum = ",".join(f"{n}={_level_id(v)}" for n, v in zip(names, combo))
            for level in self.ablate[self.factor]:
                values = {**self.fixed, **dict(zip(names, combo)), self.factor: level}
                model = values.pop("model", self.model)
                model_cls = MODELS[model]
                fields = {f.name for f in dataclasses.fields(model_cls.Config)}
                # With several models, a fixed setting applies to the models that have the field.
                model_kw = {k: v for k, v in values.items() if k not in TRAINING_FIELDS and k in fields}
                train_kw = {k: v for k, v in values.items() if k in TRAINING_FIELDS}
                self._check_types(model_cls, model_kw)
                try:
                    config = model_cls.Config(**model_kw)
                except DeclarationError:
                    raise
                except (TypeError, ValueError) as exc:
                    raise self._config_error(model_cls, model_kw, exc) from None
                self._check_sizes(config)
                training = dataclasses.replace(self.training, **train_kw)
                out.append(Variant(_level_id(level), stratum, config, training, model))
        return out

    def _where(self, name: str) -> str:
        return next((w for w, m in (("fixed", self.fixed), ("ablate", self.ablate), ("strata", self.strata))
                     if name in m), f"{self.model} default")

    def _check_types(self, model_cls: type, model_kw: dict) -> None:
        """A bool for an integer field: True == 1 would make two 'levels' one configuration."""
        for f in dataclasses.fields(model_cls.Config):
            v = model_kw.get(f.name)
            if isinstance(v, bool) and f.type in (int, "int"):
                raise DeclarationError(f"{self._where(f.name)}.{f.name}", v, "an integer (True/False is not a size)",
                                       what="bool for an integer field")

    def _check_sizes(self, config: Any) -> None:
        for f in dataclasses.fields(config):
            v = getattr(config, f.name)
            for x in (v if isinstance(v, (tuple, list)) else (v,)):
                if isinstance(x, int) and not isinstance(x, bool) and abs(x) > MAX_SIZE:
                    raise DeclarationError(f"{self._where(f.name)}.{f.name}", v, f"at most {MAX_SIZE:,}",
                                           what="model size too large")

    def _check_tuning(self, config_fields: set[str]) -> None:
        """A tuned field is a config or training field, never the ablated factor or a stratum
        (a factor cannot be both tuned and tested), and every value in its range is valid."""
        if not isinstance(self.tuning, Tuning):
            raise DeclarationError("tuning", self.tuning, "a harness.Tuning(space={...}, trials=N)")
        allowed = sorted((config_fields - {"model"}) | set(TRAINING_FIELDS))
        for name, dist in self.tuning.space.items():
            if name == "model" or (name not in config_fields and name not in TRAINING_FIELDS):
                raise DeclarationError(
                    f"tuning.space.{name}", name, f"a config field of model {'/'.join(self._model_names)} or training: {allowed}",
                    what="unknown config field",
                )
            for where, mapping in (("ablate", self.ablate), ("strata", self.strata)):
                if name in mapping:
                    raise DeclarationError(
                        f"tuning.space.{name}", name,
                        f"a field that is not also {where}: a factor cannot be both tuned and tested; "
                        f"remove it from tuning.space or from {where}",
                        what="tuned field is a tested factor",
                    )
            if name in self.fixed:
                raise DeclarationError(
                    f"tuning.space.{name}", name, "a field that is not also in fixed: tune it or fix it, not both"
                )
            # Both ends (and, for a choice, every value) must build a valid config.
            probes = list(dist.values) if isinstance(dist, Choice) else [dist.low, dist.high]
            for value in probes:
                for v in self._variants:
                    try:
                        self._check_sizes(self.tuned_variant(v, {name: value}).model_config)
                    except DeclarationError as exc:
                        raise DeclarationError(
                            f"tuning.space.{name}", value, f"every value in the range must be valid: {exc}",
                            what="invalid search range",
                        ) from None

        if self.n_tuning_runs > MAX_RUNS:
            raise DeclarationError("tuning.trials", self.tuning.trials,
                                   f"a budget of at most {MAX_RUNS:,} tuning runs (variants x trials x seeds per trial)",
                                   what="tuning budget too large")

    def tuned_variant(self, v: Variant, params: dict[str, Any]) -> Variant:
        """``v`` with tuned values applied (fields its model lacks are ignored for that model)."""
        from harness.registry import MODELS

        fields = {f.name for f in dataclasses.fields(MODELS[v.model].Config)}
        model_kw = {k: x for k, x in params.items() if k not in TRAINING_FIELDS and k in fields}
        train_kw = {k: x for k, x in params.items() if k in TRAINING_FIELDS}
        try:
            config = dataclasses.replace(v.model_config, **model_kw) if model_kw else v.model_config
            training = dataclasses.replace(v.training, **train_kw) if train_kw else v.training
        except (TypeError, ValueError) as exc:
            raise DeclarationError("tuning.space", params, str(exc), what="invalid tuned value") from None
        return dataclasses.replace(v, model_config=config, training=training)

    @property
    def n_tuning_runs(self) -> int:
        return 0 if self.tuning is None else len(self._variants) * self.tuning.n_runs_per_variant

    def _config_error(self, model_cls: type, model_kw: dict, exc: Exception) -> DeclarationError:
        """Name the field (and where it was set) behind an invalid model config."""
        for name, value in model_kw.items():
            try:
                model_cls.Config(**{name: value})
            except (TypeError, ValueError) as one:
                where = next(w for w, m in (("fixed", self.fixed), ("ablate", self.ablate),
                                            ("strata", self.strata)) if name in m)
                return DeclarationError(f"{where}.{name}", value, str(one), what="invalid model config value")
        return DeclarationError(f"model config ({model_cls.name})", model_kw, str(exc), what="invalid model config")

    # ----------------------------------------------------------------- identity
    def canonical(self) -> dict:
        """The declaration as plain JSON-able data: what the version hash is computed from."""
        from harness.registry import MODELS

        return {
            "claim": self.claim,
            "source": self.source,
            "dataset": self.dataset,
            "model": self.model,
            "model_code": {n: _code_hash(MODELS[n]) for n in self._model_names},
            "fixed": _jsonable(self.fixed),
            "ablate": _jsonable(self.ablate),
            "strata": _jsonable(self.strata),
            "prediction": _prediction_canonical(self.prediction),
            "seeds": self.seeds.canonical() if isinstance(self.seeds, Sequential) else self.seeds,
            "training": dataclasses.asdict(self.training),
            "smoke": self.smoke,
            # left out at 0 (the default), so that files written before it keep their hash
            **({"first_seed": self.first_seed} if self.first_seed else {}),
            **({"tuning": self.tuning.canonical()} if self.tuning is not None else {}),
        }

    @property
    def version(self) -> str:
        """Content hash (sha256, first 12 hex digits) of the canonical declaration."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def diff_declarations(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable lines naming only the fields that changed between two canonical
    declarations, dotted and old -> new: ``training.steps: 5 -> 6``."""
    lines = []
    missing = object()
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a == b:
            continue
        name = f"{prefix}{key}"
        if name.startswith("model_code"):
            lines.append(f"{name}: the model's source code changed")
        elif isinstance(a, dict) and isinstance(b, dict):
            lines.extend(diff_declarations(a, b, f"{name}."))
        else:
            def show(v):
                return "(not set)" if v is missing else json.dumps(v)

            lines.append(f"{name}: {show(a)} -> {show(b)}")
    return lines


# --------------------------------------------------------------------- helpers
def _prediction_canonical(p: Prediction) -> dict:
    # estimand=None (the default) is left out so that files written before it keep their hash.
    out = dataclasses.asdict(p)
    if out.get("estimand") is None:
        out.pop("estimand", None)
    return out


def _choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise DeclarationError(name, value, f"one of {list(allowed)}")


def _equal_levels(levels) -> set[str]:
    """Ids of levels equal in value though spelled differently (1, 1.0 and True)."""
    out = set()
    for i, a in enumerate(levels):
        for b in levels[i + 1 :]:
            try:
                same = not isinstance(a, str) and not isinstance(b, str) and bool(a == b)
            except Exception:  # noqa: BLE001  (an exotic level without a usable ==)
                same = False
            if same:
                out |= {_level_id(a), _level_id(b)}
    return out


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _level_id(v: object) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=repr))


def _code_hash(cls: type) -> str:
    # A built-in model's behaviour lives in its whole module; a user's model is hashed by its
    # class source, so editing a comment elsewhere in the hypothesis file is not a new version.
    try:
        builtin = cls.__module__.startswith("harness.")
        src = inspect.getsource(inspect.getmodule(cls) if builtin else cls)
        if builtin:  # the shared helpers and the contract are part of a built-in model's code
            from harness.models import _util, base

            src += inspect.getsource(_util) + inspect.getsource(base)
    except (OSError, TypeError):
        src = cls.__qualname__
    return hashlib.sha256(src.encode()).hexdigest()[:12]
