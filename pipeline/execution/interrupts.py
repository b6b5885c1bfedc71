"""Why an execution stops early: a stop signal, ``--fail-fast``, a full disk.

The signal handling is the butler's (`butler.interrupts`, shared with the ``butler``
commands): `catch_signals` yields a `StopRequest`; the first SIGINT or SIGTERM is only noted
and `StopRequest.check` raises it as `Interrupted` where the client is between steps (the
scheduling loop's waits poll it, a few times a second), so the run can stop its executor,
register what finished, write its status and print how to resume; a second signal before the
stop began raises at once. They are re-exported here, where the execution has always imported
them. The other reasons the loop stops early are defined here: `FailFastError`
(``--fail-fast``) and `DiskFullError` (the repository's disk filled up).
"""

from __future__ import annotations

from typing import Any

from butler.interrupts import Interrupted, StopRequest, catch_signals

__all__ = ["DiskFullError", "FailFastError", "Interrupted", "StopRequest", "catch_signals"]


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
