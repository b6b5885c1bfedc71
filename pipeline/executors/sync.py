"""The synchronous executor: every cluster runs in this process, when submitted.

Design
------
`SyncExecutor.submit` calls the function at once and returns an already-finished
`concurrent.futures.Future`; `wait` returns every handle. The shared scheduling loop therefore
runs clusters one after another in dependency order, in this process, which makes it the
executor for tests and debugging: with ``pdb=True`` a failing task drops into
``pdb.post_mortem`` at the point of failure, before the executor cleans up. No state besides
the ``pdb`` flag.
"""

from __future__ import annotations

import concurrent.futures
import pdb as _pdb
from collections.abc import Callable, Iterable
from typing import Any

from .base import Executor

__all__ = ["SyncExecutor"]


class SyncExecutor(Executor):
    """Run clusters in-process, one at a time.

    Parameters
    ----------
    pdb : `bool`
        Enter the post-mortem debugger on each task failure.
    """

    def __init__(self, *, pdb: bool = False) -> None:
        self.pdb = pdb

    def submit(
        self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None
    ) -> concurrent.futures.Future:
        """Run ``fn(*args)`` now; return a finished future holding its result or exception."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        return future

    def wait(self, handles: list[Any]) -> Iterable[Any]:
        """Return every handle (all are finished)."""
        return list(handles)

    def run_options(self) -> dict[str, Any]:
        """Pass ``pdb.post_mortem`` to the worker function when debugging."""
        return {"post_mortem": _pdb.post_mortem} if self.pdb else {}
