"""Wall time of ONE run of a shipped hypothesis at its registered budget (or a declared
fraction of its steps), and the study's extrapolated time: runs x that time.

It trains what ``harness run`` trains for one cell (the same engine call, the same training
settings, the same sample scoring when the study scores samples) on one seed, alone, on the
CPU, without the store; it never changes the registered budget: ``--fraction`` only shortens
this measurement, and the printout says so and scales the time back up (training time is
linear in steps; evaluation and sample scoring are counted once, unscaled).

Usage (one thread, as docs/findings.md measured)::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/run_time.py iterative_denoising --variant 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from harness import data, engine, sample_metrics
from harness.collect import collect
from harness.registry import MODELS


def measure(name: str, variant: int = 0, fraction: float = 1.0) -> dict:
    hyp = collect(name).hypothesis
    v = hyp.variants[variant]
    ds = data.load(hyp.dataset)
    training = v.training
    scored = sample_metrics.wanted(hyp)
    if scored:
        training = dataclasses.replace(training, n_samples=sample_metrics.n_samples_for(ds))
    steps = max(1, round(training.steps * fraction))
    short = dataclasses.replace(training, steps=steps, log_every=min(training.log_every, steps))
    # A seed outside the declared confirmatory range: timing must not peek at a result the
    # study will report (and nothing here is logged to a store).
    seed = hyp.first_seed + int(hyp.seeds) + 1000
    t0 = time.perf_counter()
    (res,) = engine.train_block(MODELS[v.model], v.model_config, short, ds, [seed], "cpu")
    t_train = time.perf_counter() - t0
    t_score = 0.0
    if scored and res.samples is not None:
        t1 = time.perf_counter()
        res.metrics.update(sample_metrics.score(res.samples, ds, res.seed, None))
        t_score = time.perf_counter() - t1
    # Scale training to the registered steps; evaluation / sampling inside train_block are
    # counted as training here (an over-estimate when fraction < 1: said in the printout).
    per_run = t_train / fraction + t_score
    n_tuning = hyp.n_tuning_runs
    return {
        "hypothesis": name, "variant": v.id, "seed": seed, "registered_steps": training.steps,
        "measured_steps": steps, "fraction": fraction, "train_s": round(t_train, 1), "score_s": round(t_score, 1),
        "one_run_s": round(per_run, 1), "confirmatory_runs": hyp.n_runs, "tuning_runs": n_tuning,
        "study_h_one_thread": round((hyp.n_runs + n_tuning) * per_run / 3600, 2),
        "status": res.status,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("hypothesis")
    p.add_argument("--variant", type=int, default=0, help="index into hypothesis.variants")
    p.add_argument("--fraction", type=float, default=1.0, help="measure this fraction of the steps")
    a = p.parse_args()
    print(json.dumps(measure(a.hypothesis, a.variant, a.fraction), indent=1))


if __name__ == "__main__":
    main()
