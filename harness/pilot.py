"""A pilot before the study: ``harness check FILE --pilot N`` (issue 22, "power before running").

The pilot version of a declaration trains every variant for N seeds OUTSIDE the confirmatory
range, at the registered budget and the declared (untuned) values, and is stored apart as
``<id>@pilot`` under its own version: it never is, never mixes with and never counts as the
registered study. Its paired differences give each comparison's SD, from which
``analysis.pilot`` estimates the power of the registered design and the seeds needed.

The seed rule (:func:`pilot_seeds`): seeds ``0 .. N-1`` when they all lie below ``first_seed``
(a range the declaration left free, e.g. for a pilot), else the reserved pilot range
``PILOT_SEED_BASE .. PILOT_SEED_BASE + N - 1``. Not "just past the confirmatory range": the
pilot's usual outcome is "raise seeds=", and a raised range would then run into the pilot's
seeds, where the same seed and configuration reproduce the pilot's runs bit for bit (the pilot
would become evidence). No declarable range below the tuning seeds reaches the reserved range
unless ``first_seed`` is above ``PILOT_SEED_BASE - MAX_SEEDS``, and then ``0 .. N-1`` is free.

This module only derives the declaration; running it is :mod:`harness.pilot_study`.
"""

from __future__ import annotations

import dataclasses

from harness.errors import HarnessError
from harness.hypothesis import MAX_SEEDS, TUNING_SEED_BASE, Hypothesis
from harness.seeds import declared_seeds

__all__ = ["PILOT_SEED_BASE", "PILOT_SUFFIX", "check_pilot_n", "pilot_clash", "pilot_seeds", "pilot_version",
           "seed_rule"]

PILOT_SUFFIX = "@pilot"
PILOT_SEED_BASE = 900_000  # the reserved pilot seeds start here, below the tuning seeds (1,000,000)
assert PILOT_SEED_BASE + MAX_SEEDS <= TUNING_SEED_BASE


def check_pilot_n(n: object) -> int:
    """``--pilot N``: an integer from 2 (one paired difference's SD needs two pairs) to MAX_SEEDS;
    a HarnessError (exit 2) naming the option and the value otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_SEEDS:
        raise HarnessError(f"--pilot {n}: expected an integer from 2 to {MAX_SEEDS:,} (seeds per variant in the "
                           "pilot)\n  hint: the SD of paired differences needs at least 2 seeds; 5 to 10 give a "
                           "usable estimate, e.g. --pilot 5")
    return n


def pilot_seeds(hyp: Hypothesis, n: int) -> range:
    """The N pilot seeds of ``hyp``: disjoint from its confirmatory seeds (module docstring).

    >>> from types import SimpleNamespace as NS
    >>> pilot_seeds(NS(first_seed=10, seeds=20), 5), pilot_seeds(NS(first_seed=0, seeds=20), 5)
    (range(0, 5), range(900000, 900005))
    """
    n = check_pilot_n(n)
    confirmatory = range(hyp.first_seed, hyp.first_seed + int(hyp.seeds))
    for seeds in (range(0, n), range(PILOT_SEED_BASE, PILOT_SEED_BASE + n)):
        if seeds.stop <= confirmatory.start or seeds.start >= confirmatory.stop:
            return seeds
    raise AssertionError("unreachable: first_seed > PILOT_SEED_BASE - MAX_SEEDS leaves 0 .. N-1 free")


def seed_rule(hyp: Hypothesis, n: int) -> str:
    """The rule that chose the pilot's seeds, in words, for the pilot's output."""
    seeds = pilot_seeds(hyp, n)
    conf = f"{hyp.first_seed}..{hyp.first_seed + int(hyp.seeds) - 1}"
    if seeds.start == 0:
        return (f"seeds {seeds.start}..{seeds.stop - 1}, below first_seed={hyp.first_seed}; the confirmatory "
                f"seeds are {conf}")
    return (f"seeds {seeds.start}..{seeds.stop - 1}, the reserved pilot range (there are not {n} seeds below "
            f"first_seed={hyp.first_seed}); the confirmatory seeds are {conf}, and raising seeds= after the "
            "pilot never reaches the pilot's seeds")


def pilot_version(hyp: Hypothesis, n: int) -> Hypothesis:
    """The pilot declaration: N seeds from :func:`pilot_seeds`, the same grid, budget and
    prediction, no tuning (the declared values as they are), labelled ``pilot``. A sequential
    design becomes a fixed one: a pilot has no looks."""
    seeds = pilot_seeds(hyp, n)
    return dataclasses.replace(hyp, seeds=n, first_seed=seeds.start, tuning=None, pilot=True)


def pilot_clash(hyp_id: str, hyp: Hypothesis, pilots: list) -> str | None:
    """Why ``hyp``'s confirmatory seeds may not be run: they reach the seeds of a pilot in
    ``pilots`` (the registrations of ``<id>@pilot``), whose runs the same seeds would reproduce
    (the pilot would become evidence); None when every pilot's seeds are disjoint from them."""
    mine = range(hyp.first_seed, hyp.first_seed + int(hyp.seeds))
    for reg in pilots:
        theirs = declared_seeds(reg.declaration)
        if max(mine.start, theirs.start) < min(mine.stop, theirs.stop):
            return (f"the confirmatory seeds {mine.start}..{mine.stop - 1} reach the seeds {theirs.start}.."
                    f"{theirs.stop - 1} of the pilot {hyp_id}{PILOT_SUFFIX} v{reg.number} ({reg.version}); a pilot "
                    "is never evidence, and the same seeds would reproduce its runs. Fix: first_seed="
                    f"{theirs.stop} (past the pilot's seeds), or a range ending below {theirs.start}")
    return None
