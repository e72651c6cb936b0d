"""harness: pre-registered, multi-seed ablation studies of deep generative models.

A hypothesis file needs only this surface::

    from harness import Hypothesis, Prediction, Training

    hypothesis = Hypothesis(claim=..., prediction=Prediction(...), ablate={...})
"""

from harness.errors import DeclarationError, HarnessError
from harness.hypothesis import (
    Choice,
    Hypothesis,
    IntUniform,
    LogUniform,
    Prediction,
    Sequential,
    Training,
    Tuning,
    Uniform,
)
from harness.models.base import GenerativeModel
from harness.registry import register_dataset, register_model

__all__ = [
    "Choice",
    "DeclarationError",
    "GenerativeModel",
    "HarnessError",
    "Hypothesis",
    "IntUniform",
    "LogUniform",
    "Prediction",
    "Sequential",
    "Training",
    "Tuning",
    "Uniform",
    "register_dataset",
    "register_model",
]
__version__ = "0.1.0"

import harness.builtins  # noqa: E402, F401  (registers the built-in models and datasets, last)
