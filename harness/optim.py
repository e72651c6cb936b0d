"""The optimiser of a stacked block: every member's parameters as one flat ``[S, P]`` tensor
and one Adam over it (elementwise, so members never share a number)."""

from __future__ import annotations

import math

import torch

from harness.errors import HarnessError


class Layout:
    """Named parameters <-> one flat row of P numbers (views, no copies)."""

    def __init__(self, stacked: dict[str, torch.Tensor]):
        self.names = list(stacked)
        self.shapes = [tuple(p.shape[1:]) for p in stacked.values()]
        self.sizes = [math.prod(s) for s in self.shapes]
        dtypes = {p.dtype for p in stacked.values()}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise HarnessError(f"the engine needs floating-point parameters of one dtype, got {sorted(map(str, dtypes))}")

    def flatten(self, stacked: dict[str, torch.Tensor]) -> torch.Tensor:
        S = next(iter(stacked.values())).shape[0]
        return torch.cat([stacked[n].reshape(S, -1) for n in self.names], dim=1).contiguous()

    def unflatten(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = row.split(self.sizes, dim=-1)
        return {n: t.reshape(*row.shape[:-1], *s) for n, t, s in zip(self.names, parts, self.shapes)}


class Adam:
    """Adam (torch's defaults: betas 0.9 / 0.999, eps 1e-8, no weight decay) over the flat
    [S, P] tensor: elementwise, so the seeds stay independent.

    It calls the fused kernel that ``torch.optim.Adam(fused=True)`` calls, with the same state
    and step counting, but without ``torch.optim.Optimizer``, whose constructor imports
    ``torch._dynamo`` (1.5 s of every ``harness run``'s start-up on a 2-core machine). Devices
    without the fused kernel get the same update in plain tensor ops.
    """

    def __init__(self, param: torch.Tensor, lr, betas=(0.9, 0.999), eps: float = 1e-8):
        # ``lr`` is one float, or an [S] tensor (tuning trials stacked in one block, each
        # member at its own learning rate: then the plain-ops update, per row).
        self.param, self.betas, self.eps = param, betas, eps
        self.lr = lr if isinstance(lr, torch.Tensor) else float(lr)
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.step_t = torch.zeros((), dtype=torch.float32, device=param.device)
        self.n = 0
        # The fused kernel needs a contiguous parameter: on a column slice of [S, P] (one
        # parameter group's columns, harness.group_steps) it writes the wrong memory.
        self.fused = (
            param.device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_") and not isinstance(lr, torch.Tensor)
            and param.is_contiguous()
        )

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.n += 1
        self.step_t.add_(1)
        if self.fused:
            torch._fused_adam_(
                [self.param], [grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_t],
                amsgrad=False, lr=self.lr, beta1=b1, beta2=b2, weight_decay=0.0, eps=self.eps,
                maximize=False, grad_scale=None, found_inf=None,
            )
            return
        self.exp_avg.lerp_(grad, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        bc1, bc2 = 1 - b1**self.n, 1 - b2**self.n
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(bc2)).add_(self.eps)
        if isinstance(self.lr, torch.Tensor):
            self.param.sub_(self.exp_avg / denom * (self.lr / bc1)[:, None])
            return
        self.param.addcdiv_(self.exp_avg, denom, value=-self.lr / bc1)


class Ema:
    """An exponential moving average of the flat [S, P] weights: ``ema = d * ema + (1 - d) * w``
    after every optimiser step, started at the initial weights (the plain form, no bias
    correction: early on it leans towards the initial weights, as the decay says it should).
    Elementwise (one ``lerp_``), so members never share a number."""

    def __init__(self, param: torch.Tensor, decay: float):
        if not 0 < decay < 1:
            raise HarnessError(f"EMA decay {decay!r}: expected a number strictly between 0 and 1")
        self.param, self.decay = param, float(decay)
        self.avg = param.detach().clone()

    @torch.no_grad()
    def update(self) -> None:
        self.avg.lerp_(self.param, 1.0 - self.decay)
