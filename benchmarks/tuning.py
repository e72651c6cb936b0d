"""Tuning throughput: trials stacked in one block against one trial at a time.

One process, one device, the same tuning work measured two ways:

  (a) one at a time: each trial is its own ``train_block`` call (one member);
  (b) stacked:       the trials of a variant as the members of ONE ``train_block`` call, each
                     member with its own learning rate and beta (``members=``), in blocks of
                     ``--block`` members.

The work: 2 variants (a beta-VAE with a diagonal vs a linear-IAF posterior on the digits'
tuning view: training split minus the fixed validation split) x ``--trials`` random-search
trials over lr ~ LogUniform(1e-4, 3e-2) and beta ~ Uniform(0.5, 4), the same trial configurations
for (a) and (b), each trial ``--steps`` steps of batch 128, then its validation evaluation.
(a) and (b) alternate ``--repeats`` times; medians are reported. The per-trial validation
scores of (a) and (b) are compared (they must agree to float tolerance).

Printed: trials per hour of each and the ratio (b)/(a) on a line starting ``ratio``. Usage::

    python benchmarks/tuning.py --device cpu                 # 2 x 16 trials, blocks of 16
    python benchmarks/tuning.py --device cuda --trials 64 --block 64

Needs neither mlflow nor optuna (the trial configurations come from a seeded numpy generator,
as Optuna's random sampler would draw them).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from harness import data  # noqa: E402
from harness.device import pick_device  # noqa: E402
from harness.engine import train_block  # noqa: E402
from harness.hypothesis import TUNING_SEED_BASE, Training  # noqa: E402
from harness.registry import MODELS  # noqa: E402


def trial_configs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    lr = np.exp(rng.uniform(np.log(1e-4), np.log(3e-2), n))
    beta = rng.uniform(0.5, 4.0, n)
    return [{"lr": float(a), "beta": float(b)} for a, b in zip(lr, beta)]


def members_of(base_cfg, base_tr, params: list[dict]) -> list[tuple]:
    return [(dataclasses.replace(base_cfg, beta=p["beta"]), dataclasses.replace(base_tr, lr=p["lr"])) for p in params]


def run_a(model, cfg, tr, ds, params, dev) -> list[float]:
    out = []
    for i, m in enumerate(members_of(cfg, tr, params)):
        r = train_block(model, m[0], m[1], ds, [TUNING_SEED_BASE + i], dev, members=[m])[0]
        out.append(r.metrics["neg_elbo"])
    return out


def run_b(model, cfg, tr, ds, params, dev, block: int) -> list[float]:
    out = []
    mem = members_of(cfg, tr, params)
    for s in range(0, len(mem), block):
        chunk = mem[s : s + block]
        seeds = [TUNING_SEED_BASE + i for i in range(s, s + len(chunk))]
        out += [r.metrics["neg_elbo"] for r in train_block(model, cfg, tr, ds, seeds, dev, members=chunk)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--trials", type=int, default=16, help="trials per variant")
    ap.add_argument("--block", type=int, default=16, help="members per stacked block")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = pick_device(args.device)
    ds = data.validation_view(data.load("digits"), 0.2)
    model = MODELS["beta_vae"]
    tr = Training(steps=args.steps, batch_size=128, eval_samples=20, log_every=50, n_samples=8)
    variants = {p: model.Config(latent_dim=8, hidden=128, posterior=p) for p in ("diagonal", "linear_iaf")}
    params = trial_configs(args.trials)
    n_trials = len(variants) * args.trials
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__} threads {torch.get_num_threads()}, device {dev}"
          + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""))
    print(f"work: {len(variants)} variants x {args.trials} trials x {args.steps} steps, block {args.block}")
    ta, tb, worst = [], [], 0.0
    for rep in range(args.repeats):
        for which in ("a", "b"):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            scores = []
            for cfg in variants.values():
                scores += (run_a(model, cfg, tr, ds, params, dev) if which == "a"
                           else run_b(model, cfg, tr, ds, params, dev, args.block))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            (ta if which == "a" else tb).append(dt)
            if which == "a":
                ref = scores
            else:
                rel = np.abs(np.array(scores) - np.array(ref)) / np.abs(np.array(ref))
                worst = max(worst, float(np.nanmax(rel)))
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"repeat {rep + 1} ({which}): {dt:.1f} s, load {load:.2f}", flush=True)
    a, b = statistics.median(ta), statistics.median(tb)
    print(f"(a) one trial at a time: {a:.1f} s = {3600 * n_trials / a:,.0f} trials/hour")
    print(f"(b) stacked, block {args.block}: {b:.1f} s = {3600 * n_trials / b:,.0f} trials/hour")
    print(f"largest relative difference of a trial's validation score, (a) vs (b): {worst:.2e}")
    print(f"ratio (b)/(a) = {a / b:.2f}  (per repeat: {', '.join(f'{x / y:.2f}' for x, y in zip(ta, tb))})")


if __name__ == "__main__":
    main()
