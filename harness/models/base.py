"""The model contract every family implements (built-in or user-registered).

A model is an ``nn.Module`` with a ``Config`` dataclass (every field a grid may set), a
``metrics`` tuple naming what :meth:`evaluate` reports, and four methods. Randomness enters
only through the explicit ``noise`` dicts the engine draws from each seed's own generator:
that is what makes a seed's result identical whether it trains alone or stacked with 63 others
(the engine runs ``vmap(..., randomness="error")``, so a model that draws its own random
numbers fails loudly instead of silently coupling seeds).

``noise(method, n, k, generator, device)`` is called with exactly three ``method`` values:

- ``"loss"``: for one training minibatch of ``n`` examples (``k`` = 1), once per step;
- ``"evaluate"``: for ``n`` test examples with ``k`` = ``Training.eval_samples`` importance
  samples each (the IWAE bound; a model without importance sampling may ignore ``k``);
- ``"sample"``: for ``n`` = ``Training.n_samples`` samples (``k`` = 1), only when the model
  defines :meth:`~GenerativeModel.sample`.

It returns a dict of tensors drawn from ``generator`` only; the same dict is passed to the
method of that name. Every name in ``metrics`` is "lower is better" unless it is also listed
in ``higher_is_better`` (e.g. ``higher_is_better = ("accuracy",)``): the report orders its
secondary metrics by it, and a prediction on such a metric says ``direction="higher"``.

``sample`` is optional: a model that does not override it (an autoencoder: nothing to sample)
trains and is evaluated as usual, with no sample grid and no sample-quality metrics, and the
report says so. ``harness catalog`` lists every model's Config fields, defaults and comments.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class GenerativeModel(nn.Module):
    Config: type  # dataclass of hyper-parameters; every field may be a grid factor
    metrics: tuple[str, ...] = ()  # names evaluate() returns, all "lower is better" unless listed in:
    higher_is_better: tuple[str, ...] = ()  # the names in ``metrics`` whose higher value is better
    name: str = ""  # set by @register_model
    # Config fields that enter the computation only as scalar weights (a loss weight such as
    # beta, a penalty strength). The model reads them with ``self.hp(name)``, a 0-d tensor
    # buffer, never as ``self.config.name``: so tuning trials that differ only in them (and in
    # lr / grad_clip) train as members of ONE stacked block, each member with its own value.
    hyper: tuple[str, ...] = ()

    def __init__(self, config: Any, shape: tuple[int, ...], levels: int | None):
        super().__init__()
        self.config = config
        self.shape = tuple(shape)
        self.dim = math.prod(self.shape)
        self.levels = levels
        for name in type(self).hyper:
            self.register_buffer(f"hp_{name}", torch.tensor(float(getattr(config, name))), persistent=False)

    def hp(self, name: str) -> torch.Tensor:
        """The value of hyper-parameter ``name`` (listed in ``hyper``) for this member."""
        return getattr(self, f"hp_{name}")

    # -- randomness -------------------------------------------------------------------------
    def noise(self, method: str, n: int, k: int, generator: torch.Generator, device: torch.device) -> dict:
        """Draw the random inputs of ``method`` ("loss", "evaluate" or "sample": see the module
        docstring) for ``n`` examples with ``k`` importance samples each."""
        raise NotImplementedError(f"{type(self).__name__} must implement noise()")

    # -- the three things a model does ------------------------------------------------------
    def loss(self, x: torch.Tensor, noise: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training objective on a minibatch ``x`` [B, D]: (scalar to minimise, logged terms)."""
        raise NotImplementedError

    def evaluate(self, x: torch.Tensor, noise: dict) -> dict[str, torch.Tensor]:
        """Per-example test metrics [n] for every name in ``metrics``."""
        raise NotImplementedError

    def sample(self, noise: dict) -> torch.Tensor:
        """Samples [n, D] on [0, 1] (for the sample grid and sample-quality metrics); optional."""
        raise NotImplementedError

    def forward(self, *args: Any, method: str = "loss") -> Any:
        # torch.func.functional_call can only call forward; dispatch lets one stacked
        # parameter set serve loss, evaluate and sample alike.
        return getattr(self, method)(*args)


def can_sample(model_cls: type) -> bool:
    """Whether ``model_cls`` overrides :meth:`GenerativeModel.sample` (sampling is optional)."""
    return getattr(model_cls, "sample", None) is not GenerativeModel.sample
