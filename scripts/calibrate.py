"""Calibration tables for docs/statistics.md: fixed and sequential designs, symmetric and
skewed paired differences, and a side-by-side with AdaStop on the same simulated data.

    PYTHONPATH=. python scripts/calibrate.py [--quick] [--estimands-only] [--reps N]

Every number is a Monte Carlo rate from a seeded generator (standard error in the header of
each table). Paired differences are standardised (SD 1); the smallest effect of interest is
E = 0.5 SD; alpha = 0.05 one-sided. "null": the test's estimand is 0, error = supported;
"at E": the estimand is exactly E, error = refuted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from analysis.calibration import DISTRIBUTIONS, adastop_side_by_side_rates, error_rate, sequential_rates

TESTS = ("t", "bootstrap_t", "permutation", "wilcoxon", "sign")
CASES = [("normal", 1)] + [(d, s) for d in DISTRIBUTIONS[1:] for s in (-1, 1)]


def label(dist: str, sign: int) -> str:
    if dist in ("normal", "t3"):
        return {"normal": "normal", "t3": "t(3), symmetric heavy tails"}[dist]
    return f"{'left' if sign < 0 else 'right'}-skewed {dist.replace('lognormal', 'lognormal s=')}"


def fixed_tables(reps: int) -> None:
    se = math.sqrt(0.05 * 0.95 / reps)
    for n in (10, 20):
        print(f"\n### Fixed design, n = {n} pairs ({reps} replicates, SE at 0.05: {se:.4f})\n")
        print("| differences | " + " | ".join(f"{t} null / at E" for t in TESTS) + " |")
        print("|---|" + "---|" * len(TESTS))
        for dist, sign in CASES:
            cells = []
            for test in TESTS:
                a = error_rate(test, dist, sign, n=n, truth="null", replicates=reps, seed=1)
                b = error_rate(test, dist, sign, n=n, truth="effect", replicates=reps, seed=2)
                cells.append(f"{a:.3f} / {b:.3f}")
            print(f"| {label(dist, sign)} | " + " | ".join(cells) + " |")
    n = 10
    print(f"\n### Fixed design, 4 strata with Holm, n = {n}: P(any comparison supported | all at 0) / "
          f"P(any refuted | all at E) ({reps} replicates)\n")
    print("| differences | " + " | ".join(TESTS) + " |")
    print("|---|" + "---|" * len(TESTS))
    for dist, sign in CASES:
        cells = []
        for test in TESTS:
            a = error_rate(test, dist, sign, n=n, truth="null", strata=4, replicates=reps, seed=3)
            b = error_rate(test, dist, sign, n=n, truth="effect", strata=4, replicates=reps, seed=4)
            cells.append(f"{a:.3f} / {b:.3f}")
        print(f"| {label(dist, sign)} | " + " | ".join(cells) + " |")
    print("\n### Estimand mismatch: the test read as a test of the MEAN (what 'lowers by E' reads as), "
          f"n = 10, null = mean 0 / at E = mean E ({reps} replicates)\n")
    print("| differences | " + " | ".join(TESTS) + " |")
    print("|---|" + "---|" * len(TESTS))
    for dist, sign in CASES[1:]:
        cells = []
        for test in TESTS:
            a = error_rate(test, dist, sign, n=10, truth="null", estimand="mean", replicates=reps, seed=5)
            b = error_rate(test, dist, sign, n=10, truth="effect", estimand="mean", replicates=reps, seed=6)
            cells.append(f"{a:.3f} / {b:.3f}")
        print(f"| {label(dist, sign)} | " + " | ".join(cells) + " |")


ESTIMAND_TESTS = (("mean", "t"), ("mean", "bootstrap_t"), ("median", "sign"),
                  ("pseudomedian", "permutation"), ("pseudomedian", "wilcoxon"))
ESTIMAND_CASES = [("normal", 1), ("t3", 1)] + [(d, s) for d in ("lognormal0.5", "lognormal1") for s in (-1, 1)]


def estimand_tables(reps: int) -> None:
    """Every estimand's tests at n = 5, 10, 20, as decide() applies them (Cochran cap on)."""
    se = math.sqrt(0.05 * 0.95 / reps)
    for n in (5, 10, 20):
        print(f"\n### Each estimand as declared, n = {n} pairs: P(supported | estimand 0) / "
              f"P(refuted | estimand E) ({reps} replicates, SE at 0.05: {se:.4f})\n")
        print("| differences | " + " | ".join(f"{e}: {t}" for e, t in ESTIMAND_TESTS) + " |")
        print("|---|" + "---|" * len(ESTIMAND_TESTS))
        for dist, sign in ESTIMAND_CASES:
            cells = []
            for _, test in ESTIMAND_TESTS:
                a = error_rate(test, dist, sign, n=n, truth="null", replicates=reps, seed=21)
                b = error_rate(test, dist, sign, n=n, truth="effect", replicates=reps, seed=22)
                cells.append(f"{a:.3f} / {b:.3f}")
            print(f"| {label(dist, sign)} | " + " | ".join(cells) + " |")


def sequential_tables(reps: int) -> None:
    se = math.sqrt(0.05 * 0.95 / reps)
    print(f"\n### Sequential designs ({reps} replicates, SE at 0.05: {se:.4f}; E[n] = expected seeds)\n")
    print("| test | looks | spending | differences | P(sup given 0) | P(ref given E) | "
          "power at E (fixed at max) | E[n] at 0 | E[n] at E | max |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    designs = [((8, 16, 24, 32), "obrien_fleming"), ((8, 16, 24, 32), "pocock"),
               ((10, 20, 30), "obrien_fleming"), ((10, 20, 30), "pocock"), ((16, 32), "pocock")]
    for test in ("t", "permutation"):
        for looks, spending in designs:
            for dist, sign in ([("normal", 1), ("lognormal0.5", -1), ("lognormal0.5", 1)]
                               if looks == (8, 16, 24, 32) else [("normal", 1)]):
                z = sequential_rates(test, dist, sign, looks, theta=0.0, spending=spending, replicates=reps, seed=7)
                e = sequential_rates(test, dist, sign, looks, theta=0.5, spending=spending, replicates=reps, seed=8)
                print(f"| {test} | {looks} | {spending} | {label(dist, sign)} | {z['supported']:.3f} | "
                      f"{e['refuted']:.3f} | {e['supported']:.3f} ({e['fixed_supported']:.3f}) | "
                      f"{z['expected_seeds']:.1f} | {e['expected_seeds']:.1f} | {looks[-1]} |")
    print(f"\n4 strata, Holm family spending, t, looks (10, 20), normal ({reps} replicates):")
    for spending in ("obrien_fleming", "pocock"):
        z = sequential_rates("t", "normal", 1, (10, 20), theta=0.0, strata=4, spending=spending, replicates=reps, seed=9)
        e = sequential_rates("t", "normal", 1, (10, 20), theta=0.5, strata=4, spending=spending, replicates=reps, seed=10)
        print(f"- {spending}: P(any supported | all 0) = {z['any_supported']:.3f}, P(any refuted | all E) = "
              f"{e['any_refuted']:.3f}, E[n] at 0 = {z['expected_seeds']:.1f}, at E = {e['expected_seeds']:.1f}")


def adastop_side_by_side(reps: int) -> None:
    print(f"\n### Side by side with AdaStop on the same simulated data ({reps} replicates per row)\n")
    print("Data: control and treatment values independent N(0, 1/2) and N(theta, 1/2) per seed "
          "(paired differences SD 1), E = 0.5, looks at 8, 16, 24, 32 seeds. harness: permutation "
          "test, alpha = 0.05 one-sided each way (supported / refuted at E). AdaStop 0.1.3: "
          "MultipleAgentsComparator(n=8, K=4, B=2000, alpha=0.1) (two-sided 0.1, i.e. about 0.05 "
          "each way; beta = 0, so it never stops early for 'equal').\n")
    print("| theta | method | P(supported; AdaStop: treatment larger) | P(harness: refuted, < E shown; "
          "AdaStop: treatment smaller) | P(inconclusive; AdaStop: equal) | E[seeds] |")
    print("|---|---|---|---|---|---|")
    for theta in (0.0, 0.5):
        res = adastop_side_by_side_rates(theta, reps, seed=11 + int(theta * 10))
        for name, r in res.items():
            print(f"| {theta} | {name} | {r['supported']:.3f} | {r['refuted']:.3f} | "
                  f"{r['inconclusive']:.3f} | {r['expected_seeds']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few replicates (a smoke run)")
    ap.add_argument("--estimands-only", action="store_true",
                    help="only the per-estimand table at n = 5, 10, 20 (a few minutes on one core)")
    ap.add_argument("--reps", type=int, default=None, help="replicates of the per-estimand table")
    args = ap.parse_args()
    fixed, seq, ada = (400, 200, 20) if args.quick else (4000, 2000, 200)
    t0 = time.time()
    print(f"# calibration (python {sys.version.split()[0]}, numpy {np.__version__})")
    estimand_tables(args.reps or fixed)
    if args.estimands_only:
        print(f"\n(total {time.time() - t0:.0f} s)")
        return
    fixed_tables(fixed)
    sequential_tables(seq)
    adastop_side_by_side(ada)
    print(f"\n(total {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
