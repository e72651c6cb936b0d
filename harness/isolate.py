"""Import a hypothesis file in a child process first, the way `harness check` does.

A file can defeat any guard inside the process that imports it: ignore or block SIGALRM and
loop, start a thread that never ends, kill its own process, crash the interpreter. A child
process cannot: a C-level watchdog (``faulthandler.dump_traceback_later``) prints where the
import is stuck and ends the child after the import timeout, a SIGKILL of its whole process
group follows if even that fails, and the child leaves with ``os._exit`` (no thread keeps it
alive). Its failure comes back as the same located CollectionError the in-process import gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import CollectionError

ENV_IMPORT_TIMEOUT = "HARNESS_IMPORT_TIMEOUT"
IMPORT_TIMEOUT = 120.0  # seconds a hypothesis file may take to import (its own modules included)

_CHILD = """
import faulthandler, json, os, sys
path, result, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
from harness.collect import collect
# The backstop, armed once the harness is imported: the import's own SIGALRM fires first,
# unless the file ignored or blocked it.
faulthandler.dump_traceback_later(timeout + 2, exit=True)
try:
    collect(path)
    out = {"ok": True}
except BaseException as exc:
    out = {"ok": False, "kind": type(exc).__name__, "message": str(exc)}
with open(result, "w") as f:
    json.dump(out, f)
os._exit(0)
"""


def import_in_child(path: Path) -> None:
    """Import ``path`` in a child process; a CollectionError (located) when that fails."""
    timeout = float(os.environ.get(ENV_IMPORT_TIMEOUT) or IMPORT_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="harness-import-") as tmp:
        result = Path(tmp) / "result.json"
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(result), str(timeout)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, ENV_IMPORT_TIMEOUT: str(timeout)},
        )
        timed_out = False
        try:
            output, _ = proc.communicate(timeout=timeout + 60)  # + importing the harness
        except subprocess.TimeoutExpired:
            output, timed_out = b"", True
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it started
            proc.wait()
        text = output.decode("utf-8", "replace")
        if result.is_file():
            with contextlib.suppress(ValueError):
                out = json.loads(result.read_text())
                if out["ok"]:
                    return
                if out["kind"] == "CollectionError":
                    raise CollectionError(out["message"])
                raise CollectionError(f"{path}: error while importing the hypothesis file: {out['kind']}: "
                                      f"{out['message']}\n  hint: run it with `python FILE` to see the traceback")
    line = _line_in(text, path)
    where = f"{path}:{line}" if line else str(path)
    if timed_out or "Timeout (" in text:  # faulthandler's watchdog, or our SIGKILL
        raise CollectionError(
            f"{where}: importing the hypothesis file took longer than {timeout:g} s (an endless loop, or slow "
            "work at import time?)\n"
            f"  hint: a hypothesis file only declares; move long work out of it (or raise ${ENV_IMPORT_TIMEOUT})"
        )
    how = (f"signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
           else f"exit code {proc.returncode}")
    raise CollectionError(
        f"{where}: the process importing the hypothesis file ended ({how}) before the import finished\n"
        f"  hint: a hypothesis file only declares: it must not kill or crash its process{_tail(text)}"
    )


def _line_in(text: str, path: Path) -> int | None:
    """The innermost line of ``path`` in a faulthandler or Python traceback (the main thread's)."""
    lines = [int(m.group(1)) for m in re.finditer(rf'File "{re.escape(str(path))}", line (\d+)', text)]
    return lines[0] if "most recent call first" in text and lines else (lines[-1] if lines else None)


def _tail(text: str) -> str:
    text = text.strip()
    return f"\n  its last output: {text[-300:]}" if text else ""
