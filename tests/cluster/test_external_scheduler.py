"""A scheduler and two workers started as subprocesses; the run points at its scheduler file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))
from _exec_repo import HERE, make_graph, make_repo, registered  # noqa: E402

from butler import Butler  # noqa: E402
from butler.testing.servers import stopped_with_this_process  # noqa: E402
from pipeline.execution.run import execute_graph  # noqa: E402


@pytest.fixture
def scheduler_file(tmp_path):
    sched = tmp_path / "sched.json"
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    watchdogs = contextlib.ExitStack()  # each process stops with a killed test run too
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(sched)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]
    watchdogs.enter_context(stopped_with_this_process([procs[0].pid]))
    try:
        deadline = time.monotonic() + 30
        while not sched.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker",
                 "--scheduler-file", str(sched),
                 "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            watchdogs.enter_context(stopped_with_this_process([procs[-1].pid]))
        from distributed import Client

        with Client(scheduler_file=str(sched), timeout=30) as client:
            client.wait_for_workers(2, timeout=30)
        yield str(sched)
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


def test_run_on_external_scheduler(tmp_path, scheduler_file):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=4)
    qg = make_graph(repo, run="out/ext")
    butler = Butler(repo)
    summary = execute_graph(butler, qg, cluster_address=scheduler_file, progress=False)
    assert summary.exit_code == 0, summary.failures
    got = registered(butler, "out/ext")
    assert len(got["ec_out"]) == 2 and len(got["eb_out"]) == 8
    refs = butler.registry.query_datasets("a_metadata", collections=["out/ext"])
    pids = {butler.get(r)["quantum"]["pid"] for r in refs}
    assert os.getpid() not in pids
