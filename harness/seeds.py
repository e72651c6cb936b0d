"""Random streams: every generator the harness seeds takes its seed from (seed, purpose).

A run's seed is a label, not a stream: seeding the initialisation with ``seed`` and another
stream with ``seed * c + k`` makes seed k's init the same numbers as seed 0's stream k (and so
on for other pairs), which correlates runs that should be independent. :func:`stream_seed`
hashes the pair instead: numpy's ``SeedSequence`` mixes the seed with a 64-bit tag of the
purpose's name, and the first 63 bits of its state seed ``torch.Generator.manual_seed`` or
``numpy.random.default_rng`` alike. Distinct pairs collide with probability about 2^-63 per
pair; ``tests/test_seeds.py`` checks that none do for seeds 0..1000 and every purpose used.

Example::

    >>> from harness.seeds import stream_seed
    >>> stream_seed(0, "init") != stream_seed(1, "init") != stream_seed(0, "data")
    True
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["PURPOSES", "declared_seeds", "stream_seed"]

# The purposes the harness seeds (engine streams, sample-metric subsets, the feature
# classifier); any other non-empty name works too, e.g. for a user's own stream.
PURPOSES = (
    "init",
    "data",
    "noise",
    "eval",
    "sample",
    "sample_metrics",
    "classifier_init",
    "classifier_order",
    "binarize",
)


def _tag(purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], "little")


def stream_seed(seed: int, purpose: str) -> int:
    """The 63-bit seed of ``purpose``'s random stream for run seed ``seed`` (an int >= 0)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string, got {purpose!r}")
    state = np.random.SeedSequence([int(seed), _tag(purpose)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


# ------------------------------------------------------------ declared confirmatory seed ranges
def declared_seeds(declaration: dict) -> range:
    """The confirmatory seeds of a canonical declaration (``Hypothesis.canonical()``, or a
    registration's record): ``first_seed .. first_seed + seeds - 1``, the maximum seed count
    for a sequential design. A declaration written before ``first_seed`` existed starts at 0."""
    seeds = declaration["seeds"]
    n = seeds["looks"][-1] if isinstance(seeds, dict) else int(seeds)
    first = int(declaration.get("first_seed", 0))
    return range(first, first + n)
