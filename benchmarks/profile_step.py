"""Where one training step of the stacked engine spends its time, and what it launches.

Builds one block of the shipped digits study (``hypotheses/iaf_tightens_bound.py``, the
``linear_iaf`` variant: the study ``benchmarks/throughput.py`` times), warms it up, then runs
``--steps`` steps under ``torch.profiler`` with each phase of the engine labelled
(``record_function`` wrappers installed by this script, so the engine itself carries no
profiling code). Printed, per training step:

* ``ops``: ATen operators called (every ``aten::`` event), and ``leaf ops``: those that call no
  other operator, i.e. the kernels a CPU runs (on CUDA the device kernels are also counted);
* ``host syncs``: operators that read a device value back to Python (``aten::_local_scalar_dense``
  behind ``.item()`` / ``float()`` / ``bool()``, ``aten::is_nonzero``, ``aten::nonzero``) and, on
  CUDA, ``cudaStreamSynchronize`` / ``cudaDeviceSynchronize`` / blocking ``cudaMemcpy`` calls;
  on CUDA the script also runs the steps under ``torch.cuda.set_sync_debug_mode("warn")`` and
  counts the warnings;
* the share of the step's time in each phase: drawing data indices and noise (per chunk of
  steps, amortised), the gather of the minibatch, forward + backward, the per-member masking and
  clipping, the optimiser (Adam), EMA, logging; and, separately, one evaluation and one sampling
  pass of the block.

Usage::

    python benchmarks/profile_step.py --device cpu            # S = 8, 128 profiled steps
    python benchmarks/profile_step.py --device cuda --seeds 64
    HARNESS_COMPILE=1 python benchmarks/profile_step.py --device cpu

Needs neither mlflow nor optuna. It reaches into ``harness.engine._Block`` (the object one
``train_block`` call builds) to label its phases; that is a benchmark's licence, not an API.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import inspect
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

from harness import data, engine  # noqa: E402
from harness.collect import collect  # noqa: E402
from harness.device import pick_device, resolve_mode, tune_cpu_allocator  # noqa: E402
from harness.registry import MODELS  # noqa: E402

DEFAULT_HYPOTHESIS = ROOT / "hypotheses" / "iaf_tightens_bound.py"
SYNC_OPS = ("aten::_local_scalar_dense", "aten::is_nonzero", "aten::nonzero")
SYNC_RUNTIME = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")
# Block methods labelled as phases (name in the profile -> method); missing ones are skipped
# (the script also profiles older engines, for before/after figures).
PHASES = {
    "draw indices": "_draw_indices",
    "draw noise": "_draw_noise",
    "draw binarize": "_draw_binarize",
    "forward+backward": ("loss_grad", "_forward_backward"),  # the latter: engines before issue 24
    "step": "step",
    "run": "run",
}


def _label(obj, methods, name: str) -> None:
    method = next((m for m in ([methods] if isinstance(methods, str) else methods) if hasattr(obj, m)), None)
    if method is None:
        return
    fn = getattr(obj, method)

    def wrapped(*a, **k):
        with record_function(name):
            return fn(*a, **k)

    setattr(obj, method, wrapped)


def build(args, dev):
    col = collect(args.hypothesis)
    hyp = col.hypothesis
    v = next(v for v in hyp.variants if v.level == args.variant) if args.variant else hyp.variants[-1]
    model_cls = MODELS[v.model or hyp.model]
    ds = data.load(hyp.dataset)
    S = args.seeds or (64 if dev.type == "cuda" else 8)
    tr = dataclasses.replace(v.training, steps=args.warmup)
    kw = {}
    if "compile" in inspect.signature(engine._Block).parameters:  # engines before issue 24 have none
        from harness.step import compile_wanted

        kw = {"compile": compile_wanted()}
    block = engine._Block(model_cls, v.model_config, tr, ds, list(range(S)), dev, resolve_mode("auto", dev), **kw)
    return col.id, v, block, S


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--seeds", type=int, default=None, help="S (default 8 on CPU, 64 on CUDA)")
    ap.add_argument("--steps", type=int, default=128, help="profiled steps (default 128: two noise chunks)")
    ap.add_argument("--warmup", type=int, default=64, help="unprofiled steps first")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--variant", default=None, help="the variant's level (default: the last, linear_iaf)")
    ap.add_argument("--hypothesis", default=str(DEFAULT_HYPOTHESIS))
    ap.add_argument("--top", type=int, default=12, help="print the N operators with the most self time")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    if dev.type == "cpu":
        tune_cpu_allocator()
    study, v, block, S = build(args, dev)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"study {study}, variant {v.level}, S = {S}, device {dev}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, HARNESS_COMPILE={os.environ.get('HARNESS_COMPILE', '0')}, load {load}"
    )

    t0 = time.perf_counter()
    block.run()  # warm-up (and compilation, with HARNESS_COMPILE=1)
    _sync(dev)
    print(f"warm-up: {args.warmup} steps in {time.perf_counter() - t0:.1f} s")
    block.training = dataclasses.replace(block.training, steps=args.steps)

    # Unprofiled wall time per step (the profiler adds its own overhead to every op).
    t0 = time.perf_counter()
    block.run()
    _sync(dev)
    wall = (time.perf_counter() - t0) / args.steps

    for name, method in PHASES.items():
        _label(block, method, name)
    if block.adam is not None:
        _label(block.adam, "step", "adam")
    if block.ema is not None:
        _label(block.ema, "update", "ema")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        block.run()
        _sync(dev)
    events = prof.events()
    n = args.steps

    aten = [e for e in events if e.name.startswith("aten::")]
    leaf = [e for e in aten if not any(c.name.startswith("aten::") for c in e.cpu_children)]
    syncs = collections.Counter(e.name for e in events if e.name in SYNC_OPS or e.name.startswith(SYNC_RUNTIME))
    print(f"\nper training step (mean of {n}): {len(aten) / n:.1f} ops, {len(leaf) / n:.1f} leaf ops (CPU kernels)")
    if dev.type == "cuda":
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        print(f"  CUDA kernels: {len(kernels) / n:.1f} per step")
    print(f"  host syncs: {sum(syncs.values()) / n:.2f} per step {dict(syncs) or ''}")
    print(f"  wall time (unprofiled): {wall * 1e3:.2f} ms per step = {wall * 1e3 / S:.3f} ms per member-step")

    # Phase shares: inclusive CPU time of each labelled range (the step's share is what is left
    # of it after forward+backward, Adam and EMA: masking, clipping, logging).
    incl = collections.defaultdict(float)
    calls = collections.Counter()
    for e in events:
        if e.name in PHASES or e.name in ("adam", "ema"):
            incl[e.name] += e.cpu_time_total
            calls[e.name] += 1
    ops_in = collections.Counter()  # aten ops inside each labelled range, over all its calls
    for e in events:
        if e.name in PHASES or e.name in ("adam", "ema"):
            ops_in[e.name] += sum(1 for c in _descendants(e) if c.name.startswith("aten::"))
    draw_keys = ("draw indices", "draw noise", "draw binarize")
    inner = ("forward+backward", "adam", "ema")
    rows = [(k, incl[k], ops_in[k]) for k in inner]
    rows.append(
        (
            "masking, clipping, logging (rest of step)",
            incl["step"] - sum(incl[k] for k in inner),
            ops_in["step"] - sum(ops_in[k] for k in inner),
        )
    )
    rows += [(k, incl[k], ops_in[k]) for k in draw_keys]
    rows.append(
        (
            "gather, loop, callbacks (rest of run)",
            incl["run"] - incl["step"] - sum(incl[k] for k in draw_keys),
            ops_in["run"] - ops_in["step"] - sum(ops_in[k] for k in draw_keys),
        )
    )
    print("\n  phase (per training step; draws amortised)  ms/step   share  ops/step")
    for name, us, ops in rows:
        if us:
            print(f"  {name:44s} {us / n / 1e3:7.3f} {us / incl['run']:7.1%} {ops / n:8.1f}")

    print(f"\n  top {args.top} operators by self CPU time:")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top)
    print("\n".join("  " + line for line in table.splitlines()))

    # Evaluation and sampling, once each (what a budget or the end of a run costs).
    with torch.no_grad():
        t0 = time.perf_counter()
        block.evaluate()
        _sync(dev)
        ev = time.perf_counter() - t0
        t0 = time.perf_counter()
        block.sample()
        _sync(dev)
        sm = time.perf_counter() - t0
    print(f"\nevaluation of the block: {ev:.2f} s ({ev / max(wall, 1e-9):.0f} steps' worth); sampling: {sm:.2f} s")

    if dev.type == "cuda":  # the authoritative count: torch warns on every synchronising call
        block.training = dataclasses.replace(block.training, steps=min(n, 16))
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            block.run()
        torch.cuda.set_sync_debug_mode(0)
        print(f"sync debug mode: {len(caught)} synchronising calls in {block.training.steps} steps")
    return 0


def _descendants(e):
    for c in e.cpu_children:
        yield c
        yield from _descendants(c)


if __name__ == "__main__":
    raise SystemExit(main())
