"""The report's files: written whole or not at all, Markdown without raw HTML, LaTeX escaped."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file in the same directory, fsync'd, then
    renamed over the old one (a full disk leaves the previous report, never a truncated one)."""
    from harness.errors import HarnessError

    data = content.encode() if isinstance(content, str) else content
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the report from a group
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        from harness.errors import translate

        known = translate(exc, str(path))  # full disk, read-only: the same words as everywhere else
        what = str(known) if known is not None else (
            f"{path}: could not write the report ({exc.strerror or exc})\n"
            "  hint: fix the directory's permissions, then run `harness report` again")
        raise type(known or HarnessError)(f"{what}\n  the previous {path.name}, if any, is unchanged") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Raw(str):
    """Markdown output that is not escaped (fenced code blocks)."""


def md_finalize(value) -> str:
    """Markdown renders raw HTML: escape ``&`` and ``<`` in every value but a :class:`Raw` one."""
    if isinstance(value, Raw):
        return str(value)
    return ("" if value is None else str(value)).replace("&", "&amp;").replace("<", "&lt;")


def latex_table(c: pd.DataFrame, prediction, units: str, fmt) -> str:
    """The comparisons as a booktabs tabular, every cell LaTeX-escaped."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}

    def tex(x) -> str:
        return "".join(special.get(ch, ch) for ch in (x if isinstance(x, str) else fmt(x)))

    unit = f" ({tex(units.strip())})" if units.strip() else ""
    lines = [
        "% written by harness report; needs \\usepackage{booktabs}",
        "\\begin{tabular}{llrrlrrl}",
        "\\toprule",
        f"stratum & treatment vs control & pairs & effect{unit} & {round(100 * (1 - 2 * prediction.alpha))}\\% CI "
        "& $p$ adj. & power & outcome \\\\",
        "\\midrule",
    ]
    for r in c.itertuples():
        lines.append(" & ".join([tex(r.stratum or "-"), tex(f"{r.treatment} vs {r.control}"), str(r.n_pairs),
                                 tex(r.effect), f"[{tex(r.ci_low)}, {tex(r.ci_high)}]", tex(r.p_adjusted),
                                 tex(r.power), tex(r.outcome)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


__all__ = ["Raw", "fmt", "latex_table", "md_finalize", "write_atomic"]


def fmt(x, digits: int = 3) -> str:
    """A value as every report output shows it: 3 decimals (trailing zeros dropped below 1),
    scientific below 1e-3 and from 1e5, "n/a" for NaN, yes/no for booleans."""
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
