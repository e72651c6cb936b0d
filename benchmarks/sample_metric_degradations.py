"""Planted degradations and the noise floor of the sample-quality metrics (docs/metrics.md).

Prints (1) the metrics of real training images, degraded in known ways, scored against the
test split exactly as a run's samples are (``harness.sample_metrics.score``), and (2) the noise
floor: the spread of each metric across independent draws of one fixed generator (real
images; a trained VAE's samples), and KID's subset-resampling noise under the old and the
current subset settings. Real images never overlap the test split they are scored against.

    PYTHONPATH=. python benchmarks/sample_metric_degradations.py [--dataset digits] [--vae-steps 2000]

About 20 s on 2 lightly loaded CPU cores (most of it training the VAE).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import data, engine
from harness import sample_metrics as smx
from harness.hypothesis import Training
from harness.metrics import degradations as dg
from harness.metrics import sample_quality as sq
from harness.registry import MODELS

SHOWN = ("fid", "kid", "precision", "recall", "coverage", "nn_train_ratio", "copy_fraction")
FLOOR_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")
MEMORISATION = ("nn_train_ratio", "copy_fraction")


def planted(ds, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The sample sets of the degradation table: name -> [n, D] on [0, 1]."""
    train = ds.train.numpy().reshape(len(ds.train), -1).astype(np.float64)
    ytr, _ = data.labels(ds.name)
    base = train[rng.choice(len(train), n, replace=False)]
    sets = {"real (train draw: copies of train)": base}
    for s in dg.LADDERS["noise"]:
        sets[f"noise sigma={s}"] = dg.add_noise(base, s, np.random.default_rng(1))
    for s in dg.LADDERS["blur"]:
        sets[f"blur sigma={s}"] = dg.blur(base, s, ds.shape)
    sets["blur 3x3 box"] = dg.box_blur(base, ds.shape)
    for a in dg.LADDERS["dim"]:
        sets[f"dim x{a}"] = dg.dim(base, a)
    for k in dg.LADDERS["drop"]:
        sets[f"drop {k} classes"] = dg.drop_classes(train, ytr, k, n, np.random.default_rng(2))
    sets["constant mean image"] = np.repeat(train.mean(0, keepdims=True), n, 0)
    sets["uniform noise"] = np.random.default_rng(3).uniform(size=base.shape)
    sets["all zeros"] = np.zeros_like(base)
    sets["all ones"] = np.ones_like(base)
    sets["saturated (binarised)"] = (base >= 0.5).astype(np.float64)
    sets["train copies (memorised)"] = train[:n]
    return sets


def draws_real(ds, n: int, partitions: int) -> list[np.ndarray]:
    """Disjoint draws of n train images: each random partition of the train split gives
    len(train) // n disjoint draws."""
    train = ds.train.numpy().reshape(len(ds.train), -1).astype(np.float64)
    out = []
    for p in range(partitions):
        perm = np.random.default_rng([11, p]).permutation(len(train))
        out += [train[perm[i * n : (i + 1) * n]] for i in range(len(train) // n)]
    return out


def draws_vae(ds, n: int, k: int, steps: int) -> list[np.ndarray]:
    """k disjoint draws of n samples from one trained VAE (seed 0)."""
    vae = MODELS["vae"]
    training = Training(steps=steps, batch_size=128, eval_samples=10, n_samples=n * k)
    res = engine.train_block(vae, vae.Config(), training, ds, [0], "cpu")[0]
    x = res.samples.reshape(n * k, -1).astype(np.float64)
    return [x[i * n : (i + 1) * n] for i in range(k)]


def spread(ds, sets: list[np.ndarray], cache: Path) -> dict[str, tuple[float, float]]:
    vals = {m: [] for m in FLOOR_METRICS + MEMORISATION}
    for i, x in enumerate(sets):
        out = smx.score(x, ds, i, cache)
        for m in vals:
            vals[m].append(out[m])
    return {m: (float(np.mean(v)), float(np.std(v, ddof=1))) for m, v in vals.items()}


def subset_noise(ref: dict, fake: np.ndarray, subsets: int, size: int, reps: int = 20) -> float:
    """Std of KID over the subset draw alone (same samples, different Generators)."""
    real = ref["real"]
    f = ref["standardise"](smx._features(ref["extractor"], fake))
    return float(np.std([sq.kid(real, f, subsets, size, np.random.default_rng(r))[0] for r in range(reps)], ddof=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--vae-steps", type=int, default=2000)
    ap.add_argument("--vae-draws", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=5)
    ap.add_argument("--cache", default=None, help="classifier cache dir (default: a temp dir)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="harness-cache-"))
    ds = data.load(args.dataset)
    n = smx.n_samples_for(ds)
    ref = smx.reference(ds, cache)
    fx = ref["extractor"]
    std = ref["standardise"]
    print(f"dataset {ds.name}: {n} samples per set vs {len(ds.test)} test images; classifier "
          f"accuracy {fx.accuracy:.3f}, {std.keep.size} features, {std.n_dead} dead on train (dropped)")

    print("\n## Planted degradations (train images degraded, scored against the test split)\n")
    print("| samples | " + " | ".join(SHOWN) + " |")
    print("|---|" + "---:|" * len(SHOWN))
    for name, x in planted(ds, n, np.random.default_rng(0)).items():
        out = smx.score(x, ds, 0, cache)
        print(f"| {name} | " + " | ".join(f"{out[m]:.4g}" for m in SHOWN) + " |")

    print("\n## Noise floor (std across independent draws of one generator)\n")
    real = spread(ds, draws_real(ds, n, args.partitions), cache)
    model = spread(ds, draws_vae(ds, n, args.vae_draws, args.vae_steps), cache)
    print("| metric | real draws: mean | std | VAE draws: mean | std | floor = 2 sqrt(2) max std |")
    print("|---|---:|---:|---:|---:|---:|")
    for m in FLOOR_METRICS:
        floor = 2 * np.sqrt(2) * max(real[m][1], model[m][1])
        print(f"| {m} | {real[m][0]:.4g} | {real[m][1]:.4g} | {model[m][0]:.4g} | {model[m][1]:.4g} | {floor:.3g} |")
    print("\nMemorisation of the VAE's samples (mean +- std over its draws): " + "; ".join(
        f"{m} {model[m][0]:.3g} +- {model[m][1]:.2g}" for m in MEMORISATION))
    base = draws_real(ds, n, 1)[0]
    old = subset_noise(ref, base, 50, 100)
    new = subset_noise(ref, base, smx.KID_SUBSETS, min(smx.KID_SUBSET_SIZE, n))
    print(f"\nKID subset-resampling std, same samples: 50 subsets of 100 (before) -> {old:.4g}; "
          f"subsets of {min(smx.KID_SUBSET_SIZE, n)} of {n} (current: the full set when equal) -> {new:.4g}")
    print(f"\n({args.partitions} partitions x {len(ds.train) // n} disjoint real draws; "
          f"{args.vae_draws} VAE draws after {args.vae_steps} steps; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
