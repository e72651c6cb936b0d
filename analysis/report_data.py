"""Store -> ONE plain object of everything a report shows (coverage.py's ``html.py`` style).

:func:`build_report_data` is the only place the report reads the store: it loads the runs
(``analysis.load``), decides (``analysis.decide``), draws the figures and fetches the samples,
the registered source and the provenance, and returns a :class:`ReportData`. The renderers in
``analysis.report`` turn that object into HTML, Markdown, CSV and LaTeX without going back.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import shlex
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.aggregate import aggregate
from analysis.budgets import final_budget
from analysis.curves import COMPUTE_METRICS, budget_section, compute_rows
from analysis.decide import decide
from analysis.figures import Figure, drawing, forest_plot, history_plot, paired_plot, profile_plot, render
from analysis.load import load
from analysis.outputs import fmt
from analysis.secondary import secondary_table, warnings_for
from analysis.trained import variant_rows
from harness.catalog import SAMPLE_METRIC_DIRECTIONS, metric_unit
from harness.redact import redact, shown

__all__ = ["GRID_SEEDS", "PACKAGES", "REAL_IMAGES", "ReportData", "build_report_data", "index_rows"]

PACKAGES = ("torch", "numpy", "scipy", "pandas", "statsmodels", "mlflow", "optuna", "harness")
GRID_SEEDS = 3  # sample grids shown per variant: one seed can be a lucky or an unlucky draw
REAL_IMAGES = 16  # real test images in the comparison row


@dataclass
class ReportData:
    """Everything one report shows. Plain values only: tables as lists of records, figures as
    PNG data URIs and SVG bytes, sample grids and real images as PNG bytes."""

    id: str
    reg: Any  # harness.tracking.Registration: run_id, version, number, registered_at, declaration, tags
    decl: dict
    prediction: Any  # the harness.Prediction the declaration holds
    prediction_sentence: str
    factor: str
    levels: list[str]
    control: str
    seed: int  # the seed of every resampled number
    verdict: Any  # analysis.decide.Verdict
    headline: str
    outcome_tag: str  # the parent run's "verdict" tag
    comparisons: list[dict]
    iqm: list[dict]
    secondary: list[dict]
    metric_units: dict[str, str]  # unit suffix of every secondary metric
    warnings: list
    notes: list[str]
    declaration: list[dict]
    docstring: list[str]
    source: str | None
    source_sha: str | None
    ui: dict  # "runs" (one row per run with its UI link), "experiment", "parent", "command"
    figures: dict[str, Figure | None]
    samples: list[dict]  # {"variant", "stratum", "grids": [{"seed", "png"}]}
    real: dict | None  # {"png": bytes | None, "note"}
    can_sample: bool | None
    failures: list[dict]
    versions: list[dict]
    provenance: dict[str, str]
    packages: dict[str, str]
    reproduce: list[str]
    complete: bool
    done: int
    planned: int
    wall: float
    compute: float
    smoke: bool
    units: str
    generated: str
    looks: list[dict]
    tuning: dict | None
    # issue 19: the verdict at every budget ("rows", "confirmatory", "all", "spec", "axis",
    # "figure"; None with one budget) and the findings the curve shows (a ranking that flips)
    budgets: dict | None = None
    findings: list[str] = field(default_factory=list)
    # issue 22: across strata, descriptive (rliable's view: analysis.aggregate); "rows", "strata",
    # "confidence", "normalisation", "n_bootstrap", "seed"; None with one stratum
    aggregate: dict | None = None


def build_report_data(hypothesis_id: str, st, version: str | None = None, seed: int | None = None) -> ReportData:
    """Read and analyse one study version: the whole report as one :class:`ReportData`."""
    from harness.hypothesis import Prediction

    by_budget = load(hypothesis_id, st, version)  # one row per run and budget
    frame = final_budget(by_budget)  # one row per run: everything but the verdict and the curve
    reg = by_budget.attrs["registration"]
    decl = reg.declaration
    prediction = Prediction(**decl["prediction"])
    factor = next(iter(decl["ablate"]))
    levels = [v if isinstance(v, str) else json.dumps(v) for v in decl["ablate"][factor]]
    planned = _planned(decl)
    done = _done(st, hypothesis_id, reg.version, planned)
    if frame.empty:
        from harness.errors import StoreError

        raise StoreError(
            f"hypothesis {hypothesis_id!r} v{reg.number}: no finished runs yet\n"
            f"  hint: `harness run {hypothesis_id}` first"
        )
    if seed is None:  # seeded from the study itself: the same store gives the same report, bit for bit
        seed = int(reg.version, 16) % 2**32
    cols = ["variant", "stratum", "seed", "value"] + (["budget"] if "budget" in by_budget.columns else [])
    verdict = decide(by_budget[cols], prediction, control=levels[0], seed=seed)
    complete = done >= planned
    units = metric_unit(prediction.metric)
    named = [f"{factor} = {lv}" for lv in levels]  # "beta = 4.0", not a bare "4.0"
    headline = _verdict_sentence(verdict, prediction, named[0], named, units, complete, done, planned)
    # `harness list` shows this tag: the full reading, as the report's headline gives it (issue 22)
    outcome_tag = verdict.outcome + (" (possibly negligible)" if verdict.outcome == "supported"
                                     and verdict.negligible else "")
    if verdict.reading and verdict.reading not in (verdict.outcome, "inconclusive", "supported, E not shown"):
        outcome_tag += f": {verdict.reading}"
    outcome_tag = outcome_tag if complete else f"{outcome_tag} (interim)"
    if decl.get("exploratory"):  # `harness run --set ...`: never the registered study, never evidence
        headline = (f"EXPLORATORY (--set {' --set '.join(decl['exploratory'])}): not the registered study. "
                    + headline)
    appendix = []
    stop = reg.tags.get("harness.sequential_stop")
    if isinstance(decl.get("seeds"), dict) and stop is not None:
        # A sequential design decides at its looks' boundaries (harness.study.run_sequential); the
        # fixed-design test of the same runs ignores the spending: an appendix line, never the
        # headline (issue 22, item 5).
        seq = reg.tags.get("harness.verdict.sequential", "inconclusive")
        complete, outcome_tag = True, seq
        appendix.append(f"Fixed-design reading of the same runs (not the registered analysis): {headline}")
        headline = (f"{seq.upper()} under the pre-registered sequential design (stopped at look {stop}; see "
                    "'Sequential looks').")
    if decl.get("pilot"):  # `harness check --pilot N` (harness.pilot): seeds outside the study's, not evidence
        headline = (f"PILOT (exploratory; {decl['seeds']} seeds outside the confirmatory range, declared values, "
                    "no tuning): not the registered study, never evidence. " + headline)
    if why := reg.tags.get("harness.exploratory_design"):  # harness.feasibility.EXPLORATORY_TAG
        headline = f"EXPLORATORY design (registered with --exploratory; {why}): not evidence. " + headline
    runs = _runs_part(st, hypothesis_id, reg, frame, prediction, levels, seed)
    secondary, used = runs.pop("secondary"), runs.pop("used")
    warnings = warnings_for(frame, verdict, secondary, runs.pop("errors"), runs["can_sample"], factor)
    histories = _histories(st, frame, used, factor, levels)
    with drawing():
        figures = {
            "forest": forest_plot(verdict, prediction, units),
            "paired": paired_plot(frame, levels, prediction, units),
            "histories": history_plot(histories),
        }
        budgets = budget_section(by_budget, verdict, prediction, decl, factor, units,
                                 prediction.metric in runs["higher"], histories)
        across = _aggregate_section(frame, prediction, levels, seed)
        if across is not None:
            figures["profiles"] = profile_plot(across.pop("profiles"), factor, across["confidence"])
    if budgets["budgets"] is not None:
        figures["budgets"] = budgets["budgets"]["figure"]
        b = budgets["budgets"]
        headline += (f" Confirmatory budget{'s' if len(b['confirmatory']) > 1 else ''}: "
                     f"{', '.join(map(str, b['confirmatory']))} steps (prediction.budgets = {b['spec']!r}); "
                     f"every budget in 'Budgets'.")
    warnings += budgets["warnings"]
    samples = _sample_grids(st, frame, levels)
    real = _real_images(decl["dataset"]) if samples else None
    versions = _versions(st.registrations(hypothesis_id), reg)
    source = _registered_source(st, reg, hypothesis_id)
    sha = hashlib.sha256(source.encode()).hexdigest() if source is not None else None
    provenance = _provenance(st, reg, frame, used, sha)
    from analysis import tuning as tuning_report

    # analysis.tuning escapes "$" itself, so its figure is drawn with mathtext on
    # tuned towards the metric's own better (harness.tuning.tuning_direction), as its curve shows
    tuning = tuning_report.section(st, hypothesis_id, reg, levels, _png,
                                   higher=prediction.metric in runs.pop("higher"))
    return ReportData(
        id=hypothesis_id, reg=reg, decl=decl, prediction=prediction,
        prediction_sentence=prediction.sentence(named[0], ", ".join(named[1:])),
        factor=factor, levels=levels, control=levels[0], seed=seed, verdict=verdict, headline=headline,
        outcome_tag=outcome_tag, comparisons=verdict.comparisons.to_dict("records"),
        iqm=_records(getattr(verdict, "iqm", None)), secondary=secondary,
        metric_units={r["metric"]: metric_unit(r["metric"]) for r in secondary},
        warnings=warnings,
        notes=[*appendix, *(n for n in verdict.notes if "cannot reach significance" not in n), *budgets["notes"]],
        declaration=(_declaration_rows(decl, factor, levels) + variant_rows(st, reg, used, factor)
                     + compute_rows(_in_level_order(frame, levels), factor)), docstring=_docstring(source), source=source,
        source_sha=sha, ui=_ui_links(st, used, reg), figures=figures, samples=samples, real=real,
        failures=_failures(_in_level_order(frame, levels)), versions=versions, provenance=provenance,
        packages={p: _version(p) for p in PACKAGES},
        reproduce=_reproduce(hypothesis_id, st.uri, reg.version, provenance["git commit"], seed, decl),
        complete=complete, done=done, planned=planned, smoke=decl.get("smoke", False), units=units,
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        looks=_sequential_looks(st, hypothesis_id, reg.version), tuning=tuning,
        budgets=budgets["budgets"], findings=budgets["findings"], aggregate=across, **runs,
    )


def index_rows(st) -> list[dict]:
    """One row per registered version of every study in the store: the store-wide index page."""
    rows = []
    for hid in sorted(st.experiments()):
        for reg in st.registrations(hid):
            planned = _planned(reg.declaration)
            done = _done(st, hid, reg.version, planned)
            has = (st.root / "reports" / hid / f"v{reg.number}" / "index.html").exists()
            rows.append({"id": hid, "number": reg.number, "version": reg.version, "at": reg.registered_at,
                         "done": done, "planned": planned, "claim": reg.declaration["claim"],
                         "verdict": reg.tags.get("harness.verdict", "not reported"), "has_report": has})
    # the tag set by this very report is not in the fetched tags yet: re-read them
    for row in rows:
        for reg in st.registrations(row["id"]):
            if reg.version == row["version"]:
                row["verdict"] = reg.tags.get("harness.verdict", "not reported")
    return rows


def _done(st, hypothesis_id: str, version: str, planned: int) -> int:
    """Runs of the version that have ended: the ONE place analysis asks the plan."""
    from harness.plan import progress_counts

    return progress_counts(st, hypothesis_id, version, planned)[0]


def _aggregate_section(frame: pd.DataFrame, prediction, levels: list[str], seed: int) -> dict | None:
    """Across strata (issue 22; ``analysis.aggregate``): descriptive, from each run's final budget
    and the report's seed. None with one stratum: there the per-stratum tables are the aggregate."""
    if frame["stratum"].nunique() < 2:
        return None
    agg = aggregate(frame[["variant", "stratum", "seed", "value"]], levels[0], prediction.direction,
                    alpha=prediction.alpha, seed=seed)
    rank = {lv: i for i, lv in enumerate(levels)}
    table = agg.table.sort_values("variant", key=lambda v: v.map(rank), kind="stable")
    return {"rows": table.to_dict("records"), "profiles": agg.profiles, "strata": list(agg.strata),
            "confidence": agg.confidence, "normalisation": agg.normalisation, "n_bootstrap": agg.n_bootstrap,
            "seed": agg.seed}


# ---------------------------------------------------------------------- the runs behind the verdict
def _runs_part(st, hypothesis_id: str, reg, frame: pd.DataFrame, prediction, levels: list[str], seed: int) -> dict:
    """Timing, the runs used, their errors and metrics, and the secondary-metrics table."""
    runs = st.cell_runs(hypothesis_id, reg.version)
    ended = [r for r in runs if r.info.status in ("FINISHED", "FAILED") and r.info.end_time]
    wall = (max(r.info.end_time for r in ended) - min(r.info.start_time for r in ended)) / 1000 if ended else 0.0
    compute = float(np.nansum(frame.get("seconds", pd.Series(dtype=float)).to_numpy()))
    by_id = {r.info.run_id: r for r in runs}
    used = [by_id[rid] for rid in frame["run_id"] if rid in by_id]
    higher = {m for r in used for m in r.data.tags.get("harness.higher_is_better", "").split(",") if m}
    higher |= {m for m, d in SAMPLE_METRIC_DIRECTIONS.items() if d == "higher"}
    sampling = {r.data.tags.get("harness.can_sample") for r in used} - {None}
    metric_names = sorted({k for r in used for k in r.data.metrics
                           if not k.startswith("train/") and k not in COMPUTE_METRICS},
                          key=lambda m: (m != prediction.metric, m))
    secondary = secondary_table(frame, metric_names, levels, higher, prediction.alpha,
                                np.random.default_rng([seed, 1]))
    errors = {r.info.run_id: r.data.tags.get("harness.error", "diverged") for r in used}
    return {"wall": wall, "compute": compute, "used": used, "secondary": secondary, "errors": errors, "higher": higher,
            "can_sample": None if not sampling else "True" in sampling}


def _versions(regs: list, reg) -> list[dict]:
    from harness.hypothesis import diff_declarations

    versions = []
    for i, r in enumerate(regs):
        changes = diff_declarations(regs[i - 1].declaration, r.declaration) if i else []
        versions.append({"number": r.number, "version": r.version, "at": r.registered_at, "changes": changes,
                         "current": r.version == reg.version})
    return versions


def _provenance(st, reg, frame: pd.DataFrame, used: list, sha: str | None) -> dict[str, str]:
    tags = used[0].data.tags if used else {}
    file_git = reg.tags.get("harness.hypothesis_git", "unknown")
    return {
        "store": redact(st.uri),
        "parent run": reg.run_id,
        "git commit": reg.tags.get("harness.git_commit", "unknown"),
        "git dirty": reg.tags.get("harness.git_dirty", "unknown"),
        "hypothesis file": f"{file_git}; sha256 {reg.tags.get('harness.hypothesis_sha256', sha or 'unknown')}",
        "device": ", ".join(sorted(set(frame["device"]))) if "device" in frame else "",
        "python": tags.get("harness.python_version", ""),
        "host": tags.get("harness.host", ""),
        # harness.pilot_study.PILOT_TAG: the pilot(s) run before this study, never its evidence
        **({"pilot": reg.tags["harness.pilot"]} if reg.tags.get("harness.pilot") else {}),
    }


def _reproduce(hypothesis_id: str, uri: str, version: str, commit: str, seed: int, decl: dict) -> list[str]:
    store_arg = f" --store {shown(uri)}"  # the password (if any) as ***, from the environment
    stem, smoke_flag = hypothesis_id, ""
    if hypothesis_id.endswith("@smoke"):
        stem, smoke_flag = hypothesis_id[: -len("@smoke")], " --smoke"
    if hypothesis_id.endswith("@explore"):
        stem, smoke_flag = hypothesis_id[: -len("@explore")], "".join(
            f" --set {shlex.quote(a)}" for a in decl.get("exploratory", []))
    if hypothesis_id.endswith("@pilot"):  # `harness check --pilot N` trains (and resumes) a pilot
        stem, smoke_flag = hypothesis_id[: -len("@pilot")], ""
        return [f"git checkout {commit}",
                f"harness source {hypothesis_id} --version {version}{store_arg} --output hypotheses/{stem}.py",
                f"harness check hypotheses/{stem}.py --pilot {decl['seeds']}{store_arg}",
                f"harness report {hypothesis_id}{store_arg} --version {version} --seed {seed}"]
    # `git checkout` restores the harness code; the hypothesis file itself comes from the
    # registration record (the exact registered text, whatever git knows of it).
    return [
        f"git checkout {commit}",
        f"harness source {hypothesis_id} --version {version}{store_arg} --output hypotheses/{stem}.py",
        f"harness run hypotheses/{stem}.py{smoke_flag}{store_arg}",
        f"harness report {stem}{smoke_flag}{store_arg} --version {version} --seed {seed}",
    ]


# ---------------------------------------------------------------------- what was trained
def _declaration_rows(decl: dict, factor: str, levels: list[str]) -> list[dict]:
    """The declaration as (section, setting, value) rows: levels named, ``beta = 4.0``."""
    rows = [{"section": "model", "setting": "model", "value": decl["model"]},
            {"section": "model", "setting": "dataset", "value": decl["dataset"]}]
    rows += [{"section": "fixed", "setting": k, "value": f"{k} = {_py(v)}"} for k, v in decl["fixed"].items()]
    for i, lv in enumerate(levels):
        rows.append({"section": "ablated factor", "setting": "control" if i == 0 else f"treatment {i}",
                     "value": f"{factor} = {lv}"})
    for k, vs in decl["strata"].items():
        rows.append({"section": "strata", "setting": k, "value": ", ".join(f"{k} = {_py(v)}" for v in vs)})
    rows.append({"section": "seeds", "setting": "seeds per variant", "value": str(decl["seeds"])})
    if decl.get("first_seed"):  # declared seed range (absent: seeds start at 0)
        rows.append({"section": "seeds", "setting": "first seed", "value": f"first_seed = {decl['first_seed']}"})
    tuned = set((decl.get("tuning") or {}).get("space", {}))  # declared, then tuned: see "trained with"
    rows += [{"section": "training", "setting": k, "value": f"{k}={_py(v)}" + (" (declared; tuned per variant)"
              if k in tuned else "")} for k, v in decl["training"].items()]
    rows += [{"section": "prediction", "setting": k, "value": f"{k}={_py(v)}"} for k, v in decl["prediction"].items()]
    return rows


def _py(v) -> str:
    """A declared value as the hypothesis file writes it: 4.0, None, "fp32"."""
    return repr(v)


def _registered_source(st, reg, hypothesis_id: str) -> str | None:
    """The hypothesis file exactly as registered (an artifact of the parent run)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            p = st.download(reg.run_id, f"registration/{hypothesis_id}.py", Path(tmp))
        except Exception:  # noqa: BLE001  (a registration without the file: say unknown)
            return None
        return Path(p).read_text() if Path(p).is_file() else None


def _docstring(source: str | None) -> list[str]:
    if not source:
        return []
    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        return []
    return [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]


def _ui_links(st, used: list, reg) -> dict:
    """Each run's id and its page in `harness ui` (MLflow's UI on 127.0.0.1:5000)."""
    base = "http://127.0.0.1:5000/#/experiments"
    exp = used[0].info.experiment_id if used else ""
    rows = []
    for r in sorted(used, key=lambda r: (r.data.tags["harness.stratum"], r.data.tags["harness.variant"],
                                         int(r.data.tags["harness.seed"]))):
        rows.append({"variant": r.data.tags["harness.variant"], "stratum": r.data.tags["harness.stratum"],
                     "seed": int(r.data.tags["harness.seed"]), "status": r.info.status, "run_id": r.info.run_id,
                     "url": f"{base}/{r.info.experiment_id}/runs/{r.info.run_id}"})
    return {"runs": rows, "experiment": f"{base}/{exp}" if exp else "", "parent": f"{base}/{exp}/runs/{reg.run_id}",
            "command": f"harness ui --store {shown(st.uri)}"}


# ---------------------------------------------------------------------- words and small tables
def _verdict_sentence(v, prediction, control, levels, units, complete, done, planned) -> str:
    eff = f"{fmt(v.effect)}{units}"
    ci = f"[{fmt(v.ci[0])}, {fmt(v.ci[1])}]"
    treat = ", ".join(levels[1:])
    word = {"supported": "SUPPORTED", "refuted": "REFUTED", "inconclusive": "INCONCLUSIVE"}[v.outcome]
    # The estimand's estimate with the test's own interval, and a p that names its test (issue 22).
    row = v.comparisons.iloc[0] if len(v.comparisons) else {}
    estimate = {"mean": "mean", "median": "median", "hodges-lehmann": "Hodges-Lehmann pseudo-median"}.get(
        row.get("estimator", ""), "estimated")
    test = row.get("test_used", prediction.test)
    adjusted = f", {prediction.correction}-adjusted over {v.family_size}" if v.family_size > 1 else ""
    s = (
        f"{word}: {treat} vs {control}: {estimate} improvement in {prediction.metric} (predicted direction: "
        f"{prediction.direction}) = {eff}, {100 * (1 - 2 * prediction.alpha):g}% CI {ci} ({test} test), "
        f"p = {fmt(v.p_value)}, one-sided {test}{adjusted}; "
        f"smallest effect of interest {prediction.effect:g}{units}."
    )
    if v.outcome == "supported" and getattr(v, "negligible", False):
        s += (f" Significant, but possibly NEGLIGIBLE: the interval reaches below the smallest effect of "
              f"interest ({prediction.effect:g}{units}), so this is not a clean success.")
    if not complete:
        s += f" INTERIM: {done} of {planned} planned runs have ended."
    return s


def _planned(decl: dict) -> int:
    n = len(next(iter(decl["ablate"].values())))
    for lv in decl["strata"].values():
        n *= len(lv)
    seeds = decl["seeds"]  # an int, or a sequential design {"looks": [...], ...}: plan for the max
    return n * (seeds["looks"][-1] if isinstance(seeds, dict) else seeds)


def _records(df) -> list[dict]:
    if df is None:
        return []
    if isinstance(df, pd.DataFrame):
        return df.to_dict("records")
    return list(df)


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _failures(frame: pd.DataFrame) -> list[dict]:
    out = []
    for (stratum, variant), g in frame.groupby(["stratum", "variant"], sort=False):
        out.append({"stratum": stratum, "variant": variant, "runs": len(g),
                    "failed": int(g["value"].isna().sum())})
    return out


# ---------------------------------------------------------------------- figures and samples
def _in_level_order(frame: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Rows in the declared order (control first), not string order ("16" before "8")."""
    rank = {lv: i for i, lv in enumerate(levels)}
    return frame.assign(_rank=frame["variant"].map(rank)).sort_values(["stratum", "_rank", "seed"]).drop(columns="_rank")


def _histories(st, frame: pd.DataFrame, used: list, factor: str, levels: list[str]) -> dict[str, dict[str, list]]:
    """``{term: {variant: [history of each seed]}}`` for every logged training term."""
    terms = sorted({k for r in used for k in r.data.metrics if k.startswith("train/")})
    out: dict[str, dict[str, list]] = {t[len("train/"):]: {} for t in terms}
    for r in _in_level_order(frame, levels).itertuples():
        name = f"{factor} = {r.variant}" + (f" | {r.stratum}" if r.stratum else "")
        for t in terms:
            out[t[len("train/"):]].setdefault(name, []).append(st.metric_history(r.run_id, t))
    return out


def _sample_grids(st, frame, levels) -> list[dict]:
    """Per (stratum, variant) row: the grids of its first GRID_SEEDS finished seeds."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for (stratum, variant), g in _in_level_order(frame, levels).groupby(["stratum", "variant"], sort=False):
            grids = []
            for r in g[g["status"] == "FINISHED"].head(GRID_SEEDS).itertuples():
                try:
                    p = st.download(r.run_id, "samples/samples.png", Path(tmp) / r.run_id)
                except Exception:  # noqa: BLE001  (no samples logged for this run)
                    continue
                if Path(p).is_dir():
                    p = Path(p) / "samples.png"
                grids.append({"seed": int(r.seed), "png": Path(p).read_bytes()})
            if grids:
                out.append({"variant": variant, "stratum": stratum, "grids": grids})
    return out


def _real_images(dataset: str) -> dict | None:
    """One row of real test images drawn the same way as the samples, for comparison."""
    from harness import data
    from harness.errors import HarnessError
    from harness.images import grid_png

    try:
        ds = data.load(dataset)
    except (HarnessError, OSError, ImportError) as exc:
        return {"png": None, "note": str(exc).splitlines()[0]}
    if len(ds.shape) < 2:
        return None
    x = ds.test[:REAL_IMAGES].cpu().numpy()
    return {"png": grid_png(x, ds.shape, cols=len(x)), "note": f"the first {len(x)} test images"}


def _png(fig) -> str:
    """A figure as an embedded PNG (the hook analysis.tuning draws through)."""
    return render(fig).uri


# ---------------------------------------------------------------------- sequential looks
def _sequential_looks(st, hypothesis_id: str, version: str) -> list[dict]:
    """Each analysed look of a sequential design, from the parent run's harness.look.<k> tags
    (written by harness.study.run_sequential); [] for a fixed design."""
    reg = next((r for r in st.registrations(hypothesis_id) if r.version == version), None)
    tags = reg.tags if reg else {}
    keys = sorted((k for k in tags if k.startswith("harness.look.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    looks = [json.loads(tags[k]) for k in keys]
    stop = tags.get("harness.sequential_stop")
    for lk in looks:
        lk["stopped_here"] = stop is not None and int(stop) == lk["look"]
    return looks
