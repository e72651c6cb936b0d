"""The declaration types a hypothesis file uses: Prediction, Sequential, Training, Tuning and
its search-space distributions, Variant; each validated at construction.

The :class:`harness.hypothesis.Hypothesis` that puts them together (the grid, its checks and
its version hash) is in ``harness/hypothesis.py``; their canonical form in ``harness/canonical.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from analysis.estimands import ESTIMANDS
from analysis.estimands import TESTS as ESTIMAND_TESTS
from harness.canonical import jsonable, level_id
from harness.errors import DeclarationError

DIRECTIONS = ("lower", "higher")
TESTS = ESTIMAND_TESTS  # the paired tests, in one table with their estimands (analysis/estimands.py)
# Prediction.estimand -> the tests valid for it (the first is the default); see
# docs/statistics.md "What is estimated". None keeps the pre-estimand behaviour: the test's
# own centre (pseudo-median for permutation / wilcoxon, mean for t).
CORRECTIONS = ("holm", "bh")
FAILED_POLICIES = ("worst", "exclude")
BUDGET_CHOICES = ("final", "all")  # Prediction.budgets as a word; else a tuple of evaluated steps
PRECISIONS = ("fp32", "bf16", "fp16", "tf32")  # Training.precision: never switched on silently (a new
# value hashes nothing new: a declaration hashes the value it uses)
# Bounds checked at declaration, so a runaway value fails in `check`, not minutes into `run`
# (seeds=10**9 once spent 85 s building a job list before a MemoryError).
MAX_SEEDS = 10_000
MAX_LEVELS = 1_000  # per ablated or stratifying factor
MAX_RUNS = 200_000  # variants x seeds
MAX_LEVEL_CHARS = 500  # a level's id is a tag value and part of every run's key and name
MAX_SIZE = 65_536  # any integer of a model's Config (latent_dim, hidden, T, ...)
TRAINING_MAX = {"steps": 10_000_000, "batch_size": 65_536, "eval_samples": 10_000, "log_every": 10_000_000,
                "n_samples": 10_000}
MAX_BUDGETS = 256  # Training.evaluate_at entries: each one is a full evaluation of every member
MATCHES = (None, "flops")  # Training.match: what every variant's budget is matched on (harness.compute)


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
    budgets: str | tuple[int, ...] = "final"  # which training budgets (Training.evaluate_at and
    # steps) are confirmatory: "final" (steps only), "all", or a tuple of evaluated steps; the
    # family is comparisons x strata x confirmatory budgets; the others are exploratory

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise DeclarationError("prediction.metric", self.metric, "a metric name such as 'iwae_nll'")
        check_choice("prediction.direction", self.direction, DIRECTIONS)
        if self.estimand is not None:
            check_choice("prediction.estimand", self.estimand, tuple(ESTIMANDS))
            if self.test is None:  # the estimand's own test (frozen: set once, here)
                object.__setattr__(self, "test", ESTIMANDS[self.estimand][0])
        elif self.test is None:
            object.__setattr__(self, "test", "permutation")
        check_choice("prediction.test", self.test, TESTS)
        if self.estimand is not None and self.test not in ESTIMANDS[self.estimand]:
            raise DeclarationError(
                "prediction.test", self.test,
                f"a test valid for estimand={self.estimand!r}: {list(ESTIMANDS[self.estimand])} "
                "(sign: exact for the median; permutation / wilcoxon: need symmetry; "
                "bootstrap_t / t: the mean)",
            )
        check_choice("prediction.correction", self.correction, CORRECTIONS)
        check_choice("prediction.failed", self.failed, FAILED_POLICIES)
        if not is_real(self.effect) or self.effect < 0 or not math.isfinite(self.effect):
            raise DeclarationError(
                "prediction.effect", self.effect,
                "the smallest effect of interest: a finite number >= 0, in the metric's units",
            )
        if not is_real(self.alpha) or not 0 < self.alpha < 0.5:
            raise DeclarationError(
                "prediction.alpha", self.alpha, "a significance level strictly between 0 and 0.5, e.g. 0.05"
            )
        self._check_budgets()

    def _check_budgets(self) -> None:
        b = self.budgets
        fix = ('"final" (the final steps only), "all" (every evaluated budget) or a tuple of evaluated '
               "steps, e.g. (4000, 8000)")
        if isinstance(b, str):
            check_choice("prediction.budgets", b, BUDGET_CHOICES)
            return
        if not isinstance(b, (tuple, list)) or not b or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in b):
            raise DeclarationError("prediction.budgets", b, fix)
        if len(set(b)) != len(b):
            raise DeclarationError("prediction.budgets", b, fix, what="duplicate budgets")
        object.__setattr__(self, "budgets", tuple(sorted(b)))  # a list (from JSON) is the tuple it means

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
        check_choice("seeds.spending", spending, SPENDINGS)
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
    # master weights and optimiser state; fp16 adds per-seed loss scaling; evaluation is fp32),
    # or "tf32": fp32 matmuls on TF32 tensor cores (CUDA only; on a CPU it changes nothing)
    evaluate_at: tuple[int, ...] = ()  # earlier budgets (steps) at which every run is also
    # evaluated, exactly as a run of that many steps would be; the final `steps` always is
    ema: float | None = None  # decay d of an exponential moving average of the weights
    # (ema = d * ema + (1 - d) * w after every step, from the initial weights); evaluation and
    # sampling then use it (Ho et al. 2020 evaluate DDPM this way); None: the weights themselves
    match: str | None = None  # "flops": every variant's steps (and evaluate_at) are scaled so
    # that its training FLOPs equal its control variant's at each budget (harness.compute)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_samples", "log_every", "n_samples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DeclarationError(f"training.{name}", v, "a positive integer")
            if v > TRAINING_MAX[name]:
                raise DeclarationError(f"training.{name}", v, f"at most {TRAINING_MAX[name]:,}", what="value too large")
        if not is_real(self.lr) or not self.lr > 0:
            raise DeclarationError("training.lr", self.lr, "a positive learning rate, e.g. 1e-3")
        if self.grad_clip is not None and (not is_real(self.grad_clip) or self.grad_clip <= 0):
            raise DeclarationError("training.grad_clip", self.grad_clip, "None or a positive norm")
        check_choice("training.precision", self.precision, PRECISIONS)
        self._check_budgets()
        if self.ema is not None and (not is_real(self.ema) or not 0 < self.ema < 1):
            raise DeclarationError("training.ema", self.ema, "None, or a decay strictly between 0 and 1, e.g. 0.999")
        if self.match not in MATCHES:
            raise DeclarationError("training.match", self.match,
                                   'None (every variant trains `steps`) or "flops" (steps matched on training FLOPs)')

    def _check_budgets(self) -> None:
        at = self.evaluate_at
        fix = (f"a tuple of strictly increasing step counts from 1 to steps = {self.steps}, at most "
               f"{MAX_BUDGETS} of them, e.g. (1000, 2000, 4000); () for the final step only")
        if not isinstance(at, (tuple, list, range)):
            raise DeclarationError("training.evaluate_at", at, fix)
        at = tuple(at)
        if len(at) > MAX_BUDGETS:
            raise DeclarationError("training.evaluate_at", f"<{len(at)} budgets>", fix, what="too many budgets")
        for k in at:
            if not isinstance(k, int) or isinstance(k, bool) or k < 1:
                raise DeclarationError("training.evaluate_at", at, fix + f"; {k!r} is not a positive integer")
            if k > self.steps:
                raise DeclarationError("training.evaluate_at", at, fix + f"; {k} is above steps",
                                       what="budget above steps")
        if any(b <= a for a, b in zip(at, at[1:])):
            raise DeclarationError("training.evaluate_at", at, fix, what="budgets not strictly increasing")
        object.__setattr__(self, "evaluate_at", at)  # a list is stored as the tuple it means

    @property
    def budgets(self) -> tuple[int, ...]:
        """Every step count a run is evaluated at: ``evaluate_at`` and the final ``steps``."""
        return tuple(k for k in self.evaluate_at if k < self.steps) + (self.steps,)


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
        ids = [level_id(v) for v in vals]
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
        if not is_real(v) or not math.isfinite(v):
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
        check_choice("tuning.sampler", self.sampler, SAMPLERS)
        if not isinstance(self.sampler_seed, int) or isinstance(self.sampler_seed, bool) or self.sampler_seed < 0:
            raise DeclarationError("tuning.sampler_seed", self.sampler_seed, "a non-negative integer")
        if not is_real(self.validation) or not 0.05 <= self.validation <= 0.5:
            raise DeclarationError("tuning.validation", self.validation, "a fraction of the training split from 0.05 to 0.5")

    def canonical(self) -> dict:
        return {
            "space": {k: {"type": type(v).__name__, **jsonable(dataclasses.asdict(v))} for k, v in sorted(self.space.items())},
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
SAMPLE_METRICS = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "fid_half", "fid_inf")


def metrics_of(model_cls: type) -> tuple[str, ...]:
    """The metrics a model's runs report: its own plus the harness's sample-quality metrics."""
    from harness.likelihood import NAME, source_of
    from harness.models.base import GenerativeModel

    extra = SAMPLE_METRICS if model_cls.sample is not GenerativeModel.sample else ()
    common = (NAME,) if source_of(model_cls) is not None and NAME not in model_cls.metrics else ()
    return tuple(model_cls.metrics) + common + extra


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


def check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise DeclarationError(name, value, f"one of {list(allowed)}", choices=allowed)


def is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
