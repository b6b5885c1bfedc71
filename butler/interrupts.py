"""Stopping on SIGINT (Ctrl-C) or SIGTERM between steps, with the registry left consistent.

Design
------
`catch_signals` yields a `StopRequest`. The first SIGINT or SIGTERM inside the block is only
noted; `StopRequest.check` raises it as `Interrupted` where the caller is between steps (a
``pipetask run`` client between registrations and while it waits for workers; a ``butler``
command between the files it transfers, and when it returns). The exception is never raised
from inside the code that happened to run when the signal came: raised at an arbitrary
bytecode it can leave a lock taken in a library (a `threading.Condition` of SQLAlchemy's
connection pool whose ``__enter__`` was cut short) or the registry's write lock held by a
connection nobody will close, and the stop then hangs. A second signal before the stop began
raises at once (a step may take long; the user asked twice); signals after that are logged
and otherwise ignored. `Interrupted` derives from `BaseException`, like `KeyboardInterrupt`,
so that ``except Exception`` does not swallow it, while ``except BaseException`` clean-ups
(`Butler.ingest` removing the files it transferred) and the registry transaction's rollback
still run. Outside the main thread (signals cannot be caught there) nothing is caught.

`stops_between_steps` applies this to a ``butler`` command: the whole command runs inside
`catch_signals`, it may check the request between its steps, and a signal it never checked
ends it when it returns; `butler.cli.butler_errors` turns `Interrupted` into exit code
``128 + signum`` (130, 143).

The pipeline's execution imports these names from `pipeline.execution.interrupts`, which
adds its own early-stop reasons.

State: the previous handlers, restored when the block ends, and the signal received.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Interrupted", "StopRequest", "catch_signals", "stops_between_steps"]

_LOG = logging.getLogger(__name__)

_CAUGHT = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """A stop signal was received.

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


class StopRequest:
    """The stop signal received, raised as `Interrupted` where it is safe.

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


def stops_between_steps(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command inside `catch_signals`; a signal stops it between steps, never inside one.

    A command with a ``stop`` parameter receives the `StopRequest` and passes ``stop.check``
    to what it calls between its steps (`Butler.ingest`'s ``check_stop``); any command that
    returns after a signal raises `Interrupted` then.

    Parameters
    ----------
    func : callable
        The command's callback.

    Returns
    -------
    wrapped : callable
        The callback, for `butler.cli.butler_errors` to wrap (it turns `Interrupted` into
        exit code ``128 + signum``).
    """
    takes_stop = "stop" in inspect.signature(func).parameters

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with catch_signals() as stop:
            if takes_stop:
                kwargs["stop"] = stop
            result = func(*args, **kwargs)
            stop.check()
        return result

    if takes_stop:  # click passes the command's options only
        signature = inspect.signature(func)
        params = [p for name, p in signature.parameters.items() if name != "stop"]
        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper
