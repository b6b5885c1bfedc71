"""Shared helpers of the fault tests: real ``pipetask`` processes and registry lock holders."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
TESTS = HERE.parent  # tests/pipeline: exec_tasks, _exec_repo
PIPETASK = str(Path(sys.executable).parent / "pipetask")
ENV = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def pipetask_command(*args: str) -> list[str]:
    """Return the command line of ``pipetask --log-level WARNING *args``."""
    return [PIPETASK, "--log-level", "WARNING", *args]


def start_pipetask(*args: str, **kwargs) -> subprocess.Popen:
    """Start ``pipetask`` as a real process (stdout and stderr piped, text)."""
    return subprocess.Popen(
        pipetask_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        **kwargs,
    )


def run_pipetask(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``pipetask`` to its end."""
    return subprocess.run(
        pipetask_command(*args), capture_output=True, text=True, timeout=timeout, env=ENV
    )


#: A second process that holds the registry's write lock: ``python -c HOLD db seconds``.
#: It prints "locked" once it holds it and releases it after ``seconds``.
HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("ROLLBACK")
"""


def hold_registry_lock(repo: Path, seconds: float) -> subprocess.Popen:
    """Start a process holding the registry's write transaction; return once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(repo / "registry.sqlite3"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def wait_for_files(
    root: Path, fragment: str, count: int, proc: subprocess.Popen, timeout: float = 60
) -> None:
    """Wait until ``count`` files under ``root`` have ``fragment`` in their path.

    Raises `AssertionError` (with the output of ``proc``) if ``proc`` ends first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stdout, stderr = proc.communicate()
            raise AssertionError(f"process ended ({proc.returncode}) early:\n{stdout}{stderr}")
        if sum(1 for p in root.rglob("*") if fragment in p.as_posix() and p.is_file()) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"no {count} files matching {fragment!r} under {root} in {timeout} s")


def resume_command_in(text: str) -> list[str]:
    """Return the resume command a run printed (the line after "resume with"), runnable here."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith("resume with") or "resume with:" in line:
            command = line.split("resume with:", 1)[1] if "resume with:" in line else lines[i + 1]
            words = shlex.split(command.strip())
            assert words[0] == "pipetask", command
            return [PIPETASK, *words[1:]]
    raise AssertionError(f"no resume command in:\n{text}")
