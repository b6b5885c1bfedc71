"""Executors: how clusters of quanta are run (in-process, or on dask.distributed).

All share the one scheduling loop `schedule` (see `pipeline.execution.executors.base`); an
executor only says how a cluster is submitted and how to wait for it.
"""

from .base import ExecutionResult, Executor, schedule
from .dask import DaskExecutor
from .sync import SyncExecutor

__all__ = ["DaskExecutor", "ExecutionResult", "Executor", "SyncExecutor", "schedule"]
