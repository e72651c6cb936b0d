"""The harness's own overheads, each printed as a ratio.

1. MLflow logging per run: what ``harness.study.execute`` does for one cell (``start_cell``
   with params and provenance tags, the sample-grid PNG, ``finish_cell`` with final metrics and
   batched histories), against that run's training time (its share of a block of S seeds
   trained by the engine at the hypothesis's own settings). Target: < 5 %.
2. Start-up of ``harness run`` until the first training step, in a fresh subprocess (the
   interpreter, imports, store, registration, planning, claims, child runs, data, model build).
3. Resume: ``harness.study.plan`` over a store holding 100 and 1,000 finished runs of one
   version; the ratio of the two should be about 10 (one paginated pass, no per-cell queries).
   The per-block re-read that ``execute`` does after claiming is timed too.
4. Planning at 1,000 and 10,000 finished runs: the tag-only SQL query against whole run objects.
5. Claims: a PostgreSQL lease per cell against a flock file per cell (``--pg``).
6. Planning at 10,000 finished runs on every store kind (``--pg-server``): sqlite, postgresql,
   and an http:// MLflow server on that PostgreSQL read whole (no ``--db``) and through the
   finished-cell index (``--db``, :mod:`harness.cellindex`), with its first fill. Runs are
   copied row for row in MLflow's tables from one real run (``clone_runs``): seconds, not an hour.

Usage::

    python benchmarks/overheads.py                    # all three, about 5 minutes on 2 cores
    python benchmarks/overheads.py --only logging --steps 1500
    python benchmarks/overheads.py --only planning --sizes 1000,10000
    python benchmarks/overheads.py --only leases --pg postgresql://postgres@127.0.0.1:PORT/DB
    python benchmarks/overheads.py --only stores --runs 10000 --pg-server postgresql://postgres@127.0.0.1:PORT

Needs mlflow (this is the one benchmark that does).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_HYPOTHESIS = ROOT / "hypotheses" / "iaf_tightens_bound.py"


# ----------------------------------------------------------------------------- 1. logging
def logging_overhead(hyp_path: str, seeds: int, steps: int | None) -> None:
    import torch

    from harness import data, engine
    from harness.collect import collect
    from harness.images import sample_grid_png
    from harness.registration import provenance, register
    from harness.registry import MODELS
    from harness.tracking import Store

    col = collect(hyp_path)
    hyp = col.hypothesis
    v = hyp.variants[-1]
    tr = v.training if steps is None else dataclasses.replace(v.training, steps=steps)
    ds = data.load(hyp.dataset)
    model_cls = MODELS[v.model or hyp.model]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store = Store(str(Path(tmp) / "mlflow.db"))
        reg, _ = register(col, store)
        t_create = time.perf_counter() - t

        t = time.perf_counter()
        results = engine.train_block(model_cls, v.model_config, tr, ds, list(range(seeds)), "cpu")
        t_train = time.perf_counter() - t
        per_run_train = t_train / seeds

        params = {
            "model": v.model or hyp.model,
            "dataset": hyp.dataset,
            **dataclasses.asdict(v.model_config),
            **{f"training.{k}": x for k, x in dataclasses.asdict(tr).items()},
        }
        t = time.perf_counter()
        tags = {**provenance("cpu"), "block_size": seeds}
        t_prov = time.perf_counter() - t
        start, png_t, finish = [], [], []
        for r in results:
            t = time.perf_counter()
            rid = store.start_cell(reg, col.id, v, r.seed, params, tags)
            start.append(time.perf_counter() - t)
            t = time.perf_counter()
            png = sample_grid_png(r.samples[:64], ds.shape) if r.samples is not None else None
            png_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            store.finish_cell(rid, r, png)
            finish.append(time.perf_counter() - t)
    n_points = sum(len(p) for p in results[0].history.values())
    per_run_log = statistics.median(start) + statistics.median(png_t) + statistics.median(finish) + t_prov / seeds
    print(f"[logging] {col.id} variant {v.id}: {tr.steps} steps, {seeds} seeds per block, torch threads "
          f"{torch.get_num_threads()}")
    print(f"  training: {t_train:.1f} s per block = {per_run_train:.2f} s per run")
    print(f"  logging per run (medians): start_cell {statistics.median(start) * 1e3:.0f} ms, sample grid PNG "
          f"{statistics.median(png_t) * 1e3:.0f} ms, finish_cell ({len(results[0].metrics)} metrics + "
          f"{n_points} history points + PNG) {statistics.median(finish) * 1e3:.0f} ms, provenance "
          f"{t_prov * 1e3 / seeds:.0f} ms")
    print(f"  store creation + registration (once per study): {t_create:.2f} s")
    print(f"logging ratio {per_run_log / per_run_train:.3f} (logging / training time per run; target < 0.05)")


# ----------------------------------------------------------------------------- 2. start-up
CHILD = r"""
import sys, time, json
t_imports = time.time()
import harness.engine as E
from harness.cli import app
marks = {"imports_done": time.time()}
orig_init, orig_step = E._Block.__init__, E._Block.step
def init(self, *a, **k):
    marks.setdefault("block_setup", time.time())
    orig_init(self, *a, **k)
def step(self, *a, **k):
    if "first_step" not in marks:
        marks["first_step"] = time.time()
        print("MARKS " + json.dumps({**marks, "python_started": t_imports}), flush=True)
        raise SystemExit(0)
    return orig_step(self, *a, **k)
E._Block.__init__, E._Block.step = init, step
# Where the time before the first step goes: wrap the phases of `harness run`.
import functools, harness.registration as rg, harness.jobs as jb, harness.study as st, harness.tracking as tr, harness.data as hd
def timed(owner, name, label):
    fn = getattr(owner, name)
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t = time.time()
        try:
            return fn(*a, **k)
        finally:
            marks[label] = marks.get(label, 0.0) + time.time() - t
    setattr(owner, name, wrapper)
timed(tr.Store, "__init__", "t_store_open")
timed(rg, "register", "t_register")
timed(st, "plan", "t_plan")
timed(jb, "cell_status", "t_store_reads")
timed(tr.Store, "start_cell", "t_start_cells")
timed(hd, "load", "t_data_load")
app(sys.argv[1:])
"""


def startup(hyp_path: str, reps: int) -> None:
    import json

    rows = []
    for i in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            # A fresh store for the first repeat (schema creation included), a created one after.
            store = Path(tempfile.gettempdir()) / "harness-overheads-startup" / "mlflow.db"
            if i == 0 and store.parent.exists():
                shutil.rmtree(store.parent)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            env.pop("HARNESS_STORE", None)
            t0 = time.time()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, "run", hyp_path, "--store", str(store), "--device", "cpu",
                 "--seeds", "2", "--new-version"],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
            )
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("MARKS ")), None)
            if line is None:
                print(out.stdout[-2000:], out.stderr[-2000:])
                raise SystemExit("start-up child did not reach a training step")
            m = json.loads(line[6:])
            rows.append({
                "interpreter": m["python_started"] - t0,
                "imports": m["imports_done"] - m["python_started"],
                "store_register_plan_claim": m["block_setup"] - m["imports_done"],
                "block_setup": m["first_step"] - m["block_setup"],
                "total": m["first_step"] - t0,
                **{k[2:]: v for k, v in m.items() if k.startswith("t_")},
                "fresh_store": i == 0,
            })
    warm = [r for r in rows if not r["fresh_store"]] or rows
    med = {k: statistics.median(r[k] for r in warm) for k in rows[0] if k != "fresh_store"}
    print(f"[start-up] `harness run` to its first training step ({len(warm)} runs on an existing store):")
    main_keys = ("interpreter", "imports", "store_register_plan_claim", "block_setup", "total")
    print("  " + ", ".join(f"{k} {med[k]:.2f} s" for k in main_keys))
    print("  inside store_register_plan_claim: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in med.items() if k not in main_keys))
    print(f"  first run, creating the store: {rows[0]['total']:.2f} s")
    print(f"startup seconds {med['total']:.2f}")


# ----------------------------------------------------------------------------- 3. resume
TINY = '''
from harness import Hypothesis, Prediction, Training
hypothesis = Hypothesis(
    claim="Resume-cost benchmark: nothing is trained.",
    dataset="digits", model="vae",
    fixed={{"latent_dim": 2, "hidden": 8, "depth": 1}},
    ablate={{"posterior": ["diagonal", "linear_iaf"]}},
    prediction=Prediction(metric="iwae_nll", direction="lower", effect=0.5),
    seeds={seeds},
    training=Training(steps=10, batch_size=32, eval_samples=2, log_every=5, n_samples=4),
)
'''


def fill_store(tmp: Path, n_cells: int, light: bool = False):
    """A store with one registered version and ``n_cells`` FINISHED runs (2 variants)."""
    from harness.collect import collect
    from harness.engine import SeedResult
    from harness.registration import register
    from harness.tracking import Store

    d = tmp / f"s{n_cells}"
    (d / "hypotheses").mkdir(parents=True)
    path = d / "hypotheses" / "resume_bench.py"
    path.write_text(textwrap.dedent(TINY.format(seeds=n_cells // 2)))
    col = collect(str(path))
    store = Store(str(d / "mlflow.db"))
    reg, _ = register(col, store)
    params = {"model": "vae", "dataset": "digits", "latent_dim": 2, "hidden": 8}
    tags = {"host": "bench", "block_size": 8}
    hist = {} if light else {k: [(s, 1.0) for s in range(50, 1501, 50)] for k in ("neg_elbo", "rate", "distortion")}
    t = time.perf_counter()
    for v in col.hypothesis.variants:
        for s in range(n_cells // 2):
            rid = store.start_cell(reg, col.id, v, s, params, tags)
            res = SeedResult(seed=s, status="FINISHED", metrics={"iwae_nll": 100.0 + s, "neg_elbo": 101.0},
                             history=hist, seconds=1.0)
            store.finish_cell(rid, res, None)
    return col, store, reg, time.perf_counter() - t


def resume(reps: int) -> None:
    import gc

    from harness.plan import cell_status, plan

    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for n in (100, 1000):
            col, store, reg, t_fill = fill_store(Path(tmp), n)
            times, rescans, no_gc = [], [], []
            for _ in range(reps):
                t = time.perf_counter()
                jobs, done = plan(col, store, reg.version, block_size=16)
                times.append(time.perf_counter() - t)
                t = time.perf_counter()
                cell_status(store, col.id, reg.version)
                rescans.append(time.perf_counter() - t)
                gc.disable()  # diagnosis: how much of it is Python's cyclic GC
                try:
                    t = time.perf_counter()
                    plan(col, store, reg.version, block_size=16)
                    no_gc.append(time.perf_counter() - t)
                finally:
                    gc.enable()
            assert done == n and not jobs, (done, len(jobs))
            out[n] = (statistics.median(times), statistics.median(rescans), statistics.median(no_gc))
            print(f"[resume] {n} finished runs (written in {t_fill:.0f} s): plan {out[n][0] * 1e3:.0f} ms "
                  f"({out[n][0] / n * 1e6:.0f} us per run; {out[n][2] * 1e3:.0f} ms with the cyclic GC off), "
                  f"execute's per-block re-read {out[n][1] * 1e3:.0f} ms")
    print(f"  with the cyclic GC off: ratio {out[1000][2] / out[100][2]:.1f}")
    print(f"resume scaling ratio {out[1000][0] / out[100][0]:.1f} (plan time at 1,000 / at 100 runs; linear = 10)")


def planning(sizes: tuple[int, ...], reps: int) -> None:
    """Planning over 1,000 and 10,000 finished runs: the tag-only SQL query that ``plan`` uses
    (:meth:`Store.cell_index`) against reading whole run objects (``search_runs``, the path a
    tracking server has). Runs are written without histories (the query never reads them)."""
    from harness.plan import plan

    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for n in sizes:
            col, store, reg, t_fill = fill_store(Path(tmp), n, light=True)
            q, full, p = [], [], []
            for _ in range(reps):
                t = time.perf_counter()
                rows = store.cell_index(col.id, reg.version)
                q.append(time.perf_counter() - t)
                t = time.perf_counter()
                runs = store.cell_runs(col.id, reg.version)
                full.append(time.perf_counter() - t)
                t = time.perf_counter()
                jobs, done = plan(col, store, reg.version, block_size=16)
                p.append(time.perf_counter() - t)
            assert len(rows) == len(runs) == n and done == n and not jobs
            out[n] = tuple(statistics.median(x) for x in (q, full, p))
            print(f"[planning] {n} finished runs (written in {t_fill:.0f} s): plan {out[n][2] * 1e3:.0f} ms "
                  f"({out[n][2] / n * 1e6:.0f} us per run); its query {out[n][0] * 1e3:.0f} ms; "
                  f"whole run objects (search_runs) {out[n][1] * 1e3:.0f} ms (ratio {out[n][1] / out[n][0]:.1f})")
        a, b = sizes[0], sizes[-1]
        print(f"planning scaling ratio {out[b][2] / out[a][2]:.1f} (plan at {b:,} / at {a:,} runs; linear = {b / a:g})")


def clone_runs(store, col, reg, n_cells: int) -> float:
    """``n_cells`` FINISHED runs in ``store`` in seconds, not minutes: one run per study written
    through the API (``start_cell`` + ``finish_cell``, as ``fill_store(light=True)``), then
    copied row for row in MLflow's own tables (runs, tags, params, metrics, latest_metrics),
    each copy with its own run id and cell tags. Works on a sqlite or PostgreSQL store (its
    SQLAlchemy engine); an http:// server put on that database serves the same runs."""
    import uuid

    import sqlalchemy as sa

    from harness.engine import SeedResult
    from harness.tracking import T, cell_key

    t = time.perf_counter()
    first = col.hypothesis.variants[0]
    rid = store.start_cell(reg, col.id, first, 0, {"model": "vae", "dataset": "digits", "latent_dim": 2, "hidden": 8},
                           {"host": "bench", "block_size": 8})
    store.finish_cell(rid, SeedResult(seed=0, status="FINISHED", metrics={"iwae_nll": 100.0, "neg_elbo": 101.0},
                                      seconds=1.0), None)
    eng = store.client._tracking_client.store.engine
    md = sa.MetaData()
    tables = {name: sa.Table(name, md, autoload_with=eng) for name in ("runs", "tags", "params", "metrics", "latest_metrics")}
    with eng.begin() as con:
        rows = {name: [dict(r) for r in con.execute(tb.select().where(tb.c.run_uuid == rid)).mappings()]
                for name, tb in tables.items()}
        out: dict[str, list[dict]] = {name: [] for name in tables}
        for v in col.hypothesis.variants:
            for s in range(n_cells // len(col.hypothesis.variants)):
                if (v, s) == (first, 0):
                    continue
                new, name = uuid.uuid4().hex, f"{v.id} seed={s}"
                cell = {f"{T}variant": v.level, f"{T}stratum": v.stratum, f"{T}seed": str(s),
                        f"{T}key": cell_key(reg.version, v.level, v.stratum, s), "mlflow.runName": name}
                for tb, rs in rows.items():
                    for r in rs:
                        r = {**r, "run_uuid": new}
                        if tb == "runs":
                            r.update(name=name, artifact_uri=r["artifact_uri"].replace(rid, new))
                        elif tb == "tags" and r["key"] in cell:
                            r["value"] = cell[r["key"]]
                        out[tb].append(r)
        for tb in tables:  # runs first: the others refer to it
            for i in range(0, len(out[tb]), 5000):
                if out[tb][i : i + 5000]:
                    con.execute(tables[tb].insert(), out[tb][i : i + 5000])
    with eng.connect() as con:  # the statistics a store written run by run would have (autovacuum's ANALYZE)
        con.execute(sa.text("ANALYZE"))
        con.commit()
    return time.perf_counter() - t


def stores(n: int, pg_server: str, reps: int) -> None:
    """Planning at ``n`` finished runs on every store kind: sqlite, postgresql, and an http://
    MLflow server on that PostgreSQL database, read whole (``search_runs``: no --db) and through
    the finished-cell index in a second database (--db; the first plan fills it with one scan)."""
    import importlib.util
    import uuid

    from harness.cellindex import CellIndex
    from harness.collect import collect
    from harness.plan import cell_status, plan
    from harness.registration import register
    from harness.tracking import Store

    spec = importlib.util.spec_from_file_location("harness_services", ROOT / "scripts" / "services.py")
    services = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(services)
    tag = uuid.uuid4().hex[:8]
    names = (f"bench_store_{tag}", f"bench_db_{tag}")
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "hypotheses").mkdir()
        path = tmp / "hypotheses" / "plan_bench.py"
        path.write_text(textwrap.dedent(TINY.format(seeds=n // 2)))
        col = collect(str(path))
        try:
            store_url = services.create_database(pg_server, names[0])
            db_url = services.create_database(pg_server, names[1])
            timed: dict[str, list[float]] = {}
            reread: dict[str, list[float]] = {}

            def measure(label: str, store, times: int, index=None, fresh_index: bool = False) -> None:
                for _ in range(times):
                    idx = CellIndex(db_url) if fresh_index else index
                    t = time.perf_counter()
                    jobs, done = plan(col, store, reg.version, block_size=16, index=idx)
                    timed.setdefault(label, []).append(time.perf_counter() - t)
                    assert done == n and not jobs, (label, done, len(jobs))

            for kind, uri in (("sqlite", str(tmp / "sqlite" / "mlflow.db")), ("postgresql", store_url)):
                store = Store(uri, root=tmp / kind)
                reg, _ = register(col, store)
                print(f"[stores] {kind}: {n:,} finished runs written in {clone_runs(store, col, reg, n):.1f} s")
                measure(kind, store, reps)
            url, server = services.start_mlflow(tmp / "server", store_url)
            store = Store(url, root=tmp / "http")
            measure("http, no --db (whole runs)", store, 2)
            index = CellIndex(db_url)
            measure("http --db: first plan, fills the index", store, 1, index)
            measure("http --db: with the index", store, reps, index)
            measure("http --db: with the index, a new process", store, reps, fresh_index=True)
            v = col.hypothesis.variants[0]
            for label, seeds, times in (("whole version", None, 1), ("its 16 seeds", range(16), reps)):
                for _ in range(times):  # a worker's re-read after claiming a block (MLflow itself, never the index)
                    t = time.perf_counter()
                    got = cell_status(store, col.id, reg.version, v, seeds=seeds)
                    reread.setdefault(label, []).append(time.perf_counter() - t)
                    assert len([k for k in got if k[2] < 16]) == 16
        finally:
            if server is not None:
                services.stop_process(server)
            import psycopg

            with psycopg.connect(pg_server + "/postgres", autocommit=True) as con:
                for name in names:
                    con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for label, ts in timed.items():
        med = statistics.median(ts)
        print(f"  {label}: plan {med * 1e3:,.0f} ms ({med / n * 1e6:.1f} us per run; "
              f"{len(ts)} time{'s' if len(ts) > 1 else ''}{', min ' + format(min(ts) * 1e3, ',.0f') + ' ms' if len(ts) > 1 else ''})")
    for label, ts in reread.items():
        print(f"  http: a worker's re-read after claiming a block of 16 seeds, {label}: "
              f"{statistics.median(ts) * 1e3:,.0f} ms ({len(ts)} time{'s' if len(ts) > 1 else ''})")
    worst = max(statistics.median(ts) for label, ts in timed.items() if "whole" not in label and "first" not in label)
    print(f"stores: slowest plan at {n:,} runs {worst:.2f} s (target < 1 s on every store kind)")


def leases(url: str, cells: int, block: int) -> None:
    """Claim overhead per cell: PostgreSQL leases (acquire, the pre-finish check, release) against
    flock files, for blocks of ``block`` cells."""
    from types import SimpleNamespace

    from harness.claims import FlockClaims, LeaseClaims, cell_key

    v = SimpleNamespace(level="a", stratum="", id="a")
    lc = LeaseClaims(url, ttl=60)
    with tempfile.TemporaryDirectory() as tmp:
        fc = FlockClaims(Path(tmp))
        res = {}
        for name, c in (("flock", fc), ("lease", lc)):
            t = time.perf_counter()
            for b in range(0, cells, block):
                seeds = list(range(b, b + block))
                with c.cells("bench", v, seeds) as held:
                    c.still_held([cell_key("bench", v, s) for s in held])
            res[name] = (time.perf_counter() - t) / cells
        lc.close()
    print(f"[leases] per cell, blocks of {block}: flock {res['flock'] * 1e3:.2f} ms, PostgreSQL lease "
          f"{res['lease'] * 1e3:.2f} ms (acquire + pre-finish check + release; the heartbeat is one UPDATE "
          f"per held block every ttl/4)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("logging", "startup", "resume", "planning", "stores", "leases"), default=None)
    ap.add_argument("--sizes", default="1000,10000", help="planning: numbers of finished runs")
    ap.add_argument("--pg", default=None, help="leases: a PostgreSQL database URL (skipped without one)")
    ap.add_argument("--pg-server", default=os.environ.get("HARNESS_TEST_PG"),
                    help="stores: a PostgreSQL server URL without a database (default $HARNESS_TEST_PG; skipped without one)")
    ap.add_argument("--runs", type=int, default=10000, help="stores: finished runs")
    ap.add_argument("--hypothesis", default=str(DEFAULT_HYPOTHESIS))
    ap.add_argument("--seeds", type=int, default=8, help="seeds per block for the logging measurement")
    ap.add_argument("--steps", type=int, default=None, help="steps for the logging measurement (default: the hypothesis's)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    import platform

    import torch

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}, load average {load}")
    if args.only in (None, "logging"):
        logging_overhead(args.hypothesis, args.seeds, args.steps)
    if args.only in (None, "startup"):
        startup(args.hypothesis, args.reps + 1)
    if args.only in (None, "resume"):
        resume(args.reps)
    if args.only in (None, "planning"):
        planning(tuple(int(x) for x in args.sizes.split(",")), args.reps)
    if args.only in (None, "stores") and args.pg_server:
        stores(args.runs, args.pg_server, args.reps)
    if args.only in (None, "leases") and args.pg:
        leases(args.pg, 400, 8)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
