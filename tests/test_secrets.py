"""A password in a store URI is never shown, stored or logged, and never put on a child's argv
(where `ps` shows it to every user). Against a real PostgreSQL that checks passwords."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import harness_subprocess, tiny_hypothesis, write
from services import PG_PASSWORD, services

from harness.redact import redact, redact_text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _harness(*args, cwd: Path, env: dict | None = None, timeout: float = 300) -> tuple[int, str]:
    p = harness_subprocess(*args, cwd=cwd, threads=1, extra_env={"PGPASSWORD": "", **(env or {})})
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def test_redact():
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("http://u:secret@h") == "http://u:***@h"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("sqlite:////tmp/runs/mlflow.db") == "sqlite:////tmp/runs/mlflow.db"
    assert "secret" not in redact_text("could not open postgresql+psycopg://u:secret@h/db: refused")


@pytest.mark.slow
def test_a_password_in_the_store_uri_is_never_shown_written_or_logged(project, pg_password_server):
    db = services.create_database(pg_password_server, f"t_{uuid.uuid4().hex[:12]}")
    assert PG_PASSWORD in db
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    rc, run_out = _harness("run", "tiny", "--store", db, cwd=project)
    assert rc == 0, run_out
    rc, report_out = _harness("report", "tiny", "--store", db, cwd=project)
    assert rc == 0, report_out
    for out in (run_out, report_out):
        assert PG_PASSWORD not in out, out
    files = [f for f in project.rglob("*") if f.is_file()]
    assert any(f.name == "report.md" for f in files) and any(f.name == "index.html" for f in files)
    for f in files:
        assert PG_PASSWORD.encode() not in f.read_bytes(), f
    # Every parameter, tag and artifact of every run in the store.
    from harness.tracking import Store

    client = Store(db, create=False).client
    n_runs = 0
    for exp in client.search_experiments():
        assert PG_PASSWORD not in str(exp.tags)
        for r in client.search_runs([exp.experiment_id]):
            n_runs += 1
            assert PG_PASSWORD not in str(r.data.params) + str(r.data.tags) + str(list(r.data.metrics)), r.info.run_id
            dst = project.parent / f"artifacts-{r.info.run_id}"
            dst.mkdir()
            client.download_artifacts(r.info.run_id, "", str(dst))
            for f in dst.rglob("*"):
                if f.is_file():
                    assert PG_PASSWORD.encode() not in f.read_bytes(), f
    assert n_runs >= 5  # the registration and four cells
    # The rerun command printed (password shown as ***) works as shown, the password taken from
    # $PGPASSWORD, and says so when it is missing.
    m = re.search(r"^next: harness report tiny --store (\S+)(.*)$", run_out, re.M)
    assert m and "***" in m.group(1) and "PGPASSWORD" in m.group(2), run_out
    shown = shlex.split(m.group(1))[0]
    rc, out = _harness("report", "tiny", "--store", shown, cwd=project, env={"PGPASSWORD": PG_PASSWORD})
    assert rc == 0, out
    rc, out = _harness("report", "tiny", "--store", shown, cwd=project)
    assert rc == 2 and "PGPASSWORD" in out and "Traceback" not in out, out
    # The same for a URI with no password at all (libpq reads $PGPASSWORD).
    bare = db.replace(f":{PG_PASSWORD}@", "@")
    rc, out = _harness("report", "tiny", "--store", bare, cwd=project, env={"PGPASSWORD": PG_PASSWORD})
    assert rc == 0, out


@pytest.mark.parametrize("uri", ["postgresql://u:{pw}@127.0.0.1:{port}/db", "http://u:{pw}@127.0.0.1:{port}"])
def test_an_unreachable_store_names_it_without_its_password(project, cli, uri):
    uri = uri.format(pw=PG_PASSWORD, port=_free_port())
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(seeds=2, steps=5))
    for args in (("run", "tiny"), ("report", "tiny"), ("list",), ("source", "tiny"), ("ui",)):
        r = cli(*args, "--store", uri)
        assert r.exit_code == 2, (args, r.output)
        assert PG_PASSWORD not in r.output and "u:***@127.0.0.1" in r.output, (args, r.output)


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _listening(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket the processes listen on, from /proc/net/tcp{,6}."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                addr, port = f[1].split(":")
                raw = bytes.fromhex(addr)
                # the kernel writes each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.append((socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, raw), int(port, 16)))
    return found


@pytest.mark.slow
def test_harness_ui_keeps_the_password_off_argv_and_listens_on_loopback_only(project, pg_password_server):
    db = services.create_database(pg_password_server, f"t_{uuid.uuid4().hex[:12]}")
    port = _free_port()
    proc = harness_subprocess("ui", "--store", db, "--port", str(port), cwd=project, start_new_session=True)
    try:
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
        assert PG_PASSWORD not in "".join(lines)
        # The server answers over the password-checking database: it got the password, not on argv.
        req = urllib.request.Request(f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
                                     data=b'{"max_results": 10}', headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(req, timeout=10).status == 200
        pids = _descendants(proc.pid)
        assert len(pids) > 1, "no server child found"
        for pid in pids[1:]:  # `harness ui`'s own argv is what the user typed; its children's are ours
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read()
            assert PG_PASSWORD.encode() not in argv, argv
        listening = _listening(pids)
        assert (("127.0.0.1", port) in listening), listening
        assert all(addr in ("127.0.0.1", "::1") for addr, _ in listening), listening
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.parametrize("port", ["99999", "-1", "0", "65536"])
def test_harness_ui_refuses_a_port_out_of_range(project, cli, port):
    r = cli("ui", "--port", port)
    assert r.exit_code == 2 and f"--port {port}" in r.output and "1-65535" in r.output, r.output
    assert "Traceback" not in r.output


def test_a_local_ray_cluster_is_announced_as_listening_on_every_interface():
    from harness.executors import RayExecutor

    (note,) = RayExecutor(address=None).notes() if not os.environ.get("RAY_ADDRESS") else [RayExecutor.EXPOSURE]
    assert "0.0.0.0" in note and "firewall" in note and "docs/scaling.md" in note
    assert RayExecutor(address="127.0.0.1:6379").notes() == []
    assert "Network exposure" in (Path(__file__).parent.parent / "docs" / "scaling.md").read_text()
