"""One :class:`~analysis.report_data.ReportData` -> the report's files; write them, tag the run.

:func:`write_report` builds the data object once (``analysis.report_data``, the only part that
reads the store), renders ``index.html`` (one self-contained file: every image a data: URI,
nothing loaded from the network, so it opens from file:// anywhere), ``report.md``,
``table.csv``, ``table.tex``, ``secondary.csv`` and the SVG figures from it, writes each whole or
not at all, and logs them to the study's parent run. All user text goes through Jinja2's
autoescaping.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from analysis.estimands import TEST_NAMES
from analysis.outputs import Raw, duration, fmt, latex_table, md_code, md_finalize, report_dirs, write_atomic
from analysis.report_data import ReportData, build_report_data, index_rows
from harness.redact import redact

__all__ = ["ReportResult", "render_report", "write_report"]


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
    from harness.tracking import Store

    st = store if hasattr(store, "client") else Store(store, create=False)
    data = build_report_data(hypothesis_id, st, version, seed)
    files = render_report(data)
    regs = st.registrations(hypothesis_id)
    dirs = report_dirs(st.root, hypothesis_id, data.reg.number, latest=regs[-1].version == data.reg.version)
    for d in dirs:  # reports/<id>/v<N>/ always; reports/<id>/ too when this is the latest version
        for name, content in files.items():  # rendered first, in memory: nothing half-written on error
            write_atomic(d / name, content)
    out_dir = dirs[-1]
    st.log_artifacts(data.reg.run_id, dirs[0], "report")  # the version's own folder (no v<N>/ inside)
    st.set_tag(data.reg.run_id, "verdict", data.outcome_tag)
    st.log_metrics(data.reg.run_id, _verdict_metrics(data.verdict))
    write_atomic(st.root / "reports" / "index.html",
                 _environments()[0].get_template("index.html.j2").render(rows=index_rows(st), store=redact(st.uri)))
    line = f"{hypothesis_id} v{data.reg.number}: {data.headline}"
    return ReportResult(out_dir / "index.html", out_dir / "report.md", data.verdict, line,
                        _terminal_table(data.verdict, data.units))


def render_report(data: ReportData) -> dict[str, str | bytes]:
    """Every file of the report, by name, rendered from ``data`` alone (no store access)."""
    html_env, md_env = _environments()
    ctx = _context(data)
    comparisons = data.verdict.comparisons
    return {
        "index.html": html_env.get_template("report.html.j2").render(**ctx),
        "report.md": md_env.get_template("report.md.j2").render(**ctx),
        "table.csv": comparisons.to_csv(index=False),
        "table.tex": latex_table(comparisons, data.prediction, data.units, fmt, describe_test),
        "secondary.csv": pd.DataFrame(data.secondary).to_csv(index=False),
        **{f"{name}.svg": fig.svg for name, fig in data.figures.items() if fig is not None},
    }


def _context(data: ReportData) -> dict:
    """The templates' names: the data's fields, images as data: URIs, and the formatters."""
    ctx = {f.name: getattr(data, f.name) for f in fields(data)}
    ctx["samples"] = [{**s, "grids": [{"seed": g["seed"], "uri": _data_uri(g["png"])} for g in s["grids"]]}
                      for s in data.samples]
    if data.real is not None:
        ctx["real"] = {"uri": _data_uri(data.real["png"]) if data.real["png"] is not None else None,
                       "note": data.real["note"]}
    ctx.update(runs=data.ui["runs"], unit_of=data.metric_units.__getitem__, fmt=fmt)
    return ctx


def _environments():
    """The HTML environment (autoescaped) and the Markdown one (user text escaped by finalize)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("analysis", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, duration=duration, test_name=describe_test)
    # Markdown renders raw HTML, so user text (a claim, a level name) is escaped there too;
    # `| raw` marks the few fenced code blocks, where an entity would show literally.
    md_env = Environment(loader=env.loader, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                         finalize=md_finalize)
    md_env.filters.update(fmt=fmt, raw=Raw, code=md_code, duration=duration, test_name=describe_test)
    return env, md_env


def describe_test(test: str) -> str:
    """A test as the report names it beside its p-values: ``"t"`` -> ``"paired t"``."""
    return TEST_NAMES.get(test, test)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


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


def _terminal_table(v, units):
    from rich.table import Table
    from rich.text import Text

    # Text cells, never markup: a level called "x[/]y" is a name, not a closing tag.
    t = Table(title=Text(f"verdict: {v.outcome} (family of {getattr(v, 'family_size', len(v.comparisons))})"))
    for c in ("stratum", "treatment vs control", "pairs", "effect", "CI", "test", "p adj", "P(better)", "outcome"):
        t.add_column(c)
    several = "budget" in v.comparisons.columns and v.comparisons["budget"].nunique() > 1  # issue 19
    for r in v.comparisons.itertuples():
        where = ", ".join(x for x in (r.stratum, f"{r.budget} steps" if several else "") if x) or "-"
        cells = (
            where, f"{r.treatment} vs {r.control}", str(r.n_pairs), f"{fmt(r.effect)}{units}",
            f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]", describe_test(r.test_used), fmt(r.p_adjusted), fmt(r.prob_better),
            r.outcome,
        )
        t.add_row(*(Text(str(x)) for x in cells))
    return t
