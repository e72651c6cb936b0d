"""Evaluating and sampling every member of a stacked block (see :mod:`harness.engine`).

Evaluation and sampling draw their noise from generators made afresh for each call, seeded by
``stream_seed(seed, "eval")`` and ``stream_seed(seed, "sample")``: a block evaluated at steps
1000, 2000 and 4000 draws exactly the numbers a 1000-, a 2000- and a 4000-step run would draw
at their single evaluation, and none of it touches the training streams. ``rows`` is the
``[S, P]`` weights evaluated: the trained weights, or their moving average (``Training.ema``).

The functions take the block as an object with ``training``, ``dataset``, ``seeds``, ``S``,
``dev``, ``base`` (the model on the meta device), ``layout``, ``buffers`` and ``vmap_eval``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, vmap

from harness.seeds import stream_seed

EVAL, SAMPLE = "eval", "sample"  # stream purposes (harness.seeds)
# Evaluation runs over chunks of the test split sized so that one seed's widest tensor holds
# about EVAL_CHUNK_ELEMENTS numbers (K samples x examples x decoder outputs). The chunk size
# fixes how each seed's evaluation noise is drawn, so it depends on K and the data only, never
# on S (a block of S seeds holds S such tensors at once).
EVAL_CHUNK_ELEMENTS = 2**22


def stream_generator(seed: int, purpose: str, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded by ``stream_seed(seed, purpose)``."""
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, purpose))
    return g


def eval_chunk(eval_samples: int, widest: int, n_test: int) -> int:
    """Test examples per evaluation chunk (a function of K and the data only, never of S)."""
    return int(max(1, min(n_test, EVAL_CHUNK_ELEMENTS // max(1, eval_samples * widest))))


def per_member(block, method: str, rows: torch.Tensor, args_of) -> dict[str, torch.Tensor]:
    """``method`` for every member: ``args_of(i)`` gives member i's arguments. One vmap over
    the members on CUDA; on a CPU one member after another (plain contiguous kernels are faster
    there, and the matmuls are just as large)."""
    if block.vmap_eval:
        per = [args_of(i) for i in range(block.S)]
        stacked = tuple(
            {k: torch.stack([p[j][k] for p in per]) for k in per[0][j]} if isinstance(per[0][j], dict)
            else per[0][j]
            for j in range(len(per[0]))
        )
        dims = tuple(0 if isinstance(a, dict) else None for a in per[0])
        fn = vmap(
            lambda p, b, *a: functional_call(block.base, (block.layout.unflatten(p), b), a, kwargs={"method": method}),
            in_dims=(0, 0, *dims),
            randomness="error",
        )
        out = fn(rows, block.buffers, *stacked)
        return out if isinstance(out, dict) else {"": out}
    outs = []
    for i in range(block.S):
        b = {k: v[i] for k, v in block.buffers.items()}
        o = functional_call(block.base, (block.layout.unflatten(rows[i]), b), args_of(i), kwargs={"method": method})
        outs.append(o if isinstance(o, dict) else {"": o})
    return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}


@torch.no_grad()
def evaluate(block, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Test-split means of every metric, per member: {name: [S]} (always fp32)."""
    t, ds, dev = block.training, block.dataset, block.dev
    test = ds.test.to(dev)
    g_eval = [stream_generator(s, EVAL, dev) for s in block.seeds]
    widest = max(ds.dim, 1) * (ds.levels or 2)  # decoder outputs per example and sample
    chunk = eval_chunk(t.eval_samples, widest, test.shape[0])
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, test.shape[0], chunk):
        xb = test[start : start + chunk]
        nzs = [block.base.noise("evaluate", xb.shape[0], t.eval_samples, g, dev) for g in g_eval]
        out = per_member(block, "evaluate", rows, lambda i, xb=xb, nzs=nzs: (xb, nzs[i]))
        for k, v in out.items():
            totals[k] = totals.get(k, 0) + v.float().sum(1)
    return {k: v / test.shape[0] for k, v in totals.items()}


@torch.no_grad()
def sample(block, rows: torch.Tensor) -> np.ndarray:
    """``Training.n_samples`` samples per member, on [0, 1]: [S, n, *shape] (CPU numpy)."""
    t, dev, S = block.training, block.dev, block.S
    g = [stream_generator(s, SAMPLE, dev) for s in block.seeds]
    nzs = [block.base.noise("sample", t.n_samples, 1, gi, dev) for gi in g]
    x = per_member(block, "sample", rows, lambda i: (nzs[i],))[""]
    return x.float().clamp(0, 1).reshape(S, t.n_samples, *block.dataset.shape).cpu().numpy()
