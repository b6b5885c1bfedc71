"""Outgrowing one machine: each row compares a server backend with the local one, same run.

Run with ``python -m bench backends`` (needs PostgreSQL's initdb/pg_ctl, psycopg, moto and
s3fs: ``pip install -e '.[test]'``). It starts a throw-away PostgreSQL server and a moto S3
server on 127.0.0.1 (`butler.testing.servers`) and measures, interleaved so that both sides
see the same moment of the machine:

- bulk registration of 94,500 datasets into a fresh SQLite and a fresh PostgreSQL registry;
- put + get of a 4096x4096 float32 image (64 MiB, the default zarr layout) into a local
  datastore and into one on S3 (moto keeps the objects in its process's memory);
- the per-quantum overhead of 1,000 trivial quanta on the embedded local cluster (2 workers)
  and on a scheduler + 2 workers started as separate processes (``--cluster tcp://...``).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from butler import Butler, DatasetRef, DatasetType
from butler.testing.servers import PostgresServer, S3Server, environment
from cluster.processes import SchedulerProcesses

from ._repo import N_DETECTORS, add_dimension_records
from ._table import print_table
from .execution_bench import _make_repo, _noop, _ours

ROOT = Path(__file__).resolve().parents[1]


def _registration_rate(registry_url: str | None, n_visits: int = 100) -> tuple[int, float]:
    """Return (datasets, datasets per second) of one bulk registration into a new repo."""
    with tempfile.TemporaryDirectory() as tmp:
        Butler.create(tmp, registry_url=registry_url)
        butler = Butler(tmp)
        add_dimension_records(butler, instrument="LSSTCam", n_visits=n_visits)
        reg = butler.registry
        types = []
        for name in ("raw", "calexp", "src", "bkg", "meta"):
            reg.register_dataset_type(
                DatasetType.make(name, ["visit", "detector"], "NumpyArray", butler.universe)
            )
            types.append(reg.get_dataset_type(name))
        reg.register_run("bench")
        refs = [
            DatasetRef.make(dt, {"instrument": "LSSTCam", "visit": v, "detector": d}, "bench")
            for dt in types
            for v in range(n_visits)
            for d in range(N_DETECTORS)
        ]
        infos = [butler.datastore.predict(ref) for ref in refs]
        start = time.perf_counter()
        reg.insert_datasets(refs, infos)
        rate = len(refs) / (time.perf_counter() - start)
        reg.close()
        return len(refs), rate


def _interleaved(rounds: int, cases: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            times[name].append(case())
    return times


def registration_rows(pg: PostgresServer, rounds: int = 3) -> list[list[Any]]:
    counts: dict[str, int] = {}

    def case(url_of: Callable[[], str | None], name: str) -> Callable[[], float]:
        def run() -> float:
            counts[name], rate = _registration_rate(url_of())
            return rate

        return run

    rates = _interleaved(
        rounds,
        {
            "SQLite": case(lambda: None, "SQLite"),
            "PostgreSQL": case(lambda: pg.url(pg.create_database(), password=False), "PostgreSQL"),
        },
    )
    base = statistics.median(rates["SQLite"])
    return [
        [f"registration, {name}", counts[name], statistics.median(r), min(r), max(r),
         statistics.median(r) / base]
        for name, r in rates.items()
    ]


def image_rows(s3: S3Server, rounds: int = 5, size: int = 4096) -> list[list[Any]]:
    image = np.random.default_rng(1).normal(1000.0, 30.0, (size, size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        butlers = {}
        for name, store in (("local", None), ("S3 (moto)", f"s3://{s3.new_bucket()}/files")):
            root = Path(tmp) / name.split()[0]
            Butler.create(root, datastore_root=store,
                          storage_options=s3.storage_options if store else None)
            butler = Butler(root)
            butler.registry.register_dataset_type(
                DatasetType.make("img", [], "NumpyArray", butler.universe)
            )
            butlers[name] = butler

        def case(name: str) -> Callable[[], float]:
            butler = butlers[name]

            def run() -> float:
                run_name = f"r{time.monotonic_ns()}"
                butler.registry.register_run(run_name)
                start = time.perf_counter()
                ref = butler.put(image, "img", {}, run=run_name)
                back = butler.get(ref)
                elapsed = time.perf_counter() - start
                butler.remove_runs([run_name])
                if not np.array_equal(back, image):
                    raise RuntimeError(f"{name}: put+get did not give the image back")
                return elapsed

            return run

        times = _interleaved(rounds, {name: case(name) for name in butlers})
    base = statistics.median(times["local"])
    return [
        [f"64 MiB put+get, {name}", rounds, statistics.median(t), min(t), max(t),
         statistics.median(t) / base]
        for name, t in times.items()
    ]


def overhead_rows(n_quanta: int = 1000, rounds: int = 2) -> list[list[Any]]:
    from pipeline.execution.executors.dask import DaskExecutor

    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with SchedulerProcesses(2, env=env) as procs:
        address = procs.address
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "repo"
            _make_repo(root, n_quanta // 2)
            with DaskExecutor(jobs=2, dashboard_address=":0") as local, \
                    DaskExecutor(address=address) as external:
                for executor in (local, external):
                    executor.client.run(_noop)
                times = _interleaved(rounds, {
                    "local cluster (-j 2)": lambda: _ours(root, local, "off"),
                    "scheduler + 2 workers, subprocesses": lambda: _ours(root, external, "off"),
                })
    base = statistics.median(times["local cluster (-j 2)"])
    return [
        [f"per quantum, {name}", n_quanta, statistics.median(t) / n_quanta * 1e3,
         min(t) / n_quanta * 1e3, max(t) / n_quanta * 1e3, statistics.median(t) / base]
        for name, t in times.items()
    ]


def main() -> None:
    pg, s3 = PostgresServer(), S3Server()
    pg.start()
    s3.start()
    try:
        with environment({**s3.env, "PGPASSWORD": pg.password}):
            rows = registration_rows(pg) + image_rows(s3)
    finally:
        s3.stop()
        pg.stop()
    rows += overhead_rows()
    print_table(
        "Backends: server against local, measured interleaved in one run",
        ["case", "n", "median", "min", "max", "ratio to local"],
        rows,
        notes=(
            "registration: datasets/s (ratio: PostgreSQL/SQLite rate); put+get: seconds; "
            "per quantum: ms of wall time per trivial quantum, clustering off."
        ),
    )
