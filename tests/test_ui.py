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
        body = None
        deadline = time.time() + 90
        while time.time() < deadline and body is None:
            time.sleep(1)
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
                    data=b'{"max_results": 10}', headers={"Content-Type": "application/json"},
                )
                body = urllib.request.urlopen(req, timeout=5).read().decode()
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
        assert body is not None, "the UI did not answer within 90 s"
        assert '"tiny"' in body
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
