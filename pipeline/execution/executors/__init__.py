"""Executors: how clusters of quanta are run (in-process, or on dask.distributed).

All share the one scheduling loop `schedule` (see `pipeline.execution.executors.base`); an
executor only says how a cluster is submitted and how to wait for it. `DaskExecutor` is
imported when first used (PEP 562 ``__getattr__``): a run in this process never imports
dask.distributed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ExecutionResult, Executor, schedule
from .sync import SyncExecutor

if TYPE_CHECKING:
    from .dask import DaskExecutor as DaskExecutor

__all__ = ["DaskExecutor", "ExecutionResult", "Executor", "SyncExecutor", "schedule"]


def __getattr__(name: str) -> Any:
    """Import `DaskExecutor` (and dask.distributed) on first use."""
    if name == "DaskExecutor":
        from .dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
