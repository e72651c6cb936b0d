"""Fixtures for the real services of the distributed tests: PostgreSQL, an MLflow server, a
two-node Ray cluster (all on 127.0.0.1). ``.ci/run`` starts them (scripts/services.py) and
exports their addresses; without those variables a fixture starts its own for the session.
Under CI (``CI`` set) a service that cannot start is a failure, never a skip."""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("harness_services", ROOT / "scripts" / "services.py")
services = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(services)


def _unavailable(what: str, exc: BaseException):
    if os.environ.get("CI"):
        raise RuntimeError(f"{what} could not start under CI: {exc}") from exc
    pytest.skip(f"{what} not available here: {exc}")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    if os.environ.get("HARNESS_TEST_PG"):
        yield os.environ["HARNESS_TEST_PG"]
        return
    d = Path("/tmp") / f"harness-pg-{uuid.uuid4().hex[:8]}"  # a short path: the socket lives here
    try:
        url = services.start_postgres(d)
    except Exception as exc:  # noqa: BLE001
        _unavailable("PostgreSQL", exc)
    yield url
    services.stop_postgres(d)


@pytest.fixture
def pg_db(pg_server):
    """A new empty database for one test."""
    return services.create_database(pg_server, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    if os.environ.get("HARNESS_TEST_RAY"):
        yield os.environ["HARNESS_TEST_RAY"]
        return
    try:
        addr = services.start_ray(tmp_path_factory.mktemp("ray"))
    except Exception as exc:  # noqa: BLE001
        _unavailable("Ray", exc)
    yield addr
    services.stop_ray()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """The path of a running single-node Slurm's slurm.conf (pass it as SLURM_CONF)."""
    if os.environ.get("HARNESS_TEST_SLURM"):
        yield os.environ["HARNESS_TEST_SLURM"]
        return
    d = Path("/tmp") / f"harness-slurm-{uuid.uuid4().hex[:8]}"
    try:
        if os.geteuid() != 0:
            raise RuntimeError("starting slurmctld and slurmd here needs root")
        conf = services.start_slurm(d)
    except Exception as exc:  # noqa: BLE001
        _unavailable("Slurm", exc)
    yield conf
    services.stop_slurm(d)


@pytest.fixture(scope="session")
def mlflow_server(pg_server, tmp_path_factory):
    """A shared tracking server (tests give their hypotheses unique names)."""
    if os.environ.get("HARNESS_TEST_MLFLOW"):
        yield os.environ["HARNESS_TEST_MLFLOW"]
        return
    d = tmp_path_factory.mktemp("mlflow")
    try:
        url, proc = services.start_mlflow(d, services.create_database(pg_server, f"mlf_{uuid.uuid4().hex[:8]}"))
    except Exception as exc:  # noqa: BLE001
        _unavailable("mlflow server", exc)
    yield url
    services.stop_process(proc)


PG_PASSWORD = f"pw{uuid.uuid4().hex}"  # hex: needs no quoting in a URL


@pytest.fixture(scope="session")
def pg_password_server():
    """A PostgreSQL that checks passwords (scram-sha-256), unlike ``pg_server`` (trust); its URL
    carries the password ``PG_PASSWORD`` and no database."""
    d = Path("/tmp") / f"harness-pgpw-{uuid.uuid4().hex[:8]}"
    try:
        url = services.start_postgres(d, password=PG_PASSWORD)
    except Exception as exc:  # noqa: BLE001
        _unavailable("PostgreSQL", exc)
    yield url
    services.stop_postgres(d)
