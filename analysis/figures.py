"""The report's figures: each rendered once as an embedded PNG (data: URI) and as an SVG file.

Every label is user text (level names, metric names), so matplotlib's mathtext is switched off
while drawing: a level called ``budget_$5`` is text, not an unterminated formula.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class Figure:
    uri: str  # data:image/png;base64,... for the self-contained HTML
    svg: bytes  # the same figure as SVG, written beside index.html for a paper


@contextlib.contextmanager
def drawing() -> Iterator[None]:
    """Agg backend, no mathtext, SVG text kept as text (searchable, editable in a paper)."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.parse_math": False, "svg.fonttype": "none", "svg.hashsalt": "harness"}):
        yield


def render(fig) -> Figure:
    import matplotlib.pyplot as plt

    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return Figure("data:image/png;base64," + base64.b64encode(png.getvalue()).decode(), svg.getvalue())


def forest_plot(v, prediction, units: str) -> Figure:
    import matplotlib.pyplot as plt

    c = v.comparisons
    labels = [f"{r.treatment} vs {r.control}" + (f" | {r.stratum}" if r.stratum else "") for r in c.itertuples()]
    if "budget" in c.columns and c["budget"].nunique() > 1:  # several confirmatory budgets (issue 19)
        labels = [f"{lab} @ {b} steps" for lab, b in zip(labels, c["budget"])]
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
    eff = np.nan_to_num(c["effect"].to_numpy(float), nan=0.0)
    ax.errorbar(eff, y, xerr=[np.maximum(eff - lo, 0), np.maximum(hi - eff, 0)], fmt="o", color="k", capsize=3)
    ax.set_xlim(lo_edge, hi_edge)
    labels = [lab + (" (interval unbounded)" if not (np.isfinite(a) and np.isfinite(b)) else "")
              for lab, a, b in zip(labels, c["ci_low"], c["ci_high"])]
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"improvement in {prediction.metric}{units} (positive = as predicted)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    return render(fig)


def paired_plot(frame, levels: list[str], prediction, units: str) -> Figure:
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
    return render(fig)


def history_plot(curves: dict[str, dict[str, list[list[tuple[int, float]]]]]) -> Figure | None:
    """Small multiples, one panel per logged training term: ``{term: {variant: [history per
    seed]}}``, each variant's median over seeds with a 10-90% band."""
    import matplotlib.pyplot as plt

    terms = [t for t, by_variant in curves.items() if any(by_variant.values())]
    if not terms:
        return None
    ncols = min(3, len(terms))
    nrows = math.ceil(len(terms) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 0.6, 2.8 * nrows + 0.6), squeeze=False)
    for ax in axes.flat[len(terms):]:
        ax.axis("off")
    for i, (ax, term) in enumerate(zip(axes.flat, terms)):
        everything = []
        for j, (name, hs) in enumerate(curves[term].items()):
            hs = [sorted(h) for h in hs if h]
            if not hs:
                continue
            n = min(len(h) for h in hs)
            steps = np.array([s for s, _ in hs[0][:n]])
            vals = np.array([[v for _, v in h[:n]] for h in hs], dtype=float)
            everything.append(vals.ravel())
            with np.errstate(all="ignore"):
                lo, med, hi = np.nanpercentile(vals, [10, 50, 90], axis=0)
            ax.plot(steps, med, color=f"C{j}", lw=1.2, label=f"{name} ({len(hs)} seeds)")
            ax.fill_between(steps, lo, hi, color=f"C{j}", alpha=0.2, lw=0)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        # Robust limits: the first steps' huge losses would flatten the rest of the curve.
        flat = np.concatenate(everything) if everything else np.array([])
        flat = flat[np.isfinite(flat)]
        if flat.size:
            lo_all, hi_all = np.percentile(flat, [1, 95])
            if hi_all > lo_all:
                pad = 0.08 * (hi_all - lo_all)
                ax.set_ylim(lo_all - pad, hi_all + pad)
        if i == 0:
            ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return render(fig)


def budget_curve_plot(curve, prediction, units: str, x_of: dict, x_label: str, factor: str) -> Figure:
    """The compute curve: every comparison's effect and interval against its budget (log x
    axis; ``x_of`` maps a budget to its x value, steps or FLOPs). Confirmatory budgets are
    filled markers, exploratory ones open."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.axhspan(-prediction.effect, prediction.effect, color="0.9", label="|effect| < smallest effect of interest")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.axhline(prediction.effect, color="tab:green", ls="--", lw=0.8, label="smallest effect of interest")
    groups = list(dict.fromkeys(zip(curve["stratum"], curve["control"], curve["treatment"])))
    for j, (s, c, t) in enumerate(groups):
        g = curve[(curve["stratum"] == s) & (curve["control"] == c) & (curve["treatment"] == t)].sort_values("budget")
        x = np.array([x_of[b] for b in g["budget"]], dtype=float)
        # a little offset per comparison (in log space) so overlapping intervals stay readable
        x = x * (1 + 0.03 * (j - (len(groups) - 1) / 2))
        eff = g["effect"].to_numpy(float)
        lo = np.where(np.isfinite(g["ci_low"].to_numpy(float)), g["ci_low"].to_numpy(float), eff)
        hi = np.where(np.isfinite(g["ci_high"].to_numpy(float)), g["ci_high"].to_numpy(float), eff)
        color = f"C{j}"
        name = f"{factor} = {t} vs {c}" + (f" | {s}" if s else "")
        ax.plot(x, eff, "-", color=color, lw=1, label=name)
        ax.errorbar(x, eff, yerr=[np.maximum(eff - lo, 0), np.maximum(hi - eff, 0)], fmt="none", ecolor=color,
                    capsize=3, lw=1)
        conf = g["confirmatory"].to_numpy(bool)
        ax.plot(x[conf], eff[conf], "o", color=color, ms=6)
        ax.plot(x[~conf], eff[~conf], "o", mfc="white", mec=color, ms=6)
    ax.set_xscale("log")
    # ticks at the budgets themselves, written as numbers (the log axis' own labels are mathtext)
    from matplotlib.ticker import NullLocator

    xs = sorted(set(x_of.values()))
    ax.set_xticks(xs, [str(int(v)) if float(v).is_integer() and v < 1e6 else f"{v:.3g}" for v in xs])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"improvement in {prediction.metric}{units}")
    ax.set_title("effect at every budget (filled: confirmatory; open: exploratory)", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return render(fig)


def profile_plot(profiles, factor: str, confidence: float) -> Figure:
    """Performance profiles (``analysis.aggregate``): per variant, the fraction of its finished runs
    whose normalised score is above tau, with the pointwise stratified-bootstrap band."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for j, (variant, g) in enumerate(profiles.groupby("variant", sort=False)):
        # a step function of tau (the fraction drops at each run's score): drawn as steps, not slopes
        ax.plot(g["tau"], g["fraction"], color=f"C{j}", lw=1.4, drawstyle="steps-post", label=f"{factor} = {variant}")
        ax.fill_between(g["tau"], g["ci_low"], g["ci_high"], color=f"C{j}", alpha=0.2, lw=0, step="post")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("normalised score tau (0 = worst run in its stratum, 1 = best)")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title(f"performance profiles over all strata (descriptive; band: {100 * confidence:g}% stratified "
                 "bootstrap)", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return render(fig)


__all__ = ["Figure", "budget_curve_plot", "drawing", "forest_plot", "history_plot", "paired_plot", "profile_plot",
           "render"]
