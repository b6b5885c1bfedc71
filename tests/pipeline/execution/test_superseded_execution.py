"""A killed client's quanta still running on an external cluster never write into the run
once a resumed execution holds its lease.

Real parts: a dask scheduler and a worker started as subprocesses on 127.0.0.1, ``pipetask
run`` as a process killed with SIGKILL while one of its quanta is still running on the worker,
then ``pipetask run --resume`` (it takes the dead client's lease over and runs that quantum
again, registering its outputs with their checksums). Only then does the old quantum wake up
and try to write its outputs to the same paths. The registry must still describe every file
(``butler check`` with checksums), and the worker must say why the old quantum wrote nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _exec_repo import make_repo, pipeline_yaml, registered
from _faults import ENV, run_pipetask, start_pipetask, wait_for_files

from butler import Butler
from butler.check import check_repository
from butler.testing.servers import stopped_with_this_process


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def external_cluster(tmp_path):
    """A scheduler and one two-thread worker as subprocesses; yields (scheduler file, log)."""
    sched = tmp_path / "sched.json"
    worker_log = tmp_path / "worker.log"
    watchdogs = contextlib.ExitStack()  # each process stops with a killed test run too
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(sched)],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]
    watchdogs.enter_context(stopped_with_this_process([procs[0].pid]))
    try:
        _wait_for(sched.exists, "the scheduler file", 30)
        with open(worker_log, "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker",
                 "--scheduler-file", str(sched), "--nthreads", "2", "--nworkers", "1",
                 "--host", "127.0.0.1", "--no-dashboard"],
                env=ENV, stdout=log, stderr=subprocess.STDOUT,
            ))
        watchdogs.enter_context(stopped_with_this_process([procs[-1].pid]))
        from distributed import Client

        with Client(scheduler_file=str(sched), timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
        yield sched, worker_log
    finally:
        # the workers first, while their scheduler is up: a worker whose scheduler went away
        # first retries it for seconds before it exits (8 s of teardown, measured)
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        watchdogs.close()


def _worker_tasks(sched: Path) -> int:
    """How many tasks the worker still knows (a cancelled one still running counts)."""
    from distributed import Client

    with Client(scheduler_file=str(sched), timeout=30) as client:
        counts = client.run(lambda dask_worker: len(dask_worker.state.tasks))
    return sum(counts.values())


def test_a_dead_clients_quantum_cannot_overwrite_what_the_resume_registered(
    tmp_path, external_cluster
):
    sched, worker_log = external_cluster
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=3, checksums=True)
    sleep_file, hold = tmp_path / "sleepers.txt", tmp_path / "hold"
    sleep_file.write_text("0,0\n")
    hold.write_text("")
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(
        a_config={"sleepFile": str(sleep_file), "holdFile": str(hold)}, tasks=("a", "b")
    ))
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "--output-run", "out/stale",
            "--cluster", str(sched), "--no-progress"]
    first = start_pipetask("run", *args)
    try:
        # the other two chains are written, and a(0,0) is running (held) on the worker
        wait_for_files(repo, "/b_metadata/", 2, first)
        _wait_for(lambda: Path(f"{hold}.held").exists(), "a(0,0) to start")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    sleep_file.write_text("")  # the resumed execution's a(0,0) does not wait
    resumed = run_pipetask("run", *args, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not Path(f"{hold}.woke").exists()  # the old quantum was still running all along

    os.remove(hold)  # now the dead client's quantum wakes up and goes on
    _wait_for(lambda: Path(f"{hold}.woke").exists(), "the old quantum to wake up")
    _wait_for(lambda: _worker_tasks(sched) == 0, "the old quantum's cluster to end")

    butler = Butler(repo)
    got = registered(butler, "out/stale")
    assert len(got["a_metadata"]) == 3 and len(got["eb_out"]) == 3
    check = check_repository(butler)
    assert check.problems == (), check.problems  # every registered file is what was stored
    assert butler.datastore.find_temporaries() == []
    log = worker_log.read_text()
    assert "superseded by execution" in log, log[-3000:]
