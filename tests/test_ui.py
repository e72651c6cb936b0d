"""`harness ui` serves MLflow's UI on 127.0.0.1 over the same store."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request

from conftest import harness_subprocess, tiny_hypothesis, write


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_store_on_loopback(project, cli):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    assert cli("run", "tiny").exit_code == 0
    port = _free_port()
    # Its own session: the MLflow server starts workers, and the whole group must go at the end.
    proc = harness_subprocess("ui", "--port", str(port), cwd=project, start_new_session=True)
    try:
        # The URL is printed only once the server answers: a request right after it succeeds.
        lines = []
        deadline = time.time() + 150
        while time.time() < deadline:
            line = proc.stdout.readline()
            assert line, "harness ui exited: " + "".join(lines)
            lines.append(line)
            if line.startswith("MLflow UI on http://127.0.0.1:"):
                break
        else:
            raise AssertionError("no URL printed within 150 s: " + "".join(lines))
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
            data=b'{"max_results": 10}', headers={"Content-Type": "application/json"},
        )
        body = urllib.request.urlopen(req, timeout=10).read().decode()
        assert '"tiny"' in body
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
