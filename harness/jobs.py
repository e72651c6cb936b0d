"""Job functions: what a worker runs for one job, on any executor (:mod:`harness.executors`).

A job spec is plain data, so it crosses a process pool, Ray and a Slurm job file alike:
``kind`` ("cells": a block of seeds of one variant; "tune": one variant's tuning to its full
budget, trained in trial blocks), ``path``/``smoke`` (the hypothesis file, collected again in
the worker: a model defined in that file exists there only after it is), ``store`` and ``root``
(the tracking store), ``claims`` (the claims backend's spec), ``reg`` (the registration),
``level``/``stratum``/``changes`` (the variant and its tuned values), ``seeds``, ``device``,
``block_size``, ``optuna`` (the tuning storage) and ``threads``.

A job returns ``{"ok": counts}`` or, for the harness's own errors, ``{"error": class name,
"message": ..., "exit_code": ...}``: an exception object would not survive every executor's
serialisation intact; :func:`raise_error` turns it back into the same error in the driver.
"""

from __future__ import annotations

from harness import errors
from harness.errors import HarnessError

# Per process: a worker trains many jobs of one study; collecting the file, opening the store
# and the claims database once each is enough.
_COLLECTED: dict = {}
_STORES: dict = {}
_CLAIMS: dict = {}


def seed_caches(col, store, claims) -> None:
    """In-process execution: the driver's own objects serve its jobs (no second import of the
    hypothesis file, no second store or claims connection)."""
    _COLLECTED[str(col.path), col.hypothesis.smoke] = col
    _STORES[store.uri, str(store.root)] = store
    _CLAIMS[repr(sorted(claims.spec().items()))] = claims


def _context(spec: dict):
    import torch

    from harness import claims as claims_mod
    from harness.collect import collect
    from harness.tracking import Store

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    key = (spec["path"], spec["smoke"])
    if key not in _COLLECTED:
        _COLLECTED[key] = collect(spec["path"], smoke=spec["smoke"])
    col = _COLLECTED[key]
    reg = spec["reg"]
    if col.hypothesis.version != reg.version:
        raise errors.StoreError(
            f"{spec['path']}: the file changed while the study ran (version {col.hypothesis.version}, "
            f"registered {reg.version})\n  hint: restore it, or register the change with --new-version")
    skey = (spec["store"], spec.get("root") or "")
    if skey not in _STORES:
        from pathlib import Path

        _STORES[skey] = Store(spec["store"], root=Path(spec["root"]) if spec.get("root") else None)
    ckey = repr(sorted(spec["claims"].items()))
    if ckey not in _CLAIMS:
        _CLAIMS[ckey] = claims_mod.from_spec(spec["claims"])
    return col, _STORES[skey], _CLAIMS[ckey], reg


def _variant(col, spec: dict):
    from harness.study import _declared

    v = _declared(col, spec["level"], spec["stratum"])
    return col.hypothesis.tuned_variant(v, spec["changes"]) if spec.get("changes") else v


def run_job(spec: dict) -> dict:
    """The one entry point every executor calls."""
    from harness.study import _IN_JOB

    _IN_JOB.set()
    try:
        col, store, claims, reg = _context(spec)
        if spec["kind"] == "cells":
            from harness.study import Job, execute

            out = execute(col, store, reg, Job(_variant(col, spec), list(spec["seeds"])), spec["device"],
                          progress=spec.get("progress"), claims=claims)
        elif spec["kind"] == "tune":
            from harness import tuning

            st = tuning.storage(spec.get("optuna"), store.root)
            res = tuning.tune_variant(col, store, reg, _variant(col, spec), st, device=spec["device"],
                                      block_size=spec.get("block_size"), progress=spec.get("progress"), claims=claims)
            out = {"trained": res.trained, "complete": res.complete, "busy": res.busy}
        else:
            raise HarnessError(f"unknown job kind {spec['kind']!r}")
        return {"ok": out}
    except HarnessError as exc:
        return {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code,
                "killed": getattr(exc, "killed", None)}
    finally:
        _IN_JOB.clear()


def raise_error(out: dict) -> None:
    """Raise, in the driver, the error a job returned."""
    name, msg = out["error"], out["message"]
    if name == "Interrupted":
        exc = errors.Interrupted(msg, int(out.get("exit_code", 143)) - 128)
        if out.get("killed") is not None:
            exc.killed = out["killed"]
        raise exc
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, HarnessError)) or name == "DeclarationError":
        cls = HarnessError
    raise cls(msg)
