"""What a worker process keeps between clusters: limited butlers, built tasks, shared tables.

Design
------
Building a limited butler (it loads the storage-class plug-ins) and a task (import, config
parsed from YAML) costs milliseconds, more than a trivial quantum. A `WorkerCache` keeps both
for the life of a worker process: butlers keyed by their spec, tasks keyed by (spec, label,
class, config YAML, init-input IDs), so a changed config or another repository never reuses a
stale object. Each store is bounded by emptying it when full (a pipeline has a few labels).

State: only inside `WorkerCache` instances (see its notes); nothing at module level. The
public names are re-exported by `pipeline.execution.worker`.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from butler.dataset_ref import DatasetRef
from butler.datastore.stored_file_info import StoredFileInfo
from butler.limited import LimitedButler, LimitedButlerSpec

from ..definition.loader import import_by_name
from ..graph.quantum_graph import TaskInfo
from .payload import SharedTables

__all__ = ["TASK_LOGGER", "WorkerCache", "build_task"]

#: Parent logger of every task run by an executor (``task.<label>``).
TASK_LOGGER = "task"


def build_task(info: TaskInfo, init_inputs: Mapping[str, Any] | None = None) -> Any:
    """Construct the `PipelineTask` of ``info`` (class by dotted name, config from its YAML).

    Parameters
    ----------
    info : `TaskInfo`
        Task definition from the graph.
    init_inputs : mapping, optional
        Connection name -> object of each ``InitInput``.

    Returns
    -------
    task : `~pipeline.pipeline_task.PipelineTask`
        The task, named after its label, logging to ``task.<label>``.
    """
    task_class = import_by_name(info.task_class, where=f"task {info.label!r}")
    config = task_class.ConfigClass()
    config.loadFromYaml(io.StringIO(info.config_yaml), where=f"graph task {info.label!r}")
    config.freeze()
    return task_class(
        config=config,
        name=info.label,
        initInputs=dict(init_inputs or {}),
        log=logging.getLogger(TASK_LOGGER),
    )


class WorkerCache:
    """Limited butlers and built tasks kept for the life of one worker process.

    Parameters
    ----------
    max_tasks : `int`
        Built tasks kept; the cache is emptied when it grows past this (a bound, not an LRU:
        a pipeline has a few task labels).

    Notes
    -----
    State: ``butlers`` (spec key -> `LimitedButler`), ``tasks`` (task key -> task) and
    ``shared`` (execution ID -> `SharedTables`). Only used from the thread running quanta
    (dask workers here have one thread).
    """

    def __init__(self, *, max_tasks: int = 64) -> None:
        self.max_tasks = max_tasks
        self.butlers: dict[bytes, LimitedButler] = {}
        self.tasks: dict[tuple[Any, ...], Any] = {}
        self.shared: dict[str, SharedTables] = {}

    def tables(self, key: str, blob: bytes) -> SharedTables:
        """Return the unpickled `SharedTables` ``blob`` of execution ``key`` (kept)."""
        tables = self.shared.get(key)
        if tables is None:
            if len(self.shared) >= 4:
                self.shared.clear()
            tables = pickle.loads(blob)
            if key:  # an anonymous execution is not kept
                self.shared[key] = tables
        return tables

    @staticmethod
    def spec_key(spec: LimitedButlerSpec) -> bytes:
        """Return a hashable key of a spec (its fields are dicts): its pickle, ~20 us."""
        return pickle.dumps(spec)

    def butler(self, spec: LimitedButlerSpec) -> LimitedButler:
        """Return the limited butler of ``spec``, built on first use."""
        key = self.spec_key(spec)
        butler = self.butlers.get(key)
        if butler is None:
            if len(self.butlers) >= 4:
                self.butlers.clear()
            butler = self.butlers[key] = LimitedButler(spec)
        return butler

    def _task_key(
        self,
        spec: LimitedButlerSpec,
        info: TaskInfo,
        init_inputs: Mapping[str, tuple[DatasetRef, StoredFileInfo | None]],
    ) -> tuple[Any, ...]:
        inits = tuple(sorted((name, ref.id) for name, (ref, _) in init_inputs.items()))
        return (self.spec_key(spec), info.label, info.task_class, info.config_yaml, inits)

    def discard_task(
        self,
        spec: LimitedButlerSpec,
        info: TaskInfo,
        init_inputs: Mapping[str, tuple[DatasetRef, StoredFileInfo | None]],
    ) -> None:
        """Forget a task (after it failed: its state may be damaged)."""
        self.tasks.pop(self._task_key(spec, info, init_inputs), None)

    def task(
        self,
        spec: LimitedButlerSpec,
        info: TaskInfo,
        init_inputs: Mapping[str, tuple[DatasetRef, StoredFileInfo | None]],
        load: Callable[[], Mapping[str, Any]],
    ) -> Any:
        """Return the task of ``info``; ``load()`` reads its init-inputs when it is built."""
        key = self._task_key(spec, info, init_inputs)
        task = self.tasks.get(key)
        if task is None:
            if len(self.tasks) >= self.max_tasks:
                self.tasks.clear()
            task = self.tasks[key] = build_task(info, load())
        return task
