"""Running a pilot (``harness check FILE --pilot N``) and recording it on the registered study.

:func:`run_pilot` registers the pilot version (:mod:`harness.pilot`) as ``<id>@pilot``, trains
it with the ordinary driver (resuming what an earlier identical pilot finished), reads it back
with ``analysis.load``, applies the declared test with ``analysis.decide`` and turns each
comparison's SD into the registered design's power and seeds needed (``analysis.pilot``). The
pilot's estimate is also logged beside its registration (``pilot/estimate.json``).

:func:`record_pilots` is ``harness run``'s side: before registering, it refuses a confirmatory
range that reaches a pilot's seeds (located at ``first_seed=``); after, the registration run
gets the tag ``harness.pilot`` naming every pilot, its seeds and N, and that its runs are not
evidence. The report's provenance shows that line.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from harness.collect import Collected, locate
from harness.errors import DeclarationError, HarnessError
from harness.pilot import PILOT_SUFFIX, pilot_clash, pilot_version, seed_rule
from harness.seeds import declared_seeds

__all__ = ["PILOT_TAG", "pilot_collected", "record_pilots", "run_pilot"]

PILOT_TAG = "pilot"  # on the registered study's registration run: harness.pilot


def pilot_collected(col: Collected, n: int) -> Collected:
    """``col``'s pilot version of N seeds, as ``<id>@pilot``."""
    return Collected(f"{col.id}{PILOT_SUFFIX}", col.path, pilot_version(col.hypothesis, n), col.source)


def run_pilot(col: Collected, n: int, store: str | None, *, say, progress=None, device: str = "auto") -> dict:
    """Train ``col``'s pilot of N seeds per variant, print the power estimate through ``say``
    (``console.print``: strings and one rich Table) and return it (``analysis.pilot.pilot_estimate``
    plus ``id``, ``version`` and ``seeds``). ``progress``: a :class:`harness.progress.RunProgress`."""
    from analysis.decide import decide
    from analysis.load import load
    from analysis.pilot import pilot_estimate
    from harness.device import pick_device
    from harness.registration import register
    from harness.study import run_study
    from harness.tracking import Store

    h = col.hypothesis
    pcol = pilot_collected(col, n)
    ph = pcol.hypothesis
    st = Store(store)
    reg, _ = register(pcol, st, new_version=True)  # each pilot (N, declaration) is its own version
    t = h.training
    say(f"PILOT (exploratory, never evidence): {pcol.id} v{reg.number} ({reg.version}), {n} seeds per variant, "
        f"{len(ph.variants) * n} runs, stored apart from the registered study")
    say(f"pilot seeds: {seed_rule(h, n)}")
    say(f"pilot budget: the registered one (training.steps={t.steps}" +
        (f", evaluated at {list(t.evaluate_at)}" if t.evaluate_at else "") + "), every variant at its declared "
        "values: tuning is not run for a pilot")
    if h.tuning is not None:
        say("pilot note: the file declares tuning; the pilot trains the declared defaults instead of each "
            "variant's tuned configuration, so the confirmatory runs' spread may differ from the pilot's")
    hooks = {}
    if progress is not None:
        hooks = {"on_progress": progress.ended, "on_training": progress.training,
                 "on_phase": lambda _name, total: progress.phase("pilot", total)}
    summary = run_study(pcol, st, reg, device=str(pick_device(device)), workers=1, **hooks)
    for m in summary.messages:
        say(f"pilot: {m}")
    frame = load(pcol.id, st, reg.version)
    try:
        verdict = decide(frame, ph.prediction, control=ph.control, seed=int(reg.version, 16) % 2**32, power=False)
    except ValueError as exc:
        raise HarnessError(f"{col.path}: the pilot {pcol.id} v{reg.number} cannot be analysed: {exc}\n"
                           f"  hint: `harness report {pcol.id}` shows its runs; a pilot of more seeds may help") from None
    target = getattr(h.prediction, "power", None)
    est = pilot_estimate(verdict.comparisons, h.prediction, int(h.seeds), target)
    est.update(id=pcol.id, number=reg.number, version=reg.version, seeds=[ph.first_seed, ph.first_seed + n - 1], n=n)
    _log_estimate(st, reg, est)
    for line in _describe(h, est, target, n, say):
        say(line)
    return est


def _num(x: float, fmt: str = ".4g") -> str:
    return "-" if not isinstance(x, (int, float)) or math.isnan(x) else format(x, fmt)


def _seeds(x: float, simulated: bool, zero: bool = False) -> str:
    """Seeds needed as printed: "> 400" where a simulated search stopped, "none" at E = 0."""
    if isinstance(x, float) and math.isnan(x):
        return "-"
    if math.isinf(x):
        return "> 400" if simulated and not zero else "none (E = 0)"
    return str(int(x))


def _describe(h, est: dict, target, n: int, say) -> list[str]:
    """Print the table through ``say``; return the lines that follow it."""
    from rich.table import Table

    from analysis.pilot import SIMULATED_MAX_SEEDS

    test, m, reg_n = est["test"], est["m"], int(h.seeds)
    sim = test != "t"

    def seeds(x: float, simulated: bool) -> str:
        return _seeds(x, simulated, zero=est["effect"] <= 0)  # no number of seeds detects E = 0

    conf = f"{est['confidence']:.0%}"
    table = Table(title=f"PILOT power estimate (exploratory: {n} seeds per variant; not evidence)")
    budgets = len({r.get("budget") for r in est["rows"]}) > 1
    for c in ("comparison", *(["budget"] if budgets else []), "pilot pairs", "pilot effect", "pilot SD",
              f"SD {conf} upper", f"power at E, {reg_n} seeds (SD / upper)",
              f"seeds for power {est['target']:g} (SD / upper)"):
        table.add_column(c)
    for r in est["rows"]:
        name = f"{r['treatment']} vs {r['control']}" + (f" [{r['stratum']}]" if r.get("stratum") else "")
        table.add_row(name, *([str(r.get("budget"))] if budgets else []), str(r["n_pairs"]), _num(r["effect"]),
                      _num(r["sd"]), _num(r["sd_upper"]), f"{_num(r['power'], '.2f')} / {_num(r['power_upper'], '.2f')}",
                      f"{seeds(r['seeds'], sim)} / {seeds(r['seeds_upper'], sim)}")
    o = est["overall"]
    if m > 1:
        table.add_row(f"overall (all {m}, {h.prediction.correction})", *([""] if budgets else []), "", "", "", "",
                      f"{_num(o['power'], '.2f')} / {_num(o['power_upper'], '.2f')}",
                      f"{seeds(o['seeds'], True)} / {seeds(o['seeds_upper'], True)}")
    say(table)
    why_target = "declared" if target is not None else "no power target declared: 0.8 used"
    if m == 1:
        how = ("noncentral t (statsmodels TTestPower's answer)" if test == "t" else
               f"the simulated P(supported) of the declared {test} test, as the report's power")
    else:
        how = (f"per comparison at alpha / {m} ({'noncentral t' if test == 't' else 'simulated'}); overall "
               f"simulated as the report's power, {h.prediction.correction} over the family of {m}")
    lines = [
        f"seeds needed for power {est['target']:g} ({why_target}) at the smallest effect E = {est['effect']:g}, "
        f"{test} test, alpha {est['alpha']:g}: {seeds(o['seeds'], sim or m > 1)} at the pilot's SD, "
        f"{seeds(o['seeds_upper'], sim or m > 1)} at its {conf} upper confidence bound (Browne 1995: plan on "
        f"this one); registered: {reg_n} seeds per variant, power {_num(o['power'], '.2f')} "
        f"(upper bound: {_num(o['power_upper'], '.2f')}); method: {how}",
        f"pilot caveat: these are ESTIMATES from {n} seeds per variant; a pilot's SD has n - 1 = {n - 1} degrees "
        "of freedom and is noisy, so the power at the pilot's SD is optimistic about half the time; the pilot's "
        "effect is shown, never used: power is computed at E",
    ]
    shown = [r[k] for r in [*est["rows"], o] for k in ("seeds", "seeds_upper") if k in r]
    if (sim or m > 1) and any(isinstance(x, float) and math.isinf(x) for x in shown):
        lines.append(f"pilot note: '> {SIMULATED_MAX_SEEDS}' means the simulated search stopped at "
                     f"{SIMULATED_MAX_SEEDS} seeds")
    lines.append(f"pilot stored as {est['id']} v{est['number']} ({est['version']}): seeds {est['seeds'][0]}..{est['seeds'][1]}; "
                 "`harness run` records it on the registered study and refuses confirmatory seeds that reach it")
    return lines


def _log_estimate(st, reg, est: dict) -> None:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else "inf"
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v.item() if hasattr(v, "item") else v

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "estimate.json").write_text(json.dumps(clean(est), indent=2, sort_keys=True))
        st.log_artifacts(reg.run_id, Path(tmp), "pilot")


def record_pilots(col: Collected, store) -> str | None:
    """``harness run``'s check and line: the pilots of ``col.id`` in ``store`` (``<id>@pilot``),
    or None when there is none. Raises a DeclarationError located at ``first_seed=`` when the
    confirmatory seeds reach a pilot's (they would reproduce its runs). The caller tags the
    registration with the returned line (:data:`PILOT_TAG`) once it is registered."""
    h = col.hypothesis
    if h.smoke or col.overrides or h.pilot:
        return None
    pilots = store.registrations(col.id + PILOT_SUFFIX)
    if not pilots:
        return None
    clash = pilot_clash(col.id, h, pilots)
    if clash is not None:
        raise locate(col, DeclarationError("first_seed", h.first_seed, clash,
                                           what="the confirmatory seeds reach a pilot's seeds"))
    mine = range(h.first_seed, h.first_seed + int(h.seeds))
    parts = []
    for reg in pilots:
        seeds = declared_seeds(reg.declaration)
        assert max(seeds.start, mine.start) >= min(seeds.stop, mine.stop)  # disjoint (pilot_clash above)
        parts.append(f"{col.id}{PILOT_SUFFIX} v{reg.number} ({reg.version}): N = {len(seeds)} seeds per variant, "
                     f"seeds {seeds.start}..{seeds.stop - 1}")
    return ("pilot run before this study: " + "; ".join(parts) + f". Its runs are NOT part of the evidence: "
            f"stored apart, and their seeds are disjoint from the confirmatory seeds {mine.start}..{mine.stop - 1}")
