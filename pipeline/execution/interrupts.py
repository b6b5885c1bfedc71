"""Stopping an execution on SIGINT (Ctrl-C) or SIGTERM, with the registry left consistent.

Design
------
`catch_signals` makes the first SIGINT or SIGTERM raise `Interrupted` in the main thread
(where the client's scheduling loop runs), so the run can stop its executor, register what
finished, write its status and print how to resume; further signals while it does so are
noted and otherwise ignored. `Interrupted` derives from `BaseException`, like
`KeyboardInterrupt`, so that the ``except Exception`` of task and executor code does not
swallow it. Outside the main thread (signals cannot be caught there) it does nothing.
The other reasons the loop stops early are here too: `FailFastError` (``--fail-fast``) and
`DiskFullError` (the repository's disk filled up).

State: the previous handlers, restored when the block ends, and whether a signal came.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["DiskFullError", "FailFastError", "Interrupted", "catch_signals"]

_LOG = logging.getLogger("pipeline.execution.run")

_CAUGHT = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """The execution received a stop signal.

    Parameters
    ----------
    signum : `int`
        The signal number; the conventional exit code is ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        """The signal's name (``SIGINT``, ``SIGTERM``)."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """``128 + signum``: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class FailFastError(RuntimeError):
    """``--fail-fast``: the execution stops at its first failed quantum (exit code 1).

    Parameters
    ----------
    label : `str`
        Task label of the failed quantum.
    data_id : `dict`
        Its data ID.
    """

    def __init__(self, label: str, data_id: dict[str, Any]) -> None:
        super().__init__(f"stopped at the first failure (--fail-fast): {label} {data_id}")


class DiskFullError(RuntimeError):
    """The repository's disk filled up: the execution stops (exit code 1), as for a signal.

    Every other quantum would fail the same way; what finished is registered, and
    ``--resume`` finishes the run once space is freed.

    Parameters
    ----------
    reason : `str`
        The first error that said so (one line).
    """

    #: How its message starts.
    PREFIX = "stopped because the disk is full"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{self.PREFIX} ({reason}); free some space")


@contextlib.contextmanager
def catch_signals() -> Iterator[None]:
    """Raise `Interrupted` on the first SIGINT or SIGTERM inside the block (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if received:
            _LOG.warning("%s again: still stopping", signal.Signals(signum).name)
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in _CAUGHT}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
