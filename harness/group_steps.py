"""The engine's side of parameter groups and stages (the contract: harness/models/groups.py).

A grouped model's parameters are laid out group by group, so a group is one column range
``[a, b)`` of the block's flat ``[S, P]`` tensor; each group has its own Adam over that
(strided) view, its own contiguous gradient buffer, and its own learning rate (per member
when tuning trials differ in it) and betas. One training step runs the current stage's
updates in order; each update is one vmap'd forward of the named method, a backward to that
group's parameters only, per-member divergence masking and clipping, and that group's Adam
step; a buffer update is stored per live member. A model without groups never reaches here.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, vmap

from harness.errors import HarnessError
from harness.models.groups import group_of, plan_stages
from harness.optim import Adam, Layout


def order_by_group(model_cls: type, params: dict) -> dict:
    """``params`` reordered group by group (the groups' declared order), each group's
    parameters in the model's order: every group becomes one column range of [S, P]."""
    try:
        of = {n: group_of(model_cls, n) for n in params}
    except ValueError as e:
        raise HarnessError(str(e)) from None
    return {n: params[n] for g in model_cls.groups for n in params if of[n] == g}


class GroupedSteps:
    """Per-group optimisers and the stage schedule of one block (``block`` is the engine's
    ``_Block``: its flat parameters, buffers, streams, masks and histories are used as is)."""

    def __init__(self, block, model_cls: type, configs: list, lrs: list):
        if block.scale is not None:
            raise HarnessError(f"model {model_cls.__name__} has parameter groups: precision='fp16' is not supported; use 'fp32' or 'bf16'")
        try:
            self.stages = plan_stages(model_cls, configs[0])
        except ValueError as e:
            raise HarnessError(str(e)) from None
        self.block = block
        names = block.layout.names
        of = {n: group_of(model_cls, n) for n in names}
        self.names: dict[str, list[str]] = {g: [n for n in names if of[n] == g] for g in model_cls.groups}
        self.adams: dict[str, Adam] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.grad_views: dict[str, list[torch.Tensor]] = {}
        start, sizes = 0, dict(zip(names, block.layout.sizes))
        dev, dtype = block.dev, block.flat.dtype
        for g, grp in model_cls.groups.items():
            width = sum(sizes[n] for n in self.names[g])
            if grp.lr is None:
                vals = [float(lr) for lr in lrs]
            else:
                vals = [float(getattr(c, grp.lr)) for c in configs]
            lr = vals[0] if len(set(vals)) == 1 else torch.tensor(vals, device=dev, dtype=dtype)
            betas = (0.9, 0.999) if grp.betas is None else tuple(float(getattr(configs[0], b)) for b in grp.betas)
            self.adams[g] = Adam(block.flat[:, start : start + width], lr, betas=betas)
            self.grads[g] = torch.zeros(block.S, width, device=dev, dtype=dtype)
            sub = Layout({n: torch.empty(1, *s) for n, s in zip(names, block.layout.shapes) if of[n] == g})
            self.grad_views[g] = list(sub.unflatten(self.grads[g]).values())
            start += width
        self.vmaps: dict[str, object] = {}
        self.acc: dict[str, torch.Tensor] = {}
        self.cnt: dict[str, int] = {}

    def stage_at(self, step: int):
        return next(s for s in self.stages if s.start <= step < s.end)

    # -- one update ----------------------------------------------------------------------
    def _vmap(self, method: str):
        if method not in self.vmaps:
            base = self.block.base
            self.vmaps[method] = vmap(
                lambda p, b, x, nz: functional_call(base, (p, b), (x, nz), kwargs={"method": method}),
                randomness="error",
            )
        return self.vmaps[method]

    def _forward_backward(self, update, x, nz):
        blk = self.block
        views = blk.layout.unflatten(blk.flat.detach())
        leaves = [views[n].requires_grad_(True) for n in self.names[update.group]]
        with blk.precision_context():
            if blk.mode == "vmap":
                out = self._vmap(update.method)(views, blk.buffers, x, nz)
            else:
                per = [
                    functional_call(
                        blk.base,
                        ({k: v[i] for k, v in views.items()}, {k: v[i] for k, v in blk.buffers.items()}),
                        (x[i], {k: v[i] for k, v in nz.items()}),
                        kwargs={"method": update.method},
                    )
                    for i in range(blk.S)
                ]
                out = tuple(
                    torch.stack([o[j] for o in per]) if j == 0 else {k: torch.stack([o[j][k] for o in per]) for k in per[0][j]}
                    for j in range(len(per[0]))
                )
        loss = out[0].float()
        grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
        for dst, g in zip(self.grad_views[update.group], grads):
            if g is None:
                dst.zero_()
            else:
                dst.copy_(g)
        logs = {k: v.detach().float() for k, v in out[1].items()}
        new_buffers = {k: v.detach() for k, v in out[2].items()} if update.buffers else {}
        return loss.detach(), logs, new_buffers

    def _apply(self, step: int, update, x, nz) -> dict:
        blk = self.block
        loss, logs, new_buffers = self._forward_backward(update, x, nz)
        grad = self.grads[update.group]
        norm = torch.linalg.vector_norm(grad, dim=1)
        ok = torch.isfinite(loss) & torch.isfinite(norm)
        blk.failed_step.masked_fill_(blk.alive & ~ok, step)
        blk.alive &= ok
        coef = blk.alive.to(grad.dtype)
        if blk.clip is not None:
            coef = coef * torch.clamp(blk.clip / (torch.where(blk.alive, norm, torch.zeros_like(norm)) + 1e-6), max=1.0)
        grad.mul_(coef[:, None])
        grad.nan_to_num_(0.0, 0.0, 0.0)
        self.adams[update.group].step(grad)
        for k, v in new_buffers.items():
            keep = blk.alive.view(-1, *([1] * (v.dim() - 1)))
            blk.buffers[k] = torch.where(keep, v.to(blk.buffers[k].dtype), blk.buffers[k])
        return logs

    # -- one training step ---------------------------------------------------------------
    def step(self, step: int, x: torch.Tensor, nz: dict) -> None:
        blk = self.block
        updates = self.stage_at(step).updates
        extra = len(updates) - 1
        if extra:  # the next batches and noise of the same per-member streams
            idx = blk._draw_indices(extra)
            more_nz = blk._draw_noise(extra)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for j, u in enumerate(updates):
            xj = x if j == 0 else blk.train[idx[:, j - 1]]
            nzj = nz if j == 0 else {k: v[j - 1] for k, v in more_nz.items()}
            for k, v in self._apply(step, u, xj, nzj).items():
                sums[k] = sums.get(k, 0) + v
                counts[k] = counts.get(k, 0) + 1
        self._log(step, {k: v / counts[k] for k, v in sums.items()})

    def _log(self, step: int, logs: dict) -> None:
        """Accumulate the step's terms; write the log_every means into the block's history
        (a term new in this stage gets a NaN past; a term absent in it is NaN here)."""
        blk = self.block
        t = blk.training
        if blk.log_keys is None:
            blk.log_keys = []
        for k in logs:
            if k not in blk.log_keys:
                blk.log_keys.append(k)
                blk.hist = [torch.cat([h, torch.full_like(h[:1], float("nan"))]) for h in blk.hist]
        for k, v in logs.items():
            v = v.masked_fill(~blk.alive, float("nan"))
            self.acc[k] = self.acc.get(k, 0) + v
            self.cnt[k] = self.cnt.get(k, 0) + 1
        if (step + 1) % t.log_every == 0 or step + 1 == t.steps:
            nan = torch.full((blk.S,), float("nan"), device=blk.dev)
            blk.hist.append(torch.stack([self.acc[k] / self.cnt[k] if k in self.acc else nan for k in blk.log_keys]))
            blk.hist_steps.append(step + 1)
            self.acc, self.cnt = {}, {}
