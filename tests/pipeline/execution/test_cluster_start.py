"""`pipeline.execution.run.start_executor`: the local dask cluster of ``pipetask run -j N``
starts in a background thread while the caller builds the graph; `execute_graph` runs on
it when it is ready, and `close_started` closes it (also when it was never used)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import psutil
import pytest
from _exec_repo import make_graph, make_repo, pipeline_yaml, registered
from _faults import ENV, HERE, pipetask_command

from butler import Butler
from pipeline.execution.run import close_started, execute_graph, start_executor


def test_cluster_starts_while_the_graph_is_built(tmp_path):
    repo = make_repo(tmp_path / "repo", n_visits=2, n_detectors=2)
    started = start_executor("dask", 2, None, None, False)
    assert not started.done()  # returned at once: the cluster starts in the background
    try:
        graph = make_graph(repo, run="out/1")  # meanwhile
        summary = execute_graph(Butler(repo), graph, executor=started, progress=False)
        assert summary.exit_code == 0, summary.failures
        executor = started.result()
        assert executor.parallelism() == 2
        assert executor.client.status == "running"  # execute_graph does not close it ...
    finally:
        close_started(started)
    assert executor.client.status == "closed"  # ... close_started does
    assert len(registered(Butler(repo), "out/1")["eb_out"]) == 4


def test_close_started_of_an_executor_that_failed_to_start():
    started = start_executor("dask", 0, None, None, False)  # a cluster without workers
    close_started(started)  # logs, does not raise
    assert isinstance(started.exception(), ValueError)


def _session_processes(session: int) -> list[psutil.Process]:
    """Return the live processes of a session (a command started with start_new_session)."""
    found = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getsid(process.pid) == session and process.info["status"] != "zombie":
                found.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def _wait_until_gone(session: int, timeout: float = 20) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := _session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def hung_workers(tmp_path):
    """A repository and pipetask arguments whose local dask workers never connect."""
    repo = make_repo(tmp_path / "repo", n_visits=1, n_detectors=2)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml())
    env = dict(
        ENV,
        PYTHONPATH=f"{HERE}{os.pathsep}{ENV['PYTHONPATH']}",
        DASK_DISTRIBUTED__WORKER__PRELOAD='["_hang_preload"]',
    )
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/hang", "-j", "2"]
    args += ["--executor", "dask"]  # (-j 2 of a small graph runs on a pool, without dask)
    procs: list[subprocess.Popen] = []

    def start(extra_env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            pipetask_command("run", *args, "--no-progress"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env, **extra_env),
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:  # whatever happened: nothing of the command's is left running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_a_local_worker_that_never_connects_stops_the_run_in_one_line(hung_workers):
    proc = hung_workers({"SKYQUANTA_CLUSTER_START_TIMEOUT": "3"})
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("pipetask run still waits for its local cluster after 60 s")
    assert proc.returncode == 2, stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "3 s" in lines[0] and "worker" in lines[0], stderr
    assert "SKYQUANTA_CLUSTER_START_TIMEOUT" in lines[0] or "--cluster-start-timeout" in lines[0]
    assert not _wait_until_gone(proc.pid), "processes of the command outlived it"


def test_sigterm_while_the_local_cluster_starts_ends_everything(hung_workers):
    proc = hung_workers({})  # the default timeout: far longer than this test
    deadline = time.monotonic() + 90
    # wait for the command and its workers: client, resource tracker, fork server, 2 workers
    while len(_session_processes(proc.pid)) < 5 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # the client is waiting for its workers
    proc.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("SIGTERM did not end pipetask run while its local cluster started")
    assert proc.returncode == 143, stdout + stderr
    assert "Traceback" not in stderr, stderr
    assert "SIGTERM" in stderr, stderr
    assert not _wait_until_gone(proc.pid), "processes of the command outlived it"
