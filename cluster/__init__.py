"""How to get a dask cluster: local processes, an external scheduler, SLURM or Kubernetes.

`get_client` takes a scheduler address (``tcp://host:8786``), a scheduler file (JSON written by
``dask scheduler --scheduler-file``), or a cluster YAML spec (see ``local.yaml``,
``slurm.yaml``, ``kubernetes.yaml``)::

    kind: local | slurm | kubernetes
    workers: 4              # scaled after creation (jobqueue, kubernetes)
    scheduler_address: 0.0.0.0:8786   # slurm: where the scheduler listens (workers reach it)
    startup_timeout: 600    # slurm/kubernetes: seconds to wait for the first worker
    options: {...}          # keyword arguments of the cluster class
    dask_config: {...}      # dask settings while the cluster starts (local: see below)

A batch cluster that gets no worker within ``startup_timeout`` seconds (or whose job
submission fails, e.g. no ``sbatch`` on this machine) is closed and `ClusterStartupError`
says so, with the submission error: before, the client had zero workers and a run waited in
silence while the error went to an asyncio warning. The Kubernetes cluster is built from
`kubernetes_cluster_spec` (dask-kubernetes' ``make_cluster_spec``), whose image is the one
``cluster/Dockerfile`` builds.

Local clusters (the embedded ``-j N`` cluster, ``kind: local``, ``simulate -j``) start with
`LOCAL_CLUSTER_DASK_CONFIG` unless the spec's ``dask_config`` says otherwise:

- workers without dask's statistical profiler, and with glibc's own heap trimming instead
  of dask's 64 KiB ``MALLOC_TRIM_THRESHOLD_``. Measured on 6 quanta of cache-resident FFTs
  (numpy calls that each allocate and free 64 KiB), one worker: 4.8 s with dask's
  defaults, 3.7 s without the trim threshold, 3.6 s with neither; in a bare process 2.8 s;
- fewer housekeeping wake-ups (event-loop tick every 1 s instead of 20 ms, system monitor
  every 1 s, the nanny's memory check every 250 ms instead of 100 ms). An idle 2-worker
  cluster (profiler already off) used 1.1 s of CPU per 10 s with dask's intervals (client
  0.58 s, workers 0.53 s), 0.28 s with these: CPU that quanta get back on a machine
  whose cores are all workers;
- worker processes forked from a server that imported dask once (`cluster.worker_server`),
  instead of each spawned and importing it (~0.6 s of CPU per worker); spawned when a forked
  one would not see this process's environment, ``sys.path`` and working directory.

dask-jobqueue and dask-kubernetes are imported only when their kind is asked for, with a clear
error if missing. The returned client owns the cluster it started (closing the client's
cluster is the caller's job via ``client.cluster.close()`` or `close_client`). No state here
(the worker server's is in `cluster.worker_server`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ._errors import ClusterDependencyError, ClusterError, ClusterSpecError, ClusterStartupError

__all__ = [
    "LOCAL_CLUSTER_DASK_CONFIG",
    "SPEC_DIR",
    "ClusterDependencyError",
    "ClusterError",
    "ClusterSpecError",
    "ClusterStartupError",
    "close_client",
    "get_client",
    "kill_local_workers",
    "kubernetes_cluster_spec",
    "load_spec",
    "local_cluster",
    "slurm_cluster_options",
    "start_worker_server",
]

_LOG = logging.getLogger(__name__)

#: Seconds a batch cluster may take to start its first worker, unless the spec says.
DEFAULT_STARTUP_TIMEOUT = 600.0
#: Loggers through which distributed reports a failed job submission (an error in a callback).
_SUBMISSION_LOGGERS = ("tornado.application", "asyncio", "distributed.deploy.spec")

#: Folder of the shipped cluster specs.
SPEC_DIR = Path(__file__).parent

_KINDS = {
    "local": ("distributed", "LocalCluster", None),
    "slurm": ("dask_jobqueue", "SLURMCluster", "dask-jobqueue"),
    "kubernetes": ("dask_kubernetes.operator", "KubeCluster", "dask-kubernetes"),
}


#: dask settings for local clusters (see the module notes for the measurements). The
#: sampling profiler wakes every 10 ms and takes the GIL from numpy code that releases it;
#: a 64 KiB trim threshold hands freed heap back to the kernel after nearly every temporary
#: array, so the next one page-faults it in again; the intervals are housekeeping wake-ups.
LOCAL_CLUSTER_DASK_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "1s",
    "distributed.worker.memory.monitor-interval": "250ms",
    # workers fork from a server that imported dask once (`cluster.worker_server`)
    "distributed.worker.multiprocessing-method": "forkserver",
}
_METHOD = "distributed.worker.multiprocessing-method"


def local_cluster(
    dask_config: dict[str, Any] | None = None,
    *,
    worker_preload: Sequence[str] = (),
    **options: Any,
) -> Any:
    """Start a `distributed.LocalCluster` with `LOCAL_CLUSTER_DASK_CONFIG`.

    Worker processes fork from the server of `cluster.worker_server` (launched here if not
    yet) when it gives them what a spawned worker would get; otherwise they are spawned.

    Parameters
    ----------
    dask_config : `dict`, optional
        dask settings that override `LOCAL_CLUSTER_DASK_CONFIG` (e.g.
        ``{"distributed.worker.profile.enabled": True}`` for the dashboard's profile).
    worker_preload : sequence of `str`, optional
        Modules the workers will import: imported once by the fork server.
    **options
        Keyword arguments of `~distributed.LocalCluster`.
    """
    import dask
    from distributed import LocalCluster

    # Worker processes take a copy of the configuration when they are started, so the
    # settings only need to hold while the cluster starts.
    with dask.config.set({**LOCAL_CLUSTER_DASK_CONFIG, **(dask_config or {})}):
        if options.get("processes", True) and not _start_worker_server(worker_preload):
            with dask.config.set({_METHOD: "spawn"}):
                return LocalCluster(**options)
        return LocalCluster(**options)


def kill_local_workers() -> int:
    """Kill the worker processes that local clusters of this process started; return how many.

    For a local cluster whose start is given up (a worker that never connects, a stop
    signal while it starts): its nannies run in this process and cannot be closed while the
    start hangs, but the worker processes are this process's multiprocessing children (also
    when forked from `cluster.worker_server`). distributed's clean-up at exit, which would
    wait for such a cluster and print a traceback, is replaced by one that closes clusters
    quietly. Nothing else is touched.
    """
    import atexit
    import multiprocessing

    if "distributed" in sys.modules:  # (being) imported by the start
        from distributed.deploy import spec

        # distributed closes every cluster at exit, and on one whose workers never joined it
        # waits, then prints a traceback of its own (UnboundLocalError in its sync): its
        # handler is replaced by one that closes the clusters quietly
        atexit.unregister(spec.close_clusters)
        atexit.register(_close_clusters_quietly)
    killed = 0
    for process in multiprocessing.active_children():
        if process.name.startswith(_WORKER_PROCESS_NAME):
            process.kill()
            process.join(5)
            killed += 1
    return killed


def _close_clusters_quietly(timeout: float = 5.0) -> None:
    """Close the clusters distributed would close at exit, ignoring their errors."""
    import contextlib

    from distributed.core import Status
    from distributed.deploy.spec import SpecCluster

    for cluster in list(SpecCluster._instances):
        if getattr(cluster, "shutdown_on_close", False) and cluster.status != Status.closed:
            with contextlib.suppress(Exception):
                cluster.close(timeout=timeout)


#: How distributed's nanny names the processes of its workers.
_WORKER_PROCESS_NAME = "Dask Worker process"


def start_worker_server(
    worker_preload: Sequence[str] = (),
    dask_config: dict[str, Any] | None = None,
    *,
    with_dask: bool = True,
) -> bool:
    """Launch the process local workers fork from, with `LOCAL_CLUSTER_DASK_CONFIG`, now.

    Called before a local cluster is needed (``pipetask run -j N`` does so first thing), the
    server imports dask while this process does other work. Before dask is imported here
    (0.2 s) the server's environment comes from these settings and distributed's defaults
    only; a local cluster started later compares it with dask's full configuration, and
    spawns its workers if they differ. Returns False when local workers will be spawned
    (see `cluster.worker_server`). ``with_dask=False``: the server imports only
    ``worker_preload`` (workers that run without dask, such as a process pool's; a local
    cluster started later forks its workers from it all the same, and they import dask).
    """
    settings = {**LOCAL_CLUSTER_DASK_CONFIG, **(dask_config or {})}
    if "dask" not in sys.modules:
        if settings.get(_METHOD) != "forkserver":
            return False
        from . import worker_server

        return worker_server.start(worker_preload, settings, with_dask=with_dask)
    import dask

    with dask.config.set(settings):
        return _start_worker_server(worker_preload, with_dask=with_dask)


def _start_worker_server(worker_preload: Sequence[str], *, with_dask: bool = True) -> bool:
    """`start_worker_server` under the dask settings in force."""
    import dask

    if dask.config.get(_METHOD) != "forkserver":
        return False
    from . import worker_server

    return worker_server.start(worker_preload, with_dask=with_dask)


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a cluster YAML spec (a name like ``local`` means the shipped ``local.yaml``)."""
    candidate = Path(path)
    if not candidate.exists() and (SPEC_DIR / f"{path}.yaml").exists():
        candidate = SPEC_DIR / f"{path}.yaml"
    with open(candidate) as stream:
        spec = yaml.safe_load(stream) or {}
    if spec.get("kind") not in _KINDS:
        raise ClusterSpecError(
            f"{candidate}: 'kind' must be one of {sorted(_KINDS)}, got {spec.get('kind')!r}"
        )
    address = spec.get("scheduler_address")
    if address is not None:
        host, sep, port = str(address).rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ClusterSpecError(
                f"{candidate}: 'scheduler_address' must be HOST:PORT, got {address!r}"
            )
    try:
        float(spec.get("startup_timeout", DEFAULT_STARTUP_TIMEOUT))
    except (TypeError, ValueError):
        raise ClusterSpecError(
            f"{candidate}: 'startup_timeout' must be a number of seconds, "
            f"got {spec.get('startup_timeout')!r}"
        ) from None
    return spec


def slurm_cluster_options(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments of ``SLURMCluster`` for a ``kind: slurm`` spec.

    ``scheduler_address: HOST:PORT`` becomes the scheduler's ``host`` and ``port`` (the
    address written into every job script, so it must be one the compute nodes reach).
    """
    options = dict(spec.get("options") or {})
    address = spec.get("scheduler_address")
    if address is not None:
        host, _, port = str(address).rpartition(":")
        scheduler = dict(options.get("scheduler_options") or {})
        scheduler.update(host=host, port=int(port))
        options["scheduler_options"] = scheduler
    return options


def kubernetes_cluster_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the DaskCluster resource for a ``kind: kubernetes`` spec (``make_cluster_spec``).

    Raises
    ------
    ClusterDependencyError
        If dask-kubernetes is not installed.
    """
    try:
        from dask_kubernetes.operator import make_cluster_spec
    except ImportError as err:
        raise ClusterDependencyError(
            "cluster kind 'kubernetes' needs dask-kubernetes: pip install dask-kubernetes"
        ) from err
    options = dict(spec.get("options") or {})
    options.setdefault("n_workers", int(spec.get("workers") or 1))
    return make_cluster_spec(**options)


def get_client(spec_or_address: str | os.PathLike[str]) -> Any:
    """Return a `distributed.Client` for an address, a scheduler file or a cluster spec.

    Raises
    ------
    ImportError
        If the spec needs dask-jobqueue or dask-kubernetes and it is not installed.
    ValueError
        If the spec is malformed.
    """
    from distributed import Client

    text = os.fspath(spec_or_address)
    if "://" in text:
        return Client(text)
    if text.endswith(".json"):
        return Client(scheduler_file=text)
    spec = load_spec(text)
    kind = spec["kind"]
    module_name, class_name, dist = _KINDS[kind]
    try:
        module = _import_plugin(module_name)
    except ImportError as err:
        raise ClusterDependencyError(
            f"cluster kind {kind!r} needs {dist or module_name}: pip install {dist}"
        ) from err
    if kind == "local":
        cluster = local_cluster(spec.get("dask_config"), **(spec.get("options") or {}))
        client = Client(cluster)
        client._skyquanta_cluster = cluster  # closed by close_client
        return client
    import dask

    with _SubmissionErrors() as errors, dask.config.set(spec.get("dask_config") or {}):
        if kind == "slurm":
            cluster = getattr(module, class_name)(**slurm_cluster_options(spec))
        else:
            cluster = getattr(module, class_name)(custom_cluster_spec=kubernetes_cluster_spec(spec))
        client = Client(cluster)
        client._skyquanta_cluster = cluster
        if spec.get("workers") and kind == "slurm":
            cluster.scale(int(spec["workers"]))
        timeout = float(spec.get("startup_timeout", DEFAULT_STARTUP_TIMEOUT))
        try:
            _wait_for_first_worker(client, timeout, errors, f"cluster kind {kind!r}")
        except ClusterStartupError:
            _close_quietly(client, cluster)
            raise
    return client


def _import_plugin(module_name: str) -> Any:
    """Import a cluster plug-in without letting it install signal handlers.

    dask-jobqueue's ``runner`` module sets a SIGINT handler when it is imported (Ctrl-C would
    then exit without the run's own clean-up), and that fails outright outside the main
    thread, where ``pipetask run`` starts its executor. Handlers set during the import are
    ignored.
    """
    import importlib
    import signal

    if sys.modules.get(module_name) is not None:
        return sys.modules[module_name]
    original = signal.signal
    signal.signal = lambda signum, handler: signal.getsignal(signum)  # type: ignore[assignment]
    try:
        return importlib.import_module(module_name)
    finally:
        signal.signal = original


class _SubmissionErrors(logging.Handler):
    """Collects the errors distributed logs from failed callbacks (job submissions)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []
        self._propagate: dict[str, bool] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self.messages.append(f"{type(error).__name__}: {error}")
        else:
            self.messages.append(record.getMessage().splitlines()[0])

    def __enter__(self) -> _SubmissionErrors:
        # The records are kept here instead of printed as tracebacks: a failed start-up
        # reports them in its one-line error, a successful one as one warning each.
        for name in _SUBMISSION_LOGGERS:
            logger = logging.getLogger(name)
            self._propagate[name] = logger.propagate
            logger.propagate = False
            logger.addHandler(self)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        for name in _SUBMISSION_LOGGERS:
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.propagate = self._propagate.get(name, True)
        if exc_type is None:
            for message in self.messages:
                _LOG.warning("a worker job of the cluster could not be submitted: %s", message)


def _wait_for_first_worker(
    client: Any, timeout: float, errors: _SubmissionErrors, what: str
) -> None:
    """Return once a worker has joined; raise `ClusterStartupError` on timeout or failure."""
    deadline = time.monotonic() + timeout
    while True:
        if client.scheduler_info().get("workers"):
            return
        if errors.messages:  # a failed submission is not retried: no worker will come
            raise ClusterStartupError(
                f"{what}: no worker joined: job submission failed: {errors.messages[-1]}"
            )
        if time.monotonic() >= deadline:
            raise ClusterStartupError(
                f"{what}: no worker joined in {timeout:g} s (is the queue full, or can the "
                "workers not reach the scheduler's address?)"
            )
        time.sleep(0.2)


def _close_quietly(client: Any, cluster: Any) -> None:
    """Close a cluster that never started a worker (its jobs may never have been submitted)."""
    import contextlib

    with contextlib.suppress(Exception):
        client.close()
    for job in list(getattr(cluster, "workers", {}).values()):
        with contextlib.suppress(Exception):  # jobqueue asserts on jobs never started
            job.status = job.status.__class__.closed
    with contextlib.suppress(Exception):
        cluster.close(timeout=10)


def close_client(client: Any) -> None:
    """Close a client from `get_client` and the cluster it started, if any."""
    cluster = getattr(client, "_skyquanta_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
