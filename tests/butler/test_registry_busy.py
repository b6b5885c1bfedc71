"""A registry shared by processes: writers wait for each other, and give up with a clear error.

Real SQLite locks from other processes: concurrent writers (each registering a run and then
datasets, many small transactions) and a process holding the write lock.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from butler import Butler, DatasetType, RegistryBusyError, RunLeaseError
from butler.dataset_ref import DatasetRef
from butler.registry import CollectionType

WRITER = """
import sys
from butler import Butler
from butler.dataset_ref import DatasetRef
from butler.registry import CollectionType
repo, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
registry = Butler(repo).registry
registry.register_run(run)
dtype = registry.get_dataset_type("thing")
failures = 0
for i in range(n):
    ref = DatasetRef.make(dtype, {"instrument": "Sim", "detector": i}, run)
    try:
        with registry.transaction():
            registry.register_run(run)  # a read, then (maybe) a write: the racy shape
            registry.insert_datasets([ref], on_conflict="ignore")
    except Exception as err:
        failures += 1
        print(type(err).__name__, err, file=sys.stderr)
sys.exit(1 if failures else 0)
"""

HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("ROLLBACK")
"""


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    Butler.create(root)
    registry = Butler(root).registry
    registry.insert_dimension_records(
        "instrument", [{"name": "Sim", "detector_max": 999, "visit_max": 9}]
    )
    registry.insert_dimension_records(
        "detector", [{"instrument": "Sim", "id": d, "full_name": f"D{d}"} for d in range(200)]
    )
    registry.register_dataset_type(
        DatasetType.make(
            "thing", ["instrument", "detector"], "StructuredDataDict", registry.universe
        )
    )
    return root


def test_concurrent_writers_never_see_database_is_locked(repo):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(repo), f"run/{i}", "60"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, "\n".join(errors)
    registry = Butler(repo).registry
    for i in range(4):
        assert len(registry.query_datasets("thing", collections=[f"run/{i}"])) == 60


def _hold(repo, seconds):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(repo / "registry.sqlite3"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_write_waits_for_the_lock_then_gives_up_with_registry_busy_error(repo):
    registry = Butler(repo).registry
    registry.busy_timeout = 0.3
    holder = _hold(repo, 2.0)
    try:
        start = time.monotonic()
        with pytest.raises(RegistryBusyError, match="locked"):
            registry.register_run("late")
        assert time.monotonic() - start < 1.5
        registry.busy_timeout = 10.0
        assert registry.register_run("late")  # waits for the holder to let go
    finally:
        holder.kill()
        holder.wait()
    assert ("late", CollectionType.RUN) in registry.query_collections()


def test_registry_and_dataset_remain_readable_while_another_process_writes(repo):
    registry = Butler(repo).registry
    registry.register_run("r")
    dtype = registry.get_dataset_type("thing")
    registry.insert_datasets([DatasetRef.make(dtype, {"instrument": "Sim", "detector": 1}, "r")])
    holder = _hold(repo, 1.0)
    try:
        assert len(registry.query_datasets("thing", collections=["r"])) == 1  # WAL readers
    finally:
        holder.kill()
        holder.wait()


HOLD_LEASE = """
import sys, time
from butler import Butler
registry = Butler(sys.argv[1]).registry
registry.acquire_run_lease(sys.argv[2], "holder-token")
print("held", flush=True)
time.sleep(60)
"""


def test_run_lease_is_refused_while_its_holder_lives_and_taken_over_after(repo):
    registry = Butler(repo).registry
    registry.register_run("leased")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASE, str(repo), "leased"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLeaseError, match=f"process {holder.pid} on"):
            registry.acquire_run_lease("leased", "mine")
        assert registry.run_lease("leased")["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    registry.acquire_run_lease("leased", "mine")  # its holder is dead: taken over
    assert registry.refresh_run_lease("leased", "mine")
    registry.release_run_lease("leased", "mine")
    assert registry.run_lease("leased") is None
    registry.acquire_run_lease("leased", "mine")
    registry.remove_run("leased")  # a removed run takes its lease with it
    registry.register_run("leased")
    assert registry.run_lease("leased") is None
