"""Which executor a run uses, and the start of its local worker processes, early.

`executor_kind` says whether a run executes in this process (``"sync"``), on a pool of local
worker processes (``"pool"``, `~pipeline.execution.executors.pool`) or on dask (``"dask"``).
The rule of ``--executor auto`` (the default): ``-j 1`` in this process, as LSST's
``pipetask -j 1``; ``-j N`` (N >= 2) on this machine on a pool of N processes, as LSST's
``pipetask -j N``, whatever the run's size (the full 189 × 2 focal plane of the bulk bench,
1,135 quanta, ran in 607 s there against 664 s on a local dask cluster, whose scheduler and
nannies took ~6% of the CPU; the pool has dask's memory limit per worker, not its
dashboard: ``--executor dask`` for that); a cluster address or spec on dask.
`LOCAL_WORKER_MODULES` and `POOL_WORKER_MODULES` are the modules the workers run quanta with.
`start_worker_server` launches the process that local workers fork from
(`cluster.worker_server`), for a run that will start some: ``pipetask run`` calls it before
anything else, so that the server imports numpy and the worker code (and dask, for
a dask cluster) on another core while this process imports, opens the butler and builds the
graph (the workers start later, in `~pipeline.execution.run.start_executor`).

This module imports nothing heavy (no dask, no butler). No state.
"""

from __future__ import annotations

__all__ = [
    "LOCAL_WORKER_MODULES",
    "POOL_WORKER_MODULES",
    "executor_kind",
    "start_worker_server",
]

#: Modules a local dask worker runs quanta with: imported once by the process the workers
#: fork from (`cluster.worker_server`), not by each worker.
LOCAL_WORKER_MODULES = ("pipeline.execution.worker", "pipeline.execution.executors.dask")
#: Modules a pool worker runs quanta with (no dask).
POOL_WORKER_MODULES = ("numpy", "pipeline.execution.worker", "pipeline.execution.executors.pool")


def executor_kind(
    executor: str, jobs: int, cluster_address: str | None, cluster_config: str | None, pdb: bool
) -> str:
    """Return ``"sync"``, ``"pool"`` or ``"dask"``: what an ``executor`` name stands for.

    ``"auto"`` is ``"sync"`` (in this process) for ``jobs=1`` without a cluster address or
    spec, as LSST's ``pipetask -j 1``, ``"pool"`` for more local jobs, else ``"dask"``;
    ``pdb`` always runs in-process.
    """
    if executor == "auto":
        local = cluster_address is None and cluster_config is None
        executor = ("sync" if jobs == 1 else "pool") if local else "dask"
    if pdb:
        return "sync"
    if executor not in ("sync", "pool", "dask"):
        raise ValueError(f"unknown executor {executor!r}; use 'auto', 'dask', 'pool' or 'sync'")
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
    if not local or jobs < 1 or executor not in ("auto", "dask", "pool", "sync"):
        return False
    kind = executor_kind(executor, jobs, None, None, pdb)
    if kind == "sync":
        return False
    from cluster import start_worker_server as start

    if kind == "pool":
        return start(POOL_WORKER_MODULES, with_dask=False)
    return start(LOCAL_WORKER_MODULES)
