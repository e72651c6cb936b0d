"""The servers the harness starts itself (`harness ui`'s MLflow server): on 127.0.0.1 only,
their credentials in the environment, never on argv."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.redact import for_child

HOST = "127.0.0.1"  # loopback only: the UI has no authentication; reach it from elsewhere over ssh -L


def check_port(port: int, option: str = "--port") -> int:
    """``port`` when it is a TCP port (1-65535), else a HarnessError (exit 2)."""
    if not 1 <= port <= 65535:
        raise HarnessError(f"{option} {port}: not a TCP port\n  hint: a port in 1-65535, e.g. {option} 5000")
    return port


def mlflow_server(uri: str, port: int, artifacts: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of an ``mlflow server`` over ``uri`` on 127.0.0.1:``port``. A
    password in ``uri`` travels in the environment ($PGPASSWORD): argv is public
    (``/proc/<pid>/cmdline``, ``ps``), the environment is readable only by its owner."""
    bare, secret_env = for_child(uri)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", bare, "--host", HOST,
           "--port", str(check_port(port)), "--workers", "1"]
    if artifacts is not None:
        cmd += ["--default-artifact-root", artifacts.resolve().as_uri()]
    # The job runner (huey workers, for MLflow's GenAI jobs) is most of the start-up time and
    # unused here: about 19 s -> 11 s to the first answer on a 2-core machine.
    env = {**os.environ, **secret_env,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
    return cmd, env
