"""The tracking store: the only module that imports mlflow.

Layout in MLflow: one experiment per hypothesis ID; one parent run per registered version
(the pre-registration record: content hash, time, the declaration, the file, versions); one
child run per (variant, stratum, seed) nested under it, with every config value as params,
final metrics, metric histories (logged in batches), a sample grid and provenance tags.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import StoreError

ENV_STORE = "HARNESS_STORE"
DEFAULT_DB = Path("runs") / "mlflow.db"
T = "harness."  # tag prefix

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# mlflow is imported inside Store (2-3 s): `harness check` and `harness new` never pay for it.


def resolve_uri(store: str | None = None) -> str:
    """``--store`` > ``$HARNESS_STORE`` > ``sqlite:///<cwd>/runs/mlflow.db`` (absolute)."""
    uri = store or os.environ.get(ENV_STORE)
    if not uri:
        return f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve()}"
    if "://" not in uri:
        p = Path(uri)
        if p.suffix == ".db" or not p.exists() or p.is_file():
            p = p if p.suffix == ".db" else p / "mlflow.db"
        else:
            p = p / "mlflow.db"
        return f"sqlite:///{p.resolve()}"
    return uri


def local_root(uri: str) -> Path:
    """The directory beside a sqlite store (artifacts, claims, reports); ./runs otherwise."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    return Path.cwd() / "runs"


@dataclass
class Registration:
    run_id: str
    version: str
    number: int
    registered_at: str
    declaration: dict
    tags: dict


class Store:
    """A tracking store at ``uri`` (see :func:`resolve_uri`)."""

    def __init__(self, store: str | None = None, *, create: bool = True):
        self.uri = resolve_uri(store)
        self.root = local_root(self.uri)
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///") :])
            if not create and not db.exists():
                raise StoreError(
                    f"--store {store or self.uri}: no tracking store at {db}\n"
                    "  hint: run a study first (`harness run ID`), or point --store at an existing store"
                )
            # Create the database once, here, before any worker opens it: concurrent
            # first-time schema migrations on one sqlite file race.
            db.parent.mkdir(parents=True, exist_ok=True)
        from mlflow.tracking import MlflowClient

        # mlflow configures its own loggers on import; its INFO lines (schema creation, ...)
        # are noise in a CLI.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.client.search_experiments(max_results=1)

    @property
    def artifact_root(self) -> str:
        return (self.root / "artifacts").resolve().as_uri()

    # ------------------------------------------------------------------ experiments
    def experiment_id(self, hyp_id: str, *, create: bool = True) -> str | None:
        exp = self.client.get_experiment_by_name(hyp_id)
        if exp is not None:
            return exp.experiment_id
        if not create:
            return None
        try:
            return self.client.create_experiment(hyp_id, artifact_location=f"{self.artifact_root}/{hyp_id}")
        except Exception:  # noqa: BLE001  (MlflowException: created concurrently)
            return self.client.get_experiment_by_name(hyp_id).experiment_id

    def experiments(self) -> list[str]:
        return [e.name for e in self.client.search_experiments() if e.name != "Default"]

    # ------------------------------------------------------------------ registration
    def registrations(self, hyp_id: str) -> list[Registration]:
        """Every registered version of ``hyp_id``, oldest first."""
        exp = self.experiment_id(hyp_id, create=False)
        if exp is None:
            return []
        runs = self._search(exp, f"tags.`{T}kind` = 'registration'")
        regs = [
            Registration(
                r.info.run_id,
                r.data.tags[f"{T}version"],
                int(r.data.tags[f"{T}version_number"]),
                r.data.tags[f"{T}registered_at"],
                json.loads(r.data.tags[f"{T}declaration"]),
                dict(r.data.tags),
            )
            for r in runs
        ]
        return sorted(regs, key=lambda g: g.number)

    def register(self, hyp_id: str, declaration: dict, version: str, source: str, provenance: dict) -> Registration:
        """Write the pre-registration record of a new version (the caller checked it is new)."""
        exp = self.experiment_id(hyp_id)
        number = len(self.registrations(hyp_id)) + 1
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        tags = {
            f"{T}kind": "registration",
            f"{T}hypothesis": hyp_id,
            f"{T}version": version,
            f"{T}version_number": str(number),
            f"{T}registered_at": now,
            f"{T}declaration": json.dumps(declaration, sort_keys=True),
            "mlflow.note.content": declaration["claim"],
            **{f"{T}{k}": str(v) for k, v in provenance.items()},
        }
        run = self.client.create_run(exp, run_name=f"{hyp_id} v{number} ({version})", tags=tags)
        rid = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / f"{hyp_id}.py").write_text(source)
            (Path(tmp) / "declaration.json").write_text(json.dumps(declaration, indent=2, sort_keys=True))
            self.client.log_artifacts(rid, tmp, "registration")
        self.client.set_terminated(rid, "FINISHED")
        return Registration(rid, version, number, now, declaration, tags)

    # ------------------------------------------------------------------ runs
    def cell_runs(self, hyp_id: str, version: str) -> list:
        """Every child run of one version (any status)."""
        exp = self.experiment_id(hyp_id, create=False)
        if exp is None:
            return []
        return self._search(exp, f"tags.`{T}kind` = 'run' and tags.`{T}version` = '{version}'")

    def start_cell(self, reg: Registration, hyp_id: str, variant, seed: int, params: dict, tags: dict) -> str:
        exp = self.experiment_id(hyp_id)
        all_tags = {
            "mlflow.parentRunId": reg.run_id,
            f"{T}kind": "run",
            f"{T}hypothesis": hyp_id,
            f"{T}version": reg.version,
            f"{T}variant": variant.level,
            f"{T}stratum": variant.stratum,
            f"{T}seed": str(seed),
            f"{T}key": cell_key(reg.version, variant.level, variant.stratum, seed),
            **{f"{T}{k}": str(v) for k, v in tags.items()},
        }
        name = f"{variant.id} seed={seed}"
        run = self.client.create_run(exp, run_name=name, tags=all_tags)
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def _log_params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param

        p = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(p), 100):
            self.client.log_batch(run_id, params=p[i : i + 100])

    def trial_runs(self, hyp_id: str, version: str) -> list:
        """Every tuning-trial run of one version (any status)."""
        exp = self.experiment_id(hyp_id, create=False)
        if exp is None:
            return []
        return self._search(exp, f"tags.`{T}kind` = 'trial' and tags.`{T}version` = '{version}'")

    def start_trial(self, reg: Registration, hyp_id: str, variant, trial: int, seed: int, params: dict, tags: dict) -> str:
        """A tuning trial's run for one seed (kind ``trial``: never read as a confirmatory result)."""
        exp = self.experiment_id(hyp_id)
        all_tags = {
            "mlflow.parentRunId": reg.run_id,
            f"{T}kind": "trial",
            f"{T}hypothesis": hyp_id,
            f"{T}version": reg.version,
            f"{T}variant": variant.level,
            f"{T}stratum": variant.stratum,
            f"{T}seed": str(seed),
            f"{T}key": f"{reg.version}/tune/{variant.level}/{variant.stratum}/{trial}/{seed}",
            **{f"{T}{k}": str(v) for k, v in tags.items()},
        }
        run = self.client.create_run(exp, run_name=f"{variant.id} trial={trial} seed={seed}", tags=all_tags)
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def finish_cell(self, run_id: str, result, png: bytes | None) -> None:
        """Log a SeedResult in batches, then mark the run terminal (last, so a kill before
        this point leaves a RUNNING run that resume does not count)."""
        from mlflow.entities import Metric, RunTag

        ts = int(time.time() * 1000)
        metrics = [Metric(k, float(v), ts, 0) for k, v in result.metrics.items()]
        for k, points in result.history.items():
            metrics += [Metric(f"train/{k}", float(v), ts, int(s)) for s, v in points]
        metrics.append(Metric("seconds", float(result.seconds), ts, 0))
        for i in range(0, len(metrics), 900):
            self.client.log_batch(run_id, metrics=metrics[i : i + 900])
        tags = [RunTag(f"{T}outcome", "finished" if result.status == "FINISHED" else "diverged")]
        if result.error:
            tags.append(RunTag(f"{T}error", result.error))
        self.client.log_batch(run_id, tags=tags)
        if png is not None:
            with tempfile.TemporaryDirectory() as tmp:
                f = Path(tmp) / "samples.png"
                f.write_bytes(png)
                self.client.log_artifact(run_id, str(f), "samples")
        self.client.set_terminated(run_id, result.status)

    def kill(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "KILLED")

    def log_artifacts(self, run_id: str, directory: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(directory), artifact_path)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, f"{T}{key}", value)

    def download(self, run_id: str, path: str, dst: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(dst)))

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def _search(self, exp: str, filt: str) -> list:
        out, token = [], None
        while True:
            page = self.client.search_runs([exp], filt, max_results=1000, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out


def cell_key(version: str, level: str, stratum: str, seed: int) -> str:
    """The content key of one run: (version hash, variant, stratum, seed)."""
    return f"{version}/{level}/{stratum}/{seed}"
