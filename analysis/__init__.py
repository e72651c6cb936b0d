"""analysis: pure statistics at the core, I/O at the edges.

    frame = analysis.load("iaf_tightens_bound")          # MLflow -> one row per run
    verdict = analysis.decide(frame, prediction, control="diagonal")
"""

import importlib

from analysis.load import load

__all__ = ["Verdict", "decide", "load"]


def __getattr__(name: str):
    # decide pulls in scipy: import it on first use only. importlib, not `from analysis import
    # decide`, which would call this very function again (RecursionError). Importing the
    # submodule binds analysis.decide to the MODULE; analysis/decide.py makes that module
    # callable, so `analysis.decide(...)` works whichever was imported first.
    if name in ("decide", "Verdict"):
        module = importlib.import_module("analysis.decide")
        return getattr(module, name) if name == "Verdict" else module
    raise AttributeError(name)
