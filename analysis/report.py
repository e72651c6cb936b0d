"""Verdict + frame + artifacts -> one self-contained HTML file and a Markdown twin.

The HTML embeds every image as a data: URI and loads nothing from the network, so it opens
from file:// anywhere. All user text goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import math
import shlex
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.decide import decide
from analysis.figures import drawing, forest_plot, history_plot, paired_plot, render
from analysis.load import load
from analysis.outputs import Raw, duration, latex_table, md_finalize, report_dirs, write_atomic
from analysis.secondary import secondary_table, warnings_for
from analysis.trained import variant_rows
from harness.catalog import SAMPLE_METRIC_DIRECTIONS, metric_unit

PACKAGES = ("torch", "numpy", "scipy", "pandas", "statsmodels", "mlflow", "optuna", "harness")


@dataclass
class ReportResult:
    html: Path
    md: Path
    verdict: object
    verdict_line: str
    terminal_table: object


def write_report(hypothesis_id: str, store=None, version: str | None = None, seed: int | None = None) -> ReportResult:
    """Analyse one study version and write ``<store root>/reports/<id>/``: ``index.html`` (one
    self-contained file), ``report.md``, ``table.csv`` / ``table.tex`` (the comparisons),
    ``secondary.csv`` and the figures as SVG. Every file is written whole or not at all.

    Example::

        res = write_report("iaf_tightens_bound")
        print(res.verdict_line, res.html)
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    from harness.hypothesis import Prediction
    from harness.plan import progress_counts
    from harness.tracking import Store

    st = store if hasattr(store, "client") else Store(store, create=False)
    frame = load(hypothesis_id, st, version)
    reg = frame.attrs["registration"]
    decl = reg.declaration
    prediction = Prediction(**decl["prediction"])
    factor = next(iter(decl["ablate"]))
    levels = [v if isinstance(v, str) else _json(v) for v in decl["ablate"][factor]]
    control = levels[0]
    planned = _planned(decl)
    done, _ = progress_counts(st, hypothesis_id, reg.version, planned)
    if frame.empty:
        from harness.errors import StoreError

        raise StoreError(
            f"hypothesis {hypothesis_id!r} v{reg.number}: no finished runs yet\n"
            f"  hint: `harness run {hypothesis_id}` first"
        )
    if seed is None:  # seeded from the study itself: the same store gives the same report, bit for bit
        seed = int(reg.version, 16) % 2**32
    verdict = decide(frame[["variant", "stratum", "seed", "value"]], prediction, control=control, seed=seed)
    complete = done >= planned

    units = metric_unit(prediction.metric)
    named = [f"{factor} = {lv}" for lv in levels]  # "beta = 4.0", not a bare "4.0"
    headline = _verdict_sentence(verdict, prediction, named[0], named, units, complete, done, planned)
    outcome_tag = verdict.outcome if complete else f"{verdict.outcome} (interim)"
    if decl.get("exploratory"):  # `harness run --set ...`: never the registered study, never evidence
        headline = (f"EXPLORATORY (--set {' --set '.join(decl['exploratory'])}): not the registered study. "
                    + headline)
    stop = reg.tags.get("harness.sequential_stop")
    if isinstance(decl.get("seeds"), dict) and stop is not None:
        # A sequential design decides at its looks' boundaries (harness.study.run_sequential); the
        # fixed-design test of the same runs ignores the spending and is shown for reference only.
        seq = reg.tags.get("harness.verdict.sequential", "inconclusive")
        complete, outcome_tag = True, seq
        headline = (f"{seq.upper()} under the pre-registered sequential design (stopped at look {stop}; see "
                    f"'Sequential looks'). Fixed-design reading of the same runs, for reference only: {headline}")
    runs = st.cell_runs(hypothesis_id, reg.version)
    ended = [r for r in runs if r.info.status in ("FINISHED", "FAILED") and r.info.end_time]
    wall = (max(r.info.end_time for r in ended) - min(r.info.start_time for r in ended)) / 1000 if ended else 0.0
    compute = float(np.nansum(frame.get("seconds", pd.Series(dtype=float)).to_numpy()))
    by_id = {r.info.run_id: r for r in runs}
    used = [by_id[rid] for rid in frame["run_id"] if rid in by_id]
    tags = used[0].data.tags if used else {}
    higher = {m for r in used for m in r.data.tags.get("harness.higher_is_better", "").split(",") if m}
    higher |= {m for m, d in SAMPLE_METRIC_DIRECTIONS.items() if d == "higher"}
    sampling = {r.data.tags.get("harness.can_sample") for r in used} - {None}
    can_sample = None if not sampling else "True" in sampling
    metric_names = sorted({k for r in used for k in r.data.metrics if not k.startswith("train/") and k != "seconds"},
                          key=lambda m: (m != prediction.metric, m))
    secondary = secondary_table(frame, metric_names, levels, higher, prediction.alpha,
                                np.random.default_rng([seed, 1]))
    errors = {r.info.run_id: r.data.tags.get("harness.error", "diverged") for r in used}
    warnings = warnings_for(frame, verdict, secondary, errors, can_sample, factor)
    notes = [n for n in verdict.notes if "cannot reach significance" not in n]

    with drawing():
        figures = {
            "forest": forest_plot(verdict, prediction, units),
            "paired": paired_plot(frame, levels, prediction, units),
            "histories": history_plot(_histories(st, frame, used, factor, levels)),
        }
    samples = _sample_grids(st, frame, levels)
    real = _real_images(decl["dataset"]) if samples else None
    regs = st.registrations(hypothesis_id)
    from harness.hypothesis import diff_declarations

    versions = []
    for i, r in enumerate(regs):
        changes = diff_declarations(regs[i - 1].declaration, r.declaration) if i else []
        versions.append({"number": r.number, "version": r.version, "at": r.registered_at, "changes": changes,
                         "current": r.version == reg.version})
    source = _registered_source(st, reg, hypothesis_id)
    sha = hashlib.sha256(source.encode()).hexdigest() if source is not None else None
    file_git = reg.tags.get("harness.hypothesis_git", "unknown")
    provenance = {
        "store": st.uri,
        "parent run": reg.run_id,
        "git commit": reg.tags.get("harness.git_commit", "unknown"),
        "git dirty": reg.tags.get("harness.git_dirty", "unknown"),
        "hypothesis file": f"{file_git}; sha256 {reg.tags.get('harness.hypothesis_sha256', sha or 'unknown')}",
        "device": ", ".join(sorted(set(frame["device"]))) if "device" in frame else "",
        "python": tags.get("harness.python_version", ""),
        "host": tags.get("harness.host", ""),
    }
    packages = {p: _version(p) for p in PACKAGES}
    store_arg = f" --store {shlex.quote(st.uri)}"
    stem, smoke_flag = hypothesis_id, ""
    if hypothesis_id.endswith("@smoke"):
        stem, smoke_flag = hypothesis_id[: -len("@smoke")], " --smoke"
    if hypothesis_id.endswith("@explore"):
        stem, smoke_flag = hypothesis_id[: -len("@explore")], "".join(
            f" --set {shlex.quote(a)}" for a in decl.get("exploratory", []))
    # `git checkout` restores the harness code; the hypothesis file itself comes from the
    # registration record (the exact registered text, whatever git knows of it).
    reproduce = [
        f"git checkout {provenance['git commit']}",
        f"harness source {hypothesis_id} --version {reg.version}{store_arg} --output hypotheses/{stem}.py",
        f"harness run hypotheses/{stem}.py{smoke_flag}{store_arg}",
        f"harness report {stem}{smoke_flag}{store_arg} --version {reg.version} --seed {seed}",
    ]
    comparisons = verdict.comparisons.to_dict("records")
    failures = _failures(_in_level_order(frame, levels), levels)
    ui = _ui_links(st, used, reg)
    from analysis import tuning as tuning_report

    # analysis.tuning escapes "$" itself, so its figure is drawn with mathtext on
    tuning_ctx = tuning_report.section(st, hypothesis_id, reg, levels, _png)
    ctx = {
        "id": hypothesis_id,
        "decl": decl,
        "reg": reg,
        "prediction_sentence": prediction.sentence(named[0], ", ".join(named[1:])),
        "prediction": prediction,
        "factor": factor,
        "levels": levels,
        "control": control,
        "verdict": verdict,
        "headline": headline,
        "comparisons": comparisons,
        "iqm": _records(getattr(verdict, "iqm", None)),
        "secondary": secondary,
        "warnings": warnings,
        "notes": notes,
        "declaration": _declaration_rows(decl, factor, levels) + variant_rows(st, reg, used, factor),
        "docstring": _docstring(source),
        "source": source,
        "source_sha": sha,
        "runs": ui["runs"],
        "ui": ui,
        "figures": figures,
        "samples": samples,
        "real": real,
        "can_sample": can_sample,
        "failures": failures,
        "versions": versions,
        "provenance": provenance,
        "packages": packages,
        "reproduce": reproduce,
        "complete": complete,
        "done": done,
        "planned": planned,
        "wall": wall,
        "compute": compute,
        "smoke": decl.get("smoke", False),
        "units": units,
        "unit_of": metric_unit,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fmt": _fmt,
        "looks": _sequential_looks(st, hypothesis_id, reg.version),
        "tuning": tuning_ctx,
    }
    env = Environment(
        loader=PackageLoader("analysis", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["duration"] = duration
    # Markdown renders raw HTML, so user text (a claim, a level name) is escaped there too;
    # `| raw` marks the few fenced code blocks, where an entity would show literally.
    md_env = Environment(loader=env.loader, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                         finalize=md_finalize)
    md_env.filters.update(fmt=_fmt, raw=Raw, duration=duration)
    files = {
        "index.html": env.get_template("report.html.j2").render(**ctx),
        "report.md": md_env.get_template("report.md.j2").render(**ctx),
        "table.csv": verdict.comparisons.to_csv(index=False),
        "table.tex": latex_table(verdict.comparisons, prediction, units, _fmt),
        "secondary.csv": pd.DataFrame(secondary).to_csv(index=False),
        **{f"{name}.svg": fig.svg for name, fig in figures.items() if fig is not None},
    }
    dirs = report_dirs(st.root, hypothesis_id, reg.number, latest=regs[-1].version == reg.version)
    for d in dirs:
        for name, content in files.items():  # rendered first, in memory: nothing half-written on error
            write_atomic(d / name, content)
    out_dir = dirs[-1]
    st.log_artifacts(reg.run_id, dirs[0], "report")  # the version's own folder (no v<N>/ inside)
    st.set_tag(reg.run_id, "verdict", outcome_tag)
    st.log_metrics(reg.run_id, _verdict_metrics(verdict))
    _write_index(st, env)
    line = f"{hypothesis_id} v{reg.number}: {headline}"
    return ReportResult(out_dir / "index.html", out_dir / "report.md", verdict, line, _terminal_table(verdict, units))


def _verdict_metrics(v) -> dict[str, float]:
    """The headline numbers as metrics of the parent run, so studies sort in MLflow's UI."""
    c = v.comparisons
    head = c
    for k, val in (v.headline or {}).items():
        if k in c.columns:
            head = head[head[k] == val]
    power = float(head["power"].iloc[0]) if len(head) else math.nan
    values = {"effect": v.effect, "ci_low": v.ci[0], "ci_high": v.ci[1], "p_value": v.p_value, "power": power}
    return {k: float(x) for k, x in values.items() if x is not None and math.isfinite(float(x))}


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
            "command": f"harness ui --store {shlex.quote(st.uri)}"}


# ---------------------------------------------------------------------- words
def _verdict_sentence(v, prediction, control, levels, units, complete, done, planned) -> str:
    eff = f"{_fmt(v.effect)}{units}"
    ci = f"[{_fmt(v.ci[0])}, {_fmt(v.ci[1])}]"
    treat = ", ".join(levels[1:])
    word = {"supported": "SUPPORTED", "refuted": "REFUTED", "inconclusive": "INCONCLUSIVE"}[v.outcome]
    s = (
        f"{word}: {treat} vs {control}: improvement in {prediction.metric} (predicted direction: "
        f"{prediction.direction}) = {eff}, {100 * (1 - 2 * prediction.alpha):g}% CI {ci}, "
        f"{'adjusted p' if v.family_size > 1 else 'one-sided p'} = {_fmt(v.p_value)}; "
        f"smallest effect of interest {prediction.effect:g}{units}."
    )
    if v.outcome == "supported" and getattr(v, "negligible", False):
        s += (f" Significant, but possibly NEGLIGIBLE: the interval reaches below the smallest effect of "
              f"interest ({prediction.effect:g}{units}), so this is not a clean success.")
    if not complete:
        s += f" INTERIM: {done} of {planned} planned runs have ended."
    return s


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits}g}" if abs(x) >= 1e5 else f"{x:.2e}"
        return f"{x:.{digits}f}".rstrip("0").rstrip(".") if abs(x) < 1 else f"{x:.{digits}f}"
    return str(x)


def _json(v) -> str:
    import json

    return json.dumps(v)


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


def _failures(frame: pd.DataFrame, levels: list[str]) -> list[dict]:
    out = []
    for (stratum, variant), g in frame.groupby(["stratum", "variant"], sort=False):
        out.append({"stratum": stratum, "variant": variant, "runs": len(g),
                    "failed": int(g["value"].isna().sum())})
    return out


# ---------------------------------------------------------------------- figures and samples
GRID_SEEDS = 3  # sample grids shown per variant: one seed can be a lucky or an unlucky draw
REAL_IMAGES = 16  # real test images in the comparison row


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
                grids.append({"seed": int(r.seed), "uri": _data_uri(Path(p).read_bytes())})
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
        return {"uri": None, "note": str(exc).splitlines()[0]}
    if len(ds.shape) < 2:
        return None
    x = ds.test[:REAL_IMAGES].cpu().numpy()
    return {"uri": _data_uri(grid_png(x, ds.shape, cols=len(x))), "note": f"the first {len(x)} test images"}


def _png(fig) -> str:
    """A figure as an embedded PNG (the hook analysis.tuning draws through)."""
    return render(fig).uri


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


# ---------------------------------------------------------------------- index + terminal
def _write_index(st, env) -> Path:
    from harness.plan import progress_counts

    rows = []
    for hid in sorted(st.experiments()):
        for reg in st.registrations(hid):
            planned = _planned(reg.declaration)
            done, _ = progress_counts(st, hid, reg.version, planned)
            has = (st.root / "reports" / hid / f"v{reg.number}" / "index.html").exists()
            rows.append({"id": hid, "number": reg.number, "version": reg.version, "at": reg.registered_at,
                         "done": done, "planned": planned, "claim": reg.declaration["claim"],
                         "verdict": reg.tags.get("harness.verdict", "not reported"), "has_report": has})
    # the tag set by this very report is not in the fetched tags yet: re-read them
    for row in rows:
        for reg in st.registrations(row["id"]):
            if reg.version == row["version"]:
                row["verdict"] = reg.tags.get("harness.verdict", "not reported")
    path = st.root / "reports" / "index.html"
    write_atomic(path, env.get_template("index.html.j2").render(rows=rows, store=st.uri))
    return path


def _terminal_table(v, units):
    from rich.table import Table
    from rich.text import Text

    # Text cells, never markup: a level called "x[/]y" is a name, not a closing tag.
    t = Table(title=Text(f"verdict: {v.outcome} (family of {getattr(v, 'family_size', len(v.comparisons))})"))
    for c in ("stratum", "treatment vs control", "pairs", "effect", "CI", "p adj", "P(better)", "outcome"):
        t.add_column(c)
    for r in v.comparisons.itertuples():
        cells = (
            r.stratum or "-", f"{r.treatment} vs {r.control}", str(r.n_pairs), f"{_fmt(r.effect)}{units}",
            f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]", _fmt(r.p_adjusted), _fmt(r.prob_better), r.outcome,
        )
        t.add_row(*(Text(str(x)) for x in cells))
    return t


__all__ = ["ReportResult", "write_atomic", "write_report"]


# ---------------------------------------------------------------------- sequential looks
def _sequential_looks(st, hypothesis_id: str, version: str) -> list[dict]:
    """Each analysed look of a sequential design, from the parent run's harness.look.<k> tags
    (written by harness.study.run_sequential); [] for a fixed design."""
    import json

    reg = next((r for r in st.registrations(hypothesis_id) if r.version == version), None)
    tags = reg.tags if reg else {}
    keys = sorted((k for k in tags if k.startswith("harness.look.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    looks = [json.loads(tags[k]) for k in keys]
    stop = tags.get("harness.sequential_stop")
    for lk in looks:
        lk["stopped_here"] = stop is not None and int(stop) == lk["look"]
    return looks
