"""Masked layers for autoregressive networks (MADE, Germain et al. 2015), with several orderings.

``harness/models/iaf.py`` keeps its own one-ordering ``MaskedLinear``: moving it here would change
the code hash, hence the version, of every shipped IAF hypothesis (a built-in model's hash covers
its module, ``_util.py`` and ``base.py``). Fold the two together when iaf.py next changes.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE, Germain et al. 2015).

    ``mask`` is [out, in], or [M, out, in] for M masks (one per MADE ordering): then
    ``forward(x, which)`` uses mask ``which``, a long tensor (0-d: one mask for the batch; or
    shaped like x's batch axis: one mask per example). The masks are buffers, so they may
    differ between stacked seeds.
    """

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[-1], mask.shape[-2])
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, which: torch.Tensor | None = None) -> torch.Tensor:
        if which is None:
            return nn.functional.linear(x, self.weight * self.mask, self.bias)
        w = self.weight * self.mask[which]  # [out, in] or [n, out, in]
        if w.dim() == 2:
            return nn.functional.linear(x, w, self.bias)
        return torch.einsum("noi,ni->no", w, x) + self.bias


def made_masks(order: torch.Tensor, hidden: list[int], out_per_input: int = 1) -> list[torch.Tensor]:
    """MADE's masks for inputs of degree ``order`` [d] (a permutation of 1..d) through hidden
    layers of the given widths to ``out_per_input`` outputs per input (Germain et al. 2015, eq.
    12-13): hidden unit k of every layer has degree (k mod (d - 1)) + 1, so each degree is
    equally represented; a unit sees the previous layer's units of degree <= its own, and
    output i sees units of degree < order[i]. Returns one [out, in] 0/1 mask per layer; output
    unit i * out_per_input + j belongs to input i."""
    d = order.numel()
    degrees = [order]
    for h in hidden:
        degrees.append(torch.arange(h) % max(d - 1, 1) + 1)
    masks = [(b[:, None] >= a[None, :]).float() for a, b in zip(degrees[:-1], degrees[1:])]
    out_deg = order.repeat_interleave(out_per_input)
    masks.append((out_deg[:, None] > degrees[-1][None, :]).float())
    return masks
