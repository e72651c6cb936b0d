"""Hypothesis files that used to escape the import guards: each is exit 2 with a located
message, in bounded time. `check` imports the file in a child process first (harness/isolate.py),
so even a file that defeats every in-process guard cannot hang it."""

from __future__ import annotations

import time

import pytest
from conftest import harness_subprocess, write

BASE = "class Stop(BaseException):\n    pass\n\n\nraise Stop('at import')\n"
THREAD = ("import threading, time\n\n\ndef forever():\n    while True:\n        time.sleep(0.1)\n\n\n"
          "threading.Thread(target=forever).start()\n")
IGNORE_ALARM = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n"
BLOCK_ALARM = "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\nwhile True:\n    pass\n"
KILL_SELF = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"

# name: (source, what the message says, the line it names, whether `run` (in process) is checked too)
CASES = {
    "not_utf8": (b"# caf\xe9\nhypothesis = None\n", "not UTF-8", 1, True),
    "base_exception": (BASE, "Stop: at import", 5, True),
    "keyboard_interrupt": ("raise KeyboardInterrupt\n", "KeyboardInterrupt", 1, True),
    "non_daemon_thread": (THREAD, "started a thread", 4, False),  # the line of the function it runs
    "ignores_sigalrm": (IGNORE_ALARM, "signal.signal(SIGALRM", 2, True),
    "blocks_sigalrm": (BLOCK_ALARM, "pthread_sigmask", 2, True),
    "kills_itself": (KILL_SELF, "SIGKILL", None, False),  # no traceback survives SIGKILL: the file only
}


def _write(project, source) -> object:
    f = project / "hypotheses" / "bad.py"
    if isinstance(source, bytes):
        f.write_bytes(source)
        return f
    return write(f, source)


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_reports_a_hostile_file_located_and_exits(project, case):
    source, what, line, _ = CASES[case]
    f = _write(project, source)
    t0 = time.perf_counter()
    p = harness_subprocess("check", "bad", cwd=project, extra_env={"HARNESS_IMPORT_TIMEOUT": "3"})
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2, out
    assert what in out and (f"{f}:{line}" if line else f"{f}:") in out and "hint:" in out, out
    assert "Traceback" not in out
    assert time.perf_counter() - t0 < 60
    assert not (project / "runs").exists()


@pytest.mark.parametrize("case", sorted(c for c, v in CASES.items() if v[3]))
def test_run_reports_a_hostile_file_located(project, cli, monkeypatch, case):
    """`run` imports in process (no second interpreter per command): its guards cover these; the
    file that leaves a thread running is tested below through a real process (it must exit), and
    one that SIGKILLs its own process ends `run` with it (nothing is written before the import)."""
    source, what, line, _ = CASES[case]
    monkeypatch.setenv("HARNESS_IMPORT_TIMEOUT", "3")
    f = _write(project, source)
    r = cli("run", "bad")
    assert r.exit_code == 2, r.output
    assert what in r.output and f"{f}:{line}" in r.output and "Traceback" not in r.output, r.output
    assert not (project / "runs").exists()


def test_a_real_interrupt_while_importing_is_still_an_interrupt(project, cli, monkeypatch):
    import os
    import signal

    from harness.collect import collect

    write(project / "hypotheses" / "slow.py", "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n")
    with pytest.raises(KeyboardInterrupt):
        collect("slow")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert os.getpid()


@pytest.mark.parametrize("command", ["run", "register"])
def test_run_and_register_exit_when_the_file_left_a_thread_running(project, command):
    """`run` and `register` import in process: the file's thread is found and reported there,
    and the command still exits 2 (the interpreter would otherwise wait for the thread forever)."""
    source, what, line, _ = CASES["non_daemon_thread"]
    f = _write(project, source)
    p = harness_subprocess(command, "bad", cwd=project, extra_env={"HARNESS_IMPORT_TIMEOUT": "3"})
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2, out
    assert what in out and f"{f}:{line}" in out and "Traceback" not in out, out
    assert not (project / "runs").exists()
