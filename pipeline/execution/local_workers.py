"""Which executor a run uses, and the start of a local dask cluster's workers, early.

`executor_kind` says whether a run executes in this process (``"sync"``) or on dask.
`LOCAL_WORKER_MODULES` are the modules a local dask worker runs quanta with.
`start_worker_server` launches the process that the workers of a local dask cluster fork
from (`cluster.worker_server`), for a run that will start one: ``pipetask run`` calls it
before anything else, so that the server imports dask, numpy and the worker code on another
core while this process imports, opens the butler and builds the graph (the cluster itself
starts later, in `~pipeline.execution.run.start_executor`).

This module imports nothing heavy (no dask, no butler). No state.
"""

from __future__ import annotations

__all__ = ["LOCAL_WORKER_MODULES", "executor_kind", "start_worker_server"]

#: Modules a local dask worker runs quanta with: imported once by the process the workers
#: fork from (`cluster.worker_server`), not by each worker.
LOCAL_WORKER_MODULES = ("pipeline.execution.worker", "pipeline.execution.executors.dask")


def executor_kind(
    executor: str, jobs: int, cluster_address: str | None, cluster_config: str | None, pdb: bool
) -> str:
    """Return ``"sync"`` or ``"dask"``: the executor an ``executor`` name stands for.

    ``"auto"`` is ``"sync"`` (in this process) for ``jobs=1`` without a cluster address or
    spec, as LSST's ``pipetask -j 1``, else ``"dask"``; ``pdb`` always runs in-process.
    """
    if executor == "auto":
        local_one = jobs == 1 and cluster_address is None and cluster_config is None
        executor = "sync" if local_one else "dask"
    if pdb:
        return "sync"
    if executor not in ("sync", "dask"):
        raise ValueError(f"unknown executor {executor!r}; use 'auto', 'dask' or 'sync'")
    return executor


def start_worker_server(
    executor: str, jobs: int, cluster_address: str | None, cluster_config: str | None, pdb: bool
) -> bool:
    """Launch the server local dask workers fork from, if these options start a local cluster.

    Returns
    -------
    started : `bool`
        True if the server runs for this run's workers (see `cluster.start_worker_server`).
    """
    local = cluster_address is None and cluster_config is None
    if not local or jobs < 1 or executor not in ("auto", "dask", "sync"):
        return False
    if executor_kind(executor, jobs, None, None, pdb) != "dask":
        return False
    from cluster import start_worker_server as start

    return start(LOCAL_WORKER_MODULES)
