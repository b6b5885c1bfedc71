"""The dask.distributed executor.

Design
------
`DaskExecutor` owns (or borrows) a `distributed.Client`: a `LocalCluster` of ``jobs`` worker
processes with one thread each (warm processes reused across quanta), a client connected to
an external scheduler address, or one built from a cluster YAML spec by `cluster.get_client`.
`submit` sends one cluster of quanta as one dask task, with ``pure=False`` (re-running is
never a cache hit) and dask's own ``retries=0``: retries are decided by the shared
scheduling loop, so every attempt is seen and recorded. A worker that dies mid-quantum makes
dask reschedule the task on another worker, or raise ``KilledWorker``, which the loop treats
as a failed attempt. Only specs, payloads (refs and stored-file records) and outcomes travel
through the scheduler; datasets are read and written by the workers themselves.
Task resource hints become dask ``resources=``; the local cluster advertises ``cpus`` and
``memory_mb`` per worker, and hints no worker can meet are dropped or capped (never a hang).

A lost scheduler (the client's futures cancelled with "scheduler-connection-lost") makes
`wait` raise `~pipeline.execution.executors.base.ExecutorLostError`: the run stops there.

Each worker keeps a `~pipeline.execution.worker.WorkerCache` (limited butlers, built tasks) in a
`WorkerCachePlugin` that the executor registers on the client; `worker_cache`, passed to the
worker function, finds it on the worker running the task. `parallelism` (the total worker
threads) lets the scheduling loop batch independent clusters into one dask task.

Progress: `watch_quanta` subscribes the client to the `QUANTUM_TOPIC` events that
`report_quantum` logs on a worker when a quantum starts and ends (dask's structured events
travel through the scheduler), so the live display counts quanta actually running.

State: the client, and the cluster when this executor started it (closed by `close`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..local_workers import LOCAL_WORKER_MODULES
from ..worker import WorkerCache
from .base import WAIT_POLL_SECONDS, Executor, ExecutorLostError

__all__ = [
    "QUANTUM_TOPIC",
    "DaskExecutor",
    "IgnoreInterruptsPlugin",
    "WorkerCachePlugin",
    "report_quantum",
    "worker_cache",
]

_LOG = logging.getLogger(__name__)

#: dask event topic of the quanta starting and ending on workers (`report_quantum`).
QUANTUM_TOPIC = "skyquanta-quantum"


class WorkerCachePlugin(WorkerPlugin):
    """Give each dask worker process one `~pipeline.execution.worker.WorkerCache`.

    State: ``cache``, made when the plugin is set up on a worker.
    """

    name = "skyquanta-worker-cache"

    def __init__(self) -> None:
        self.cache: WorkerCache | None = None

    def setup(self, worker: Any) -> None:
        """Make the worker's cache."""
        self.cache = WorkerCache()

    def teardown(self, worker: Any) -> None:
        """Drop the cache."""
        self.cache = None


class IgnoreInterruptsPlugin(WorkerPlugin):
    """Make the worker processes of a cluster the client started ignore SIGINT.

    Ctrl-C in a terminal signals the whole process group: the client stops the run (and
    the cluster), and workers must not die first with their own ``KeyboardInterrupt``
    tracebacks. For the same reason the workers drop distributed's heartbeat error of a
    worker that is closing (`ClosingHeartbeatFilter`). Never registered on a cluster the
    executor did not start.
    """

    name = "skyquanta-ignore-interrupts"

    def setup(self, worker: Any) -> None:
        """Ignore SIGINT in the worker process (signals are set from its main thread)."""
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        logging.getLogger("distributed.worker").addFilter(ClosingHeartbeatFilter(worker))


class ClosingHeartbeatFilter(logging.Filter):
    """Drop "Failed to communicate with scheduler during heartbeat" of a closing worker.

    A worker that closes while one of its heartbeats is in flight closes the connection
    under it, and distributed logs that error with a traceback: a race inside its shutdown
    (seen about once in six Ctrl-C'd runs on a loaded machine), not a fault. The same error
    of a running worker is kept.
    """

    def __init__(self, worker: Any) -> None:
        super().__init__()
        self._worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for the heartbeat error of a worker that is closing or closed."""
        from distributed.core import Status

        closing = (Status.closing, Status.closing_gracefully, Status.closed)
        if getattr(self._worker, "status", None) not in closing:
            return True
        return not record.getMessage().startswith("Failed to communicate with scheduler")


def worker_cache() -> WorkerCache | None:
    """Return the cache of the dask worker running the caller (`None` outside a worker)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None
    plugin = worker.plugins.get(WorkerCachePlugin.name)
    return getattr(plugin, "cache", None)


def report_quantum(execution_id: str, node: int, event: str) -> None:
    """Tell the client that a quantum starts or ends on this worker (a dask event)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not on a worker: nobody to tell
        return
    worker.log_event(QUANTUM_TOPIC, [execution_id, node, event])


class _Closer:
    def __init__(self, close: Callable[[], None]) -> None:
        self.close = close


class DaskExecutor(Executor):
    """Run clusters of quanta on a dask.distributed cluster.

    Parameters
    ----------
    jobs : `int`
        Number of worker processes of the `LocalCluster` started when neither ``address``
        nor ``cluster_config`` nor ``client`` is given.
    address : `str`, optional
        Address of an external scheduler (``tcp://host:8786``) or a scheduler file path.
    cluster_config : `str`, optional
        Path of a cluster YAML spec (see ``cluster/``).
    client : `distributed.Client`, optional
        An existing client to use (not closed by `close`).
    dashboard_address : `str`, optional
        Dashboard address of a started `LocalCluster` (``":0"`` for any free port).
    """

    def __init__(
        self,
        *,
        jobs: int = 1,
        address: str | None = None,
        cluster_config: str | None = None,
        client: Any = None,
        dashboard_address: str | None = ":0",
    ) -> None:
        from distributed import Client

        from cluster import local_cluster

        self._owned: list[Any] = []
        self._lost = False  # the scheduler went away (see `wait`)
        self._keys = itertools.count()
        if client is not None:
            self.client = client
        elif address is not None or cluster_config is not None:
            from cluster import close_client, get_client

            client = get_client(cluster_config if cluster_config is not None else address)
            self.client = client
            self._owned.append(_Closer(lambda: close_client(client)))
        else:
            if jobs < 1:  # a LocalCluster without workers would wait for ever
                raise ValueError(f"jobs must be at least 1, got {jobs}")
            import psutil

            memory_mb = psutil.virtual_memory().total / 2**20 / max(jobs, 1)
            cluster = local_cluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=True,
                dashboard_address=dashboard_address,
                # advertised so that task resource hints (getResourceConfig) can be honoured
                resources={"cpus": 1.0, "memory_mb": float(int(memory_mb))},
                worker_preload=LOCAL_WORKER_MODULES,
            )
            self._owned.extend([cluster])
            self.client = Client(cluster)
            self._owned.insert(0, self.client)
        self.dashboard_link = getattr(self.client, "dashboard_link", None)
        self._capacity: dict[str, float] | None = None
        self._warned: set[str] = set()
        try:
            self.client.register_plugin(WorkerCachePlugin(), name=WorkerCachePlugin.name)
        except Exception as err:  # workers still run, building butlers and tasks per call
            _LOG.warning("could not register the worker cache plugin: %s", err)
        if client is None and address is None and cluster_config is None:  # our LocalCluster
            self.client.register_plugin(IgnoreInterruptsPlugin(), name=IgnoreInterruptsPlugin.name)

    def parallelism(self) -> int:
        """Return the number of worker threads (at least 1)."""
        try:
            threads = self.client.nthreads()
        except Exception:  # not connected yet: assume one
            return 1
        return max(1, sum(threads.values()))

    def run_options(self) -> dict[str, Any]:
        """Pass `worker_cache`: the worker function finds its worker's cache."""
        return {"cache": worker_cache}

    def watch_quanta(
        self, callback: Callable[[str, int, str], None]
    ) -> Callable[[str, int, str], None] | None:
        """Subscribe to the workers' `QUANTUM_TOPIC` events; return `report_quantum`."""

        def on_event(event: tuple[float, Any]) -> None:
            execution_id, node, what = event[1]
            callback(execution_id, node, what)

        try:
            self.client.subscribe_topic(QUANTUM_TOPIC, on_event)
        except Exception as err:  # progress falls back to an estimate
            _LOG.debug("cannot subscribe to the workers' quantum events: %s", err)
            return None
        return report_quantum

    def unwatch_quanta(self) -> None:
        """Unsubscribe from the quantum events."""
        try:
            self.client.unsubscribe_topic(QUANTUM_TOPIC)
        except Exception as err:  # already closed or never subscribed
            _LOG.debug("unsubscribing from the quantum events: %s", err)

    def submit(
        self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None
    ) -> Any:
        """Submit ``fn(*args)`` as one dask task (``pure=False``, no dask retries)."""
        name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "fn")
        resources = self._feasible(resources) if resources else None
        return self.client.submit(
            fn,
            *args,
            key=f"{name}-{next(self._keys)}-{id(self):x}",
            pure=False,
            retries=0,
            resources=resources or None,
        )

    def _feasible(self, resources: dict[str, float]) -> dict[str, float] | None:
        """Keep the resource hints some worker can satisfy (a hint nobody meets would hang).

        A resource no worker advertises is dropped, and a request above the largest worker's
        capacity is capped to it; each is logged once.
        """
        if self._capacity is None:
            capacity: dict[str, float] = {}
            try:
                workers = self.client.scheduler_info().get("workers", {})
            except Exception:  # not connected: submit without hints
                workers = {}
            for info in workers.values():
                for key, value in (info.get("resources") or {}).items():
                    capacity[key] = max(capacity.get(key, 0.0), float(value))
            self._capacity = capacity
        feasible = {}
        for key, value in resources.items():
            available = self._capacity.get(key)
            if available is None:
                if key not in self._warned:
                    _LOG.warning("no dask worker advertises resource %r; the hint is ignored", key)
                    self._warned.add(key)
                continue
            if value > available:
                if key not in self._warned:
                    _LOG.warning(
                        "resource %r=%s exceeds every worker (%s); capped", key, value, available
                    )
                    self._warned.add(key)
                value = available
            feasible[key] = value
        return feasible or None

    def wait(
        self, handles: list[Any], poll: Callable[[], None] | None = None
    ) -> Iterable[Any]:
        """Block until at least one future is finished; return the finished ones."""
        from distributed import wait
        from distributed.client import FuturesCancelledError

        timeout = WAIT_POLL_SECONDS if poll is not None else None
        try:
            while True:
                try:
                    done, _ = wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
                    break
                except TimeoutError:
                    poll()  # type: ignore[misc]  # a timeout is only set with a poll
        except FuturesCancelledError as err:  # we never cancel: the scheduler is gone
            self._lost = True
            address = getattr(self.client.scheduler, "address", None) or "?"
            raise ExecutorLostError(
                f"lost the dask scheduler at {address} ({self.client.status}): "
                f"{len(handles)} submissions cancelled"
            ) from err
        return list(done)

    def close(self) -> None:
        """Close the client and cluster this executor started.

        After a lost scheduler, distributed's own error logs of the client's abandoned
        reconnection (tracebacks of cancelled coroutines) are silenced: the run says what
        happened in one line.
        """
        quiet = ("distributed.client", "distributed.utils", "distributed.comm")
        levels = {name: logging.getLogger(name).level for name in quiet}
        if self._lost:
            for name in quiet:
                logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        try:
            for thing in self._owned:
                try:
                    thing.close()
                except Exception as err:  # closing must not hide the run's result
                    _LOG.warning("error while closing %r: %s", thing, err)
            self._owned.clear()
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
