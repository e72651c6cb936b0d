"""Verdict + frame + artifacts -> one self-contained HTML file and a Markdown twin.

The HTML embeds every image as a data: URI and loads nothing from the network, so it opens
from file:// anywhere. All user text goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import math
import shlex
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.decide import decide
from analysis.load import load

PACKAGES = ("torch", "numpy", "scipy", "pandas", "statsmodels", "mlflow", "optuna", "harness")


@dataclass
class ReportResult:
    html: Path
    md: Path
    verdict: object
    verdict_line: str
    terminal_table: object


def write_report(hypothesis_id: str, store=None, version: str | None = None, seed: int | None = None) -> ReportResult:
    """Analyse one study version and write ``<store root>/reports/<id>/{index.html,report.md}``.

    Example::

        res = write_report("iaf_tightens_bound")
        print(res.verdict_line, res.html)
    """
    import matplotlib

    matplotlib.use("Agg")
    from jinja2 import Environment, PackageLoader, select_autoescape

    from harness.hypothesis import Prediction
    from harness.study import progress_counts
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

    units = _units(prediction.metric)
    headline = _verdict_sentence(verdict, prediction, control, levels, units, complete, done, planned)
    runs = st.cell_runs(hypothesis_id, reg.version)
    ended = [r for r in runs if r.info.status in ("FINISHED", "FAILED") and r.info.end_time]
    wall = (max(r.info.end_time for r in ended) - min(r.info.start_time for r in ended)) / 1000 if ended else 0.0
    compute = float(np.nansum(frame.get("seconds", pd.Series(dtype=float)).to_numpy()))

    figures = {
        "forest": _forest_plot(verdict, prediction, units),
        "paired": _paired_plot(frame, control, levels, prediction, units),
        "histories": _history_plot(st, frame, levels),
    }
    samples = _sample_grids(st, frame, levels)
    regs = st.registrations(hypothesis_id)
    from harness.hypothesis import diff_declarations

    versions = []
    for i, r in enumerate(regs):
        changes = diff_declarations(regs[i - 1].declaration, r.declaration) if i else []
        versions.append({"number": r.number, "version": r.version, "at": r.registered_at, "changes": changes,
                         "current": r.version == reg.version})
    tags = ended[0].data.tags if ended else {}
    provenance = {
        "store": st.uri,
        "git commit": reg.tags.get("harness.git_commit", "unknown"),
        "git dirty": reg.tags.get("harness.git_dirty", "unknown"),
        "device": ", ".join(sorted(set(frame["device"]))) if "device" in frame else "",
        "python": tags.get("harness.python_version", ""),
        "host": tags.get("harness.host", ""),
    }
    packages = {p: _version(p) for p in PACKAGES}
    store_arg = f" --store {shlex.quote(st.uri)}"
    stem, smoke_flag = hypothesis_id, ""
    if hypothesis_id.endswith("@smoke"):
        stem, smoke_flag = hypothesis_id[: -len("@smoke")], " --smoke"
    reproduce = [
        f"git checkout {provenance['git commit']}",
        f"harness run hypotheses/{stem}.py{smoke_flag}{store_arg}",
        f"harness report {stem}{smoke_flag}{store_arg} --version {reg.version} --seed {seed}",
    ]
    comparisons = verdict.comparisons.to_dict("records")
    failures = _failures(frame, levels)
    from analysis import tuning as tuning_report

    tuning_ctx = tuning_report.section(st, hypothesis_id, reg, levels, _png)
    ctx = {
        "id": hypothesis_id,
        "decl": decl,
        "reg": reg,
        "prediction_sentence": prediction.sentence(control, ", ".join(levels[1:])),
        "prediction": prediction,
        "factor": factor,
        "levels": levels,
        "control": control,
        "verdict": verdict,
        "headline": headline,
        "comparisons": comparisons,
        "iqm": _records(getattr(verdict, "iqm", None)),
        "figures": figures,
        "samples": samples,
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
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fmt": _fmt,
        "tuning": tuning_ctx,
    }
    env = Environment(
        loader=PackageLoader("analysis", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    out_dir = st.root / "reports" / hypothesis_id
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out_dir / "index.html", out_dir / "report.md"
    html_path.write_text(env.get_template("report.html.j2").render(**ctx))
    md_env = Environment(loader=env.loader, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    md_env.filters["fmt"] = _fmt
    md_path.write_text(md_env.get_template("report.md.j2").render(**ctx))
    st.log_artifacts(reg.run_id, out_dir, "report")
    st.set_tag(reg.run_id, "verdict", verdict.outcome if complete else f"{verdict.outcome} (interim)")
    _write_index(st, env)
    line = f"{hypothesis_id} v{reg.number}: {headline}"
    return ReportResult(html_path, md_path, verdict, line, _terminal_table(verdict, units))


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


def _units(metric: str) -> str:
    if metric.endswith("_bpd") or metric == "bpd":
        return " bits/dim"
    if "nll" in metric or "elbo" in metric or metric in ("rate", "distortion"):
        return " nats"
    return ""


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
    return n * decl["seeds"]


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


# ---------------------------------------------------------------------- figures
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _forest_plot(v, prediction, units) -> str:
    import matplotlib.pyplot as plt

    c = v.comparisons
    labels = [f"{r.treatment} vs {r.control}" + (f" | {r.stratum}" if r.stratum else "") for r in c.itertuples()]
    fig, ax = plt.subplots(figsize=(6.5, 0.6 * len(c) + 1.4))
    y = np.arange(len(c))[::-1]
    ax.axvspan(-prediction.effect, prediction.effect, color="0.9", label="|effect| < smallest effect of interest")
    ax.axvline(0, color="0.5", lw=0.8)
    ax.axvline(prediction.effect, color="tab:green", ls="--", lw=0.8, label="smallest effect of interest")
    # An interval can be unbounded (too few pairs for the test to reject anything): draw it to
    # the plot's edge and say so in the label.
    finite = np.concatenate([c["effect"], c["ci_low"], c["ci_high"], [prediction.effect, -prediction.effect, 0]])
    finite = finite[np.isfinite(finite)]
    span = (finite.max() - finite.min()) or 1.0
    lo_edge, hi_edge = finite.min() - 0.3 * span, finite.max() + 0.3 * span
    lo = np.clip(c["ci_low"].to_numpy(float), lo_edge, None)
    hi = np.clip(c["ci_high"].to_numpy(float), None, hi_edge)
    ax.errorbar(c["effect"], y, xerr=[c["effect"] - lo, hi - c["effect"]], fmt="o", color="k", capsize=3)
    ax.set_xlim(lo_edge, hi_edge)
    labels = [lab + (" (interval unbounded)" if not (np.isfinite(a) and np.isfinite(b)) else "")
              for lab, a, b in zip(labels, c["ci_low"], c["ci_high"])]
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"improvement in {prediction.metric}{units} (positive = as predicted)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    return _png(fig)


def _paired_plot(frame, control, levels, prediction, units) -> str:
    import matplotlib.pyplot as plt

    strata = list(dict.fromkeys(frame["stratum"]))
    fig, axes = plt.subplots(1, len(strata), figsize=(3.2 * len(strata) + 1, 3.4), squeeze=False)
    for ax, s in zip(axes[0], strata):
        g = frame[frame["stratum"] == s].pivot_table(index="seed", columns="variant", values="value", dropna=False)
        cols = [lv for lv in levels if lv in g.columns]
        for _, row in g[cols].iterrows():
            ax.plot(range(len(cols)), row.to_numpy(), "-o", color="tab:blue", alpha=0.5, ms=3)
        ax.set_xticks(range(len(cols)), cols, rotation=20)
        ax.set_title(s or "per seed", fontsize=9)
        ax.set_ylabel(f"{prediction.metric}{units} ({prediction.direction} is better)")
    fig.tight_layout()
    return _png(fig)


def _history_plot(st, frame, levels) -> str | None:
    import matplotlib.pyplot as plt

    key = "train/neg_elbo"
    curves: dict[str, list] = {}
    for r in frame.itertuples():
        h = st.metric_history(r.run_id, key)
        if not h:
            h = st.metric_history(r.run_id, "train/loss")
        if h:
            curves.setdefault(r.variant if not r.stratum else f"{r.variant} | {r.stratum}", []).append(h)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, hs in curves.items():
        n = min(len(h) for h in hs)
        steps = np.array([s for s, _ in sorted(hs[0])[:n]])
        vals = np.array([[v for _, v in sorted(h)[:n]] for h in hs])
        lo, med, hi = np.nanpercentile(vals, [10, 50, 90], axis=0)
        ax.plot(steps, med, label=f"{name} (median of {len(hs)} seeds)")
        ax.fill_between(steps, lo, hi, alpha=0.25)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (band: 10-90% of seeds)")
    lo_all = np.nanpercentile(np.concatenate([np.ravel([v for _, v in h]) for hs in curves.values() for h in hs]), 2)
    hi_all = np.nanpercentile(np.concatenate([np.ravel([v for _, v in h]) for hs in curves.values() for h in hs]), 90)
    if np.isfinite(lo_all) and np.isfinite(hi_all) and hi_all > lo_all:
        ax.set_ylim(lo_all - 0.05 * (hi_all - lo_all), hi_all)
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def _sample_grids(st, frame, levels) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for (stratum, variant), g in frame.sort_values("seed").groupby(["stratum", "variant"], sort=False):
            ok = g[g["status"] == "FINISHED"]
            if ok.empty:
                continue
            r = ok.iloc[0]
            try:
                p = st.download(r["run_id"], "samples/samples.png", Path(tmp) / r["run_id"])
            except Exception:  # noqa: BLE001  (no samples logged for this model)
                continue
            if Path(p).is_dir():
                p = Path(p) / "samples.png"
            uri = "data:image/png;base64," + base64.b64encode(Path(p).read_bytes()).decode()
            out.append({"variant": variant, "stratum": stratum, "seed": int(r["seed"]), "uri": uri})
    return out


# ---------------------------------------------------------------------- index + terminal
def _write_index(st, env) -> Path:
    from harness.study import progress_counts

    rows = []
    for hid in sorted(st.experiments()):
        for reg in st.registrations(hid):
            planned = _planned(reg.declaration)
            done, _ = progress_counts(st, hid, reg.version, planned)
            has = (st.root / "reports" / hid / "index.html").exists()
            rows.append({"id": hid, "number": reg.number, "version": reg.version, "at": reg.registered_at,
                         "done": done, "planned": planned, "claim": reg.declaration["claim"],
                         "verdict": reg.tags.get("harness.verdict", "not reported"), "has_report": has})
    # the tag set by this very report is not in the fetched tags yet: re-read them
    for row in rows:
        for reg in st.registrations(row["id"]):
            if reg.version == row["version"]:
                row["verdict"] = reg.tags.get("harness.verdict", "not reported")
    path = st.root / "reports" / "index.html"
    path.write_text(env.get_template("index.html.j2").render(rows=rows, store=st.uri))
    return path


def _terminal_table(v, units):
    from rich.table import Table

    t = Table(title=f"verdict: {v.outcome} (family of {getattr(v, 'family_size', len(v.comparisons))})")
    for c in ("stratum", "treatment vs control", "pairs", "effect", "CI", "p adj", "P(better)", "outcome"):
        t.add_column(c)
    for r in v.comparisons.itertuples():
        t.add_row(
            r.stratum or "-", f"{r.treatment} vs {r.control}", str(r.n_pairs), f"{_fmt(r.effect)}{units}",
            f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]", _fmt(r.p_adjusted), _fmt(r.prob_better), r.outcome,
        )
    return t


__all__ = ["ReportResult", "write_report"]
