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
the same parameters up to float rounding (``tests/test_engine.py``). Training noise is always
drawn in whole chunks, also the last one (its unused steps are dropped): how many numbers a
draw takes must not depend on ``steps``, or a 40-step run and the first 40 steps of a 60-step
run would see different noise (a model whose noise() makes two random calls draws the second
after the first's whole chunk; on CUDA even one call's numbers depend on its size).

Budgets (``Training.evaluate_at``): after each listed step the block evaluates every member
(and samples, when asked), exactly as a run of that many steps ends: the evaluation and sample
streams are fresh generators per evaluation (:mod:`harness.evaluation`) and the training
streams are untouched, so budget k of a long run IS the k-step run (to float rounding; tested).
A member that diverged before step k has NaN metrics at k (its k-step run would have failed).

EMA (``Training.ema`` = d): one more ``[S, P]`` tensor, ``ema = d * ema + (1 - d) * w`` after
every optimiser step (elementwise: members stay independent), started at the initial weights
(:class:`harness.optim.Ema`). Evaluation and sampling, at every budget, use it instead of the
trained weights; ``keep_state`` still returns the trained weights.

A seed whose loss or gradient goes non-finite is masked out (its gradient zeroed from then on,
its histories NaN) and reported FAILED with the step; the others finish. Nothing in a step
reads a value back to the host: the data are resident on the device and batches are gathered
by index, training terms accumulate on the device and are read back once, at the end (the
one ``.item()`` a CPU profile shows per step is inside torch's CPU fused Adam kernel, reading
its own CPU step counter: there is no device to wait for there).

``Training.precision`` (declared, "fp32" by default) switches the training forward and
backward to autocast bf16 or fp16, or ("tf32", CUDA only) lets fp32 matmuls use TF32 (see
:mod:`harness.step`); weights, gradients and Adam state stay fp32, evaluation and
sampling always run in fp32. fp16 keeps one dynamic loss scale per seed (on overflow that
seed's step is skipped and its scale halved), so even the scaler does not couple seeds.

``auto_block_size`` picks S from free GPU memory (measured) or a CPU cap. No MLflow here: the
engine returns plain results and the caller logs them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.func import stack_module_state, vmap

from harness import evaluation
from harness.dataset import Dataset
from harness.device import cpu_block_cap, pick_device, resolve_mode, tune_cpu_allocator
from harness.errors import HarnessError
from harness.evaluation import eval_chunk, stream_generator  # noqa: F401  (eval_chunk: re-exported)
from harness.group_steps import GroupedSteps, order_by_group
from harness.hypothesis import STACKABLE_TRAINING, Training
from harness.models.base import can_sample
from harness.models.groups import is_grouped
from harness.optim import Adam, Ema, Layout
from harness.seeds import stream_seed
from harness.step import LossGrad, compile_wanted, precision_context

# Stream purposes hashed with each seed (harness.seeds): data order, training noise and the
# Bernoulli draws of a dynamically binarized dataset (the evaluation and sample streams are
# harness.evaluation's); init is "init".
_DATA, _NOISE, _BINARIZE = "data", "noise", "binarize"

# Randomness is drawn for CHUNK_STEPS steps at a time per seed (fewer when one step's noise is
# large: at most CHUNK_ELEMENTS numbers per seed and chunk). Both are constants, so a seed's
# streams never depend on which seeds share its block.
CHUNK_STEPS = 64
CHUNK_ELEMENTS = 2**20
# auto_block_size: the default cap, and the share of free GPU memory a block may plan to use.
CPU_MAX_BLOCK = 16
# GPU: 1,024. The block grows until memory (measured) or this cap stops it: on an H200 the
# study's share of the fp32 matmul rate rose from 4 % at 64 seeds to 7.3 % at 256 and 10.3 % at
# 1,024 (docs/benchmarks.md), so a smaller cap leaves the device idle. Not unbounded: a block is
# one unit of claiming, failure and resume (a worker that dies loses its whole block), and its
# per-chunk noise and evaluation scale with S.
GPU_MAX_BLOCK = 1024
GPU_MEMORY_SHARE = 0.8


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
    # Training.evaluate_at: step k (< steps) -> the test metrics a k-step run ends with (NaN
    # when it would have diverged); the final budget's are ``metrics``.
    budgets: dict[int, dict[str, float]] = field(default_factory=dict)
    budget_samples: dict[int, np.ndarray] = field(default_factory=dict)  # with budget_samples=True
    params: int = 0  # parameters of one member
    wall_seconds: float = 0.0  # the whole block's wall time (training, budgets, final evaluation)


def build_model(model_cls: type, config, dataset: Dataset, seed: int) -> torch.nn.Module:
    """The seed's freshly initialised model (CPU); init depends on the seed only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        return model_cls(config, dataset.shape, dataset.levels)


# ------------------------------------------------------------------------------ the block
class _Block:
    """The state of S seeds of one variant being trained together (see module docstring)."""

    def __init__(self, model_cls, config, training: Training, dataset: Dataset, seeds, dev, mode, members=None,
                 compile: bool = False):
        self.training, self.dataset, self.seeds, self.dev = training, dataset, list(seeds), dev
        self.mode = mode
        self.S = S = len(seeds)
        configs = [m[0] for m in members] if members else [config] * S
        models = [build_model(model_cls, c, dataset, s) for c, s in zip(configs, seeds)]
        self.base = copy.deepcopy(models[0]).to("meta")  # shapes and code; weights come per call
        params, buffers = stack_module_state(models)
        del models
        grouped = is_grouped(model_cls)  # parameter groups: harness/models/groups.py
        if grouped:
            params = order_by_group(model_cls, params)
        self.layout = Layout(params)
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
        lrs = [m[1].lr for m in members] if members else [training.lr] * S
        self.adam = None if grouped else Adam(self.flat, lr)
        self.ema = Ema(self.flat, training.ema) if getattr(training, "ema", None) else None
        self.grad = torch.zeros_like(self.flat)  # reused every step
        self.grad_views = list(self.layout.unflatten(self.grad).values())

        self.train = dataset.train.to(dev)
        n = self.train.shape[0]
        self.bsz = bsz = min(training.batch_size, n)
        self.per_epoch = n // bsz
        self.epochs_per_draw = max(1, math.ceil(CHUNK_STEPS / self.per_epoch))
        self.g_data = [stream_generator(s, _DATA, dev) for s in seeds]
        self.g_noise = [stream_generator(s, _NOISE, dev) for s in seeds]
        self._idx = torch.empty(S, 0, bsz, dtype=torch.long, device=dev)
        probe = self.base.noise("loss", bsz, 1, torch.Generator(device=dev).manual_seed(0), dev)
        per_step = sum(v.numel() for v in probe.values())
        self.noise_keys = list(probe)
        # Dynamic binarization (Dataset.dynamic_binarization): every training minibatch is
        # redrawn as x ~ Bernoulli(p) from the seed's own stream, one uniform per pixel drawn
        # with the chunk's noise; those uniforms count towards the chunk's size.
        self.g_bin = [stream_generator(s, _BINARIZE, dev) for s in seeds] if dataset.dynamic_binarization else None
        if self.g_bin is not None:
            per_step += bsz * dataset.dim
        self.chunk = max(1, min(CHUNK_STEPS, CHUNK_ELEMENTS // max(per_step, 1)))
        self._vmap_noise = self._noise_vmaps()

        self.precision = getattr(training, "precision", "fp32")
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
        # What builds self.base: the config but its `hyper` fields, which enter as buffers (so
        # tuning trials, one block each or many per block, share one compiled step).
        key = (model_cls, stack_key(model_cls, config, training)[0], tuple(dataset.shape), dataset.levels) if compile else None
        self.loss_grad = LossGrad(self, compile and not grouped, key)  # after self.scale (harness/step.py)
        if compile and grouped:
            warnings.warn(f"HARNESS_COMPILE: {model_cls.__name__} has parameter groups; its steps run eagerly", stacklevel=3)
        self.vmap_eval = dev.type == "cuda"  # evaluation and sampling: see _per_seed
        self.groups = GroupedSteps(self, model_cls, configs, lrs) if grouped else None

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
    def precision_context(self):
        """The training forward and backward's arithmetic (harness.step)."""
        return precision_context(self.precision, self.dev)

    def step(self, step: int, x: torch.Tensor, nz: dict) -> None:
        if self.groups is not None:  # several optimisers and stages: harness/group_steps.py
            self.groups.step(step, x, nz)
            if self.ema is not None:  # the average of every group's weights (buffers are not averaged)
                self.ema.update()
            return
        t = self.training
        grad, loss, logs = self.loss_grad(x, nz)
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
        self.failed_step.masked_fill_(self.alive > ok, step)  # alive and not ok: diverges now
        self.alive &= ok
        use = self.alive if take is None else take
        if self.clip is None:
            coef = use.to(grad.dtype)  # 0 for a masked seed
        else:  # each seed's own global norm, as clip_grad_norm_ computes it; 0 for a masked seed
            coef = torch.where(use, torch.clamp(self.clip / (norm + 1e-6), max=1.0), 0.0)
        grad.mul_(coef.unsqueeze(1))
        grad.nan_to_num_(0.0, 0.0, 0.0)  # a masked seed's NaN * 0 is still NaN (live rows are finite)
        if take is not None:  # a true skip: restore the skipped seeds' weights and moments
            saved = self._snapshot()
        self.adam.step(grad)
        if take is not None:
            self._restore(saved, ~take)
        if self.ema is not None:
            self.ema.update()

        # Training terms: summed on the device over log_every steps, NaN for a member that is
        # not alive at the logged step (it cannot come back, so masking once per window gives
        # what masking every step gave: NaN from the window it diverged in).
        if self.log_keys is None:
            self.log_keys = list(logs)
        vals = torch.stack([logs[k] for k in self.log_keys])  # [L, S]
        if vals.dtype != torch.float32:
            vals = vals.float()
        self.acc = vals if self.acc is None else self.acc.add_(vals)
        if (step + 1) % t.log_every == 0 or step + 1 == t.steps:
            count = (step % t.log_every) + 1
            self.hist.append((self.acc / count).masked_fill_(~self.alive.unsqueeze(0), float("nan")))
            self.hist_steps.append(step + 1)
            self.acc = None

    def _snapshot(self):
        return [t.clone() for t in (self.flat, self.adam.exp_avg, self.adam.exp_avg_sq)]

    def _restore(self, saved, mask):
        m = mask[:, None]
        for dst, src in zip((self.flat, self.adam.exp_avg, self.adam.exp_avg_sq), saved):
            dst.copy_(torch.where(m, src, dst))

    # -- the run -------------------------------------------------------------------------
    def run(self, progress=None, at_budget=None) -> None:
        """Train ``steps`` steps; ``at_budget(k)`` after each step k in ``evaluate_at`` below ``steps``."""
        t = self.training
        budgets = set(getattr(t, "evaluate_at", ())) - {t.steps}
        step = 0
        while step < t.steps:
            c = min(self.chunk, t.steps - step)
            idx = self._draw_indices(c)  # [S, c, B] (whole epochs in order: a prefix is a prefix)
            noise = self._draw_noise(self.chunk)  # {k: [chunk, S, ...]}: whole chunks (docstring)
            u = self._draw_binarize(self.chunk)  # [S, chunk, B, ...] or None: whole chunks too
            for j in range(c):
                x = self.train[idx[:, j]]  # [S, B, ...]: one gather, no host round trip
                if u is not None:
                    x = (u[:, j] < x).to(x.dtype)
                self.step(step, x, {k: v[j] for k, v in noise.items()})
                step += 1
                if progress is not None and (step % t.log_every == 0 or step == t.steps):
                    progress(step, t.steps)
                if at_budget is not None and step in budgets:
                    at_budget(step)

    # -- evaluation (harness.evaluation) --------------------------------------------------
    def eval_rows(self) -> torch.Tensor:
        """The weights evaluated and sampled: their moving average with ``Training.ema``."""
        return (self.ema.avg if self.ema is not None else self.flat).detach()

    def evaluate(self) -> dict[str, torch.Tensor]:
        """Test-split means of every metric, per seed: {name: [S]} (always fp32)."""
        return evaluation.evaluate(self, self.eval_rows())

    def sample(self) -> np.ndarray:
        return evaluation.sample(self, self.eval_rows())

    def state(self, i: int) -> dict[str, torch.Tensor]:
        """Seed i's parameters, by name, as CPU tensors."""
        return {k: v.detach().cpu().clone() for k, v in self.layout.unflatten(self.flat[i]).items()}


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
    budget_samples: bool = False,
    compile: bool | None = None,
) -> list[SeedResult]:
    """Train ``seeds`` of one variant as one stacked model; one SeedResult per seed.

    ``members`` (tuning): one ``(config, training)`` per seed, each member's own configuration.
    They may differ from ``config`` / ``training`` only in values that keep every shape and the
    loop the same: the model's ``hyper`` fields and the training fields in
    ``harness.hypothesis.STACKABLE_TRAINING`` (see :func:`stack_key`).

    ``mode`` is ``auto`` (= ``vmap``), ``vmap`` or ``loop``: the same numbers either way, up to
    float rounding. ``progress(step, steps)`` is called at each logged step. ``keep_state``
    returns each seed's final parameters in ``SeedResult.state``. ``training.evaluate_at``
    fills ``SeedResult.budgets`` (and, with ``budget_samples=True`` for a model that samples,
    ``SeedResult.budget_samples``: only when the caller scores them, they cost a sampling pass).
    ``compile`` captures the loss-and-gradient step with ``torch.compile`` (None: the
    ``HARNESS_COMPILE`` environment variable; :mod:`harness.step`): equal numbers up to float
    rounding, tens of seconds of compilation first.

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
    block = _Block(model_cls, config, training, dataset, seeds, dev, resolve_mode(mode, dev), members,
                   compile=compile_wanted(compile))
    sampling = can_sample(model_cls)  # sampling is optional
    at: dict[int, tuple] = {}  # budget k -> (metrics {name: [S]}, samples or None, alive [S])

    def at_budget(k: int) -> None:
        with torch.no_grad():
            m = {n: v.cpu().numpy() for n, v in block.evaluate().items()}
            at[k] = (m, block.sample() if budget_samples and sampling else None, block.alive.cpu().numpy())

    block.run(progress, at_budget)
    with torch.no_grad():
        metrics = block.evaluate()
        samples = block.sample() if sampling else None

    S = len(seeds)
    alive_h = block.alive.cpu().tolist()
    failed_h = block.failed_step.cpu().tolist()
    skipped_h = block.skipped.cpu().tolist()
    hist_h = torch.stack(block.hist).cpu().numpy() if block.hist else np.zeros((0, 0, S))  # [T, L, S]
    keys = block.log_keys or []
    metrics_h = {k: v.cpu().numpy() for k, v in metrics.items()}
    wall = time.perf_counter() - t0
    seconds = wall / S
    n_params = int(block.flat.shape[1])
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
                budgets={k: _budget_metrics(m, alive, i) for k, (m, _, alive) in at.items()},
                budget_samples={k: x[i] for k, (m, x, alive) in at.items()
                                if x is not None and _budget_ok(m, alive, i)},
                params=n_params,
                wall_seconds=wall,
            )
        )
    return out


def _budget_ok(m: dict[str, np.ndarray], alive: np.ndarray, i: int) -> bool:
    """Whether member i's run of that many steps would have FINISHED (alive, finite metrics)."""
    return bool(alive[i]) and all(math.isfinite(float(v[i])) for v in m.values())


def _budget_metrics(m: dict[str, np.ndarray], alive: np.ndarray, i: int) -> dict[str, float]:
    """Member i's metrics at a budget: all NaN when its run of that many steps would have
    failed, as a failed run's final metrics are."""
    ok = _budget_ok(m, alive, i)
    return {k: float(v[i]) if ok else float("nan") for k, v in m.items()}


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
    gpu_share: float | None = None,
) -> int:
    """How many seeds to stack in one block on ``device`` (never changes any seed's numbers).

    CUDA: measured, not guessed. Blocks of 1 and 3 seeds each run one training step, the
    evaluation and the samples; the difference of their peak memory is the per-seed cost and
    the rest is fixed. The block is as large as ``GPU_MEMORY_SHARE`` of the free memory
    allows (of at most ``gpu_share`` of the device's memory when the job was given a share of
    it, e.g. Ray's ``--ray-gpus 0.25``: four jobs measuring at once must not each plan for all
    of it), capped at ``cap`` (default ``GPU_MAX_BLOCK``).
    CPU: ``cap`` (default ``$HARNESS_CPU_MAX_BLOCK``, else ``CPU_MAX_BLOCK`` = 16). Memory is
    not what limits a CPU block; the time per seed and step falls steeply up to 4-8 seeds
    (per-step overhead is amortised and batched matmuls use every core) and by another 5-15 %
    from 8 to 16-32.
    """
    dev = pick_device(device)
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        raise HarnessError(f"block-size cap {cap!r}: expected a positive integer")
    if dev.type != "cuda":
        return int(cap or cpu_block_cap(CPU_MAX_BLOCK))
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
    free, total = torch.cuda.mem_get_info(dev)
    if gpu_share is not None and 0 < gpu_share < 1:
        free = min(free, total * gpu_share)
    room = free * GPU_MEMORY_SHARE - fixed
    return int(max(1, min(cap, room // per_seed)))


def fit_block(model_cls: type, config, training: Training, dataset: Dataset, device: str | torch.device,
              n_cells: int, gpu_share: float | None = None) -> int:
    """The block size a worker trains ``n_cells`` cells of one variant in, chosen on the
    worker from its own device (:func:`auto_block_size`: measured GPU memory, the CPU cap),
    never more than the cells it has. A job sent without ``--block-size`` (Ray, Slurm) is
    split into blocks of this size by :func:`harness.jobs.execute`."""
    if n_cells < 1:
        return 1
    if pick_device(device).type == "cuda" and n_cells == 1:
        return 1  # nothing to measure for a single cell
    return max(1, min(n_cells, auto_block_size(model_cls, config, training, dataset, device, gpu_share=gpu_share)))


def variant_block_size(hyp, variant, device: str | torch.device = "auto") -> int:
    """:func:`auto_block_size` for one declared variant of ``hyp`` (its model, config, training, data)."""
    from harness import data
    from harness.registry import MODELS

    ds = data.load(hyp.dataset)
    return auto_block_size(MODELS[variant.model], variant.model_config, variant.training, ds, device)
