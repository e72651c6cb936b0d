"""The report's files: written whole or not at all, Markdown without raw HTML, LaTeX escaped."""

from __future__ import annotations

import contextlib
import math
import os
import re
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


# Markdown syntax that user text (a claim, a level name) could use to make a live link or image
# ([x](javascript:..)), emphasis, code, strikethrough, a heading or a table cell of its own (|).
_MD_SPECIAL = re.compile(r"[\\`*\[\]|#~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def md_escape(text: str) -> str:
    """User text as literal Markdown: raw HTML (``&``, ``<``) and Markdown syntax escaped, line
    breaks (which end a table row or start a block) made spaces. ``_`` inside a word is kept."""
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def md_code(value) -> Raw:
    """``value`` as an inline code span that user text cannot end early (a fence longer than
    any run of backticks in it) nor split a table cell (``|`` escaped, as GFM tables read it)."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", "" if value is None else str(value)).replace("|", "\\|")
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Raw(f"{fence}{pad}{text}{pad}{fence}")


def md_finalize(value) -> str:
    """Every value but a :class:`Raw` one is user text: :func:`md_escape` it."""
    if isinstance(value, Raw):
        return str(value)
    return md_escape("" if value is None else str(value))


def latex_table(c: pd.DataFrame, prediction, units: str, fmt, test_name=str) -> str:
    """The comparisons as a booktabs tabular, every cell LaTeX-escaped; ``test_name`` names each
    row's test beside its p-value."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}

    def tex(x) -> str:
        return "".join(special.get(ch, ch) for ch in (x if isinstance(x, str) else fmt(x)))

    unit = f" ({tex(units.strip())})" if units.strip() else ""
    lines = [
        "% written by harness report; needs \\usepackage{booktabs}",
        "\\begin{tabular}{llrrllrrl}",
        "\\toprule",
        f"stratum & treatment vs control & pairs & effect{unit} & {round(100 * (1 - 2 * prediction.alpha))}\\% CI "
        "& test & $p$ adj. & power & outcome \\\\",
        "\\midrule",
    ]
    for r in c.itertuples():
        lines.append(" & ".join([tex(r.stratum or "-"), tex(f"{r.treatment} vs {r.control}"), str(r.n_pairs),
                                 tex(r.effect), f"[{tex(r.ci_low)}, {tex(r.ci_high)}]", tex(test_name(r.test_used)), tex(r.p_adjusted),
                                 tex(r.power), tex(r.outcome)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


__all__ = ["Raw", "duration", "fmt", "latex_table", "md_code", "md_escape", "md_finalize", "report_dirs", "write_atomic"]


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


def duration(seconds: float) -> str:
    """Seconds as a person reads them: ``905.469`` -> ``15 min 5 s``; ``7384`` -> ``2 h 3 min``.

    Example::

        >>> duration(905.469), duration(42.0), duration(0.4)
        ('15 min 5 s', '42 s', '0.4 s')
    """
    s = float(seconds)
    if s != s:
        return "n/a"
    if s < 10:
        return f"{s:.1f} s".replace(".0 s", " s")
    s = round(s)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min"
    return f"{m} min {sec} s" if m else f"{sec} s"


def report_dirs(root: Path, hypothesis_id: str, number: int, latest: bool) -> list[Path]:
    """Where a version's report goes: ``reports/<id>/v<N>/`` always (one folder per version, so a
    v2 report never overwrites v1's), and ``reports/<id>/`` too when it is the latest version
    (``reports/<id>/index.html`` is always the latest version's report)."""
    base = root / "reports" / hypothesis_id
    return [base / f"v{number}", *([base] if latest else [])]
