"""``butler ingest-raws`` stopped by SIGINT or SIGTERM leaves a consistent repository.

A real ``butler`` process ingests small raws (in one registry transaction: the visit records
and regions of every raw, then every file copied, then all datasets registered) and is
signalled at three moments: while it waits for the registry's write lock (held here, so the
signal is handled inside `Database.transaction`, as SQLite grants the lock); part-way through
the registry writes (after a number of SQL statements of its transaction, read from its
engine log); and while it copies the files. It must exit with 130/143 (README) within
seconds, ``butler check`` must find nothing wrong (no orphan file, no record without its
file), the batch is all or nothing, and the next write must finish (not wait on a lock the
interrupted process kept).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _raws import write_plain_raw

from butler import Butler, MissingDatasetTypeError
from butler.check import check_repository
from imaging.ingest import RAW_DATASET_TYPE, ingest_raws, register_instrument
from imaging.sim import make_camera

N_RAWS = 24
BUTLER = [sys.executable, "-c", "from butler.cli import main; main()"]


@pytest.fixture(scope="module")
def raws(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("raws")
    image = np.full((8, 8), 1000.0, np.float32)
    return [
        write_plain_raw(
            folder / f"raw_{visit:04d}.fits",
            image,
            saturation=None,
            keywords={"VISIT": visit, "MJD-OBS": 60000.0 + visit * 1e-3},
        )
        for visit in range(1, N_RAWS + 1)
    ]


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    Butler.create(root)
    register_instrument(Butler(root), make_camera(1, detector_size=8))
    return root


class _Ingest:
    """``butler ingest-raws`` in a subprocess, its stderr read by a thread (never blocking it)."""

    def __init__(self, repo: Path, raws: list[Path], *, log_sql: bool) -> None:
        options = ["--log-level", "sqlalchemy.engine=INFO"] if log_sql else []
        self.process = subprocess.Popen(
            [*BUTLER, *options, "ingest-raws", str(repo), *map(str, raws)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for(self, condition, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ingest-raws ended or took too long before {what}")
            time.sleep(0.002)

    def statements_after_begin(self) -> int:
        text = list(self.lines)
        begins = [i for i, line in enumerate(text) if "BEGIN IMMEDIATE" in line]
        return len(text) - begins[0] - 1 if begins else -1

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the signalled butler did not exit within {timeout} s (hung)")
        self._reader.join(10.0)
        return code, "".join(self.lines)


def _raw_files(repo: Path) -> list[Path]:
    return [p for p in (repo / "SimCam" / "raw").rglob("*") if p.is_file()]


def _registered(repo: Path) -> list:
    try:
        return Butler(repo).registry.query_datasets(RAW_DATASET_TYPE, collections="SimCam/raw/all")
    except MissingDatasetTypeError:  # rolled back with the rest of the batch
        return []


def _assert_consistent_and_writable(repo: Path, raws: list[Path]) -> None:
    result = check_repository(Butler(repo, writeable=False))
    assert list(result.problems) == []
    registered = _registered(repo)
    assert len(registered) in (0, N_RAWS)  # all or nothing
    assert len(_raw_files(repo)) == len(registered)
    start = time.monotonic()  # the next write must not wait on a lock left taken
    ingest_raws(Butler(repo), raws[:1])
    assert time.monotonic() - start < 30.0
    assert _registered(repo)


def _assert_interrupted(code: int, log: str, signum: int) -> None:
    assert code == 128 + signum, log[-3000:]
    assert f"Interrupted by {signal.Signals(signum).name}" in log
    assert "Traceback" not in log


def test_sigint_while_the_registry_write_lock_is_granted(repo, raws):
    lock = sqlite3.connect(repo / "registry.sqlite3", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        ingest = _Ingest(repo, raws, log_sql=True)
        ingest.wait_for(lambda: ingest.statements_after_begin() >= 0, "its first write")
        time.sleep(0.3)  # in SQLite's busy wait: the signal is handled once BEGIN returns
        os.kill(ingest.process.pid, signal.SIGINT)
        time.sleep(0.2)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    _assert_interrupted(*ingest.finish(), signal.SIGINT)
    _assert_consistent_and_writable(repo, raws)


def test_sigterm_part_way_through_the_registry_writes(repo, raws):
    ingest = _Ingest(repo, raws, log_sql=True)
    ingest.wait_for(lambda: ingest.statements_after_begin() >= 30, "30 SQL statements")
    os.kill(ingest.process.pid, signal.SIGTERM)
    _assert_interrupted(*ingest.finish(), signal.SIGTERM)
    _assert_consistent_and_writable(repo, raws)


def test_sigterm_while_copying_the_files(repo, raws):
    ingest = _Ingest(repo, raws, log_sql=False)
    ingest.wait_for(lambda: _raw_files(repo), "its first file copy")
    os.kill(ingest.process.pid, signal.SIGTERM)
    _assert_interrupted(*ingest.finish(), signal.SIGTERM)
    _assert_consistent_and_writable(repo, raws)
