"""Probe the families before registering (pilot seeds 0..1, NOT evidence): per-run-step cost,
test_nll and the sample metrics after STEPS untuned steps, for docs/findings.md.

    PYTHONPATH=. python benchmarks/probe_families.py 1000 vae,made,realnvp,gan,ddpm,flow_matching,vqvae
"""
import json
import sys
import time
from pathlib import Path

import torch

from harness import data, sample_metrics
from harness.engine import train_block
from harness.hypothesis import Training
from harness.registry import MODELS

torch.set_num_threads(1)
ds = data.load("digits")
steps = int(sys.argv[1])
names = sys.argv[2].split(",")
cfgs = {"vae": dict(hidden=256, latent_dim=8, sample="draw"), "made": dict(hidden=256), "realnvp": dict(hidden=256),
        "gan": dict(hidden=256), "ddpm": dict(hidden=256, T=256, schedule="cosine"), "flow_matching": dict(hidden=256),
        "hvae": dict(), "vqvae": dict(), "sundae": dict(hidden=256)}
for name in names:
    M = MODELS[name]
    fields = {f for f in M.Config.__dataclass_fields__}
    c = M.Config(**{k: v for k, v in cfgs.get(name, {}).items() if k in fields})
    t0 = time.perf_counter()
    tr = Training(steps=steps, batch_size=128, lr=1e-3, eval_samples=20, n_samples=sample_metrics.n_samples_for(ds), sample_metrics=True)
    res = train_block(M, c, tr, ds, [0, 1], "cpu")
    sec = time.perf_counter() - t0
    for r in res:
        m = dict(r.metrics)
        if r.samples is not None:
            m.update(sample_metrics.score(r.samples, ds, r.seed, Path("/tmp/probe/cache")))
        keep = {k: round(v, 3) for k, v in m.items() if k in ("test_nll", "fid", "precision", "recall", "coverage")}
        print(json.dumps({"model": name, "seed": r.seed, "status": r.status, "s_per_run_step": round(sec / steps / 2, 4), **keep}), flush=True)
