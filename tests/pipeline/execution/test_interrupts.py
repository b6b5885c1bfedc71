"""Ctrl-C, SIGTERM and a lost dask scheduler stop a real ``pipetask run`` cleanly.

Each stop must exit with its conventional code, print one line with the command that
resumes, leave the registry consistent (nothing registered whose inputs are not) and a
``run_status``; the printed command then finishes the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from _exec_repo import make_repo, pipeline_yaml, registered
from _faults import ENV, resume_command_in, start_pipetask, wait_for_files

from butler import Butler

N_VISITS, N_DETECTORS = 2, 6


@pytest.fixture
def pipetask():
    """Start ``pipetask`` in a session of its own; its whole process group is killed after
    the test, passed or failed (a failed assertion must not leave a run or its cluster)."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = start_pipetask(*args, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ValueError):  # its pipes were read to the end already
            proc.communicate(timeout=30)


def _setup(tmp_path, sleep=0.3):
    repo = make_repo(tmp_path / "repo", n_visits=N_VISITS, n_detectors=N_DETECTORS)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config={"sleep": sleep}))
    return repo, pipe


def _check_stopped(repo, run, stderr):
    assert "Traceback" not in stderr, stderr
    butler = Butler(repo)
    got = registered(butler, run)
    assert len(got.get("a_metadata", ())) < N_VISITS * N_DETECTORS  # stopped early
    for key in got.get("b_metadata", ()):
        assert key in got["a_metadata"]
    status = butler.get("run_status", collections=[run])
    assert status["interrupted"]
    return status


def _resume_and_check(repo, run, command):
    out = subprocess.run(command, capture_output=True, text=True, timeout=180, env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    got = registered(Butler(repo), run)
    assert len(got["eb_out"]) == N_VISITS * N_DETECTORS and len(got["ec_out"]) == N_VISITS


def _run_of(repo, output):
    return Butler(repo).registry.get_collection_chain(output)[0]


def test_sigterm_exits_143_with_resume_command(tmp_path, pipetask):
    repo, pipe = _setup(tmp_path)
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/term", "--no-progress"]
    proc = pipetask("run", *args, "--executor", "sync")
    wait_for_files(repo, "/b_metadata/", 2, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip() and "INFO task." not in line]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "--resume" in lines[0], stderr
    run = _run_of(repo, "u/term")
    _check_stopped(repo, run, stderr)
    _resume_and_check(repo, run, resume_command_in(stderr))


@pytest.mark.parametrize(
    "executor", [["--executor", "dask", "-j", "1"], ["-j", "2"]], ids=["dask", "pool"]
)
def test_ctrl_c_on_a_run_with_workers_exits_130(tmp_path, pipetask, executor):
    repo, pipe = _setup(tmp_path)
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/int", "--no-progress"]
    # Ctrl-C in a terminal signals the whole process group: the client and its workers
    proc = pipetask("run", *args, *executor)
    wait_for_files(repo, "/b_metadata/", 2, proc, timeout=120)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "SIGINT" in stderr and "--resume" in stderr, stderr
    run = _run_of(repo, "u/int")
    _check_stopped(repo, run, stderr)
    _resume_and_check(repo, run, [*resume_command_in(stderr), "--executor", "sync"])


SCHEDULER = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--no-dashboard"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker", "--nthreads", "1"]


def test_lost_scheduler_is_caught_with_run_status(tmp_path, pipetask):
    repo, pipe = _setup(tmp_path)
    sched_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [*SCHEDULER, "--port", "0", "--scheduler-file", str(sched_file)], **quiet
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the file is written before the scheduler listens
        worker = subprocess.Popen(
            [*WORKER, "--scheduler-file", str(sched_file), "--no-dashboard"], env=ENV, **quiet
        )
        args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/lost"]
        proc = pipetask("run", *args, "--no-progress", "--cluster", str(sched_file))
        wait_for_files(repo, "/b_metadata/", 2, proc, timeout=120)
        scheduler.kill()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        for child in (scheduler, worker):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
    assert proc.returncode == 1, stdout + stderr
    assert "lost the dask scheduler" in stderr and "--resume" in stderr, stderr
    run = _run_of(repo, "u/lost")
    status = _check_stopped(repo, run, stderr)
    assert "scheduler" in status["interrupted"]
    command = resume_command_in(stderr)
    at = command.index("--cluster")
    _resume_and_check(repo, run, [*command[:at], *command[at + 2 :], "--executor", "sync"])


@pytest.mark.parametrize(
    "executor", [["--executor", "dask", "-j", "2"], ["-j", "2"]], ids=["dask", "pool"]
)
def test_sigterm_to_the_client_alone_stops_while_a_worker_is_busy(tmp_path, pipetask, executor):
    """The client notes the signal and its wait for workers looks at it a few times a second:
    it stops while a worker is still inside a 60 s quantum, not after it."""
    repo = make_repo(tmp_path / "repo", n_visits=N_VISITS, n_detectors=N_DETECTORS)
    (tmp_path / "slow.txt").write_text("0,0\n")
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(pipeline_yaml(a_config={"sleep": 60, "sleepFile": str(tmp_path / "slow.txt")}))
    args = ["-b", str(repo), "-p", str(pipe), "-i", "raw/all", "-o", "u/busy", "--no-progress"]
    proc = pipetask("run", *args, *executor)
    wait_for_files(repo, "/b_metadata/", 2, proc, timeout=120)
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stdout + stderr
    assert time.monotonic() - start < 30, "waited for the busy worker's quantum"
    run = _run_of(repo, "u/busy")
    _check_stopped(repo, run, stderr)
