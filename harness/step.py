"""Every member's loss, logged terms and gradient for one training step: eager or captured.

The engine (:mod:`harness.engine`) calls :class:`LossGrad` once per step. Eager (the
default), it is the batched forward ``vmap(functional_call(...))`` over the rows of the flat
``[S, P]`` parameters and one ordinary autograd backward through it, the gradient copied into
the block's persistent ``[S, P]`` buffer.

Captured (``HARNESS_COMPILE=1``, or ``train_block(..., compile=True)``): the same function, as
``torch.func.grad_and_value`` of the summed loss with respect to the flat parameters, wrapped
in ``torch.compile`` (CPU: inductor's C++ kernels, which need a C++ compiler; CUDA:
``mode="reduce-overhead"``, i.e. CUDA graphs: one launch replays the step's ~1,000 kernels).
It is an engine setting, not a declaration: it changes float rounding only (the compiled
kernels fuse and reorder elementwise work), never which numbers are drawn or how they are used,
so it is not part of a study's hash; the tests hold it to the eager step within float
tolerance. Compilation costs tens of seconds per variant and block shape (measured in
docs/benchmarks.md), so it pays only for long runs. A model that cannot be compiled falls back
to the eager step with a warning, on its first call; ``mode="loop"`` and models with parameter
groups always run eagerly.

``Training.precision``: "bf16" / "fp16" run the training forward and backward under autocast;
"tf32" lets fp32 matmuls and convolutions use TF32 tensor cores on a CUDA device that has them,
set only around the training step and restored after it (evaluation and sampling run in full
fp32). On a CPU "tf32" changes nothing (there is no TF32 there): the block warns once and
trains in fp32.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
from torch.func import functional_call, grad_and_value, vmap

COMPILE_ENV = "HARNESS_COMPILE"  # "1": capture the step with torch.compile (docs/benchmarks.md)
AUTOCAST = {"fp32": None, "tf32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Compiled steps, one per (model class, config but its `hyper` fields, data shape, device, mode,
# precision): a worker
# trains many blocks of one variant, and each would otherwise trace and compile again (dynamo
# keys its cache on the code object and guards on the model object, so a fresh closure per
# block is a recompile; after torch._dynamo.config.recompile_limit of them it silently runs
# eagerly). Blocks of one key share the first block's meta-device model: every weight and
# buffer comes in as an argument, so the model object carries only code and shapes.
_COMPILED: dict[tuple, object] = {}
RECOMPILE_LIMIT = 64  # shapes and variants one process may compile (torch's default is 8)


def compile_wanted(compile: bool | None = None) -> bool:
    """``compile`` if given, else the ``HARNESS_COMPILE`` environment variable (1/true/yes/on)."""
    if compile is not None:
        return bool(compile)
    return os.environ.get(COMPILE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def batched_loss(base: torch.nn.Module):
    """The batched forward: every member's (loss, logs) in one pass, one kernel per layer.

    The eager backward is ordinary autograd through the batched ops (not ``torch.func.grad``):
    the same gradients, a little faster here, and it keeps ``torch._dynamo`` (which
    ``torch.func.grad`` imports, 1.5 s on 2 cores) out of a run's start-up."""
    return vmap(
        lambda p, b, x, nz: functional_call(base, (p, b), (x, nz), kwargs={"method": "loss"}),
        randomness="error",  # a random op inside the model is a bug: it would couple seeds
    )


@contextlib.contextmanager
def tf32_matmuls(dev: torch.device):
    """TF32 for fp32 matmuls and convolutions on ``dev`` (CUDA) inside the block; restored after."""
    if dev.type != "cuda":
        yield
        return
    mm, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(mm, "fp32_precision"):  # torch >= 2.9: the allow_tf32 flags are deprecated
        old = (mm.fp32_precision, cudnn.conv.fp32_precision)
        mm.fp32_precision, cudnn.conv.fp32_precision = "tf32", "tf32"
        try:
            yield
        finally:
            mm.fp32_precision, cudnn.conv.fp32_precision = old
        return
    old = (mm.allow_tf32, cudnn.allow_tf32)
    mm.allow_tf32, cudnn.allow_tf32 = True, True
    try:
        yield
    finally:
        mm.allow_tf32, cudnn.allow_tf32 = old


def precision_context(precision: str, dev: torch.device):
    """The arithmetic of the training forward and backward (``Training.precision``)."""
    if precision == "tf32":
        return tf32_matmuls(dev)
    dtype = AUTOCAST[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=dtype)


class LossGrad:
    """``loss_grad(x, nz) -> (grad [S, P], loss [S], logs {name: [S]})`` for a block (the
    engine's ``_Block``: its base model, layout, flat parameters, buffers, loss scale, mode)."""

    def __init__(self, block, compile: bool = False, key: tuple | None = None):
        self.block = block
        self.batched = batched_loss(block.base) if block.mode == "vmap" else None
        self.compiled = self.key = None
        if block.precision == "tf32" and block.dev.type != "cuda":
            warnings.warn(f"precision='tf32' has no effect on {block.dev.type}: training runs in fp32", stacklevel=3)
        if compile:
            if self.batched is None:
                warnings.warn("HARNESS_COMPILE: mode='loop' is not compiled; the step runs eagerly", stacklevel=3)
            else:
                self.key = (key, block.dev, block.mode, block.precision, block.scale is None)
                if key is None or self.key not in _COMPILED:
                    _COMPILED[self.key] = self._compile()
                self.compiled = _COMPILED[self.key]  # None: it failed before; eager, warned once

    # -- eager ---------------------------------------------------------------------------
    def eager(self, x, nz):
        """The gradient lands in the persistent [S, P] buffer (one copy into memory that is
        already mapped, where a fresh [S, P] tensor per step costs page faults on a CPU). The
        gradient of the sum of the members' losses is each member's own gradient: member s's
        loss depends on row s alone."""
        blk = self.block
        views = blk.layout.unflatten(blk.flat.detach())  # {name: [S, ...]}, no copies
        leaves = [v.requires_grad_(True) for v in views.values()]
        with blk.precision_context():
            if self.batched is not None:
                loss, logs = self.batched(views, blk.buffers, x, nz)
            else:
                per_seed = [dict(zip(blk.layout.names, vs)) for vs in zip(*(v.unbind(0) for v in leaves))]
                out = [
                    functional_call(
                        blk.base,
                        (per_seed[i], {k: v[i] for k, v in blk.buffers.items()}),
                        (x[i], {k: v[i] for k, v in nz.items()}),
                        kwargs={"method": "loss"},
                    )
                    for i in range(blk.S)
                ]
                loss = torch.stack([o[0] for o in out])
                logs = {k: torch.stack([o[1][k] for o in out]) for k in out[0][1]}
        loss = loss.float()
        grads = torch.autograd.grad((loss if blk.scale is None else loss * blk.scale).sum(), leaves)
        for dst, g in zip(blk.grad_views, grads):  # one strided copy each (a transposed
            dst.copy_(g)  # gradient would cost two through reshape + cat)
        return blk.grad, loss.detach(), {k: v.detach() for k, v in logs.items()}

    # -- captured ------------------------------------------------------------------------
    def _compile(self):
        batched, layout, dev = self.batched, self.block.layout, self.block.dev

        def total(flat, buffers, x, nz, scale):
            loss, logs = batched(layout.unflatten(flat), buffers, x, nz)
            loss = loss.float()
            return (loss if scale is None else loss * scale).sum(), (loss, logs)

        fn = grad_and_value(total, has_aux=True)
        import torch._dynamo  # only when compiling: ~1.5 s of import a plain run does not pay

        cfg = torch._dynamo.config
        if hasattr(cfg, "recompile_limit"):
            cfg.recompile_limit = max(cfg.recompile_limit, RECOMPILE_LIMIT)
        mode = "reduce-overhead" if dev.type == "cuda" else None  # CUDA graphs
        return torch.compile(fn, mode=mode, dynamic=False)

    def __call__(self, x, nz):
        if self.compiled is None:
            return self.eager(x, nz)
        blk = self.block
        try:
            if blk.dev.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are consumed
            with blk.precision_context():  # autocast / TF32 flags: traced as the ambient state
                grad, (_, (loss, logs)) = self.compiled(blk.flat.detach(), blk.buffers, x, nz, blk.scale)
        except Exception as e:  # noqa: BLE001  (any model the compiler cannot take: run it eagerly)
            warnings.warn(
                f"HARNESS_COMPILE: {type(blk.base).__name__} could not be compiled "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); the step runs eagerly",
                stacklevel=2,
            )
            self.compiled = None
            if self.key is not None and self.key[0] is not None:
                _COMPILED[self.key] = None
            return self.eager(x, nz)
        return grad, loss, logs
