"""Training compute, measured: FLOPs per step of a model configuration, and budgets matched on
them across variants (``Training(match="flops")``).

FLOPs are counted, not estimated: ``torch.utils.flop_counter.FlopCounterMode`` around ONE
member's loss forward and backward at the training batch size (``min(batch_size, train
examples)``, as the engine trains), on the CPU, once per (model class, config, dataset shape,
batch) in a process. It counts what it has formulas for (matmul, bmm, addmm, convolutions,
attention): the work that dominates these models; elementwise ops count 0. A run's
``train_flops`` is that count times its steps (Adam's and the EMA's elementwise updates are
not in it).

Matched compute. With ``match="flops"`` every variant's ``steps`` and ``evaluate_at`` are
rescaled so that its training FLOPs equal its stratum's control variant's at each declared
budget: ``steps_v = floor(k * F_control / F_v + 0.5)`` (nearest, halves up, at least 1) for
each declared budget k (the control's own steps), so a variant's FLOPs differ from the
control's by at most half a step's worth. Resolved here, in the process that needs it: the
check (``harness check`` prints the steps of every variant) and the worker that trains a
variant (:func:`resolve`); the declaration and its version keep the declared budgets.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from harness.errors import DeclarationError

_COUNTS: dict[tuple, Count] = {}


@dataclass(frozen=True)
class Count:
    """One member's training cost: FLOPs of one step (0: not countable) and its parameters."""

    flops_per_step: int
    params: int
    error: str = ""  # why the FLOPs could not be counted, when they could not


def count(model_cls: type, config, dataset, batch_size: int) -> Count:
    """FLOPs of one training step (loss forward + backward) of one member, and its parameters.

    Example::

        from harness import data, models
        c = count(models.VAE, models.VAE.Config(), data.load("digits"), 128)
        c.flops_per_step > 0
    """
    bsz = min(int(batch_size), int(dataset.train.shape[0]))
    key = (model_cls, repr(config), dataset.name, tuple(dataset.shape), dataset.levels, bsz)
    if key not in _COUNTS:
        _COUNTS[key] = _measure(model_cls, config, dataset, bsz)
    return _COUNTS[key]


def _measure(model_cls: type, config, dataset, bsz: int) -> Count:
    from torch.utils.flop_counter import FlopCounterMode

    from harness.models.groups import loss_methods

    try:  # a model that cannot even be built is not countable; its own error comes from training
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = model_cls(config, dataset.shape, dataset.levels)
    except Exception as exc:  # noqa: BLE001
        return Count(0, 0, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    params = sum(p.numel() for p in model.parameters())
    x = dataset.train[:bsz].cpu()
    try:
        g = torch.Generator().manual_seed(0)
        flops = 0
        for method in loss_methods(model_cls, config):  # one step: each update's forward + backward
            nz = model.noise("loss", bsz, 1, g, torch.device("cpu"))
            counter = FlopCounterMode(display=False)  # entering a counter resets it: one per update
            with counter:
                out = getattr(model, method)(x, nz)
                out[0].backward()
            flops += int(counter.get_total_flops())
    except Exception as exc:  # noqa: BLE001  (any failure means: not countable)
        return Count(0, params, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return Count(flops, params, "" if flops > 0 else "FlopCounterMode counted 0 FLOPs (no matmul-class op)")


def matched_budgets(hyp, dataset, where: str = "") -> dict[tuple[str, str], tuple[int, tuple[int, ...]]]:
    """(level, stratum) -> (steps, evaluate_at) of every variant whose ``training.match`` is
    "flops", each matched to its stratum's control variant (see the module docstring).

    ``where`` (the file) locates the error raised when a model's FLOPs cannot be counted or
    matched budgets collapse onto one step."""
    from harness.registry import MODELS

    def flops(v) -> int:
        c = count(MODELS[v.model], v.model_config, dataset, v.training.batch_size)
        if c.flops_per_step <= 0:
            err = DeclarationError(
                "training.match", "flops",
                f"a model whose training FLOPs can be counted; variant {v.id!r} (model {v.model!r}): {c.error}; "
                "drop match (train every variant the declared steps) or give the model matmul-class ops",
                what="FLOPs cannot be counted")
            raise err.at(where) if where else err
        return c.flops_per_step

    out = {}
    controls = {v.stratum: v for v in hyp.variants if v.level == hyp.control}
    for v in hyp.variants:
        if v.training.match != "flops":
            continue
        ctl = controls[v.stratum]
        ratio = flops(ctl) / flops(v)
        declared = ctl.training.budgets
        scaled = [max(1, math.floor(k * ratio + 0.5)) for k in declared]
        if any(b <= a for a, b in zip(scaled, scaled[1:])):
            err = DeclarationError(
                "training.evaluate_at", ctl.training.evaluate_at,
                f"budgets that stay distinct once variant {v.id!r} is matched on FLOPs (x{ratio:.3g} steps: "
                f"{declared} -> {scaled}); space them further apart", what="matched budgets collapse")
            raise err.at(where) if where else err
        out[v.level, v.stratum] = (scaled[-1], tuple(scaled[:-1]))
    return out


def resolve(hyp, variant, dataset):
    """The Training ``variant`` is trained with: its own, with matched steps and evaluate_at
    when ``match="flops"`` (its other values, tuned ones included, unchanged)."""
    t = variant.training
    if t.match != "flops":
        return t
    steps, at = matched_budgets(hyp, dataset)[variant.level, variant.stratum]
    return dataclasses.replace(t, steps=steps, evaluate_at=at)


def describe(hyp, dataset, where: str = "") -> list[str]:
    """``harness check``'s lines: each variant's FLOPs per step, parameters and the steps it trains."""
    from harness.registry import MODELS

    matched = matched_budgets(hyp, dataset, where) if any(v.training.match for v in hyp.variants) else {}
    lines = []
    for v in hyp.variants:
        c = count(MODELS[v.model], v.model_config, dataset, v.training.batch_size)
        steps, at = matched.get((v.level, v.stratum), (v.training.steps, v.training.evaluate_at))
        per = f"{c.flops_per_step:.3g} FLOPs/step" if c.flops_per_step else "FLOPs not countable"
        budgets = ", ".join(str(k) for k in (*at, steps))
        total = f", {c.flops_per_step * steps:.3g} FLOPs in all" if c.flops_per_step else ""
        lines.append(f"compute {v.id}: {c.params:,} parameters, {per}; evaluated at steps {budgets}{total}")
    return lines
