"""analysis: pure statistics at the core, I/O at the edges.

    frame = analysis.load("iaf_tightens_bound")          # MLflow -> one row per run
    verdict = analysis.decide(frame, prediction, control="diagonal")
"""

from analysis.load import load

__all__ = ["Verdict", "decide", "load"]


def __getattr__(name: str):
    # decide pulls in scipy and statsmodels: import it on first use only.
    if name in ("decide", "Verdict"):
        from analysis import decide as _decide

        return getattr(_decide, name)
    raise AttributeError(name)
