"""The test servers stop by themselves when the test run that started them is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from butler.testing.servers import server_unavailable

#: A stand-in for a test run: starts a PostgreSQL server, says where it is, then waits.
_PARENT = """
import json, os, sys, time
from butler.testing.servers import PostgresServer
server = PostgresServer()
server.start()
pid = int((server.dir / "data" / "postmaster.pid").read_text().split()[0])
print(json.dumps({"pid": pid, "port": server.port, "dir": str(server.dir)}), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(server_unavailable("postgres") is not None, reason="no PostgreSQL here")
def test_postgres_server_stops_when_its_test_run_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        where = json.loads(parent.stdout.readline())
        assert _alive(where["pid"]) and _accepts(where["port"])
    finally:
        parent.send_signal(signal.SIGKILL)  # no teardown runs
        parent.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < 10 and (
        _alive(where["pid"]) or Path(where["dir"]).exists()
    ):
        time.sleep(0.1)
    gone_after = time.monotonic() - killed
    assert not _alive(where["pid"]), "the PostgreSQL server outlived its test run"
    assert not _accepts(where["port"])
    assert not Path(where["dir"]).exists()
    assert gone_after < 10


#: A test run that started a server subprocess (a stand-in: ``sleep``) with a watchdog.
_PARENT_OF_SUBPROCESS = """
import subprocess, time
from butler.testing.servers import stop_with_this_process
server = subprocess.Popen(["sleep", "600"])
stop_with_this_process([server.pid])
print(server.pid, flush=True)
time.sleep(600)
"""


def test_subprocess_server_is_stopped_when_its_test_run_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_OF_SUBPROCESS], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    killed = time.monotonic()
    # the orphan becomes a zombie of init (or a subreaper) once it ends: look at its state
    while time.monotonic() - killed < 5 and _running(pid):
        time.sleep(0.05)
    assert not _running(pid), "the server subprocess outlived its test run"


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
