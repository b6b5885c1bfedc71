"""What a worker process used while it ran one quantum: CPU, waiting for a core, disk I/O.

Design
------
A quantum's wall time splits into its process's CPU time (``time.process_time``: all its
threads, user and system), time its running thread waited for a core (another process had
it: the machine is busy), and time it was blocked (reading a file not in the page cache,
the kernel holding back a write, a lock, a sleep). The bulk benchmark reports the framework's
share of the wall time; these readings tell whether what is not the quanta's CPU is the
framework's or the machine's.

`ProcessUsage.now` reads, on Linux, ``/proc/thread-self/schedstat`` (nanoseconds on a core
and waiting in a run queue, of the calling thread) and ``/proc/self/io`` (bytes the process
caused to be read from and written to the storage layer); elsewhere those readings are
absent (`None`) and only wall and CPU time are taken. `ProcessUsage.since` gives the
differences as a mapping for a quantum's metadata.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

__all__ = ["ProcessUsage"]

_SCHEDSTAT = "/proc/thread-self/schedstat"
_IO = "/proc/self/io"


def _read_schedstat() -> float | None:
    """Seconds the calling thread has waited in a run queue, or `None` if not readable."""
    try:
        with open(_SCHEDSTAT) as stream:
            fields = stream.read().split()
        return int(fields[1]) * 1e-9
    except (OSError, IndexError, ValueError):
        return None


def _read_io() -> tuple[int, int] | None:
    """Bytes the process read from and wrote to storage so far, or `None` if not readable."""
    try:
        with open(_IO) as stream:
            values = dict(line.split(":", 1) for line in stream if ":" in line)
        return int(values["read_bytes"]), int(values["write_bytes"])
    except (OSError, KeyError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class ProcessUsage:
    """One reading of the process's clocks and counters.

    Parameters
    ----------
    wall : `float`
        ``time.perf_counter()`` (s) before the other readings.
    cpu : `float`
        ``time.process_time()`` (s): every thread of the process, user and system.
    run_queue_wait : `float` or `None`
        Seconds the calling thread has waited for a core (Linux), else `None`.
    io_bytes : `tuple` [`int`, `int`] or `None`
        Bytes read from and written to storage by the process (Linux), else `None`.
    wall_after : `float` or `None`
        ``time.perf_counter()`` after the other readings (`None`: the same as ``wall``).
        `since` takes the wall time from the earlier reading's ``wall`` to this one's
        ``wall_after``, so the interval the other readings span lies inside it (a thread
        preempted between two readings on a busy machine would otherwise show more time
        waiting for a core than wall time).
    """

    wall: float
    cpu: float
    run_queue_wait: float | None
    io_bytes: tuple[int, int] | None
    wall_after: float | None = None

    @classmethod
    def now(cls) -> ProcessUsage:
        """Read the clocks and counters now."""
        wall = time.perf_counter()
        cpu, run_queue_wait, io_bytes = time.process_time(), _read_schedstat(), _read_io()
        return cls(wall, cpu, run_queue_wait, io_bytes, time.perf_counter())

    def since(self, earlier: ProcessUsage) -> dict[str, Any]:
        """Return what was used from ``earlier`` to this reading, for a quantum's metadata.

        Keys: ``wall_time`` and ``cpu_time`` (s), and where readable ``run_queue_wait`` (s,
        the calling thread), ``read_bytes`` and ``write_bytes``.
        """
        used: dict[str, Any] = {
            "wall_time": (self.wall if self.wall_after is None else self.wall_after) - earlier.wall,
            "cpu_time": self.cpu - earlier.cpu,
        }
        if self.run_queue_wait is not None and earlier.run_queue_wait is not None:
            used["run_queue_wait"] = self.run_queue_wait - earlier.run_queue_wait
        if self.io_bytes is not None and earlier.io_bytes is not None:
            used["read_bytes"] = self.io_bytes[0] - earlier.io_bytes[0]
            used["write_bytes"] = self.io_bytes[1] - earlier.io_bytes[1]
        return used
