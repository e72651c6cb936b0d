"""Refuse a design that can never reach a verdict, unless it is declared exploratory.

``harness check`` warns when the declared seeds cannot reach alpha (the smallest p-value the
test can attain exceeds alpha / m); ``register`` and ``run`` refuse such a design (exit 2,
located at ``seeds=``) unless ``--exploratory`` says it is exploratory, which is recorded on the
registration run (:data:`EXPLORATORY_TAG`) and put in the report's headline. The statistics
are ``analysis.power.unreachable_design``; this module only applies them to a collected file.
"""

from __future__ import annotations

from analysis.power import unreachable_design
from harness.collect import Collected, locate
from harness.errors import DeclarationError

__all__ = ["EXPLORATORY_TAG", "mark_exploratory", "refuse_unreachable"]

# Tag of a registration made with --exploratory: its design cannot reach a verdict.
EXPLORATORY_TAG = "exploratory_design"  # stored as harness.exploratory_design


def refuse_unreachable(col: Collected, *, exploratory: bool) -> str | None:
    """The reason the design can never reach a verdict (None when it can); raises a located
    ``DeclarationError`` instead unless ``exploratory``. Smoke runs and ``--set`` explorations
    are labelled not-evidence already and are never refused."""
    h = col.hypothesis
    if h.smoke or col.overrides:
        return None
    why = unreachable_design(h.prediction, h.seeds, (len(h.levels) - 1) * len(h.strata_ids))
    if why is None or exploratory:
        return why
    seeds = h.seeds if isinstance(h.seeds, int) else getattr(h.seeds, "looks", h.seeds)
    raise locate(col, DeclarationError(
        "seeds", seeds, why + "; or, to run it anyway as an exploratory study (its report says "
        "so and it is never evidence), pass --exploratory",
        what="this design can never reach a verdict"))


def mark_exploratory(store, reg, why: str | None, say) -> None:
    """Record on the registration run that its design is exploratory, and say so."""
    if why is None:
        return
    store.set_tag(reg.run_id, EXPLORATORY_TAG, why)
    say(f"EXPLORATORY design (--exploratory): {why}. The report will say so; not evidence.")
