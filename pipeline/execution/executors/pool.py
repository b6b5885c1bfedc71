"""The process-pool executor: ``pipetask run -j N`` on this machine, without dask.

Design
------
A small run spends most of its time starting machinery: a local dask cluster costs the client
~0.5 s of CPU to import distributed and host the scheduler, and each worker ~0.1 s to start
and connect, for quanta that take milliseconds. `PoolExecutor` runs the same worker function
(`~pipeline.execution.worker.run_quantum_cluster`) in ``jobs`` worker processes of its own,
each one a process forked from the server of `cluster.worker_server` (imports done once; a
spawned process where a fork would not see what a spawned one would), talking to the client
over a pipe, as LSST's ``pipetask -j N`` uses a multiprocessing pool. What a dask cluster does
for a run, it does the same way:

- one submission (one cluster or batch of quanta) runs at a time per worker, in submission
  order; each worker keeps a `~pipeline.execution.worker.WorkerCache` for its life;
- a worker that dies while it runs a submission (killed, out of memory) is replaced, and the
  submission runs again on a live worker, at most `ALLOWED_FAILURES` times (dask's
  ``distributed.scheduler.allowed-failures``); then its result raises `WorkerDiedError`,
  which the scheduling loop counts as a failed attempt of each of its quanta, as dask's
  ``KilledWorker``;
- workers report each quantum's start and end (`watch_quanta`) through the same pipe; the
  client hands them to the live display while it waits;
- workers ignore SIGINT (Ctrl-C in a terminal signals the whole process group: the client
  stops the run and `close` kills the workers that are still running something), and exit
  when the client goes away (their pipe closes);
- an error of the worker function itself (not of a task: those are outcomes) is raised by
  the submission's ``result()`` as it was raised in the worker (or as a `RuntimeError` with
  its text when it cannot be pickled).

- each worker has a memory limit, by default dask's (the machine's memory over the number
  of workers): the client looks at the resident memory of the busy workers every
  `WAIT_POLL_SECONDS` and kills one past `MEMORY_TERMINATE_FRACTION` of it, as a dask nanny
  does; that counts as the worker dying (its submission runs again, at most
  `ALLOWED_FAILURES` times, and the error says the memory limit killed it).

There is no dashboard: a run that wants one asks for ``--executor dask``.

State: the worker processes and their pipes, the submission each one runs, the queue of
submissions waiting for a free worker, the workers killed for their memory (client side);
the pipe and cache of a worker process (module level, set in the worker by `_serve`).
"""

from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import pickle
import signal
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from typing import Any

from ..worker import WorkerCache
from .base import WAIT_POLL_SECONDS, Executor

__all__ = [
    "ALLOWED_FAILURES",
    "MEMORY_TERMINATE_FRACTION",
    "POOL_PROCESS_NAME",
    "PoolExecutor",
    "WorkerDiedError",
    "default_memory_limit",
]

_LOG = logging.getLogger(__name__)

#: Times a submission is run again after the worker running it died (dask's default).
ALLOWED_FAILURES = 3
#: Name of the pool's worker processes (``multiprocessing.Process.name``).
POOL_PROCESS_NAME = "skyquanta pool worker"
#: A worker whose resident memory passes this fraction of its limit is killed (dask's
#: ``distributed.worker.memory.terminate``).
MEMORY_TERMINATE_FRACTION = 0.95

#: In a worker process: its pipe to the client and its cache (set by `_serve`).
_connection: Connection | None = None
_cache: WorkerCache | None = None


class WorkerDiedError(RuntimeError):
    """The worker processes that ran a submission died each time (as dask's KilledWorker)."""


def _serve(connection: Connection) -> None:
    """Run submissions from the client until it says stop or goes away (a worker process)."""
    global _connection, _cache
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _connection, _cache = connection, WorkerCache()
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):  # the client is gone
            return
        if message is None:
            return
        key, fn, args = message
        try:
            reply: tuple[Any, ...] = ("done", key, fn(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the client
            reply = ("error", key, _picklable(err))
        try:
            connection.send(reply)
        except (EOFError, OSError):
            return


def _picklable(error: BaseException) -> BaseException:
    """Return ``error`` if it pickles, else a `RuntimeError` with its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any pickling problem
        return RuntimeError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")
    return error


def worker_cache() -> WorkerCache | None:
    """Return the cache of the pool worker running the caller (`None` elsewhere)."""
    return _cache


def report_quantum(execution_id: str, node: int, event: str) -> None:
    """Tell the client that a quantum starts or ends in this worker process."""
    if _connection is not None:
        _connection.send(("event", execution_id, node, event))


class _Submission:
    """One ``fn(*args)`` of the pool; state: its result or error once done, worker deaths."""

    def __init__(self, key: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.key, self.fn, self.args = key, fn, args
        self.deaths = 0
        self.done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def finish(self, value: Any = None, error: BaseException | None = None) -> None:
        self.done, self._value, self._error = True, value, error
        self.args = ()  # the payload is no longer needed

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


def default_memory_limit(jobs: int) -> int:
    """Return dask's default memory limit of one of ``jobs`` local workers (bytes).

    The machine's memory (or the process's address-space limit, if lower) over ``jobs``.
    """
    import resource

    import psutil

    total = psutil.virtual_memory().total
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        total = min(total, soft)
    return max(1, total // max(1, jobs))


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


class _Worker:
    """A worker process, its pipe, and the submission it runs (`None`: idle)."""

    def __init__(self, context: Any) -> None:
        ours, theirs = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(theirs,), name=POOL_PROCESS_NAME, daemon=True
        )
        self.process.start()
        theirs.close()
        self.connection: Connection = ours
        self.running: _Submission | None = None
        self.killed_for_memory: str | None = None  # why, if the client killed it

    def resident_bytes(self) -> int | None:
        """Return the process's resident memory, `None` if it is gone."""
        import psutil

        try:
            return int(psutil.Process(self.process.pid).memory_info().rss)
        except (psutil.Error, ValueError, TypeError):
            return None


class PoolExecutor(Executor):
    """Run clusters of quanta on ``jobs`` local worker processes (no dask).

    Parameters
    ----------
    jobs : `int`
        Worker processes (at least 1).
    memory_limit : `int`, optional
        Bytes of resident memory each worker may use (`MEMORY_TERMINATE_FRACTION` of it
        kills the worker); default `default_memory_limit`, 0: no limit.
    """

    def __init__(self, jobs: int, memory_limit: int | None = None) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        if memory_limit is not None and memory_limit < 0:
            raise ValueError(f"memory_limit must be at least 0, got {memory_limit}")
        self.jobs = jobs
        self.memory_limit = default_memory_limit(jobs) if memory_limit is None else memory_limit
        self._context = _context()
        self._workers = [_Worker(self._context) for _ in range(jobs)]
        self._queue: collections.deque[_Submission] = collections.deque()
        self._keys = itertools.count()
        self._running: dict[int, _Submission] = {}
        self._callback: Callable[[str, int, str], None] | None = None
        self._prefetch: Callable[..., None] | None = None
        self._prefetched: int | None = None  # key of the submission last prefetched
        self._closed = False

    def parallelism(self) -> int:
        """Return the number of worker processes."""
        return self.jobs

    def run_options(self) -> dict[str, Any]:
        """Pass `worker_cache`: the worker function finds its process's cache."""
        return {"cache": worker_cache}

    def watch_quanta(
        self, callback: Callable[[str, int, str], None]
    ) -> Callable[[str, int, str], None] | None:
        """Have workers report quanta through their pipes; return `report_quantum`."""
        self._callback = callback
        return report_quantum

    def unwatch_quanta(self) -> None:
        """Drop the workers' reports."""
        self._callback = None

    def prefetch_next(self, prefetch: Callable[..., None] | None) -> None:
        """Call ``prefetch(*args)`` with the arguments of the submission that runs next.

        Called when a worker takes a submission and another waits in the queue: that one
        goes to the next worker to finish, and its inputs can be read from the disk while the
        workers compute (`~butler.datastore.file_datastore.FileDatastore.advise_will_read`).
        What ``prefetch`` raises is logged and ignored.
        """
        self._prefetch = prefetch

    def submit(
        self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None
    ) -> _Submission:
        """Queue ``fn(*args)`` for the next free worker (``resources``: one worker each)."""
        submission = _Submission(next(self._keys), fn, args)
        self._queue.append(submission)
        self._dispatch()
        return submission

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._queue:
                return
            if worker.running is None:
                submission = self._queue.popleft()
                worker.running = submission
                try:
                    worker.connection.send((submission.key, submission.fn, submission.args))
                except (EOFError, OSError):  # it died idle: seen by the next wait
                    pass
        if self._prefetch is not None and self._queue and self._prefetched != self._queue[0].key:
            following = self._queue[0]
            self._prefetched = following.key
            try:
                self._prefetch(*following.args)
            except Exception as err:  # noqa: BLE001 - a hint only
                _LOG.debug("prefetching the next submission's inputs failed: %s", err)

    def wait(
        self, handles: list[Any], poll: Callable[[], None] | None = None
    ) -> Iterable[Any]:
        """Block until at least one submission is finished; return the finished ones."""
        timeout = WAIT_POLL_SECONDS if poll is not None or self.memory_limit else None
        while True:
            done = [handle for handle in handles if handle.done]
            if done:
                return done
            busy = [worker for worker in self._workers if worker.running is not None]
            if not busy:  # cannot happen: a pending submission is queued or running
                raise RuntimeError("no worker runs the submissions waited for")
            waited = [w.connection for w in busy] + [w.process.sentinel for w in busy]
            ready = set(wait(waited, timeout=timeout))
            if not ready and poll is not None:
                poll()
            if self.memory_limit:
                self._enforce_memory_limit(busy)
            for worker in busy:
                if worker.connection in ready or worker.process.sentinel in ready:
                    # what it sent before it died counts; then a dead worker is replaced
                    alive = self._receive(worker)
                    if not alive or not worker.process.is_alive():
                        self._replace(worker)
            self._dispatch()

    def _enforce_memory_limit(self, busy: list[_Worker]) -> None:
        """Kill a busy worker past `MEMORY_TERMINATE_FRACTION` of its memory limit."""
        for worker in busy:
            rss = worker.resident_bytes()
            if rss is None or rss <= MEMORY_TERMINATE_FRACTION * self.memory_limit:
                continue
            worker.killed_for_memory = (  # said when it is replaced
                f"it used {_gib(rss)}, over its memory limit of {_gib(self.memory_limit)}"
            )
            worker.process.kill()

    def _receive(self, worker: _Worker) -> bool:
        """Handle the messages waiting on a worker's pipe; False if the worker is gone."""
        try:
            while worker.connection.poll():
                message = worker.connection.recv()
                if message[0] == "event":
                    if self._callback is not None:
                        self._callback(*message[1:])
                    continue
                kind, _key, value = message
                submission, worker.running = worker.running, None
                if submission is not None:
                    if kind == "done":
                        submission.finish(value)
                    else:
                        submission.finish(error=value)
                return True
        except (EOFError, OSError):
            return False
        return True

    def _replace(self, worker: _Worker) -> None:
        """Start another worker for a dead one; run its submission again, or fail it."""
        worker.process.join(5)
        code = worker.process.exitcode
        worker.connection.close()
        submission, worker.running = worker.running, None
        index = self._workers.index(worker)
        self._workers[index] = _Worker(self._context)
        if submission is None:
            return
        submission.deaths += 1
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if worker.killed_for_memory is not None:
            how = f"killed: {worker.killed_for_memory}"
        _LOG.warning("a local worker process died (%s); replaced", how)
        if submission.deaths > ALLOWED_FAILURES:
            submission.finish(
                error=WorkerDiedError(
                    f"the worker process running it died {submission.deaths} times (last: {how})"
                )
            )
        else:
            self._queue.appendleft(submission)

    def close(self) -> None:
        """Stop the workers: idle ones when told, busy ones killed; wait for all of them."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            try:
                if worker.running is None:
                    worker.connection.send(None)
                else:
                    worker.process.kill()
            except (EOFError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
            worker.connection.close()
        self._queue.clear()


def _context() -> Any:
    """Return the multiprocessing context of the workers: forkserver when it matches.

    The server is launched here if it is not yet (``pipetask run`` launches it first thing).
    """
    from cluster import start_worker_server

    from ..local_workers import POOL_WORKER_MODULES

    if start_worker_server(POOL_WORKER_MODULES, with_dask=False):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")
