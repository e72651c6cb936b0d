"""Runs per hour: the harness engine against the loop a researcher would write.

One command, one process, one device, the same study measured two ways:

  (a) baseline: a standard ``nn.Module`` per seed, a shuffling ``DataLoader`` over a
      ``TensorDataset``, ``torch.optim.Adam`` with its defaults, one seed after another;
  (b) harness:  ``harness.engine.train_block`` (S seeds of a variant as one stacked model).

The study is the shipped digits VAE hypothesis (``hypotheses/iaf_tightens_bound.py``): its 2
variants x S seeds, the same fixed number of steps, batch size and learning rate, and the same
evaluation (test-split IWAE with the declared K importance samples, plus the sample grid).
(a) and (b) alternate ``--repeats`` times and the medians are reported, so a machine shared
with other work (load changes over minutes) does not favour either.

Printed: runs per hour of each, the ratio (b)/(a) on a line of its own starting ``ratio``, and
the achieved FLOP/s of each (matmul FLOPs of the study, counted with
``torch.utils.flop_counter``) as a fraction of this device's sgemm rate, measured in the same
run. Usage::

    python benchmarks/throughput.py --device cpu              # S = 8
    python benchmarks/throughput.py --device cuda             # S = 64
    python benchmarks/throughput.py --device cpu --steps 300 --repeats 3 --threads 1
    python benchmarks/throughput.py --device cuda --seeds 256 --baseline-seeds 8

``--baseline-seeds N`` times (a) on the first N seeds of each variant only and scales its time
by S / N (each seed of (a) is the same work, one after another, so its time is linear in the
seeds); the printout says so. It keeps a GPU run short where (a) would take most of it.

Needs neither mlflow nor optuna.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from harness import data  # noqa: E402
from harness import device as harness_device  # noqa: E402
from harness.collect import collect  # noqa: E402
from harness.device import pick_device  # noqa: E402
from harness.engine import auto_block_size, train_block  # noqa: E402
from harness.registry import MODELS  # noqa: E402

DEFAULT_HYPOTHESIS = ROOT / "hypotheses" / "iaf_tightens_bound.py"


# ----------------------------------------------------------------------------- (a) baseline
def baseline_run(model_cls, config, training, ds, seed: int, device: torch.device) -> dict:
    """One seed the ordinary way. Returns the test metrics (means) and the logged losses."""
    torch.manual_seed(seed)
    model = model_cls(config, ds.shape, ds.levels).to(device)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(ds.train),
        batch_size=min(training.batch_size, ds.train.shape[0]),
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.Adam(model.parameters(), lr=training.lr)
    g = torch.Generator(device=device).manual_seed(seed + 7)
    losses, step = [], 0
    while step < training.steps:
        for (xb,) in loader:
            xb = xb.to(device)
            loss, _ = model.loss(xb, model.noise("loss", xb.shape[0], 1, g, device))
            opt.zero_grad()
            loss.backward()
            if training.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
            opt.step()
            step += 1
            if step % training.log_every == 0:
                losses.append(loss.item())
            if step == training.steps:
                break
    model.eval()
    totals: dict[str, float] = {}
    test = ds.test.to(device)
    with torch.no_grad():
        for start in range(0, test.shape[0], 50):
            xb = test[start : start + 50]
            out = model.evaluate(xb, model.noise("evaluate", xb.shape[0], training.eval_samples, g, device))
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + float(v.sum())
        samples = model.sample(model.noise("sample", training.n_samples, 1, g, device)).clamp(0, 1).cpu()
    assert samples.shape[0] == training.n_samples
    return {k: v / test.shape[0] for k, v in totals.items()} | {"_losses": losses}


def run_baseline(variants, ds, seeds, device) -> list[dict]:
    out = []
    for v, model_cls in variants:
        for s in seeds:
            out.append(baseline_run(model_cls, v.model_config, v.training, ds, s, device))
    return out


# ----------------------------------------------------------------------------- (b) harness
def run_harness(variants, ds, seeds, device, block: int) -> list[dict]:
    out = []
    for v, model_cls in variants:
        for i in range(0, len(seeds), block):
            for r in train_block(model_cls, v.model_config, v.training, ds, seeds[i : i + block], device):
                out.append(r.metrics | {"_status": r.status})
    return out


# ----------------------------------------------------------------------------- FLOPs
def study_flops(variants, ds, device) -> float:
    """Matmul FLOPs of one run of each variant (train steps + evaluation + samples), summed."""
    total = 0.0
    for v, model_cls in variants:
        t = v.training
        torch.manual_seed(0)
        m = model_cls(v.model_config, ds.shape, ds.levels).to(device)
        g = torch.Generator(device=device).manual_seed(0)
        bsz = min(t.batch_size, ds.train.shape[0])
        x = ds.train[:bsz].to(device)
        with FlopCounterMode(display=False) as fc:
            loss, _ = m.loss(x, m.noise("loss", bsz, 1, g, device))
            loss.backward()
        step = fc.get_total_flops()
        n_ev = 10
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            m.evaluate(ds.test[:n_ev].to(device), m.noise("evaluate", n_ev, t.eval_samples, g, device))
        ev = fc.get_total_flops() * ds.test.shape[0] / n_ev
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            m.sample(m.noise("sample", t.n_samples, 1, g, device))
        total += t.steps * step + ev + fc.get_total_flops()
    return total


def sgemm_rate(device: torch.device, n: int | None = None, reps: int = 5) -> float:
    """FLOP/s of a large float32 matmul on ``device`` (median of ``reps`` timings)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    rates = []
    for i in range(reps + 1):
        _sync(device)
        t = time.perf_counter()
        k = 5 if device.type == "cuda" else 1
        for _ in range(k):
            a @ b
        _sync(device)
        if i:  # the first is a warm-up
            rates.append(2 * n**3 * k / (time.perf_counter() - t))
    return statistics.median(rates)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, load average {load}")


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--seeds", type=int, default=None, help="S seeds per variant (default 8 on CPU, 64 on CUDA)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per run (default: the hypothesis's)")
    ap.add_argument("--repeats", type=int, default=1, help="alternate (a) and (b) this many times; medians")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--block", default="S", help="seeds per block for (b): S (all), auto, or a number")
    ap.add_argument("--hypothesis", default=str(DEFAULT_HYPOTHESIS))
    ap.add_argument("--baseline-seeds", type=int, default=None,
                    help="time (a) on this many seeds per variant and scale to S (default: all S)")
    ap.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                    help="CPU: glibc malloc as the engine sets it (harness.device.tune_cpu_allocator) "
                    "or left at its defaults; either way (a) and (b) share it")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    allocator = "n/a"
    if dev.type == "cpu":
        if args.allocator == "default":
            os.environ[harness_device.ALLOCATOR_ENV] = "default"  # the engine leaves malloc alone too
        allocator = "tuned" if harness_device.tune_cpu_allocator() else "glibc default"
    S = args.seeds or (64 if dev.type == "cuda" else 8)
    col = collect(args.hypothesis)
    hyp = col.hypothesis
    import dataclasses

    variants = []
    for v in hyp.variants:
        tr = v.training if args.steps is None else dataclasses.replace(v.training, steps=args.steps)
        variants.append((dataclasses.replace(v, training=tr), MODELS[v.model or hyp.model]))
    ds = data.load(hyp.dataset)
    seeds = list(range(S))
    if args.block == "S":
        block = S
    elif args.block == "auto":
        v0, m0 = variants[-1]
        block = auto_block_size(m0, v0.model_config, v0.training, ds, dev, cap=S)
    else:
        block = int(args.block)
    steps = variants[0][0].training.steps
    n_runs = len(variants) * S
    sub_a = min(S, args.baseline_seeds or S)
    scale_a = S / sub_a  # (a) is timed on sub_a seeds per variant and scaled (see the docstring)

    print(f"machine: {machine()}")
    print(f"device: {dev}; study: {col.id}, {len(variants)} variants x {S} seeds = {n_runs} runs, "
          f"{steps} steps, batch {variants[0][0].training.batch_size}, eval K={variants[0][0].training.eval_samples}; "
          f"harness block {block}; CPU allocator (shared by (a) and (b)): {allocator}")
    if sub_a < S:
        print(f"(a) is timed on {sub_a} of the {S} seeds per variant and its time scaled by {scale_a:g}")
    sys.stdout.flush()

    # Warm both paths (lazy library init, first-call costs) outside the timings.
    import dataclasses as dc

    warm = [(dc.replace(v, training=dc.replace(v.training, steps=2, eval_samples=2)), m) for v, m in variants]
    run_baseline(warm[:1], ds, [0], dev)
    run_harness(warm[:1], ds, [0, 1], dev, 2)

    flops = study_flops(variants, ds, dev) * S
    gemm = [sgemm_rate(dev)]
    ta, tb = [], []
    res_a = res_b = None
    for r in range(args.repeats):
        _sync(dev)
        t = time.perf_counter()
        res_a = run_baseline(variants, ds, seeds[:sub_a], dev)
        _sync(dev)
        ta.append((time.perf_counter() - t) * scale_a)
        t = time.perf_counter()
        res_b = run_harness(variants, ds, seeds, dev, block)
        _sync(dev)
        tb.append(time.perf_counter() - t)
        gemm.append(sgemm_rate(dev))
        print(f"  repeat {r + 1}: (a) {ta[-1]:.1f} s  (b) {tb[-1]:.1f} s  ratio {ta[-1] / tb[-1]:.2f}  "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    a, b, peak = statistics.median(ta), statistics.median(tb), statistics.median(gemm)
    rate_a, rate_b = n_runs * 3600 / a, n_runs * 3600 / b

    metric = hyp.prediction.metric
    for name, res in (("a", res_a), ("b", res_b)):
        per = []
        n = sub_a if name == "a" else S
        for i, (v, _) in enumerate(variants):
            vals = [x[metric] for x in res[i * n : (i + 1) * n]]
            per.append(f"{v.level} {statistics.mean(vals):.2f}")
        print(f"({name}) mean test {metric} per variant: {', '.join(per)}")
    print(f"(a) baseline (DataLoader, one seed after another): {rate_a:,.0f} runs/hour "
          f"({a:.1f} s for {n_runs} runs), {flops / a / 1e9:.1f} GFLOP/s = {flops / a / peak:.0%} of sgemm")
    print(f"(b) harness engine (blocks of {block} seeds):       {rate_b:,.0f} runs/hour "
          f"({b:.1f} s for {n_runs} runs), {flops / b / 1e9:.1f} GFLOP/s = {flops / b / peak:.0%} of sgemm")
    print(f"sgemm rate measured in this run: {peak / 1e9:.1f} GFLOP/s (float32, "
          f"{'8192' if dev.type == 'cuda' else '2048'}^2, median of {len(gemm)} measurements); "
          f"study matmul FLOPs {flops / 1e12:.3f} TFLOP")
    print(f"ratio {a / b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
