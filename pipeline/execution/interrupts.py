"""Stopping an execution on SIGINT (Ctrl-C) or SIGTERM, with the registry left consistent.

Design
------
`catch_signals` yields a `StopRequest`. The first SIGINT or SIGTERM inside the block is only
noted; `StopRequest.check` raises it as `Interrupted` where the client is between steps (the
scheduling loop's waits poll it, a few times a second), so the run can stop its executor,
register what finished, write its status and print how to resume. The exception is never
raised from inside the code that happened to run when the signal came: raised at an arbitrary
bytecode it can leave a lock taken in a library (a `threading.Condition` of SQLAlchemy's
connection pool whose ``__enter__`` was cut short) or the registry's write lock held by a
connection nobody will close, and the stop then hangs. A second signal before the stop began
raises at once (a quantum running in this process may take long; the user asked twice);
signals after that are noted and otherwise ignored. `Interrupted` derives from
`BaseException`, like `KeyboardInterrupt`, so that the ``except Exception`` of task and
executor code does not swallow it. Outside the main thread (signals cannot be caught there)
nothing is caught. The other reasons the loop stops early are here too: `FailFastError`
(``--fail-fast``) and `DiskFullError` (the repository's disk filled up).

State: the previous handlers, restored when the block ends, and the signal received.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["DiskFullError", "FailFastError", "Interrupted", "StopRequest", "catch_signals"]

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


class StopRequest:
    """The stop signal an execution received, raised as `Interrupted` where it is safe.

    State: the first signal received (`None` until one comes) and whether it was raised.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.raised = False

    def check(self) -> None:
        """Raise `Interrupted` if a stop signal came and was not raised yet.

        Raises
        ------
        Interrupted
            The first time it is called after a signal.
        """
        if self.signum is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.signum)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is None:
            self.signum = signum  # raised by the next `check`
            return
        if self.raised:
            _LOG.warning("%s again: still stopping", signal.Signals(signum).name)
            return
        self.raised = True  # asked twice before the stop began: at once, wherever it is
        raise Interrupted(self.signum)


@contextlib.contextmanager
def catch_signals() -> Iterator[StopRequest]:
    """Note SIGINT and SIGTERM inside the block (main thread); see `StopRequest`."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.signal(signum, request._handle) for signum in _CAUGHT}
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
