"""Train one variant for a block of seeds as ONE stacked model.

The S seeds' parameters live in one flat ``[S, P]`` tensor: row s is seed s's parameters, and
each named parameter is a view of its columns (``torch.func.stack_module_state`` builds it).
One step computes every seed's loss and gradient:

* ``mode="vmap"`` (the default): ``vmap(functional_call(...))`` over the rows, so each layer
  runs as one batched matmul for all seeds, and ordinary autograd through those batched ops
  gives every seed's gradient (the gradient of the sum of the seeds' losses: seed s's loss
  depends on row s alone). This backward is a little faster than ``torch.func.grad`` here, and
  unlike it never imports ``torch._dynamo`` (1.5 s of start-up on 2 cores);
* ``mode="loop"``: the seeds' forward passes one after another in one autograd graph (plain
  per-seed kernels; for models with ops that have no vmap batching rule).

Either way the seeds never share a number: clipping uses each row's own norm, and Adam (one
fused kernel over ``[S, P]``) is elementwise with a learning rate that is the same constant
for every seed. Each seed has its own random streams, from generators seeded by the seed
alone, each through ``harness.seeds.stream_seed(seed, purpose)`` so that no two streams of any
seeds coincide: init, data order, training noise, evaluation and sampling noise. Data order
and training noise are drawn ``CHUNK_STEPS`` steps at a time (one call per seed and chunk,
not per step); chunk sizes depend on the training settings and the data, never on S. So a
seed trained alone and the same seed trained in a block of 64 see the same numbers and end at
the same parameters up to float rounding (``tests/test_engine.py``).

A seed whose loss or gradient goes non-finite is masked out (its gradient zeroed from then on,
its histories NaN) and reported FAILED with the step; the others finish. Nothing in a step
reads a value back to the host: the data are resident on the device and batches are gathered
by index, training terms accumulate on the device and are read back once, at the end.

``Training.precision`` (declared, "fp32" by default) switches the training forward and
backward to autocast bf16 or fp16; weights, gradients and Adam state stay fp32, evaluation and
sampling always run in fp32. fp16 keeps one dynamic loss scale per seed (on overflow that
seed's step is skipped and its scale halved), so even the scaler does not couple seeds.

``auto_block_size`` picks S from free GPU memory (measured) or a CPU cap. No MLflow here: the
engine returns plain results and the caller logs them.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from harness.dataset import Dataset
from harness.errors import HarnessError
from harness.hypothesis import STACKABLE_TRAINING, Training
from harness.models.base import can_sample
from harness.seeds import stream_seed

# Stream purposes hashed with each seed (harness.seeds): data order, training, evaluation and
# sample noise, and the Bernoulli draws of a dynamically binarized dataset; init is "init".
_DATA, _NOISE, _EVAL, _SAMPLE, _BINARIZE = "data", "noise", "eval", "sample", "binarize"

# Randomness is drawn for CHUNK_STEPS steps at a time per seed (fewer when one step's noise is
# large: at most CHUNK_ELEMENTS numbers per seed and chunk). Both are constants, so a seed's
# streams never depend on which seeds share its block.
CHUNK_STEPS = 64
CHUNK_ELEMENTS = 2**20
# Evaluation runs over chunks of the test split sized so that one seed's widest tensor holds
# about EVAL_CHUNK_ELEMENTS numbers (K samples x examples x decoder outputs). The chunk size
# fixes how each seed's evaluation noise is drawn, so it depends on K and the data only, never
# on S (a block of S seeds holds S such tensors at once).
EVAL_CHUNK_ELEMENTS = 2**22
# auto_block_size: the default cap, and the share of free GPU memory a block may plan to use.
CPU_MAX_BLOCK = 16
GPU_MAX_BLOCK = 256
GPU_MEMORY_SHARE = 0.8
MODES = ("auto", "vmap", "loop")
# glibc malloc on CPU: keep freed memory mapped (see tune_cpu_allocator).
ALLOCATOR_ENV = "HARNESS_CPU_ALLOCATOR"  # "default" leaves malloc as it is
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 512 * 2**20
_allocator_tuned = False
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class SeedResult:
    """What one seed of a block produced."""

    seed: int
    status: str  # "FINISHED" or "FAILED" (diverged: non-finite loss or gradient)
    metrics: dict[str, float]  # test-split means of the model's metrics (NaN if failed)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # train terms
    samples: np.ndarray | None = None  # [n, *shape] on [0, 1]
    error: str | None = None
    seconds: float = 0.0  # this seed's share of the block's wall time
    failed_at_step: int | None = None
    state: dict[str, torch.Tensor] | None = None  # final parameters (CPU), with keep_state=True
    skipped_steps: int = 0  # precision="fp16": steps skipped for this seed on loss-scale overflow


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is a user error."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"--device {device}: no CUDA device is visible here; use --device auto or cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise HarnessError(f"--device {device!r}: expected auto, cpu or cuda[:N]")
    return torch.device(device)


def _generator(seed: int, stream: str, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g


def build_model(model_cls: type, config, dataset: Dataset, seed: int) -> torch.nn.Module:
    """The seed's freshly initialised model (CPU); init depends on the seed only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        return model_cls(config, dataset.shape, dataset.levels)


def tune_cpu_allocator() -> bool:
    """Stop glibc malloc from handing every large tensor back to the kernel (once per process).

    By default glibc serves blocks above 128 KB-32 MB with fresh ``mmap`` pages and trims the
    heap eagerly, so every step's multi-MB activations and gradients are page-faulted in anew:
    on the 2-core machine that was 12-20 % of a training step (a 4.5 MB clone: 0.87 ms with
    300 page faults, 0.15 ms with none). Raising ``M_MMAP_THRESHOLD`` to 256 MB and
    ``M_TRIM_THRESHOLD`` to 512 MB keeps that memory mapped and reused; the cost is that the
    process keeps up to 512 MB of freed heap instead of returning it to the system.
    Called by ``train_block`` on CPU; a no-op off glibc, or with ``HARNESS_CPU_ALLOCATOR=default``.
    Returns whether the setting is in force.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if os.environ.get(ALLOCATOR_ENV, "tuned") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        _allocator_tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc
        return False
    return _allocator_tuned


def resolve_mode(mode: str, device: torch.device) -> str:
    """``auto`` is ``vmap`` on every device: on CUDA one batched kernel per layer for all seeds;
    on a 2-core CPU it measured 5 % faster than ``loop`` on one thread and 1.8x on two (the
    per-seed kernels of ``loop`` are too small to use both cores)."""
    if mode not in MODES:
        raise HarnessError(f"engine mode {mode!r}: expected one of {list(MODES)}")
    if mode == "auto":
        return "vmap"
    return mode


# ------------------------------------------------------------------------------ the block
class _Layout:
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


class _Adam:
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
        self.fused = (
            param.device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_") and not isinstance(lr, torch.Tensor)
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


class _Block:
    """The state of S seeds of one variant being trained together (see module docstring)."""

    def __init__(self, model_cls, config, training: Training, dataset: Dataset, seeds, dev, mode, members=None):
        self.training, self.dataset, self.seeds, self.dev = training, dataset, list(seeds), dev
        self.mode = mode
        self.S = S = len(seeds)
        configs = [m[0] for m in members] if members else [config] * S
        models = [build_model(model_cls, c, dataset, s) for c, s in zip(configs, seeds)]
        self.base = copy.deepcopy(models[0]).to("meta")  # shapes and code; weights come per call
        params, buffers = stack_module_state(models)
        del models
        self.layout = _Layout(params)
        self.flat = self.layout.flatten({k: v.detach() for k, v in params.items()}).to(dev)
        self.buffers = {k: v.to(dev) for k, v in buffers.items()}
        # Per-member learning rates and clip norms when tuning trials share the block.
        self.clip = training.grad_clip
        lr = training.lr
        if members:
            lr = torch.tensor([float(m[1].lr) for m in members], device=dev, dtype=self.flat.dtype)
            clips = [m[1].grad_clip for m in members]
            if any(c is not None for c in clips):
                self.clip = torch.tensor([math.inf if c is None else float(c) for c in clips], device=dev)
            else:
                self.clip = None
        self.adam = _Adam(self.flat, lr)
        self.grad = torch.zeros_like(self.flat)  # reused every step
        self.grad_views = list(self.layout.unflatten(self.grad).values())

        self.train = dataset.train.to(dev)
        n = self.train.shape[0]
        self.bsz = bsz = min(training.batch_size, n)
        self.per_epoch = n // bsz
        self.epochs_per_draw = max(1, math.ceil(CHUNK_STEPS / self.per_epoch))
        self.g_data = [_generator(s, _DATA, dev) for s in seeds]
        self.g_noise = [_generator(s, _NOISE, dev) for s in seeds]
        self._idx = torch.empty(S, 0, bsz, dtype=torch.long, device=dev)
        probe = self.base.noise("loss", bsz, 1, torch.Generator(device=dev).manual_seed(0), dev)
        per_step = sum(v.numel() for v in probe.values())
        self.noise_keys = list(probe)
        # Dynamic binarization (Dataset.dynamic_binarization): every training minibatch is
        # redrawn as x ~ Bernoulli(p) from the seed's own stream, one uniform per pixel drawn
        # with the chunk's noise; those uniforms count towards the chunk's size.
        self.g_bin = [_generator(s, _BINARIZE, dev) for s in seeds] if dataset.dynamic_binarization else None
        if self.g_bin is not None:
            per_step += bsz * dataset.dim
        self.chunk = max(1, min(CHUNK_STEPS, CHUNK_ELEMENTS // max(per_step, 1)))
        self._vmap_noise = self._noise_vmaps()

        self.precision = getattr(training, "precision", "fp32")
        self.amp_dtype = _AUTOCAST[self.precision]
        self.scale = None
        if self.precision == "fp16":
            self.scale = torch.full((S,), 2.0**16, device=dev)
            self.good_steps = torch.zeros(S, dtype=torch.long, device=dev)

        self.alive = torch.ones(S, dtype=torch.bool, device=dev)
        self.failed_step = torch.full((S,), -1, dtype=torch.long, device=dev)
        self.skipped = torch.zeros(S, dtype=torch.long, device=dev)
        self.log_keys: list[str] | None = None
        self.acc = None
        self.hist: list[torch.Tensor] = []
        self.hist_steps: list[int] = []
        self._grad_step = self._make_vmap_step() if mode == "vmap" else None  # after self.scale
        self.vmap_eval = dev.type == "cuda"  # evaluation and sampling: see _per_seed

    # -- randomness, drawn per seed in chunks --------------------------------------------
    def _draw_indices(self, steps: int) -> torch.Tensor:
        """The next ``steps`` batches of every seed's own shuffled order: [S, steps, B]."""
        n, bsz, pe = self.train.shape[0], self.bsz, self.per_epoch
        while self._idx.shape[1] < steps:
            E = self.epochs_per_draw
            more = torch.stack([
                torch.stack([torch.randperm(n, generator=g, device=self.dev)[: pe * bsz] for _ in range(E)])
                for g in self.g_data
            ])  # [S, E, pe * B]
            self._idx = torch.cat([self._idx, more.view(self.S, E * pe, bsz)], dim=1)
        out, self._idx = self._idx[:, :steps], self._idx[:, steps:]
        return out

    def _draw_noise(self, steps: int) -> dict[str, torch.Tensor]:
        """Training noise for ``steps`` steps: {key: [steps, S, ...]}."""
        if not self.noise_keys:
            return {}
        per_seed = [self._seed_noise(g, steps) for g in self.g_noise]
        return {k: torch.stack([d[k] for d in per_seed], dim=1) for k in self.noise_keys}

    def _draw_binarize(self, steps: int) -> torch.Tensor | None:
        """Uniforms for ``steps`` binarized minibatches, from each seed's own stream: x is on
        where u < p (P = p). [S, steps, B, *shape], or None without dynamic binarization."""
        if self.g_bin is None:
            return None
        shape = (steps, self.bsz, *self.train.shape[1:])
        return torch.stack([torch.rand(shape, generator=g, device=self.dev) for g in self.g_bin])

    def _noise_vmaps(self) -> bool:
        """Whether the model's noise() can be drawn for many steps in one call (decided once per
        model, on a scratch generator, so every seed of every block draws the same way)."""
        if not self.noise_keys:
            return False
        try:
            self._seed_noise(torch.Generator(device=self.dev).manual_seed(0), 2, batched=True)
            return True
        except Exception:  # noqa: BLE001  (a random op without a vmap batching rule)
            return False

    def _seed_noise(self, g: torch.Generator, steps: int, batched: bool | None = None) -> dict[str, torch.Tensor]:
        """``steps`` steps of one seed's training noise from its own generator: {k: [steps, ...]}."""
        base, bsz, dev = self.base, self.bsz, self.dev
        if self._vmap_noise if batched is None else batched:
            # One call for all `steps` (model-agnostic: vmap puts the leading axis on every
            # random op in the model's noise(), drawn from the seed's generator).
            fn = vmap(lambda _: base.noise("loss", bsz, 1, g, dev), randomness="different")
            return fn(torch.empty(steps, device=dev))
        draws = [base.noise("loss", bsz, 1, g, dev) for _ in range(steps)]
        return {k: torch.stack([d[k] for d in draws]) for k in self.noise_keys}

    # -- one step ------------------------------------------------------------------------
    def _make_vmap_step(self):
        """The batched forward: every seed's (loss, logs) in one pass, one kernel per layer.

        The backward is ordinary autograd through the batched ops (not ``torch.func.grad``):
        the same gradients, a little faster here, and it keeps ``torch._dynamo`` (which
        ``torch.func.grad`` imports, 1.5 s on 2 cores) out of a run's start-up."""
        base = self.base
        return vmap(
            lambda p, b, x, nz: functional_call(base, (p, b), (x, nz), kwargs={"method": "loss"}),
            randomness="error",  # a random op inside the model is a bug: it would couple seeds
        )

    def _amp(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.dev.type, dtype=self.amp_dtype)

    def _forward_backward(self, x, nz):
        """Every seed's loss and gradient; the gradient lands in the persistent [S, P] buffer
        (one copy into memory that is already mapped, where a fresh [S, P] tensor per step
        costs page faults on a CPU). The gradient of the sum of the seeds' losses is each
        seed's own gradient: seed s's loss depends on row s alone."""
        views = self.layout.unflatten(self.flat.detach())  # {name: [S, ...]}, no copies
        leaves = [v.requires_grad_(True) for v in views.values()]
        with self._amp():
            if self.mode == "vmap":
                loss, logs = self._grad_step(views, self.buffers, x, nz)
            else:
                per_seed = [dict(zip(self.layout.names, vs)) for vs in zip(*(v.unbind(0) for v in leaves))]
                out = [
                    functional_call(
                        self.base,
                        (per_seed[i], {k: v[i] for k, v in self.buffers.items()}),
                        (x[i], {k: v[i] for k, v in nz.items()}),
                        kwargs={"method": "loss"},
                    )
                    for i in range(self.S)
                ]
                loss = torch.stack([o[0] for o in out])
                logs = {k: torch.stack([o[1][k] for o in out]) for k in out[0][1]}
        loss = loss.float()
        grads = torch.autograd.grad((loss if self.scale is None else loss * self.scale).sum(), leaves)
        for dst, g in zip(self.grad_views, grads):  # one strided copy each (a transposed
            dst.copy_(g)  # gradient would cost two through reshape + cat)
        return self.grad, loss.detach(), {k: v.detach() for k, v in logs.items()}

    def step(self, step: int, x: torch.Tensor, nz: dict) -> None:
        t = self.training
        grad, loss, logs = self._forward_backward(x, nz)
        if self.scale is not None:
            grad.div_(self.scale[:, None])
        norm = torch.linalg.vector_norm(grad, dim=1)  # per seed; one pass, no temporary
        finite_grad = torch.isfinite(norm)
        if self.scale is not None:
            # fp16: a non-finite gradient with a finite loss is an overflow of the seed's own
            # loss scale: skip that seed's step and halve its scale, never a divergence.
            overflow = torch.isfinite(loss) & ~finite_grad & self.alive
            self.skipped += overflow.long()
            self.good_steps = torch.where(overflow, torch.zeros_like(self.good_steps), self.good_steps + 1)
            grow = self.good_steps >= 2000
            self.scale = torch.where(overflow, self.scale * 0.5, torch.where(grow, self.scale * 2.0, self.scale))
            self.good_steps = torch.where(grow, torch.zeros_like(self.good_steps), self.good_steps)
            ok = torch.isfinite(loss) & (self.scale >= 1.0)
            take = self.alive & ok & ~overflow
        else:
            ok = torch.isfinite(loss) & finite_grad
            take = None
        newly = self.alive & ~ok
        self.failed_step.masked_fill_(newly, step)
        self.alive &= ok
        use = self.alive if take is None else take
        coef = use.to(grad.dtype)  # 0 for a masked seed
        if self.clip is not None:  # each seed's own global norm, as clip_grad_norm_ computes it
            coef = coef * torch.clamp(self.clip / (torch.where(use, norm, torch.zeros_like(norm)) + 1e-6), max=1.0)
        grad.mul_(coef[:, None])
        grad.nan_to_num_(0.0, 0.0, 0.0)  # a masked seed's NaN * 0 is still NaN (live rows are finite)
        if take is not None:  # a true skip: restore the skipped seeds' weights and moments
            saved = self._snapshot()
        self.adam.step(grad)
        if take is not None:
            self._restore(saved, ~take)

        if self.log_keys is None:
            self.log_keys = list(logs)
        vals = torch.stack([logs[k].detach().float() for k in self.log_keys])  # [L, S]
        vals = vals.masked_fill(~self.alive[None, :], float("nan"))
        self.acc = vals if self.acc is None else self.acc + vals
        if (step + 1) % t.log_every == 0 or step + 1 == t.steps:
            count = (step % t.log_every) + 1
            self.hist.append(self.acc / count)
            self.hist_steps.append(step + 1)
            self.acc = None

    def _snapshot(self):
        return [t.clone() for t in (self.flat, self.adam.exp_avg, self.adam.exp_avg_sq)]

    def _restore(self, saved, mask):
        m = mask[:, None]
        for dst, src in zip((self.flat, self.adam.exp_avg, self.adam.exp_avg_sq), saved):
            dst.copy_(torch.where(m, src, dst))

    # -- the run -------------------------------------------------------------------------
    def run(self, progress=None) -> None:
        t = self.training
        step = 0
        while step < t.steps:
            c = min(self.chunk, t.steps - step)
            idx = self._draw_indices(c)  # [S, c, B]
            noise = self._draw_noise(c)  # {k: [c, S, ...]}
            u = self._draw_binarize(c)  # [S, c, B, ...] or None
            for j in range(c):
                x = self.train[idx[:, j]]  # [S, B, ...]: one gather, no host round trip
                if u is not None:
                    x = (u[:, j] < x).to(x.dtype)
                self.step(step, x, {k: v[j] for k, v in noise.items()})
                step += 1
                if progress is not None and (step % t.log_every == 0 or step == t.steps):
                    progress(step, t.steps)

    # -- evaluation ----------------------------------------------------------------------
    def _per_seed(self, method: str, rows: torch.Tensor, args_of) -> dict[str, torch.Tensor]:
        """``method`` for every seed: ``args_of(i)`` gives seed i's arguments. One vmap over the
        seeds on CUDA; on a CPU one seed after another (plain contiguous kernels are faster
        there, and the matmuls are just as large)."""
        if self.vmap_eval:
            per = [args_of(i) for i in range(self.S)]
            stacked = tuple(
                {k: torch.stack([p[j][k] for p in per]) for k in per[0][j]} if isinstance(per[0][j], dict)
                else per[0][j]
                for j in range(len(per[0]))
            )
            dims = tuple(0 if isinstance(a, dict) else None for a in per[0])
            fn = vmap(
                lambda p, b, *a: functional_call(self.base, (self.layout.unflatten(p), b), a, kwargs={"method": method}),
                in_dims=(0, 0, *dims),
                randomness="error",
            )
            out = fn(rows, self.buffers, *stacked)
            return out if isinstance(out, dict) else {"": out}
        outs = []
        for i in range(self.S):
            b = {k: v[i] for k, v in self.buffers.items()}
            o = functional_call(self.base, (self.layout.unflatten(rows[i]), b), args_of(i), kwargs={"method": method})
            outs.append(o if isinstance(o, dict) else {"": o})
        return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}

    def evaluate(self) -> dict[str, torch.Tensor]:
        """Test-split means of every metric, per seed: {name: [S]} (always fp32)."""
        t, ds, dev = self.training, self.dataset, self.dev
        test = ds.test.to(dev)
        g_eval = [_generator(s, _EVAL, dev) for s in self.seeds]
        widest = max(ds.dim, 1) * (ds.levels or 2)  # decoder outputs per example and sample
        chunk = eval_chunk(t.eval_samples, widest, test.shape[0])
        rows = self.flat.detach()
        totals: dict[str, torch.Tensor] = {}
        for start in range(0, test.shape[0], chunk):
            xb = test[start : start + chunk]
            nzs = [self.base.noise("evaluate", xb.shape[0], t.eval_samples, g, dev) for g in g_eval]
            out = self._per_seed("evaluate", rows, lambda i, xb=xb, nzs=nzs: (xb, nzs[i]))
            for k, v in out.items():
                totals[k] = totals.get(k, 0) + v.float().sum(1)
        return {k: v / test.shape[0] for k, v in totals.items()}

    def state(self, i: int) -> dict[str, torch.Tensor]:
        """Seed i's parameters, by name, as CPU tensors."""
        return {k: v.detach().cpu().clone() for k, v in self.layout.unflatten(self.flat[i]).items()}

    def sample(self) -> np.ndarray:
        t, dev, S = self.training, self.dev, self.S
        g = [_generator(s, _SAMPLE, dev) for s in self.seeds]
        nzs = [self.base.noise("sample", t.n_samples, 1, gi, dev) for gi in g]
        x = self._per_seed("sample", self.flat.detach(), lambda i: (nzs[i],))[""]
        return x.float().clamp(0, 1).reshape(S, t.n_samples, *self.dataset.shape).cpu().numpy()


def eval_chunk(eval_samples: int, widest: int, n_test: int) -> int:
    """Test examples per evaluation chunk (a function of K and the data only, never of S)."""
    return int(max(1, min(n_test, EVAL_CHUNK_ELEMENTS // max(1, eval_samples * widest))))


def train_block(
    model_cls: type,
    config,
    training: Training,
    dataset: Dataset,
    seeds: list[int],
    device: str | torch.device = "auto",
    progress: Callable[[int, int], None] | None = None,
    *,
    mode: str = "auto",
    keep_state: bool = False,
    members: list[tuple] | None = None,
) -> list[SeedResult]:
    """Train ``seeds`` of one variant as one stacked model; one SeedResult per seed.

    ``members`` (tuning): one ``(config, training)`` per seed, each member's own configuration.
    They may differ from ``config`` / ``training`` only in values that keep every shape and the
    loop the same: the model's ``hyper`` fields and the training fields in
    ``harness.hypothesis.STACKABLE_TRAINING`` (see :func:`stack_key`).

    ``mode`` is ``auto`` (= ``vmap``), ``vmap`` or ``loop``: the same numbers either way, up to
    float rounding. ``progress(step, steps)`` is called at each logged step. ``keep_state``
    returns each seed's final parameters in ``SeedResult.state``.

    Example::

        from harness import data, models
        ds = data.load("digits")
        res = train_block(models.VAE, models.VAE.Config(), Training(steps=50), ds, [0, 1])
        res[0].metrics["iwae_nll"]
    """
    dev = pick_device(device)
    if not seeds:
        return []
    if dev.type == "cpu":
        tune_cpu_allocator()
    if members is not None:
        if len(members) != len(seeds):
            raise HarnessError(f"train_block: {len(members)} members for {len(seeds)} seeds")
        keys = {stack_key(model_cls, c, t) for c, t in members}
        if len(keys) != 1 or keys != {stack_key(model_cls, config, training)}:
            raise HarnessError(
                "train_block: members differ in a value that changes shapes or the training loop; "
                f"only {list(getattr(model_cls, 'hyper', ()))} (model) and {list(STACKABLE_TRAINING)} (training) may differ"
            )
    t0 = time.perf_counter()
    block = _Block(model_cls, config, training, dataset, seeds, dev, resolve_mode(mode, dev), members)
    block.run(progress)
    with torch.no_grad():
        metrics = block.evaluate()
        samples = block.sample() if can_sample(model_cls) else None  # sampling is optional

    S = len(seeds)
    alive_h = block.alive.cpu().tolist()
    failed_h = block.failed_step.cpu().tolist()
    skipped_h = block.skipped.cpu().tolist()
    hist_h = torch.stack(block.hist).cpu().numpy() if block.hist else np.zeros((0, 0, S))  # [T, L, S]
    keys = block.log_keys or []
    metrics_h = {k: v.cpu().numpy() for k, v in metrics.items()}
    seconds = (time.perf_counter() - t0) / S
    out = []
    for i, s in enumerate(seeds):
        m = {k: float(v[i]) for k, v in metrics_h.items()}
        finite = all(math.isfinite(v) for v in m.values())
        ok = alive_h[i] and finite
        history = {k: [(st, float(hist_h[t, li, i])) for t, st in enumerate(block.hist_steps)] for li, k in enumerate(keys)}
        err = None
        if not alive_h[i]:
            err = f"diverged: non-finite loss or gradient at step {failed_h[i]}"
        elif not finite:
            err = "diverged: non-finite test metric"
        out.append(
            SeedResult(
                seed=s,
                status="FINISHED" if ok else "FAILED",
                metrics=m if ok else {k: float("nan") for k in m},
                history=history,
                samples=samples[i] if ok and samples is not None else None,
                error=err,
                seconds=seconds,
                failed_at_step=failed_h[i] if failed_h[i] >= 0 else None,
                state=block.state(i) if keep_state else None,
                skipped_steps=skipped_h[i],
            )
        )
    return out


def stack_key(model_cls: type, config, training: Training) -> tuple:
    """What must be equal for two members to share a stacked block: everything but the model's
    ``hyper`` fields and the per-member training values (lr, grad_clip)."""
    hyper = {h: None for h in getattr(model_cls, "hyper", ())}
    c = dataclasses.asdict(config)
    c.update(hyper)
    t = dataclasses.asdict(training)
    t.update({k: None for k in STACKABLE_TRAINING})
    return (repr(sorted(c.items())), repr(sorted(t.items())))


# ------------------------------------------------------------------------------ block size
def auto_block_size(
    model_cls: type,
    config,
    training: Training,
    dataset: Dataset,
    device: str | torch.device = "auto",
    cap: int | None = None,
) -> int:
    """How many seeds to stack in one block on ``device`` (never changes any seed's numbers).

    CUDA: measured, not guessed. Blocks of 1 and 3 seeds each run one training step, the
    evaluation and the samples; the difference of their peak memory is the per-seed cost and
    the rest is fixed. The block is as large as ``GPU_MEMORY_SHARE`` of the free memory
    allows, capped at ``cap`` (default ``GPU_MAX_BLOCK``).
    CPU: ``cap`` (default ``CPU_MAX_BLOCK`` = 16). Memory is not what limits a CPU block; the
    time per seed and step falls steeply up to 4-8 seeds (per-step overhead is amortised and
    batched matmuls use every core) and by another 5-15 % from 8 to 16-32.
    """
    dev = pick_device(device)
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        raise HarnessError(f"block-size cap {cap!r}: expected a positive integer")
    if dev.type != "cuda":
        return int(cap or CPU_MAX_BLOCK)
    cap = int(cap or GPU_MAX_BLOCK)
    probe = dataclasses.replace(training, steps=1, log_every=1)
    peaks = {}
    for S in (1, 3):
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        blk = _Block(model_cls, config, probe, dataset, list(range(S)), dev, resolve_mode("auto", dev))
        blk.run()
        with torch.no_grad():
            blk.evaluate()
            if can_sample(model_cls):
                blk.sample()
        torch.cuda.synchronize(dev)
        peaks[S] = torch.cuda.max_memory_allocated(dev) - base
        del blk
    per_seed = max((peaks[3] - peaks[1]) / 2, 1.0)
    fixed = max(peaks[1] - per_seed, 0.0)
    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info(dev)
    room = free * GPU_MEMORY_SHARE - fixed
    return int(max(1, min(cap, room // per_seed)))
