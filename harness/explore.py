"""Exploring before registering: ``harness run FILE --set training.steps=300 --set fixed.hidden=64``.

Dotted overrides of the declaration's fields (``training.*``, ``fixed.*``, ``prediction.*``,
``tuning.*``, ``seeds``, ``first_seed``) give an EXPLORATORY version: the overrides are part of
its declaration (so of its version hash), it is stored apart under its own hypothesis id
``<id>@explore`` and labelled exploratory everywhere (run summary, list, report). It never is,
never mixes with and never counts as the registered study. Values are Python literals read
with :func:`ast.literal_eval` (never ``eval``); a bare word is a string (``posterior=linear_iaf``).
"""

from __future__ import annotations

import ast
import dataclasses
import re

from harness.errors import DeclarationError, HarnessError

EXPLORE_SUFFIX = "@explore"
TOP_LEVEL = ("seeds", "first_seed")
SECTIONS = ("training", "fixed", "prediction", "tuning")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")


def parse(arg: str) -> tuple[str, object]:
    """``"training.steps=300"`` -> ``("training.steps", 300)``; HarnessError naming the argument."""
    key, sep, raw = arg.partition("=")
    key = key.strip()
    if not sep or not key:
        raise HarnessError(f"--set {arg}: expected FIELD=VALUE, e.g. --set training.steps=300")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if not _WORD.match(raw) or raw in ("True", "False", "None"):
            raise HarnessError(
                f"--set {arg}: {raw!r} is not a Python literal\n"
                "  hint: a number (300, 1e-3), True/False/None, a quoted string ('fp16'), a list ([8, 16]), "
                "or a bare word (linear_iaf)"
            ) from None
        value = raw
    return key, value


def apply(hyp, args: list[str]):
    """The exploratory version of ``hyp`` with every ``--set`` applied (validated as a whole
    declaration); HarnessError (exit 2) naming the ``--set`` argument that is wrong."""
    changes: dict = {}
    for arg in args:
        key, value = parse(arg)
        section, _, name = key.partition(".")
        if key in TOP_LEVEL:
            changes[key] = value
            continue
        if section not in SECTIONS or not name or "." in name:
            raise _unknown(arg, key, [*TOP_LEVEL, *(f"{s}.FIELD" for s in SECTIONS)])
        if section == "fixed":
            current = changes.get("fixed", dict(hyp.fixed))
            if name in hyp.ablate or name in hyp.strata:
                raise HarnessError(f"--set {arg}: {name!r} is the ablated or a stratifying factor; it cannot be "
                                   "fixed\n  hint: set fixed.* fields, training.*, seeds or prediction.*")
            changes["fixed"] = {**current, name: value}
            continue
        obj = changes.get(section, getattr(hyp, section))
        if obj is None:
            raise HarnessError(f"--set {arg}: the hypothesis declares no {section}")
        fields = [f.name for f in dataclasses.fields(obj)]
        if name not in fields:
            raise _unknown(arg, name, fields)
        try:
            changes[section] = dataclasses.replace(obj, **{name: value})
        except DeclarationError as exc:
            raise HarnessError(f"--set {arg}: {exc}") from None
        except TypeError as exc:
            raise HarnessError(f"--set {arg}: {exc}") from None
    label = tuple(args)
    try:
        return dataclasses.replace(hyp, **changes, exploratory=label)
    except DeclarationError as exc:
        which = next((a for a in reversed(args) if parse(a)[0].split(".")[-1] in str(exc.field)), " ".join(args))
        raise HarnessError(f"--set {which}: {exc}") from None


def _unknown(arg: str, name: str, allowed: list[str]) -> HarnessError:
    import difflib

    close = difflib.get_close_matches(name, allowed, n=1)
    mean = f"did you mean {close[0]!r}? " if close else ""
    return HarnessError(f"--set {arg}: unknown field {name!r}\n  hint: {mean}one of {allowed}")
