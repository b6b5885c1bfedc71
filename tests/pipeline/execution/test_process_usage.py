"""A quantum's wall time split into CPU, waiting for a core, and blocked time."""

from __future__ import annotations

import os
import sys
import time

import pytest

from pipeline.execution.process_usage import ProcessUsage

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_sleep_is_wall_time_not_cpu():
    before = ProcessUsage.now()
    time.sleep(0.2)
    used = ProcessUsage.now().since(before)
    assert used["wall_time"] >= 0.2
    assert used["cpu_time"] < 0.05


@linux
def test_waiting_for_a_core_is_seen():
    """This thread and a busy child share one core: about half the wall time is waiting."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    try:
        child = os.fork()
        if child == 0:  # busy on the same core until killed
            while True:
                pass
        try:
            before = ProcessUsage.now()
            _spin(0.3)
            used = ProcessUsage.now().since(before)
        finally:
            os.kill(child, 9)
            os.waitpid(child, 0)
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    assert used["run_queue_wait"] > 0.1, used
    assert used["wall_time"] == pytest.approx(
        used["cpu_time"] + used["run_queue_wait"], rel=0.2
    ), used


@linux
def test_bytes_written_to_storage_are_counted(tmp_path):
    data = os.urandom(4 << 20)
    before = ProcessUsage.now()
    with open(tmp_path / "f", "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    used = ProcessUsage.now().since(before)
    assert used["write_bytes"] >= len(data), used
    assert used["read_bytes"] >= 0


def test_without_proc_only_clocks_are_given():
    earlier = ProcessUsage(1.0, 2.0, None, None)
    later = ProcessUsage(4.0, 3.5, None, None)
    assert later.since(earlier) == {"wall_time": 3.0, "cpu_time": 1.5}
