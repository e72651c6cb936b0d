"""What exists: every model with its Config fields (defaults, the field comments), every dataset
with its shape and splits, every metric with its direction and unit. `harness catalog` prints it.

Example::

    from harness import catalog
    [m["name"] for m in catalog.models()]          # ['ae', 'beta_vae', ..., 'vae']
    catalog.metric_direction("precision")          # 'higher'
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize

from harness.errors import HarnessError

# The harness's own sample-quality metrics (harness.sample_metrics): which way is better.
SAMPLE_METRIC_DIRECTIONS = {"fid": "lower", "fid_half": "lower", "fid_inf": "lower", "kid": "lower", "kid_std": "lower", "precision": "higher",
                            "recall": "higher", "density": "higher", "coverage": "higher"}


def metric_unit(metric: str) -> str:
    """The unit a metric is reported in, with a leading space ("" when unitless)."""
    if metric.endswith("_bpd") or metric == "bpd":
        return " bits/dim"
    if ("nll" in metric or "elbo" in metric or metric in ("rate", "distortion", "prior_kl", "decoder_nll")
            or metric.startswith("rate_l")):
        return " nats"
    return ""


def metric_direction(metric: str, model_cls: type | None = None) -> str:
    """"lower" or "higher" is better: a model lists its higher-is-better metrics in
    ``higher_is_better``; everything else is lower-is-better."""
    if model_cls is not None and metric in getattr(model_cls, "higher_is_better", ()):
        return "higher"
    return SAMPLE_METRIC_DIRECTIONS.get(metric, "lower")


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the trailing ``# ...`` of each field of a dataclass's source,
    with comment-only lines just below a field joined to it (as nanoGPT-style configs write)."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    fields = {}
    for node in ast.parse(src).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            fields[node.lineno] = node.target.id
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    out = {}
    for line, name in fields.items():
        parts = [comments[line]] if line in comments else []
        nxt = line + 1
        while nxt in comments and nxt not in code_lines:
            parts.append(comments[nxt])
            nxt += 1
        out[name] = " ".join(parts)
    return out


def config_fields(cls: type) -> list[dict]:
    """``[{"name", "type", "default", "comment"}]`` of a Config dataclass, in order."""
    notes: dict[str, str] = {}
    for base in reversed(cls.__mro__):  # a subclass's comment wins; inherited fields keep theirs
        if dataclasses.is_dataclass(base):
            notes.update({k: v for k, v in field_comments(base).items() if v})
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = repr(f.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append({"name": f.name, "type": typ, "default": default, "comment": notes.get(f.name, "")})
    return rows


def models() -> list[dict]:
    """Every registered model (built-in, and any a collected hypothesis file registered)."""
    from harness.hypothesis import metrics_of
    from harness.likelihood import KIND, source_of
    from harness.models.base import can_sample
    from harness.registry import MODELS

    out = []
    for name in sorted(MODELS):
        cls = MODELS[name]
        # cls.__doc__, not inspect.getdoc: that would inherit nn.Module's docstring.
        doc = (cls.__doc__ or inspect.getmodule(cls).__doc__ or "").strip().splitlines()
        sampling = can_sample(cls)
        metrics = list(metrics_of(cls))
        src = source_of(cls)
        out.append({
            "likelihood": f"test_nll = {src} ({KIND.get(src, 'as the model reports it')})" if src
            else "no likelihood (no test_nll)",
            "name": name, "class": f"{cls.__module__}.{cls.__qualname__}", "summary": doc[0] if doc else "",
            "fields": config_fields(cls.Config), "can_sample": sampling,
            "metrics": [{"name": m, "direction": metric_direction(m, cls), "unit": metric_unit(m).strip()}
                        for m in metrics],
        })
    return out


def datasets(data_dir: str | None = None) -> list[dict]:
    """Every registered dataset: shape, discrete levels, split sizes, what it is (its loader's
    docstring) and where its numbers came from; a dataset read from local files that are not
    there says where it looks and how to get them instead."""
    from harness import data
    from harness.registry import DATASETS

    out = []
    for name in sorted(DATASETS):
        doc = (DATASETS[name].__doc__ or "").strip()
        summary = " ".join(doc.split())  # the loader's docstring, on one line
        row = {"name": name, "shape": None, "levels": None, "splits": {}, "note": "", "summary": summary,
               "source": ""}
        try:
            ds = data.load(name, root=data_dir)
        except (HarnessError, ImportError, OSError) as exc:
            row["note"] = str(exc).splitlines()[0]
        else:
            row.update(shape=tuple(ds.shape), levels=ds.levels, source=getattr(ds, "source", ""))
            for split in ("train", "validation", "test"):
                t = getattr(ds, split, None)
                if t is not None and hasattr(t, "shape"):
                    row["splits"][split] = int(t.shape[0])
        out.append(row)
    return out


def metrics() -> list[dict]:
    """Every metric some model reports: direction, unit, and which models report it."""
    by: dict[str, dict] = {}
    for m in models():
        for x in m["metrics"]:
            row = by.setdefault(x["name"], {**x, "models": []})
            row["models"].append(m["name"])
    for name, row in by.items():
        if name in SAMPLE_METRIC_DIRECTIONS:
            row["note"] = "computed by the harness on samples (local-classifier features vs the test split)"
        if name == "test_nll":
            row["note"] = ("every family's test NLL under one name: the model's exact nll, else its iwae_nll "
                           "(an estimate, an upper bound in expectation), else its nll_bound (a variational bound); "
                           "`harness catalog models` says which per model")
    return [by[k] for k in sorted(by)]


__all__ = ["config_fields", "datasets", "field_comments", "metric_direction", "metric_unit", "metrics", "models"]
