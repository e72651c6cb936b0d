"""A declaration's identity: its canonical (JSON-able) form, the pieces of the content hash,
and a field-level diff between two versions. Pure: no validation, no registry."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from typing import Any


def diff_declarations(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable lines naming only the fields that changed between two canonical
    declarations, dotted and old -> new: ``training.steps: 5 -> 6``."""
    lines = []
    missing = object()
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a == b:
            continue
        name = f"{prefix}{key}"
        if name.startswith("model_code"):
            lines.append(f"{name}: the model's source code changed")
        elif isinstance(a, dict) and isinstance(b, dict):
            lines.extend(diff_declarations(a, b, f"{name}."))
        else:
            def show(v):
                return "(not set)" if v is missing else json.dumps(v)

            lines.append(f"{name}: {show(a)} -> {show(b)}")
    return lines


def prediction_canonical(p) -> dict:
    # estimand=None (the default) is left out so that files written before it keep their hash.
    # budgets="final" (the default) likewise: declarations before issue 19 keep their version.
    out = dataclasses.asdict(p)
    if out.get("estimand") is None:
        out.pop("estimand", None)
    if out.get("budgets", "final") == "final":
        out.pop("budgets", None)
    elif not isinstance(out["budgets"], str):
        out["budgets"] = list(out["budgets"])
    return out


# Training fields added after declarations were registered, with the default each is left out
# at: a declaration that does not set them keeps the version it always had.
TRAINING_OMITTED_AT_DEFAULT = {"evaluate_at": (), "ema": None, "match": None}


def training_canonical(t) -> dict:
    out = dataclasses.asdict(t)
    for name, default in TRAINING_OMITTED_AT_DEFAULT.items():
        if name in out and out[name] == default:
            out.pop(name)
    if "evaluate_at" in out:
        out["evaluate_at"] = list(out["evaluate_at"])
    return out


def level_id(v: object) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def equal_levels(levels) -> set[str]:
    """Ids of levels equal in value though spelled differently (1, 1.0 and True)."""
    out = set()
    for i, a in enumerate(levels):
        for b in levels[i + 1 :]:
            try:
                same = not isinstance(a, str) and not isinstance(b, str) and bool(a == b)
            except Exception:  # noqa: BLE001  (an exotic level without a usable ==)
                same = False
            if same:
                out |= {level_id(a), level_id(b)}
    return out


def jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=repr))


def code_hash(cls: type) -> str:
    # A built-in model's behaviour lives in its whole module; a user's model is hashed by its
    # class source, so editing a comment elsewhere in the hypothesis file is not a new version.
    try:
        builtin = cls.__module__.startswith("harness.")
        src = inspect.getsource(inspect.getmodule(cls) if builtin else cls)
        if builtin:  # the shared helpers and the contract are part of a built-in model's code
            from harness.models import _util, base

            src += inspect.getsource(_util) + inspect.getsource(base)
    except (OSError, TypeError):
        src = cls.__qualname__
    return hashlib.sha256(src.encode()).hexdigest()[:12]
