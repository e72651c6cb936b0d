"""The Hypothesis: a claim, a falsifiable prediction and the ablation grid, validated at
construction, expanded into variants, with the content hash that is the study's *version*.

Everything is validated at construction, so a broken hypothesis file fails when it is imported
(``harness check``), never half-way through a study. A changed declaration is a new version and
never joins an old version's results. The declaration types it is built from live in
``harness/declarations.py`` (re-exported here: ``from harness.hypothesis import Training``
keeps working); the canonical form and diff in ``harness/canonical.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from harness.canonical import (
    code_hash,
    diff_declarations,
    equal_levels,
    jsonable,
    level_id,
    prediction_canonical,
    training_canonical,
)
from harness.declarations import (  # noqa: F401  (re-exported: the declaration vocabulary)
    CORRECTIONS,
    DIRECTIONS,
    DISTRIBUTIONS,
    ESTIMANDS,
    FAILED_POLICIES,
    MAX_LEVEL_CHARS,
    MAX_LEVELS,
    MAX_RUNS,
    MAX_SEEDS,
    MAX_SIZE,
    MAX_TRIALS,
    PRECISIONS,
    SAMPLE_METRICS,
    SAMPLERS,
    SPENDINGS,
    STACKABLE_TRAINING,
    TESTS,
    TRAINING_FIELDS,
    TRAINING_MAX,
    TUNING_SEED_BASE,
    Choice,
    IntUniform,
    LogUniform,
    Prediction,
    Sequential,
    Training,
    Tuning,
    Uniform,
    Variant,
    check_choice,
    is_real,
    metrics_of,
)
from harness.errors import DeclarationError

__all__ = ["Hypothesis", "diff_declarations"]


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
    exploratory: tuple = ()  # the `harness run --set` overrides of an exploratory version (harness.explore)
    first_seed: int = 0  # confirmatory seeds are first_seed .. first_seed + seeds - 1: start a
    # confirmatory version past the seeds its pilot used, so the pilot is never in its sample
    pilot: bool = False  # a `harness check --pilot N` version (harness.pilot): seeds outside the
    # confirmatory range, declared values, stored apart as ID@pilot; never evidence

    def __post_init__(self) -> None:
        from harness.registry import DATASETS, MODELS

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
            raise DeclarationError("dataset", self.dataset, f"one of {sorted(DATASETS)}", what="unknown dataset",
                                   choices=DATASETS)
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
                    what="unknown model", choices=MODELS,
                )
        self._model_names = list(dict.fromkeys(names))
        models = [MODELS[n] for n in self._model_names]
        for name, model_cls in zip(self._model_names, models):
            allowed_metrics = metrics_of(model_cls)
            if self.prediction.metric not in allowed_metrics:
                raise DeclarationError(
                    "prediction.metric", self.prediction.metric,
                    f"a metric model {name!r} reports: {list(allowed_metrics)}", what="unknown metric",
                    choices=allowed_metrics,
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
                        what="unknown config field", choices=allowed,
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
                ids = [level_id(v) for v in levels]
                long = next((i for i in ids if len(i) > MAX_LEVEL_CHARS), None)
                if long is not None:
                    raise DeclarationError(f"{where}.{name}", long[:60] + "...",
                                           f"a level of at most {MAX_LEVEL_CHARS} characters (got {len(long)})",
                                           what="level name too long")
                dups = sorted({i for i in ids if ids.count(i) > 1} | equal_levels(levels))
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
        self._check_prediction_budgets()
        if self.tuning is not None:
            self._check_tuning(config_fields)
            self._check_match_with_tuning(models)

    # ----------------------------------------------------------------- the grid
    @property
    def factor(self) -> str:
        """The ablated factor's name."""
        return next(iter(self.ablate))

    @property
    def levels(self) -> list[str]:
        """The ablated factor's level ids; the first is the control."""
        return [level_id(v) for v in self.ablate[self.factor]]

    @property
    def control(self) -> str:
        return self.levels[0]

    @property
    def strata_ids(self) -> list[str]:
        if not self.strata:
            return [""]
        names = list(self.strata)
        return [
            ",".join(f"{n}={level_id(v)}" for n, v in zip(names, combo))
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
            stratum = ",".join(f"{n}={level_id(v)}" for n, v in zip(names, combo))
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
                out.append(Variant(level_id(level), stratum, config, training, model))
        return out

    @property
    def evaluated_budgets(self) -> tuple[int, ...]:
        """The budgets (steps) every stratum's control is evaluated at: the budget labels of
        ``analysis.load`` (other variants' budgets pair with them by position)."""
        sets = [set(v.training.budgets) for v in self._variants if v.level == self.control]
        return tuple(sorted(set.intersection(*sets)))

    @property
    def confirmatory_budgets(self) -> tuple[int, ...]:
        """The budgets in the family (``prediction.budgets`` resolved): the final steps, every
        evaluated budget, or the named ones."""
        b = self.prediction.budgets
        if b == "all":
            return self.evaluated_budgets
        if b == "final":
            return (max(v.training.steps for v in self._variants if v.level == self.control),)
        return tuple(b)

    def _check_prediction_budgets(self) -> None:
        b = self.prediction.budgets
        if b == "final":
            return
        if isinstance(self.seeds, Sequential):
            raise DeclarationError("prediction.budgets", b, '"final" with a Sequential seed design: its looks '
                                   "decide on the final budget (drop budgets=, or use a fixed number of seeds)")
        evaluated = self.evaluated_budgets
        missing = [k for k in (b if isinstance(b, tuple) else ()) if k not in evaluated]
        if missing:
            raise DeclarationError(
                "prediction.budgets", b,
                f"budgets the runs are evaluated at: {list(evaluated)} (training.evaluate_at and steps); "
                f"{missing} {'is' if len(missing) == 1 else 'are'} not: add {'it' if len(missing) == 1 else 'them'} "
                "to training.evaluate_at, or name evaluated budgets", what="budget not evaluated")

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

    def _check_match_with_tuning(self, models: list[type]) -> None:
        """Matched FLOPs are resolved from the declared configurations: a tuned field that
        changes a model's size would change them after the match was made."""
        if not any(v.training.match for v in self._variants):
            return
        # ema: the average is an elementwise update after the optimiser step, outside the counted
        # forward and backward, so tuning it leaves the matched FLOPs as they are
        free = set(STACKABLE_TRAINING) | {"ema"} | {h for m in models for h in getattr(m, "hyper", ())}
        for name in self.tuning.space:
            if name not in free:
                raise DeclarationError(
                    f"tuning.space.{name}", name,
                    f"with training.match='flops' only values that leave the FLOPs unchanged may be tuned: "
                    f"{sorted(free)}; fix {name!r} or drop match", what="tuned field changes the matched FLOPs",
                )

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
            "model_code": {n: code_hash(MODELS[n]) for n in self._model_names},
            "fixed": jsonable(self.fixed),
            "ablate": jsonable(self.ablate),
            "strata": jsonable(self.strata),
            "prediction": prediction_canonical(self.prediction),
            "seeds": self.seeds.canonical() if isinstance(self.seeds, Sequential) else self.seeds,
            "training": training_canonical(self.training),
            "smoke": self.smoke,
            # left out at 0 (the default), so that files written before it keep their hash
            **({"first_seed": self.first_seed} if self.first_seed else {}),
            **({"tuning": self.tuning.canonical()} if self.tuning is not None else {}),
            # left out when empty: a registered declaration's hash never depends on it
            **({"exploratory": list(self.exploratory)} if self.exploratory else {}),
            **({"pilot": True} if self.pilot else {}),
        }

    @property
    def version(self) -> str:
        """Content hash (sha256, first 12 hex digits) of the canonical declaration."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
