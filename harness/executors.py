"""Executors: where the jobs of a study run. ``local`` (this process, or a pool of processes on
this host), ``ray`` (one Ray task per job on an existing or a local Ray cluster) and ``slurm``
(a submitit job array). None of them schedules anything itself: the engines do.

A job is plain data (a dict: the hypothesis file's path, the store's URI, the claims backend's
spec, the registration, a variant's level/stratum/tuned values and a block of seeds, or a
variant to tune), run by a module-level function of :mod:`harness.jobs` that rebuilds
everything in the worker. Every executor has the same contract:

- :meth:`Executor.start` raises a located :class:`HarnessError` when it cannot run anything
  (no Ray cluster at the address, no ``sbatch``), before the study is registered;
- :meth:`Executor.run` yields ``(index, outcome)`` as jobs end, in any order. The outcome is
  the job function's return value (it catches the harness's own errors and returns them, so
  their class and message cross every executor intact), or :class:`WorkerLost` when the
  worker died under the job (SIGKILL, node lost, pool broken): the driver re-plans, and the
  job's cells come back once their claims are released or their leases expire.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.errors import HarnessError, describe

EXECUTORS = ("local", "ray", "slurm")
ENV_RAY = "RAY_ADDRESS"


class WorkerLost(Exception):
    """The process running a job died before returning."""


def _env_for_workers() -> dict[str, str]:
    """The harness's own environment (failpoints, lease length, block cap, thread counts) for
    workers started by a cluster, which do not inherit the driver's environment."""
    # PGPASSWORD: a store or --db given as postgresql://USER:***@... takes its password from it.
    # PYTHONPATH: a worker imports the harness the driver imports (a checkout on a shared
    # filesystem), not whatever a long-lived Ray node started with: job specs change between
    # versions (a cells job without a block size is split by the worker since issue 23).
    keep = ("HARNESS_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MLFLOW_", "PGPASSWORD", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if k.startswith(keep)}


class Executor(abc.ABC):
    """The contract every executor meets (see the module docstring). ``start`` and ``stop``
    default to doing nothing: the local executor needs neither."""

    name = "?"
    distributed = False  # workers may be on other hosts: no sqlite store, no flock claims
    # Who sizes a block when --block-size is not given: False, the driver (its device is the
    # workers'); True, each worker from its own device (a GPU-less login node must not cap
    # the blocks of GPU workers): the driver then sends a variant's cells, spread over slots().
    worker_sizes_blocks = False

    def start(self) -> None:  # noqa: B027  (optional hook)
        """Fail, located, when nothing could run; before the study is registered."""

    @abc.abstractmethod
    def run(self, fn: Callable[[dict], dict], specs: list[dict]) -> Iterator[tuple[int, object]]:
        """Yield ``(index into specs, fn's return value or WorkerLost)`` as jobs end."""

    def stop(self) -> None:  # noqa: B027  (optional hook)
        """Release what ``start`` acquired."""

    def slots(self) -> int | None:
        """How many jobs can run at once, when the executor knows (None: it does not)."""
        return None

    def housekeeping(self) -> list[str]:
        """Called by the driver once per pass, before it plans; returns notes for the user."""
        return []

    def describe(self) -> str:
        return self.name


# ---------------------------------------------------------------------- local
class LocalExecutor(Executor):
    """``workers == 1``: in this process, one job after the other (progress inside a block is
    reported); more: a spawn process pool on this host."""

    name = "local"

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise HarnessError(f"--workers {workers}: expected a positive integer")
        self.workers = workers

    def describe(self) -> str:
        return f"local ({self.workers} process{'es' if self.workers > 1 else ''})"

    def run(self, fn, specs):
        if self.workers == 1:
            for i, spec in enumerate(specs):
                yield i, fn(spec)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        from harness.jobs import init_worker

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=init_worker,
                                 initargs=(os.getpid(),)) as pool:
            futs = {pool.submit(fn, {**spec, "threads": threads}): i for i, spec in enumerate(specs)}
            try:
                for fut in as_completed(futs):
                    try:
                        out = fut.result()
                    except BrokenProcessPool:
                        out = WorkerLost("a pool process died (killed, or out of memory)")
                    yield futs[fut], out
            except BaseException:
                stop_pool(pool, futs)
                raise


# ---------------------------------------------------------------------- ray
class RayExecutor(Executor):
    """One Ray task per job. ``address``: an existing cluster (``host:port``; ``$RAY_ADDRESS``),
    or None for a local one started by ``ray.init``. ``num_gpus`` is the GPU share of one job
    (0.25: four blocks fill one GPU); CPU jobs ask for ``num_cpus``."""

    name = "ray"
    distributed = True
    worker_sizes_blocks = True
    # Ray's own servers (GCS, raylet, object manager, workers: gRPC) listen on every interface,
    # whatever --node-ip-address says, and Ray runs whatever code reaches them (docs/scaling.md).
    EXPOSURE = ("a local Ray cluster listens on all network interfaces (its gRPC servers bind 0.0.0.0, even "
                "with --node-ip-address 127.0.0.1), and anyone who reaches its ports can run code as you; "
                "on a shared network firewall them (e.g. allow only 127.0.0.1 / the cluster's private subnet "
                "to Ray's ports), or run on a private network; see docs/scaling.md")

    def notes(self) -> list[str]:
        """What the user should know before this executor starts anything."""
        return [] if self.address else [self.EXPOSURE]

    def __init__(self, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0):
        self.address = address or os.environ.get(ENV_RAY) or None
        if not num_cpus > 0 or num_gpus < 0:
            raise HarnessError(f"--ray-cpus {num_cpus} / --ray-gpus {num_gpus}: expected cpus > 0 and gpus >= 0\n"
                               "  hint: e.g. --ray-gpus 0.25 lets four blocks share one GPU")
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self._started_here = False

    def describe(self) -> str:
        return f"ray ({self.address or 'local cluster'}; {self.num_cpus:g} CPU, {self.num_gpus:g} GPU per job)"

    def start(self) -> None:
        try:
            import ray
        except ImportError:
            raise HarnessError("--executor ray: Ray is not installed\n"
                               "  hint: pip install 'harness[cluster]' (or pip install ray)") from None
        if self.address and self.address != "auto":
            host, _, port = self.address.removeprefix("ray://").rpartition(":")
            try:
                socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
            except (OSError, ValueError) as exc:
                raise HarnessError(
                    f"--address {self.address}: no Ray cluster answers there ({getattr(exc, 'strerror', None) or exc})\n"
                    "  hint: start one (`ray start --head --port PORT`), fix the address, or leave --address out "
                    "for a local cluster"
                ) from None
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, log_to_driver=False, include_dashboard=False,
                     configure_logging=False, runtime_env={"env_vars": _env_for_workers()})
        except Exception as exc:  # noqa: BLE001  (ConnectionError, RuntimeError: name the address)
            raise HarnessError(
                f"--executor ray: cannot connect to the Ray cluster at {self.address or 'a new local cluster'} "
                f"({describe(exc)})\n"
                "  hint: check `ray status --address ADDRESS`; the driver and the cluster need the same Ray version"
            ) from None
        self._started_here = True
        self._check_fits(ray)

    def _check_fits(self, ray) -> None:
        """A job asking more than any node has would wait forever in Ray's queue: refuse now."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        cpus = max((r.get("CPU", 0.0) for r in nodes), default=0.0)
        gpus = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
        where = self.address or "the local cluster"
        if self.num_gpus > gpus:
            raise HarnessError(f"--ray-gpus {self.num_gpus:g}: no node of {where} has that many GPUs (most: {gpus:g})\n"
                               "  hint: lower --ray-gpus (0 trains on CPUs), or add GPU nodes to the cluster")
        if self.num_cpus > cpus:
            raise HarnessError(f"--ray-cpus {self.num_cpus:g}: no node of {where} has that many CPUs (most: {cpus:g})\n"
                               "  hint: lower --ray-cpus")

    def run(self, fn, specs):
        import ray
        from ray.exceptions import RayTaskError

        remote = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(fn)
        threads = max(1, int(self.num_cpus))
        share = self.num_gpus if 0 < self.num_gpus < 1 else None  # a block plans for its share of the GPU only
        refs = {remote.remote({**spec, "threads": threads, "gpu_share": share}): i for i, spec in enumerate(specs)}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                ref = ready[0]
                try:
                    out = ray.get(ref)
                except RayTaskError as exc:  # the job function itself raised: a bug, not a lost worker
                    raise exc.as_instanceof_cause() from None
                except Exception as exc:  # noqa: BLE001  (WorkerCrashedError, NodeDiedError, ...)
                    out = WorkerLost(describe(exc, 200))
                yield refs[ref], out
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=False)  # a KeyboardInterrupt in the task: it marks its runs KILLED
            raise

    def slots(self) -> int | None:
        """The jobs the cluster runs at once: its GPUs (or CPUs) over one job's ask."""
        try:
            import ray

            res = ray.cluster_resources()
        except Exception:  # noqa: BLE001  (not connected)
            return None
        if self.num_gpus > 0:
            return max(1, int(res.get("GPU", 0.0) / self.num_gpus))
        return max(1, int(res.get("CPU", 0.0) / self.num_cpus))

    def stop(self) -> None:
        if self._started_here:
            import ray

            with contextlib.suppress(Exception):
                ray.shutdown()
            self._started_here = False


# ---------------------------------------------------------------------- slurm
SLURM_KEYS = {"partition": str, "time": int, "gpus_per_task": int, "cpus_per_task": int, "mem_gb": float,
              "array_parallelism": int, "account": str, "qos": str, "constraint": str}


def slurm_settings(pyproject: Path | None = None, **given) -> dict:
    """``[tool.harness.slurm]`` of ./pyproject.toml, overridden by the options given (not None)."""
    out: dict = {}
    p = pyproject or Path.cwd() / "pyproject.toml"
    if p.is_file():
        try:
            import tomllib
        except ImportError:  # Python 3.10
            tomllib = None
        if tomllib is not None:
            try:
                table = tomllib.loads(p.read_text()).get("tool", {}).get("harness", {}).get("slurm", {})
            except (tomllib.TOMLDecodeError, OSError) as exc:
                raise HarnessError(f"{p}: cannot read [tool.harness.slurm]: {exc}\n  hint: fix the TOML") from None
            for k, v in table.items():
                k = k.replace("-", "_")
                if k not in SLURM_KEYS:
                    raise HarnessError(f"{p}: [tool.harness.slurm] has an unknown key {k!r}\n"
                                       f"  hint: known keys: {', '.join(sorted(SLURM_KEYS))}")
                try:
                    out[k] = SLURM_KEYS[k](v)
                except (TypeError, ValueError):
                    raise HarnessError(f"{p}: [tool.harness.slurm] {k} = {v!r}: expected "
                                       f"{SLURM_KEYS[k].__name__}") from None
    out.update({k: v for k, v in given.items() if v is not None})
    return out


class SlurmExecutor(Executor):
    """A submitit job array (``AutoExecutor``): one array task per job. ``cluster="local"`` runs
    the same job files as local subprocesses (submitit's LocalExecutor), for tests and for a
    machine without Slurm; otherwise ``sbatch`` must be on PATH."""

    name = "slurm"
    distributed = True
    worker_sizes_blocks = True

    def __init__(self, folder: Path, cluster: str | None = None, **settings):
        self.folder = Path(folder)
        self.cluster = cluster or os.environ.get("HARNESS_SLURM_CLUSTER") or None
        if self.cluster not in (None, "slurm", "local"):
            raise HarnessError(f"--slurm-cluster {self.cluster}: expected slurm or local")
        self.settings = settings
        self.tracker = None

    def track(self, tracker) -> None:
        """Record the arrays this driver submits with ``tracker`` (``record(ids)``, ``reap()``,
        ``close()``: :class:`harness.slurm_arrays.SlurmArrays`), so that a rerun after this
        driver died cancels their pending tasks. Real Slurm only: submitit's local executor
        has no queue to leave tasks in."""
        if self.cluster != "local":
            self.tracker = tracker

    def slots(self) -> int | None:
        return self.settings.get("array_parallelism") or None

    def housekeeping(self) -> list[str]:
        return self.tracker.reap() if self.tracker is not None else []

    def stop(self) -> None:
        if self.tracker is not None:
            with contextlib.suppress(Exception):  # rows left behind are reaped as a dead driver's
                self.tracker.close()

    def describe(self) -> str:
        where = "submitit local executor (no Slurm)" if self.cluster == "local" else "Slurm"
        return f"slurm ({where}; {', '.join(f'{k}={v}' for k, v in self.settings.items()) or 'defaults'})"

    def start(self) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise HarnessError("--executor slurm: submitit is not installed\n"
                               "  hint: pip install 'harness[cluster]' (or pip install submitit)") from None
        if self.cluster != "local" and shutil.which("sbatch") is None:
            raise HarnessError(
                "--executor slurm: `sbatch` is not on PATH: this machine cannot submit Slurm jobs\n"
                "  hint: run from a Slurm login node, or use --executor local / ray here"
            )

    def _executor(self):
        import submitit

        s = self.settings
        ex = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster="local" if self.cluster == "local" else "slurm")
        params: dict = {"timeout_min": int(s.get("time", 60)), "cpus_per_task": int(s.get("cpus_per_task", 1))}
        if s.get("gpus_per_task"):
            params["gpus_per_node"] = int(s["gpus_per_task"])
        if s.get("mem_gb"):
            params["mem_gb"] = s["mem_gb"]
        if self.cluster != "local":
            for k in ("partition", "account", "qos", "constraint"):
                if s.get(k):
                    params[f"slurm_{k}"] = s[k]
            if s.get("array_parallelism"):
                params["slurm_array_parallelism"] = int(s["array_parallelism"])
        ex.update_parameters(**params)
        return ex

    def run(self, fn, specs):
        ex = self._executor()
        threads = int(self.settings.get("cpus_per_task", 1))
        env = _env_for_workers()
        try:
            with _environ(env):  # submitit's local executor starts its workers with this environment
                jobs = ex.map_array(fn, [{**spec, "threads": threads} for spec in specs])
        except Exception as exc:  # noqa: BLE001  (sbatch refused: bad partition, account, time limit)
            msg = str(exc).strip().splitlines()
            raise HarnessError(
                f"--executor slurm: the job array was refused ({type(exc).__name__}: {' '.join(msg)[-600:]})\n"
                "  hint: check --slurm-partition / --slurm-time / [tool.harness.slurm] against `sinfo`; "
                "`harness run` again resumes"
            ) from None
        if self.tracker is not None:  # before anything can go wrong in the wait below
            self.tracker.record(sorted({str(j.job_id).split("_")[0] for j in jobs}))
        index = {id(j): i for i, j in enumerate(jobs)}
        pending = list(jobs)
        gone: dict[int, float] = {}  # job -> when Slurm stopped listing it without a result
        last_check = time.monotonic()
        try:
            while pending:
                done = [j for j in pending if j.done()]
                if not done and self.cluster != "local" and time.monotonic() - last_check > 5:
                    last_check = time.monotonic()
                    done = self._vanished(pending, gone)
                if not done:
                    time.sleep(0.5)
                    continue
                for j in done:
                    pending.remove(j)
                    if not j.paths.result_pickle.exists() and id(j) in gone:
                        out = WorkerLost(f"Slurm job {j.job_id} ended without a result (killed, or its node lost)")
                    else:
                        try:
                            out = j.result()
                        except Exception as exc:  # noqa: BLE001  (FailedJobError, UncompletedJobError: the task died)
                            out = WorkerLost(describe(exc, 200))
                    yield index[id(j)], out
        except BaseException:
            for j in pending:
                with contextlib.suppress(Exception):
                    j.cancel(check=False)
            raise


    @staticmethod
    def _vanished(pending: list, gone: dict) -> list:
        """Jobs Slurm no longer lists (``squeue``) and that left no result for 10 s. submitit
        learns a job's end from ``sacct``, which a cluster without accounting lacks: without
        this, a job killed there would be waited for forever."""
        import subprocess

        ids = ",".join(str(j.job_id) for j in pending)
        try:
            p = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ids], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return []
        if p.returncode != 0 and "Invalid job id" not in p.stderr:
            return []
        listed = set(p.stdout.split())
        now, out = time.monotonic(), []
        for j in pending:
            base = str(j.job_id).split("_")[0]
            if str(j.job_id) in listed or any(x.startswith(f"{base}_[") for x in listed):
                gone.pop(id(j), None)
            elif now - gone.setdefault(id(j), now) > 10:
                out.append(j)
        return out


@contextlib.contextmanager
def _environ(env: dict[str, str]):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make(name: str, *, workers: int = 1, address: str | None = None, ray_cpus: float = 1.0, ray_gpus: float = 0.0,
         slurm_folder: Path | None = None, slurm_cluster: str | None = None, **slurm) -> Executor:
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, ray_cpus, ray_gpus)
    if name == "slurm":
        return SlurmExecutor(slurm_folder or Path.cwd() / "runs" / "slurm", slurm_cluster, **slurm_settings(**slurm))
    raise HarnessError(f"--executor {name}: expected one of {', '.join(EXECUTORS)}")


def stop_pool(pool, futs) -> None:
    """On an error or a signal: cancel queued jobs, SIGTERM the running ones (each marks its
    runs KILLED) and wait for them, so no worker outlives the study."""
    from concurrent.futures import wait

    for f in futs:
        f.cancel()
    for proc in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(OSError, ValueError):
            proc.terminate()
    wait(list(futs), timeout=60)
    pool.shutdown(wait=True, cancel_futures=True)
