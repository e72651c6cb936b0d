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
        if not _is_real(self.lr) or not self.lr > 0:
            raise DeclarationError("training.lr", self.lr, "a positive learning rate, e.g. 1e-3")
        if self.grad_clip is not None and (not _is_real(self.grad_clip) or self.grad_clip <= 0):
            raise DeclarationError("training.grad_clip", self.grad_clip, "None or a positive norm")
        _choice("training.precision", self.precision, PRECISIONS)


TRAINING_FIELDS = tuple(f.name for f in dataclasses.fields(Training))

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
    smoke: bool = False  # a labelled smoke run: tiny budget, never evidence

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
        for name in names:
            if name not in MODELS:
                raise DeclarationError(
                    f"{where_model}.model" if where_model else "model", name,
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
                ids = [_level_id(v) for v in levels]
                dups = sorted({i for i in ids if ids.count(i) > 1})
                if dups:
                    raise DeclarationError(
                        f"{where}.{name}", list(levels), f"distinct levels; duplicated: {dups}",
                        what="duplicate levels",
                    )
        # Build every variant now: an invalid value for a config field fails here, not mid-study.
        self._variants = self._expand()

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
                try:
                    config = model_cls.Config(**model_kw)
                except DeclarationError:
                    raise
                except (TypeError, ValueError) as exc:
                    raise self._config_error(model_cls, model_kw, exc) from None
                training = dataclasses.replace(self.training, **train_kw)
                out.append(Variant(_level_id(level), stratum, config, training, model))
        return out

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
        }

    @property
    def version(self) -> str:
        """Content hash (sha256, first 12 hex digits) of the canonical declaration."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def diff_declarations(old: dict, new: dict) -> list[str]:
    """Human-readable lines naming what changed between two canonical declarations."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if key == "model_code":
                lines.append("model_code: the model's source code changed")
            else:
                lines.append(f"{key}: {json.dumps(old.get(key))} -> {json.dumps(new.get(key))}")
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
