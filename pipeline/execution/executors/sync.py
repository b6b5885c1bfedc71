"""The synchronous executor: every cluster runs in this process, when submitted.

Design
------
`SyncExecutor.submit` returns a deferred handle; `wait` returns the oldest handle, and its
``result()`` runs the function (once) in this process. The shared scheduling loop therefore
runs clusters one after another in dependency order, registering each one's outputs before the
next starts (so a killed client loses at most one cluster), which makes it the
executor for tests and debugging: with ``pdb=True`` a failing task drops into
``pdb.post_mortem`` at the point of failure, before the executor cleans up. State: the ``pdb``
flag and a `~pipeline.execution.worker.WorkerCache` (butlers and tasks reused across clusters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..worker import WorkerCache
from .base import Executor

__all__ = ["SyncExecutor"]


class _Deferred:
    """A call made when its result is first asked for; state: the call, then its result."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._call: tuple[Callable[..., Any], tuple[Any, ...]] | None = (fn, args)
        self._result: Any = None

    def result(self) -> Any:
        if self._call is not None:
            fn, args = self._call
            self._call = None
            self._result = fn(*args)
        return self._result


class SyncExecutor(Executor):
    """Run clusters in-process, one at a time.

    Parameters
    ----------
    pdb : `bool`
        Enter the post-mortem debugger on each task failure.
    """

    def __init__(self, *, pdb: bool = False) -> None:
        self.pdb = pdb
        self.cache = WorkerCache()

    def submit(
        self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None
    ) -> _Deferred:
        """Return a handle whose ``result()`` runs ``fn(*args)`` (once)."""
        return _Deferred(fn, args)

    def wait(
        self, handles: list[Any], poll: Callable[[], None] | None = None
    ) -> Iterable[Any]:
        """Return the oldest handle (it runs when its result is asked for), after ``poll()``."""
        if poll is not None:
            poll()
        return handles[:1]

    def run_options(self) -> dict[str, Any]:
        """Pass the cache, and ``pdb.post_mortem`` when debugging, to the worker function."""
        options: dict[str, Any] = {"cache": self.cache}
        if self.pdb:
            import pdb  # only when debugging: 30 ms of start-up otherwise

            options["post_mortem"] = pdb.post_mortem
        return options

    def watch_quanta(
        self, callback: Callable[[str, int, str], None]
    ) -> Callable[[str, int, str], None] | None:
        """Report quanta by calling ``callback`` directly: they run in this process."""
        return callback
