"""Parameter groups, stages and buffer updates: the model contract for several optimisers.

A model that needs more than "one loss, one Adam over every parameter" (a GAN's generator and
discriminator, a VQ-VAE's autoencoder and its prior trained afterwards) declares it in two
class attributes and the engine does the rest; no engine edit per model (PyTorch Lightning's
"several optimisers in one model", without manual optimisation):

- ``groups``: ``{name: Group(prefixes, lr=..., betas=...)}``. Every parameter belongs to
  exactly one group, chosen by the prefix of its name (``"gen."`` for ``self.gen``). Each
  group has its own Adam over its own columns of the stacked ``[S, P]`` tensor, its own
  learning rate (a Config field, so tuning trials may differ in it per member: list the field
  in ``hyper``; ``None`` = ``Training.lr``) and its own betas (two Config fields, or torch's
  defaults).
- ``stages``: ``(Stage(name, updates, steps=...), ...)``, run in order. A stage lasts
  ``config.<steps>`` training steps (the last stage: ``steps=None``, the rest of
  ``Training.steps``). Each training step of a stage runs its ``updates`` in order; an
  ``Update(group, method, repeat, buffers)`` calls the model method ``method(x, noise) ->
  (scalar, logs)`` and steps that group's Adam on its gradient, ``repeat`` times (an int or a
  Config field: a GAN's ``d_steps``). Groups a stage does not update stay frozen (their Adam
  state too).
- Buffer updates (state that is not a gradient step: an EMA codebook): an ``Update`` with
  ``buffers=True`` calls a method that returns ``(scalar, logs, {buffer name: new value})``;
  the engine stores the new values per member after the step (a member that diverged keeps
  its old ones). A model never mutates a buffer in place (that would break ``vmap``).

Randomness stays the engine's: every update of a step gets its own minibatch and its own
``noise("loss", ...)`` draw from the member's own data and noise streams (the first update the
step's batch, the others the next batches of the same streams), so a member trained alone or
in a block sees the same numbers. Per member, as for a one-group model: gradient clipping
(each update's own norm, ``Training.grad_clip``) and divergence masking (a non-finite loss or
gradient in ANY update marks the member FAILED). ``Training.precision="fp16"`` is refused for
grouped models (one loss scale per group is not implemented); fp32 and bf16 work. Logged terms
of a step are averaged over an update's repeats; a term that a stage does not log is NaN in
that stage's history. A model without ``groups`` trains exactly as before.

Example (a GAN; harness/models/gan.py is the full one)::

    class GAN(GenerativeModel):
        groups = {
            "generator": Group(("gen.",), lr="lr_g", betas=("beta1", "beta2")),
            "discriminator": Group(("disc.",), lr="lr_d", betas=("beta1", "beta2")),
        }
        stages = (Stage("adversarial", (Update("discriminator", "d_loss", repeat="d_steps"),
                                        Update("generator", "g_loss"))),)

        def d_loss(self, x, noise): ...   # -> (scalar, logs)
        def g_loss(self, x, noise): ...

and a two-stage model with a buffer update (harness/models/vqvae.py)::

    stages = (Stage("autoencoder", (Update("autoencoder", "ae_loss", buffers=True),), steps="ae_steps"),
              Stage("prior", (Update("prior", "prior_loss"),)))
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    """Parameters whose names start with one of ``prefixes``, with their own Adam."""

    prefixes: tuple[str, ...]  # parameter-name prefixes, e.g. ("gen.",)
    lr: str | None = None  # Config field holding this group's learning rate; None: Training.lr
    betas: tuple[str, str] | None = None  # Config fields holding Adam's beta1, beta2; None: 0.9, 0.999


@dataclass(frozen=True)
class Update:
    """One optimiser step of ``group`` on the loss ``method(x, noise)`` returns."""

    group: str
    method: str = "loss"  # model method: (x, noise) -> (scalar, logs[, new buffers])
    repeat: int | str = 1  # times per training step: an int, or the Config field holding it
    buffers: bool = False  # method also returns {buffer name: new value} (a non-gradient update)


@dataclass(frozen=True)
class Stage:
    """A run of training steps in which ``updates`` run, in order, every step."""

    name: str
    updates: tuple[Update, ...]
    steps: str | None = None  # Config field: the stage's length in steps; None: the rest (last stage)


@dataclass(frozen=True)
class PlannedStage:
    """A stage resolved against a Config: steps [start, end), each update repeated."""

    name: str
    start: int
    end: float  # math.inf for the last stage
    updates: tuple[Update, ...]  # repeats expanded, in the order they run


def is_grouped(model_cls: type) -> bool:
    return bool(getattr(model_cls, "groups", None))


def plan_stages(model_cls: type, config) -> list[PlannedStage]:
    """The stages of ``model_cls`` under ``config``, validated (ValueError names what is wrong)."""
    groups = model_cls.groups
    stages = getattr(model_cls, "stages", ())
    where = f"model {model_cls.__name__}"
    if not stages:
        raise ValueError(f"{where} declares groups but no stages")
    for name, g in groups.items():
        if not isinstance(g, Group) or not g.prefixes:
            raise ValueError(f"{where}: group {name!r} must be a Group with at least one prefix")
    out, start = [], 0
    for k, st in enumerate(stages):
        if st.steps is None and k != len(stages) - 1:
            raise ValueError(f"{where}: stage {st.name!r} needs steps= (only the last stage runs to the end)")
        length = float("inf") if st.steps is None else int(getattr(config, st.steps))
        if length < 0:
            raise ValueError(f"{where}: stage {st.name!r} has {length} steps")
        expanded = []
        for u in st.updates:
            if u.group not in groups:
                raise ValueError(f"{where}: stage {st.name!r} updates unknown group {u.group!r}; groups: {list(groups)}")
            if not callable(getattr(model_cls, u.method, None)):
                raise ValueError(f"{where}: update method {u.method!r} is not a method of the model")
            n = getattr(config, u.repeat) if isinstance(u.repeat, str) else u.repeat
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"{where}: update of {u.group!r} repeats {n!r} times; expected a positive integer")
            expanded += [u] * n
        if not expanded:
            raise ValueError(f"{where}: stage {st.name!r} has no updates")
        out.append(PlannedStage(st.name, start, start + length, tuple(expanded)))
        start = start + length
    return out


def group_of(model_cls: type, param_name: str) -> str:
    """The group a parameter belongs to (exactly one, by prefix), or ValueError."""
    hits = [g for g, grp in model_cls.groups.items() if any(param_name.startswith(p) for p in grp.prefixes)]
    if len(hits) != 1:
        raise ValueError(
            f"model {model_cls.__name__}: parameter {param_name!r} is in {len(hits)} groups {hits}; "
            "every parameter must match the prefixes of exactly one group"
        )
    return hits[0]


def loss_methods(model_cls: type, config) -> list[str]:
    """The loss methods one training step calls, in order: ``["loss"]`` for an ungrouped model,
    else the updates of the FIRST stage, repeats expanded (``harness.compute`` counts a step's
    FLOPs from them; a later stage such as VQ-VAE's prior is cheaper, so a grouped model's
    FLOPs per step are those of its first stage: an over-count that, under ``match="flops"``,
    gives it fewer steps, never more)."""
    if not is_grouped(model_cls):
        return ["loss"]
    return [u.method for u in plan_stages(model_cls, config)[0].updates]
