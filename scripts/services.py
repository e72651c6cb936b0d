"""Start and stop the services the distributed tests need, on 127.0.0.1 only.

    python scripts/services.py start DIR      # prints `export ...` lines for the shell
    python scripts/services.py stop DIR

- PostgreSQL: ``initdb`` into DIR/pg (as the ``postgres`` user when run as root: PostgreSQL
  refuses to run as root), ``pg_ctl start`` on a free port, listening on 127.0.0.1 only, trust
  authentication (a throwaway test cluster). Exported: ``HARNESS_TEST_PG`` (a server URL without
  a database: the tests create one database per test).
- An MLflow tracking server (``mlflow server``) on a database of that PostgreSQL, serving
  artifacts from DIR/mlflow-artifacts. Exported: ``HARNESS_TEST_MLFLOW``.
- A two-node Ray cluster (``ray start --head`` plus a second ``ray start --address``), one CPU
  each. Exported: ``HARNESS_TEST_RAY``.
- A single-node Slurm (munged, slurmctld, slurmd from Debian's slurm-wlm; needs root), its
  config in DIR/slurm. Exported: ``HARNESS_TEST_SLURM`` (the slurm.conf; set it as SLURM_CONF).
  No accounting daemon (slurmdbd): ``sacct`` answers nothing, so the executor notices a job's
  end through ``squeue`` (see harness/executors.py).

The test fixtures (tests/services.py) use these when the variables are set (CI, via .ci/run)
and start their own with the same functions otherwise.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
            return
        time.sleep(0.2)
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not answer on {HOST}:{port} within {timeout:.0f} s\n{tail}")


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


# ---------------------------------------------------------------------- PostgreSQL
def start_postgres(d: Path, password: str | None = None) -> str:
    """``password``: require it (scram-sha-256) instead of trusting every local connection; the
    URL returned carries it."""
    d = Path(d)
    data = d / "pg"
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
    port = free_port()
    auth = ["-A", "trust"]
    if password is not None:
        pwfile = d / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        auth = ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
    subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(data), *auth, "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    if password is not None:
        pwfile.unlink()
    log = d / "pg.log"
    opts = f"-p {port} -k {d} -c listen_addresses={HOST} -c fsync=off -c max_connections=300"
    subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]),
                   check=True, capture_output=True)
    _wait_port(port, 30, "PostgreSQL", log)
    return f"postgresql://postgres{'' if password is None else ':' + password}@{HOST}:{port}"


def stop_postgres(d: Path) -> None:
    data = Path(d) / "pg"
    if data.exists():
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)


def create_database(server: str, name: str) -> str:
    """A new empty database on ``server`` (a URL without a database); returns its URL."""
    import psycopg

    con = psycopg.connect(server + "/postgres", autocommit=True)
    try:
        with con.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()
    return f"{server}/{name}"


# ---------------------------------------------------------------------- MLflow server
def start_mlflow(d: Path, backend: str, port: int | None = None) -> tuple[str, subprocess.Popen]:
    """An ``mlflow server`` process on ``backend``; returns (its URL, the process)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = d / f"mlflow-{port}.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", HOST, "--port", str(port), "--backend-store-uri", backend,
         "--artifacts-destination", str(d / "mlflow-artifacts"), "--workers", "1"],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_port(port, 120, "mlflow server", log)
        _wait_http(f"http://{HOST}:{port}/health", 60)
    except BaseException:
        stop_process(proc)
        raise
    return f"http://{HOST}:{port}", proc


def _wait_http(url: str, timeout: float) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > end:
                raise
        time.sleep(0.3)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)


# ---------------------------------------------------------------------- Ray
def start_ray(d: Path) -> str:
    ray = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address", HOST, "--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", "--port", str(port), "--include-dashboard=false", *common],
                   check=True, capture_output=True, env=env, timeout=180)
    subprocess.run([ray, "start", "--address", f"{HOST}:{port}", *common],
                   check=True, capture_output=True, env=env, timeout=180)
    (Path(d) / "ray.address").write_text(f"{HOST}:{port}")
    return f"{HOST}:{port}"


def stop_ray() -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


# ---------------------------------------------------------------------- Slurm
SLURM_CONF = """ClusterName=harness
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=60
InactiveLimit=0
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def start_slurm(d: Path) -> str:
    """A single-node Slurm (munged, slurmctld, slurmd; Debian's slurm-wlm) with its config in
    ``d``; returns the path of its slurm.conf (export it as SLURM_CONF). Needs root."""
    import platform

    d = Path(d)
    for sub in ("state", "spool"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=platform.node().split(".")[0], d=d, ctld_port=free_port(),
                                      d_port=free_port(), cpus=os.cpu_count() or 1))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, capture_output=True)
    subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], check=True, capture_output=True, env=env)
    subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, capture_output=True, env=env)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
        if p.returncode == 0 and p.stdout.strip() in ("idle", "mixed", "allocated"):
            return str(conf)
        time.sleep(0.5)
    raise RuntimeError(f"Slurm did not come up: sinfo says {p.stdout.strip() or p.stderr.strip()}\n"
                       + (d / "slurmctld.log").read_text()[-1500:])


def stop_slurm(d: Path) -> None:
    for pidfile in ("slurmd.pid", "slurmctld.pid"):
        f = Path(d) / pidfile
        if f.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(f.read_text().strip()), signal.SIGTERM)


# ---------------------------------------------------------------------- CLI
def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, d = argv[0], Path(argv[1]).resolve()
    if cmd == "stop":
        pid = d / "mlflow.pid"
        if pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid.read_text()), signal.SIGTERM)
        stop_ray()
        stop_slurm(d / "slurm")
        stop_postgres(d)
        return 0
    pg = start_postgres(d)
    url, proc = start_mlflow(d, create_database(pg, "mlflow_server"))
    (d / "mlflow.pid").write_text(str(proc.pid))
    ray = start_ray(d)
    slurm = start_slurm(d / "slurm")
    print(f"export HARNESS_TEST_SLURM={slurm}")
    print(f"export HARNESS_TEST_PG={pg}")
    print(f"export HARNESS_TEST_MLFLOW={url}")
    print(f"export HARNESS_TEST_RAY={ray}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
