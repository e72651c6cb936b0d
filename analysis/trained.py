"""What each variant actually trained with: the confirmatory runs' own parameters, the tuned
values marked with the tuning trial they came from (``tuning/best.json`` of the registration
run). The declaration shows the declared values; with tuning, these are what the runs used."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

# Logged with every run but not a configuration: left out of the rows.
_NOT_CONFIG = {"model", "dataset"}


def best_configurations(st, reg) -> dict:
    """variant id -> {"trial", "value", "params", ...} as the tuning phase chose them; {} untuned."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            p = st.download(reg.run_id, "tuning/best.json", Path(tmp))
            return json.loads(Path(p).read_text())
        except Exception:  # noqa: BLE001  (no tuning declared, or not finished: nothing chosen)
            return {}


def _value(v: str) -> str:
    try:
        x = float(v)
    except ValueError:
        return v
    return v if x.is_integer() and "." not in v and "e" not in v.lower() else f"{x:.4g}"


def variant_rows(st, reg, runs, factor: str) -> list[dict]:
    """One "trained with" row per variant (and stratum): its configuration as its runs logged
    it, ``lr=0.001779 (tuned, trial 2)`` for a tuned value. ``runs`` are the report's runs."""
    best = best_configurations(st, reg) if reg.declaration.get("tuning") else {}
    rows, seen = [], set()
    for r in runs:
        t = r.data.tags
        level, stratum = t.get("harness.variant", "?"), t.get("harness.stratum", "")
        vid = f"{level}|{stratum}" if stratum else level
        if vid in seen:
            continue
        seen.add(vid)
        chosen = best.get(vid, {})
        tuned = set(chosen.get("params", {}))
        parts = []
        for k, v in sorted(r.data.params.items(), key=lambda kv: (kv[0].startswith("training."), kv[0])):
            if k in _NOT_CONFIG:
                continue
            name = k.removeprefix("training.")
            mark = f" (tuned, trial {chosen.get('trial')})" if name in tuned else ""
            parts.append(f"{name}={_value(v)}{mark}")
        setting = f"{factor} = {level}" + (f" | {stratum}" if stratum else "")
        rows.append({"section": "trained with" + (" (tuned)" if tuned else ""), "setting": setting,
                     "value": ", ".join(parts)})
    return rows
