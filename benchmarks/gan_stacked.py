"""The GAN (two optimisers, d_steps D updates per G update) stacked against a per-seed loop.

Measured in one process, alternating ``--repeats`` times (medians), on the digits data:

  (a) baseline: the loop a researcher would write, one seed after another: a generator and a
      discriminator ``nn.Module``, two ``torch.optim.Adam`` (the Config's lrs and betas), a
      shuffling ``DataLoader``, ``d_steps`` D steps on fresh minibatches per G step;
  (b) engine, one seed at a time: ``train_block`` with blocks of one seed;
  (c) engine, stacked: ``train_block`` with all S seeds in one block (two per-group Adams).

The same steps for each; (b) and (c) also run the engine's (small) test evaluation and draw
4 samples, which (a) does not: that only counts against the engine. Printed: seconds per seed
of each, and ``ratio`` lines: (a)/(c) and (b)/(c), the stacked engine's speed-up. Usage::

    python benchmarks/gan_stacked.py --seeds 8 --steps 200 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from harness import data  # noqa: E402
from harness.engine import train_block  # noqa: E402
from harness.hypothesis import Training  # noqa: E402
from harness.models.gan import GAN  # noqa: E402


def baseline(cfg, training, ds, seed: int) -> None:
    torch.manual_seed(seed)
    m = GAN(cfg, ds.shape, ds.levels)
    opt_g = torch.optim.Adam(m.gen.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(m.disc.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ds.train), batch_size=training.batch_size,
                                         shuffle=True, drop_last=True)
    it = iter(loader)

    def batch():
        nonlocal it
        try:
            return next(it)[0]
        except StopIteration:
            it = iter(loader)
            return next(it)[0]

    for _ in range(training.steps):
        for _ in range(cfg.d_steps):
            x = batch()
            z = torch.randn(x.shape[0], cfg.latent_dim)
            loss = F.softplus(-m.disc(x)).mean() + F.softplus(m.disc(m.generate(z).detach())).mean()
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
        x = batch()
        z = torch.randn(x.shape[0], cfg.latent_dim)
        loss = F.softplus(-m.disc(m.generate(z))).mean()
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()


def engine_run(cfg, training, ds, seeds) -> None:
    train_block(GAN, cfg, training, ds, seeds, device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--d-steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = data.load("digits")
    cfg = GAN.Config(d_steps=a.d_steps)
    training = Training(steps=a.steps, batch_size=a.batch_size, eval_samples=1, n_samples=4)
    seeds = list(range(a.seeds))
    times = {"a": [], "b": [], "c": []}
    engine_run(cfg, dataclasses.replace(training, steps=2), ds, [0, 1])  # warm-up
    for _ in range(a.repeats):
        t = time.perf_counter()
        for s in seeds:
            baseline(cfg, training, ds, s)
        times["a"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for s in seeds:
            engine_run(cfg, training, ds, [s])
        times["b"].append(time.perf_counter() - t)
        t = time.perf_counter()
        engine_run(cfg, training, ds, seeds)
        times["c"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print(f"gan digits: S={a.seeds}, steps={a.steps}, batch={a.batch_size}, d_steps={a.d_steps}, "
          f"hidden={cfg.hidden}, depth={cfg.depth}, repeats={a.repeats}")
    for k, label in (("a", "(a) per-seed loop, torch.optim"), ("b", "(b) engine, one seed per block"),
                     ("c", "(c) engine, stacked")):
        print(f"{label:34s} {med[k] / a.seeds:8.3f} s/seed   runs {times[k]}")
    print(f"ratio (a)/(c) {med['a'] / med['c']:.2f}x")
    print(f"ratio (b)/(c) {med['b'] / med['c']:.2f}x")


if __name__ == "__main__":
    main()
