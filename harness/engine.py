"""Train one variant for a block of seeds as ONE stacked model.

The S seeds' parameters are stacked along a leading axis (``torch.func.stack_module_state``)
and one ``vmap(grad_and_value(functional_call(...)))`` computes every seed's loss and gradient
in one pass; Adam is elementwise, so one optimiser over the stacked tensors keeps the seeds
independent. Each seed has its own streams: init (``manual_seed(seed)``), data order and noise
(``torch.Generator`` seeded from the seed), so a seed trained alone and the same seed trained in
a block of 64 see the same numbers and end at the same parameters up to float rounding.

Gradient clipping is per seed (each seed's own global norm); the learning rate is constant and
identical for every seed, so nothing couples them. A seed whose loss or gradient goes non-finite
is frozen (its gradient masked to zero from then on) and reported FAILED; the others finish.

No MLflow here: the engine returns plain results and the caller logs them.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from harness.data import Dataset
from harness.errors import HarnessError
from harness.hypothesis import Training

# Stream ids mixed into each seed: init, data order, training noise, evaluation noise.
_DATA, _NOISE, _EVAL = 1, 2, 3


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


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"--device {device}: no CUDA device is visible here; use --device auto or cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise HarnessError(f"--device {device!r}: expected auto, cpu or cuda[:N]")
    return torch.device(device)


def _generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + stream)
    return g


def build_model(model_cls: type, config, dataset: Dataset, seed: int) -> torch.nn.Module:
    """The seed's freshly initialised model (CPU); init depends on the seed only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(config, dataset.shape, dataset.levels)


def train_block(
    model_cls: type,
    config,
    training: Training,
    dataset: Dataset,
    seeds: list[int],
    device: str | torch.device = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> list[SeedResult]:
    """Train ``seeds`` of one variant as one stacked model; one SeedResult per seed.

    Example::

        from harness import data, models
        ds = data.load("digits")
        res = train_block(models.VAE, models.VAE.Config(), Training(steps=50), ds, [0, 1])
        res[0].metrics["iwae_nll"]
    """
    dev = device if isinstance(device, torch.device) else pick_device(device)
    t0 = time.perf_counter()
    S = len(seeds)
    models = [build_model(model_cls, config, dataset, s).to(dev) for s in seeds]
    base = copy.deepcopy(models[0]).to("meta")
    params, buffers = stack_module_state(models)
    del models

    def loss_fn(p, b, x, noise):
        return functional_call(base, (p, b), (x, noise), kwargs={"method": "loss"})

    # randomness="error": any random op inside the model is a bug (it would couple seeds).
    step_fn = vmap(grad_and_value(loss_fn, has_aux=True), randomness="error")
    opt = torch.optim.Adam(list(params.values()), lr=training.lr)

    train = dataset.train.to(dev)
    n = train.shape[0]
    bsz = min(training.batch_size, n)
    per_epoch = n // bsz
    g_data = [_generator(s, _DATA, dev) for s in seeds]
    g_noise = [_generator(s, _NOISE, dev) for s in seeds]
    alive = torch.ones(S, dtype=torch.bool, device=dev)
    failed_step = torch.full((S,), -1, dtype=torch.long, device=dev)
    sums: dict[str, torch.Tensor] = {}
    hist: dict[str, list[torch.Tensor]] = {}
    hist_steps: list[int] = []
    order = None
    template = base  # for noise(): shapes only depend on config

    for step in range(training.steps):
        j = step % per_epoch
        if j == 0:
            order = torch.stack([torch.randperm(n, generator=g, device=dev) for g in g_data])
        idx = order[:, j * bsz : (j + 1) * bsz]
        x = train[idx]  # [S, B, D]
        noise = _stack([template.noise("loss", bsz, 1, g, dev) for g in g_noise])
        grads, (loss, logs) = step_fn(params, buffers, x, noise)

        sq = sum(g.pow(2).flatten(1).sum(1) for g in grads.values())  # per-seed |grad|^2
        ok = torch.isfinite(loss) & torch.isfinite(sq)
        newly = alive & ~ok
        failed_step = torch.where(newly, torch.full_like(failed_step, step), failed_step)
        alive = alive & ok
        scale = alive.to(loss.dtype)
        if training.grad_clip is not None:
            norm = torch.sqrt(torch.where(alive, sq, torch.zeros_like(sq)))
            scale = scale * torch.clamp(training.grad_clip / (norm + 1e-12), max=1.0)
        for name, p in params.items():
            g = grads[name]
            s = scale.view(S, *([1] * (g.dim() - 1)))
            p.grad = torch.where(s > 0, g * s, torch.zeros_like(g))
        opt.step()

        for k, v in logs.items():
            v = torch.where(alive, v.detach(), torch.full_like(v, float("nan")))
            sums[k] = sums.get(k, 0) + v
        if (step + 1) % training.log_every == 0 or step + 1 == training.steps:
            count = (step % training.log_every) + 1
            for k, v in sums.items():
                hist.setdefault(k, []).append(v / count)
            hist_steps.append(step + 1)
            sums = {}
            if progress is not None:
                progress(step + 1, training.steps)

    with torch.no_grad():
        metrics = _evaluate(base, params, buffers, dataset, seeds, training, dev)
        samples = _sample(base, params, buffers, seeds, training, dev, dataset.shape)

    seconds = (time.perf_counter() - t0) / S
    alive_h = alive.cpu().tolist()
    failed_h = failed_step.cpu().tolist()
    hist_h = {k: torch.stack(v).cpu().numpy() for k, v in hist.items()}  # [T, S]
    out = []
    for i, s in enumerate(seeds):
        m = {k: float(v[i]) for k, v in metrics.items()}
        finite = all(math.isfinite(v) for v in m.values())
        ok = alive_h[i] and finite
        history = {k: [(st, float(v[t, i])) for t, st in enumerate(hist_steps)] for k, v in hist_h.items()}
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
                samples=samples[i] if ok else None,
                error=err,
                seconds=seconds,
                failed_at_step=failed_h[i] if failed_h[i] >= 0 else None,
            )
        )
    return out


def _stack(dicts: list[dict]) -> dict:
    return {k: torch.stack([d[k] for d in dicts]) for k in dicts[0]}


def _evaluate(base, params, buffers, dataset, seeds, training, dev) -> dict[str, torch.Tensor]:
    """Test-split means of every metric, per seed: {name: [S]}."""
    test = dataset.test.to(dev)
    g_eval = [_generator(s, _EVAL, dev) for s in seeds]
    fn = vmap(
        lambda p, b, x, nz: functional_call(base, (p, b), (x, nz), kwargs={"method": "evaluate"}),
        in_dims=(0, 0, None, 0),
        randomness="error",
    )
    # Chunk the test set so K importance samples x decoder outputs stay within memory.
    per_example = len(seeds) * training.eval_samples * max(dataset.dim, 1) * 32
    chunk = int(max(1, min(test.shape[0], 2**27 // per_example)))
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, test.shape[0], chunk):
        xb = test[start : start + chunk]
        nz = _stack([base.noise("evaluate", xb.shape[0], training.eval_samples, g, dev) for g in g_eval])
        for k, v in fn(params, buffers, xb, nz).items():
            totals[k] = totals.get(k, 0) + v.sum(1)
    return {k: v / test.shape[0] for k, v in totals.items()}


def _sample(base, params, buffers, seeds, training, dev, shape) -> np.ndarray:
    g = [_generator(s, _EVAL + 1, dev) for s in seeds]
    nz = _stack([base.noise("sample", training.n_samples, 1, gi, dev) for gi in g])
    fn = vmap(lambda p, b, z: functional_call(base, (p, b), (z,), kwargs={"method": "sample"}), randomness="error")
    x = fn(params, buffers, nz)
    return x.clamp(0, 1).reshape(len(seeds), training.n_samples, *shape).cpu().numpy()
