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
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness import failpoints
from harness.errors import StoreError, translate
from harness.store_location import (  # noqa: F401  (resolve_uri, local_root: imported from here too)
    ENV_STORE,
    flock,
    local_root,
    probe_server,
    refuse_if_lost,
    resolve_uri,
)

T = "harness."  # tag prefix

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# MLflow's HTTP defaults (7 retries, exponential backoff, 120 s timeout) would make an
# unreachable tracking server take minutes to fail; a user who wants them sets the variables.
# A TCP probe (store_location.PROBE_SECONDS) answers "is it there at all" before anything else; after that, a
# server restarting mid-study is retried with backoff (2, 4, 8, 16, 32 s: about a minute).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
SQLITE_MAGIC = b"SQLite format 3\x00"
# mlflow is imported inside Store (2-3 s): `harness check` and `harness new` never pay for it.


@dataclass
class Registration:
    run_id: str
    version: str
    number: int
    registered_at: str
    declaration: dict
    tags: dict


@dataclass(frozen=True)
class CellRun:
    """One child run, as planning needs it (:meth:`Store.cell_index`)."""

    run_id: str
    status: str
    variant: str
    stratum: str
    seed: int


class Store:
    """A tracking store at ``uri`` (see :func:`resolve_uri`)."""

    def __init__(self, store: str | None = None, *, create: bool = True, root: Path | None = None):
        self.uri = resolve_uri(store)
        # ``root``: where a worker started elsewhere (a Ray task's own cwd) keeps the caches of
        # the driver's store; it never changes what is read or written in the store itself.
        self.root = Path(root) if root is not None else local_root(self.uri)
        # How the user named the store, for messages.
        from harness.redact import redact

        given = (f"--store {redact(store)}" if store else f"${ENV_STORE}={redact(os.environ[ENV_STORE])}" if os.environ.get(ENV_STORE)
                 else "the default store runs/")
        # mlflow configures its own loggers on import; its INFO lines (schema creation, ...)
        # are noise in a CLI.
        import mlflow  # noqa: F401  (first, so the levels below are not reset by its import)

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # It logs each sqlite error with a traceback before raising it; the harness turns the
        # exception itself into a located message (errors.translate).
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        if self.uri.startswith("sqlite:///"):
            self._prepare_sqlite(Path(self.uri[len("sqlite:///") :]), given, create)
        elif self.uri.startswith(("http://", "https://")):
            probe_server(self.uri)
        from mlflow.tracking import MlflowClient

        try:
            if self.uri.startswith(("postgresql", "postgres://")):
                from harness.claims import pg_schema_lock

                with pg_schema_lock(self.uri):  # MLflow creates its schema on first use
                    self.client = MlflowClient(tracking_uri=self.uri)
                    self.client.search_experiments(max_results=1)
            else:
                self.client = MlflowClient(tracking_uri=self.uri)
                self.client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001  (mlflow raises many kinds; name the store)
            from harness.redact import redact_text

            known = translate(exc, given)
            if known is not None:
                raise known from None
            raise StoreError(
                f"{given}: the tracking store could not be opened: "
                f"{redact_text(str(exc).strip().splitlines()[0][:400])}\n"
                "  hint: point --store at a harness store directory, its mlflow.db, or a running MLflow server"
            ) from None

    # ------------------------------------------------------------------ the sqlite file
    def _prepare_sqlite(self, db: Path, given: str, create: bool) -> None:
        """Make ``db`` a complete MLflow schema, or refuse naming why.

        The schema is created once, under a flock beside the file, into a temporary file that is
        renamed into place when complete: a kill, a full disk or a concurrent first use can
        never leave a half-created ``mlflow.db`` (MLflow's in-place migrations leave
        ``_alembic_tmp_*`` tables that break every later command). A half-created file from
        elsewhere is moved aside and recreated when it holds no runs, refused when it does.
        """
        state = _inspect_sqlite(db, given)
        if state == "ok":
            if create and not os.access(db.parent, os.W_OK):
                raise StoreError(f"{given}: the store directory {db.parent} is read-only\n"
                                 "  hint: make it writable, or point --store at a writable directory")
            return
        refuse_if_lost(db, given, state)
        if not create and state == "absent":
            raise StoreError(
                f"{given}: no tracking store at {db}\n"
                "  hint: run a study first (`harness run ID`), or point --store at an existing store"
            )
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            with flock(db.with_name(db.name + ".lock")):
                state = _inspect_sqlite(db, given)  # another process may have created it meanwhile
                if state == "ok":
                    return
                refuse_if_lost(db, given, state)
                if state.startswith("half"):
                    aside = db.with_name(f"{db.name}.half-created-{int(time.time())}")
                    os.replace(db, aside)
                    logging.getLogger("harness").warning("moved a half-created %s aside to %s", db, aside)
                self._create_schema(db)
        except OSError as exc:
            raise (translate(exc, str(db.parent)) or exc) from None

    def _create_schema(self, db: Path) -> None:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        for stale in db.parent.glob(f".{db.name}.creating-*"):  # from a killed creator (we hold the lock)
            stale.unlink(missing_ok=True)
        tmp = db.with_name(f".{db.name}.creating-{os.getpid()}")
        uri = f"sqlite:///{tmp}"
        try:
            store = SqlAlchemyStore(uri, self.artifact_root)
            store.engine.dispose()
            failpoints.hit("schema.create")
            os.replace(tmp, db)
        except BaseException as exc:
            for p in (tmp, tmp.with_name(tmp.name + "-journal")):
                p.unlink(missing_ok=True)
            known = translate(exc, str(db.parent)) if isinstance(exc, Exception) else None
            if known is not None:
                raise known from None
            raise
        finally:
            SqlAlchemyStore._engine_map.pop(uri, None)

    @property
    def is_server(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    @property
    def shared(self) -> bool:
        """A store several hosts may write (a server or a database server), unlike a sqlite file."""
        return not self.uri.startswith("sqlite:")

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
        # A tracking server keeps the artifacts (its --artifacts-destination, served to every
        # host); a database store puts them under the store root, which hosts must share.
        where = None if self.is_server else f"{self.artifact_root}/{hyp_id}"
        try:
            return self.client.create_experiment(hyp_id, artifact_location=where)
        except Exception:  # noqa: BLE001  (MlflowException: created concurrently)
            return self.client.get_experiment_by_name(hyp_id).experiment_id

    def experiments(self) -> list[str]:
        return [e.name for e in self.client.search_experiments() if e.name != "Default"]

    # ------------------------------------------------------------------ registration
    def registrations(self, hyp_id: str) -> list[Registration]:
        """Every registered version of ``hyp_id``, oldest first.

        Only complete records count: a registration is marked FINISHED after everything it
        holds is written, so one cut short (RUNNING) is treated as absent and redone.
        """
        runs = [r for r in self._registration_runs(hyp_id) if r.info.status == "FINISHED"]
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

    def _registration_runs(self, hyp_id: str) -> list:
        exp = self.experiment_id(hyp_id, create=False)
        return [] if exp is None else self._search(exp, f"tags.`{T}kind` = 'registration'")

    def discard_incomplete_registrations(self, hyp_id: str) -> int:
        """Delete registration records cut short (the caller holds the registration lock, so
        no live process is writing them). Returns how many."""
        n = 0
        for r in self._registration_runs(hyp_id):
            if r.info.status != "FINISHED":
                self.client.set_terminated(r.info.run_id, "KILLED")
                self.client.delete_run(r.info.run_id)
                n += 1
        return n

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
        failpoints.hit("register.after_create")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / f"{hyp_id}.py").write_text(source)
            (Path(tmp) / "declaration.json").write_text(json.dumps(declaration, indent=2, sort_keys=True))
            self.client.log_artifacts(rid, tmp, "registration")
        failpoints.hit("register.before_terminate")
        # Last: FINISHED is the mark of a complete record (see registrations()).
        self.client.set_terminated(rid, "FINISHED")
        return Registration(rid, version, number, now, declaration, tags)

    # ------------------------------------------------------------------ runs
    def cell_runs(self, hyp_id: str, version: str) -> list:
        """Every child run of one version (any status)."""
        exp = self.experiment_id(hyp_id, create=False)
        if exp is None:
            return []
        return self._search(exp, f"tags.`{T}kind` = 'run' and tags.`{T}version` = '{version}'")

    def cell_index(self, hyp_id: str, version: str, variant=None, seeds=None) -> list[CellRun]:
        """Every child run of one version as (run_id, status, variant, stratum, seed): the tags that
        identify a cell and nothing else (only ``variant``'s, a Variant, when given). On a database store one SQL query over ``runs`` and
        ``tags`` (the tags' primary key (key, run_uuid) serves each join); a tracking server
        offers no such projection, so there it is a paginated ``search_runs`` (with ``variant``
        and ``seeds``, a worker's re-read of its block: one search per seed, an integer and so
        safe in a filter, where a level may hold any character; planning on a server store with
        ``--db`` reads :mod:`harness.cellindex` instead)."""
        exp = self.experiment_id(hyp_id, create=False)
        if exp is None:
            return []
        engine = getattr(getattr(getattr(self.client, "_tracking_client", None), "store", None), "engine", None)
        if engine is None:
            runs = self.cell_runs(hyp_id, version) if variant is None or seeds is None else [
                r for s in dict.fromkeys(int(s) for s in seeds)
                for r in self._search(exp, f"tags.`{T}kind` = 'run' and tags.`{T}version` = '{version}' and tags.`{T}seed` = '{s}'")]
            rows = [CellRun(r.info.run_id, r.info.status, r.data.tags[f"{T}variant"], r.data.tags[f"{T}stratum"],
                            int(r.data.tags[f"{T}seed"])) for r in runs]
            return [r for r in rows if variant is None or (r.variant, r.stratum) == (variant.level, variant.stratum)]
        import sqlalchemy as sa

        def tag(alias: str, key: str) -> str:
            return f"JOIN tags {alias} ON {alias}.run_uuid = r.run_uuid AND {alias}.key = '{T}{key}'"

        sql = sa.text(
            "SELECT r.run_uuid, r.status, v.value, st.value, sd.value FROM runs r "
            f"{tag('k', 'kind')} {tag('ver', 'version')} {tag('v', 'variant')} {tag('st', 'stratum')} {tag('sd', 'seed')} "
            "WHERE r.experiment_id = :exp AND r.lifecycle_stage = 'active' AND k.value = 'run' AND ver.value = :ver"
            + (" AND v.value = :level AND st.value = :stratum" if variant is not None else "")
        )
        args = {"exp": int(exp), "ver": version}
        if variant is not None:
            args.update(level=variant.level, stratum=variant.stratum)
        with engine.connect() as con:
            rows = con.execute(sql, args).fetchall()
        return [CellRun(rid, status, level, stratum, int(seed)) for rid, status, level, stratum, seed in rows]

    def run_statuses(self, hyp_id: str, run_ids) -> dict[str, str]:
        """{run id: status} of those of ``run_ids`` that ``hyp_id``'s experiment holds (active):
        one ``search_runs`` by run id per 100 (how :mod:`harness.cellindex` re-verifies rows)."""
        exp = self.experiment_id(hyp_id, create=False)
        ids = [r for r in dict.fromkeys(run_ids) if r.replace("-", "").isalnum()]  # MLflow's ids: hex
        out: dict[str, str] = {}
        for i in range(0, len(ids) if exp is not None else 0, 100):
            quoted = ", ".join(f"'{r}'" for r in ids[i : i + 100])
            out.update((r.info.run_id, r.info.status) for r in self._search(exp, f"attributes.run_id IN ({quoted})"))
        return out

    def start_cell(self, reg: Registration, hyp_id: str, variant, seed: int, params: dict, tags: dict) -> str:
        key = cell_key(reg.version, variant.level, variant.stratum, seed)
        return self._start_run("run", reg, hyp_id, variant, seed, key, f"{variant.id} seed={seed}", params, tags)

    def _start_run(self, kind: str, reg: Registration, hyp_id: str, variant, seed: int, key: str, name: str,
                   params: dict, tags: dict) -> str:
        exp = self.experiment_id(hyp_id)
        all_tags = {
            "mlflow.parentRunId": reg.run_id,
            f"{T}kind": kind,
            f"{T}hypothesis": hyp_id,
            f"{T}version": reg.version,
            f"{T}variant": variant.level,
            f"{T}stratum": variant.stratum,
            f"{T}seed": str(seed),
            f"{T}key": key,
            **{f"{T}{k}": str(v) for k, v in tags.items()},
        }
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
        key = f"{reg.version}/tune/{variant.level}/{variant.stratum}/{trial}/{seed}"
        return self._start_run("trial", reg, hyp_id, variant, seed, key, f"{variant.id} trial={trial} seed={seed}",
                               params, tags)

    def finish_cell(self, run_id: str, result, png: bytes | None, still_ours=None, *, steps: int = 0,
                    declared_budgets: list[int] | None = None, flops_per_step: int | None = None) -> bool:
        """Log a SeedResult in batches, then mark the run terminal (last, so a kill before
        this point leaves a RUNNING run that resume does not count).

        Budgets (``steps`` given: the run's own final step). Every metric is logged as a history
        over the run's evaluated steps: ``result.budgets[k]`` at ``step=k`` for each earlier
        budget, the final ``result.metrics`` at ``step=steps`` (the largest step, so MLflow's
        latest value, which ``search_runs`` returns, is the final budget's). The tag
        ``harness.budgets`` is the JSON list of those steps, ascending and ending with ``steps``;
        ``harness.declared_budgets`` the declared budgets position for position (they differ
        only under ``match="flops"``). ``train_flops`` (``flops_per_step`` x k, at each step k),
        ``params`` and ``wall_seconds`` (the block's) are logged at ``step=steps``, ``train_flops``
        at every budget. Without ``steps`` (tuning trials) the final metrics go to step 0.

        ``still_ours()`` (claims with leases) is asked right before the terminal status: when
        the claim was lost meanwhile, or another claimant already marked the run KILLED, the run
        is marked KILLED and False returned (another worker trains the cell)."""
        from mlflow.entities import Metric, RunTag

        ts = int(time.time() * 1000)
        final = int(steps)
        budgets = sorted(int(k) for k in getattr(result, "budgets", {}) if k < final) if final else []
        metrics = [Metric(k, float(v), ts, final) for k, v in result.metrics.items()]
        for k in budgets:
            metrics += [Metric(name, float(v), ts, k) for name, v in result.budgets[k].items()]
        for k, points in result.history.items():
            metrics += [Metric(f"train/{k}", float(v), ts, int(s)) for s, v in points]
        metrics.append(Metric("seconds", float(result.seconds), ts, final))
        if final:
            metrics.append(Metric("wall_seconds", float(result.wall_seconds), ts, final))
            metrics.append(Metric("params", float(result.params), ts, final))
            if flops_per_step:
                metrics += [Metric("train_flops", float(flops_per_step) * k, ts, k) for k in (*budgets, final)]
        for i in range(0, len(metrics), 900):
            self.client.log_batch(run_id, metrics=metrics[i : i + 900])
        failpoints.hit("cell.logging")
        tags = [RunTag(f"{T}outcome", "finished" if result.status == "FINISHED" else "diverged")]
        if final:
            tags.append(RunTag(f"{T}budgets", json.dumps([*budgets, final])))
            tags.append(RunTag(f"{T}declared_budgets", json.dumps(list(declared_budgets or [*budgets, final]))))
        if result.error:
            tags.append(RunTag(f"{T}error", result.error))
        self.client.log_batch(run_id, tags=tags)
        if png is not None:
            with tempfile.TemporaryDirectory() as tmp:
                f = Path(tmp) / "samples.png"
                f.write_bytes(png)
                self.client.log_artifact(run_id, str(f), "samples")
        if still_ours is not None and (not still_ours() or self.client.get_run(run_id).info.status != "RUNNING"):
            self.client.set_tag(run_id, f"{T}error", "claim lost before the run was marked finished; trained elsewhere")
            self.client.set_terminated(run_id, "KILLED")
            return False
        self.client.set_terminated(run_id, result.status)
        return True

    def kill(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "KILLED")

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Final (step 0) metrics on any run, e.g. a verdict's numbers on the parent run."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()])

    def log_artifacts(self, run_id: str, directory: Path, artifact_path: str) -> None:
        failpoints.hit("report.log")
        self.client.log_artifacts(run_id, str(directory), artifact_path)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, f"{T}{key}", value)

    def download(self, run_id: str, path: str, dst: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(dst)))

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def metric_histories(self, run_ids: list[str], keys: list[str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """{run_id: {metric: [(step, value), ...]}} of ``keys`` for ``run_ids``, steps ascending
        (a run's budgets: see :meth:`finish_cell`). On a database store one SQL query over
        MLflow's ``metrics`` table per 500 runs (its primary key starts (key, timestamp, step,
        run_uuid); MLflow stores NaN as value 0 with ``is_nan``); on a tracking server one
        ``get_metric_history`` per run and key. A metric a run never logged is absent."""
        out: dict[str, dict[str, list[tuple[int, float]]]] = {r: {} for r in run_ids}
        if not run_ids or not keys:
            return out
        engine = getattr(getattr(getattr(self.client, "_tracking_client", None), "store", None), "engine", None)
        if engine is None:
            for rid in run_ids:
                for key in keys:
                    if pts := self.metric_history(rid, key):
                        out[rid][key] = sorted(pts)
            return out
        import sqlalchemy as sa

        sql = sa.text(
            "SELECT run_uuid, key, step, value, is_nan FROM metrics "
            "WHERE run_uuid IN :runs AND key IN :keys ORDER BY run_uuid, key, step, timestamp"
        ).bindparams(sa.bindparam("runs", expanding=True), sa.bindparam("keys", expanding=True))
        with engine.connect() as con:
            for i in range(0, len(run_ids), 500):
                for rid, key, step, value, is_nan in con.execute(sql, {"runs": list(run_ids[i : i + 500]),
                                                                       "keys": list(keys)}):
                    out[rid].setdefault(key, []).append((int(step), float("nan") if is_nan else float(value)))
        return out

    def _search(self, exp: str, filt: str) -> list:
        out, token = [], None
        while True:
            page = self.client.search_runs([exp], filt, max_results=1000, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out


def _inspect_sqlite(db: Path, given: str) -> str:
    """'absent', 'empty' (0 bytes), 'ok', or 'half: why' (schema not complete). A file that is
    not an sqlite database, or is malformed, is refused here, before MLflow retries on it."""
    if not db.exists():
        return "absent"
    if not db.is_file():
        raise StoreError(f"{given}: {db} is not a file\n  hint: point --store at the store directory")
    try:
        with open(db, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"{given}: cannot read {db}: {exc.strerror}\n  hint: check its permissions") from None
    if not head:
        return "empty"
    if head != SQLITE_MAGIC:
        raise StoreError(
            f"{given}: {db} is not an SQLite database (it begins with {head[:8]!r})\n"
            "  hint: --store takes a store directory (holding mlflow.db), a .db file, or a server URI; "
            "restore the file from a backup if it was the store"
        )
    from mlflow.store.db.utils import _get_latest_schema_revision

    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
            revs = [r[0] for r in con.execute("select version_num from alembic_version")] if "alembic_version" in tables else []
            runs = con.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else 0
            exps = con.execute("select count(*) from experiments").fetchone()[0] if "experiments" in tables else 0
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{given}: {db} is a malformed SQLite database ({exc})\n"
            "  hint: restore it from a backup, or point --store at another directory to start a new store"
        ) from None
    head_rev = _get_latest_schema_revision()
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    missing = sorted({"experiments", "runs", "tags", "params", "metrics"} - tables)
    if not leftovers and not missing and revs == [head_rev]:
        return "ok"
    why = (f"leftover migration tables {leftovers}" if leftovers else f"missing tables {missing}" if missing
           else f"schema version {revs or 'none'}, this MLflow expects {head_rev}")
    if runs or exps > 1:
        hint = ("back it up, then `mlflow db upgrade sqlite:///" + str(db) + "`" if not leftovers and not missing
                else "restore it from a backup; it holds runs, so the harness will not recreate it")
        raise StoreError(f"{given}: {db} holds {runs} runs but its schema is incomplete ({why})\n  hint: {hint}")
    return f"half: {why}"


def cell_key(version: str, level: str, stratum: str, seed: int) -> str:
    """The content key of one run: (version hash, variant, stratum, seed)."""
    return f"{version}/{level}/{stratum}/{seed}"
