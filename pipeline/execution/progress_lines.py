"""Progress without a terminal: one line every few seconds, for batch jobs and CI logs.

When standard error is not a terminal, a live table cannot be redrawn, so `ProgressLines`
prints, from a daemon thread, one self-contained line every ``interval`` seconds (and one at the
end)::

    progress 0:01:05 | 412/1000 done (41%), running 2, queued 38, failed 1, blocked 3 |
    6.3 quanta/s, ETA 0:01:33 | characterizeImage 400/900 (2 running), calibrate 12/100

Rate and ETA count only quanta finished by this execution (not those skipped as already done).
The interval is ``SKYQUANTA_PROGRESS_INTERVAL`` seconds (default 5).

State: the thread, its stop event and the start time, inside each instance.
"""

from __future__ import annotations

import datetime
import os
import sys
import threading
import time
from typing import IO, Any

__all__ = ["DEFAULT_INTERVAL", "INTERVAL_ENV", "ProgressLines", "progress_interval"]

#: Seconds between two lines unless ``SKYQUANTA_PROGRESS_INTERVAL`` says otherwise.
DEFAULT_INTERVAL = 5.0
INTERVAL_ENV = "SKYQUANTA_PROGRESS_INTERVAL"


def progress_interval() -> float:
    """Return the interval from the environment (a bad value falls back to the default)."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(seconds))))


class ProgressLines:
    """Print `line` every ``interval`` seconds from a daemon thread.

    Parameters
    ----------
    progress : `pipeline.execution.progress.Progress`
        Whose counts are read (``snapshot``).
    interval : `float`
        Seconds between lines.
    stream : file-like, optional
        Where lines go (default standard error).
    """

    def __init__(self, progress: Any, interval: float, stream: IO[str] | None = None) -> None:
        self.progress = progress
        self.interval = interval
        self.stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self._done_at_start = 0

    def line(self) -> str:
        """Return the current progress line."""
        rows, totals = self.progress.snapshot()
        elapsed = time.monotonic() - self._start
        done, total = totals["done"], totals["total"]
        finished_here = done - self._done_at_start
        rate = finished_here / elapsed if elapsed > 0 else 0.0
        left = total - done - totals["failed"] - totals["blocked"]
        eta = _clock(left / rate) if rate > 0 and left > 0 else ("0:00:00" if left <= 0 else "?")
        percent = 100.0 * done / total if total else 100.0
        tasks = ", ".join(
            f"{label} {row['done']}/{row['total']}"
            + (f" ({row['running']} running)" if row["running"] else "")
            + (f" ({row['failed']} failed)" if row["failed"] else "")
            for label, row in rows.items()
        )
        return (
            f"progress {_clock(elapsed)} | {done}/{total} done ({percent:.0f}%), running "
            f"{totals['running']}, queued {totals['queued']}, failed {totals['failed']}, blocked "
            f"{totals['blocked']} | {rate:.2f} quanta/s, ETA {eta} | {tasks}"
        )

    def _emit(self) -> None:
        print(self.line(), file=self.stream or sys.stderr, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit()

    def start(self) -> None:
        """Start printing (the counts at this moment are 'already done')."""
        self._start = time.monotonic()
        self._done_at_start = self.progress.snapshot()[1]["done"]
        self._thread = threading.Thread(target=self._loop, name="progress-lines", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and print the final line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._emit()
