"""Registries of models and datasets, filled by decorators.

Built-in models and datasets register themselves when :mod:`harness.builtins` imports their
modules, which ``harness/__init__.py`` does once (this module imports none of them: the
registries sit below every model and dataset); a user registers a
model from a hypothesis file (or a module beside it) with ``@register_model("name")``, so no
file under ``harness/`` needs editing to test a new idea.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MODELS: dict[str, type] = {}
DATASETS: dict[str, Callable] = {}


def register_model(name: str) -> Callable[[type[T]], type[T]]:
    """Register a model class under ``name``.

    The class must subclass :class:`harness.models.GenerativeModel` and carry a ``Config``
    dataclass and a ``metrics`` tuple. Example::

        @register_model("tiny_vae")
        class TinyVAE(GenerativeModel):
            ...
    """

    def deco(cls: type[T]) -> type[T]:
        from harness.models.base import GenerativeModel

        if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
            raise TypeError(f"@register_model({name!r}) needs a GenerativeModel subclass, got {cls!r}")
        if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
            raise TypeError(f"model {name!r}: {cls.__name__}.Config must be a dataclass")
        if not getattr(cls, "metrics", None):
            raise TypeError(f"model {name!r}: {cls.__name__}.metrics must name the metrics it reports")
        from harness import names

        for m in cls.metrics:  # logged as MLflow metrics, its Config fields as parameters
            names.check(f"{cls.__name__}.metrics", m)
        for f in dataclasses.fields(cls.Config):
            names.check(f"{cls.__name__}.Config", f.name)
        cls.name = name
        MODELS[name] = cls
        return cls

    return deco


def register_dataset(name: str) -> Callable[[Callable], Callable]:
    """Register a dataset loader ``fn(root=None) -> harness.data.Dataset`` under ``name``."""

    def deco(fn: Callable) -> Callable:
        DATASETS[name] = fn
        return fn

    return deco


def get_model(name: str) -> type:
    return MODELS[name]
