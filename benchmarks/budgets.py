"""The cost of evaluating at budgets: one block trained with ``evaluate_at`` of 4 budgets
(the final one included) against the same block evaluated once, in the same process, repeats
interleaved so that machine load hits both alike. Prints min and median of each and the ratio.

Usage::

    python benchmarks/budgets.py                       # DDPM T=32 on digits, 4 seeds, CPU
    python benchmarks/budgets.py --model vae --steps 800 --repeats 5

The extra cost is 3 more evaluations (and, with ``--samples``, 3 more sampling passes) per
block: small against training when the budgets are far apart, which is the point to measure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ddpm")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", action="store_true", help="also sample at every budget")
    args = ap.parse_args()

    import torch

    from harness import data
    from harness.engine import train_block
    from harness.hypothesis import Training
    from harness.registry import MODELS

    torch.set_num_threads(1)
    ds = data.load("digits")
    cls = MODELS[args.model]
    cfg = cls.Config(T=32, hidden=128, depth=2) if args.model == "ddpm" else cls.Config(hidden=128, depth=2)
    s = args.steps
    once = Training(steps=s, batch_size=128, eval_samples=10, n_samples=64, log_every=50)
    four = Training(steps=s, batch_size=128, eval_samples=10, n_samples=64, log_every=50,
                    evaluate_at=(s // 8, s // 4, s // 2))
    seeds = list(range(args.seeds))
    train_block(cls, cfg, Training(steps=2, batch_size=128, eval_samples=2), ds, seeds[:1], "cpu")  # warm-up
    times: dict[str, list[float]] = {"once": [], "four": []}
    for _ in range(args.repeats):
        for name, tr in (("once", once), ("four", four)):
            t0 = time.perf_counter()
            train_block(cls, cfg, tr, ds, seeds, "cpu", budget_samples=args.samples)
            times[name].append(time.perf_counter() - t0)
    for name, ts in times.items():
        print(f"{name}: min {min(ts):.2f} s, median {statistics.median(ts):.2f} s  ({args.repeats} repeats)")
    print(f"ratio four budgets / once: min {min(times['four']) / min(times['once']):.3f}, "
          f"median {statistics.median(times['four']) / statistics.median(times['once']):.3f}")


if __name__ == "__main__":
    main()
