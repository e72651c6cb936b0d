"""Runs per hour of one study on each executor, as ratios against the local executor in the same run.

The same small study (a VAE on digits, 2 variants x S seeds, blocks of B seeds) is run by
``harness run`` on: (a) the local executor, one process (sqlite store, flock claims: today's
default); (b) the local executor with 2 pool processes; (c) Ray on a 2-node local cluster
(``ray start --head`` + a second node, 1 CPU each), PostgreSQL store and leases. Every training
process uses one thread, so (a) uses one core and (b), (c) two: on two idle cores the ideal
ratio is 2, and what (b) and (c) lose against it is their overhead (process start-up, job
transfer, claims, a database store instead of sqlite). The figure is the
study's own "trained N runs in X s" (registration and interpreter start-up excluded) and the
whole command's wall time.

    python benchmarks/executors.py                  # starts PostgreSQL and Ray itself
    python benchmarks/executors.py --seeds 8 --steps 300 --block 4
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STUDY = '''
"""Executor benchmark study."""
from harness import Hypothesis, Prediction, Training

hypothesis = Hypothesis(
    claim="A wider hidden layer lowers the VAE's bound (executor benchmark).",
    source="benchmarks", dataset="digits", model="vae",
    fixed={{"latent_dim": 4}}, ablate={{"hidden": [32, 64]}},
    prediction=Prediction(metric="neg_elbo", direction="lower", effect=0.5),
    seeds={seeds},
    training=Training(steps={steps}, batch_size=64, eval_samples=2, log_every=50, n_samples=16),
)
'''


def _services():
    spec = importlib.util.spec_from_file_location("harness_services", ROOT / "scripts" / "services.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(cwd: Path, *args: str, threads: int = 1) -> tuple[float, float, int]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    env.pop("HARNESS_STORE", None)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", *args], cwd=cwd, env=env,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"harness run {' '.join(args)} failed:\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    m = re.search(r"trained (\d+) runs .* in ([\d.]+) s", p.stdout)
    return float(m.group(2)), wall, int(m.group(1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--block", type=int, default=4)
    args = ap.parse_args(argv)
    svc = _services()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load}; study 2 variants x {args.seeds} seeds, "
          f"{args.steps} steps, blocks of {args.block}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pg = svc.start_postgres(Path("/tmp") / f"bench-pg-{os.getpid()}")
        ray = svc.start_ray(tmp)
        try:
            res = {}
            for name, extra, threads in (
                ("local, 1 process (sqlite, flock)", [], 1),
                ("local, 2 processes (sqlite, flock)", ["--workers", "2"], 1),
                ("ray, 2 nodes x 1 CPU (PostgreSQL, leases)", ["--executor", "ray", "--address", ray], 1),
            ):
                d = tmp / re.sub(r"\W+", "_", name)
                (d / "hypotheses").mkdir(parents=True)
                (d / "hypotheses" / "bench.py").write_text(STUDY.format(seeds=args.seeds, steps=args.steps))
                store = ["--store", svc.create_database(pg, f"b{len(res)}")] if "ray" in name else []
                secs, wall, n = run(d, "bench", "--block-size", str(args.block), *store, *extra, threads=threads)
                res[name] = (secs, wall, n)
                print(f"  {name}: {n} runs in {secs:.1f} s ({3600 * n / secs:,.0f} runs/hour; command {wall:.1f} s)")
            base = next(iter(res.values()))
            for name, (secs, wall, _n) in res.items():
                print(f"ratio {name} / local 1 process: {base[0] / secs:.2f} (study time), {base[1] / wall:.2f} (command)")
        finally:
            svc.stop_ray()
            svc.stop_postgres(Path("/tmp") / f"bench-pg-{os.getpid()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
