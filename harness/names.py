"""Names MLflow accepts for metrics and parameters, checked where a model is declared.

MLflow refuses a bad name only when a run logs it, after training (an MlflowException, exit 1).
The same rule applied at declaration makes it a located DeclarationError (exit 2) before
anything runs. The rule is MLflow's own (``mlflow/utils/validation.py``:
``validate_param_and_metric_name``, ``path_not_unique``, ``MAX_ENTITY_KEY_LENGTH``), restated
here so that declaring a model never imports mlflow (2-3 s).
"""

from __future__ import annotations

import posixpath
import re

from harness.errors import DeclarationError

# Not Windows: MLflow also refuses ':' there; the harness runs on POSIX hosts.
_ALLOWED = re.compile(r"^[/\w.\- :]*$")
MAX_LENGTH = 250  # MAX_ENTITY_KEY_LENGTH
RULE = ("letters, digits, underscores (_), dashes (-), periods (.), spaces, colons (:) and slashes (/), "
        f"at most {MAX_LENGTH} characters, and no path that normalises to another name ('a//b', './a', '../a', '/a')")


def problem(name: object) -> str | None:
    """Why MLflow would refuse ``name`` as a metric or parameter name, or None when it accepts it.

    Example::

        problem("iwae_nll")        # None
        problem("x<img src=x>")    # "contains '<', '>', '='"
    """
    if not isinstance(name, str):
        return f"not a string ({type(name).__name__})"
    if not name:
        return "empty"
    if len(name) > MAX_LENGTH:
        return f"{len(name)} characters (MLflow takes at most {MAX_LENGTH})"
    if not _ALLOWED.match(name):
        bad = sorted({ch for ch in name if not _ALLOWED.match(ch)})
        return "contains " + ", ".join(repr(ch) for ch in bad)
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith("..") or norm.startswith("/"):
        return f"a path that MLflow would read as {norm!r}"
    return None


def check(field: str, name: object) -> None:
    """Raise DeclarationError when MLflow would refuse ``name`` (``field`` says where it was declared)."""
    why = problem(name)
    if why is not None:
        raise DeclarationError(field, name, f"MLflow names may only contain {RULE}; rename it",
                               what=f"a name MLflow refuses ({why})")
