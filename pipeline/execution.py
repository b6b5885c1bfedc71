"""Worker side of an execution: run the quanta of one cluster with a limited butler.

Design
------
`run_quantum_cluster` is the only function an executor ships to a worker. It receives a
`LimitedButlerSpec` and a `ClusterPayload` (task definitions, quanta in run order, the
stored-file records of their inputs), and returns one `QuantumOutcome` per quantum. Only refs,
records and outcomes travel; datasets are read and written by the worker itself.

For each quantum, in order:

1. inputs that are known not to exist (outputs of quanta that found no work) are dropped; a
   quantum left without a required input raises `NoWorkFound`; a quantum that reads an output
   of a quantum that failed earlier in the same cluster is reported ``blocked`` and not run;
2. the task's ``runQuantum`` runs with a `WorkerQuantumContext`, its log records captured;
3. ``<label>_log`` is written, then ``<label>_metadata`` LAST (task metadata plus a
   ``quantum`` section: node, attempt, host, pid, wall and CPU time, peak RSS): the metadata
   dataset is the quantum's success marker, so it exists only if everything else does;
4. on failure every output written is removed, the log (with the traceback) is still written,
   and the outcome carries the exception type, message, traceback and the repeatable flag.

Building a limited butler (it loads the storage-class plug-ins) and a task (import, config
parsed from YAML) costs milliseconds, more than a trivial quantum. A `WorkerCache` keeps both
for the life of a worker process: butlers keyed by their spec, tasks keyed by (spec, label,
class, config YAML, init-input IDs), so a changed config or another repository never reuses a
stale object. The executor owns the cache (a dask ``WorkerPlugin`` per worker, an attribute of
the synchronous executor) and passes it in; without one, nothing outlives a call. A cached task
is reused across quanta: its metadata is emptied before each quantum.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import logging
import os
import pickle
import resource
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from butler.dataset_ref import DatasetRef
from butler.datastore.stored_file_info import StoredFileInfo
from butler.limited import LimitedButler, LimitedButlerSpec

from ._errors import InvalidQuantumError, NoWorkFound, RepeatableQuantumError
from ._loader import import_by_name
from .connections import InputQuantizedConnection, OutputQuantizedConnection
from .log_capture import capture_logs
from .quantum_context import WorkerQuantumContext
from .quantum_graph import Quantum, TaskInfo
from .task_metadata import TaskMetadata

__all__ = [
    "TASK_LOGGER",
    "WorkerCache",
    "ClusterPayload",
    "QuantumOutcome",
    "QuantumStatus",
    "build_task",
    "run_quantum_cluster",
]

_LOG = logging.getLogger(__name__)

#: Parent logger of every task run by an executor (``task.<label>``).
TASK_LOGGER = "task"


class QuantumStatus:
    """The status strings of a quantum in outcomes, reports and progress."""

    SUCCEEDED = "succeeded"
    NO_WORK = "no_work"
    FAILED = "failed"
    BLOCKED = "blocked"
    SKIPPED = "skipped"  # already complete before this execution
    DONE = frozenset({SUCCEEDED, NO_WORK, SKIPPED})


@dataclasses.dataclass(frozen=True)
class ClusterPayload:
    """What a worker needs to run one cluster of quanta.

    Parameters
    ----------
    cluster_id : `int`
        Cluster index (for logs).
    tasks : `dict` [`str`, `TaskInfo`]
        Definitions of the tasks of these quanta.
    quanta : `tuple` [`Quantum`, ...]
        The quanta, in a valid run order.
    infos : `dict` [`uuid.UUID`, `StoredFileInfo`]
        Stored-file records of the inputs that exist.
    missing : `frozenset` [`uuid.UUID`]
        Inputs known not to exist (not written by a quantum that found no work).
    init_inputs : `dict` [`str`, `dict` [`str`, `tuple`]]
        Per label, connection name -> (`DatasetRef`, `StoredFileInfo` or `None`).
    attempt : `int`
        1 for the first try, 2 for the first retry, ...
    execution_id : `str`
        Identifies the `~pipeline.run.execute_graph` call (recorded in the metadata).
    """

    cluster_id: int
    tasks: dict[str, TaskInfo]
    quanta: tuple[Quantum, ...]
    infos: dict[uuid.UUID, StoredFileInfo]
    missing: frozenset[uuid.UUID] = frozenset()
    init_inputs: dict[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]] = dataclasses.field(
        default_factory=dict
    )
    attempt: int = 1
    execution_id: str = ""


@dataclasses.dataclass(frozen=True)
class QuantumOutcome:
    """What happened to one quantum on a worker.

    Parameters
    ----------
    node_id : `int`
        The quantum's node.
    status : `str`
        A `QuantumStatus` value: succeeded, no_work, failed or blocked.
    written : `tuple` [`StoredFileInfo`, ...]
        Artifacts written and kept (to register); on failure only the log.
    error_type : `str`
        Qualified exception class name ("" unless failed).
    message : `str`
        Exception message, or the NoWorkFound reason.
    traceback : `str`
        Formatted traceback ("" unless failed).
    repeatable : `bool`
        Whether retrying is pointless (`RepeatableQuantumError`, `InvalidQuantumError`).
    host, pid, attempt, wall_time, cpu_time
        Where and how long it ran (seconds).
    """

    node_id: int
    status: str
    written: tuple[StoredFileInfo, ...] = ()
    error_type: str = ""
    message: str = ""
    traceback: str = ""
    repeatable: bool = False
    host: str = ""
    pid: int = 0
    attempt: int = 1
    wall_time: float = 0.0
    cpu_time: float = 0.0


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
    State: ``butlers`` (spec key -> `LimitedButler`) and ``tasks`` (task key -> task). Only
    used from the thread running quanta (dask workers here have one thread).
    """

    def __init__(self, *, max_tasks: int = 64) -> None:
        self.max_tasks = max_tasks
        self.butlers: dict[bytes, LimitedButler] = {}
        self.tasks: dict[tuple[Any, ...], Any] = {}

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


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _quantized(
    quantum: Quantum, info: TaskInfo, unavailable: set[uuid.UUID]
) -> tuple[InputQuantizedConnection, OutputQuantizedConnection]:
    """Build the task's quantized connections, dropping inputs that do not exist."""
    inputs = InputQuantizedConnection()
    for conn in info.connections_of("inputs", "prerequisiteInputs"):
        refs = [r for r in quantum.inputs.get(conn.attribute, ()) if r.id not in unavailable]
        if conn.multiple:
            if not refs and quantum.inputs.get(conn.attribute):
                raise NoWorkFound(f"no {conn.dataset_type!r} input exists for {quantum.data_id}")
            setattr(inputs, conn.attribute, refs)
        elif refs:
            setattr(inputs, conn.attribute, refs[0])
        elif quantum.inputs.get(conn.attribute):
            raise NoWorkFound(
                f"input {conn.dataset_type!r} of {quantum.data_id} was not produced upstream"
            )
    outputs = OutputQuantizedConnection()
    for conn in info.connections_of("outputs"):
        if conn.attribute in ("_metadata", "_log"):
            continue
        refs = list(quantum.outputs.get(conn.attribute, ()))
        setattr(outputs, conn.attribute, refs if conn.multiple else refs[0])
    return inputs, outputs


class _ClusterRun:
    """Runs the quanta of one payload; state: tasks built so far, records, failures."""

    def __init__(
        self,
        spec: LimitedButlerSpec,
        payload: ClusterPayload,
        post_mortem: Callable[[Any], None] | None,
        cache: WorkerCache,
    ) -> None:
        self.spec = spec
        self.cache = cache
        self.butler = cache.butler(spec)
        self.payload = payload
        self.post_mortem = post_mortem
        self.infos: dict[uuid.UUID, StoredFileInfo] = dict(payload.infos)
        self.unavailable: set[uuid.UUID] = set(payload.missing)
        self.failed_outputs: set[uuid.UUID] = set()
        self.host = socket.gethostname()

    def task(self, label: str) -> Any:
        init_inputs = self.payload.init_inputs.get(label, {})
        return self.cache.task(
            self.spec,
            self.payload.tasks[label],
            init_inputs,
            lambda: {
                name: self.butler.get(ref, info=info) for name, (ref, info) in init_inputs.items()
            },
        )

    def run(self, quantum: Quantum) -> QuantumOutcome:
        common = {"host": self.host, "pid": os.getpid(), "attempt": self.payload.attempt}
        outputs = {r.id for rs in quantum.outputs.values() for r in rs}
        if any(r.id in self.failed_outputs for r in quantum.all_inputs()):
            self.failed_outputs |= outputs
            return QuantumOutcome(quantum.node_id, QuantumStatus.BLOCKED, **common)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        start = datetime.datetime.now(datetime.UTC).isoformat()
        ctx = WorkerQuantumContext(
            self.butler, quantum.data_id, quantum.all_inputs(), quantum.all_outputs(), self.infos
        )
        status, error, message = QuantumStatus.SUCCEEDED, None, ""
        task = None
        with capture_logs([TASK_LOGGER]) as records:
            try:
                task = self.task(quantum.task_label)
                task.emptyMetadata()
                info = self.payload.tasks[quantum.task_label]
                input_refs, output_refs = _quantized(quantum, info, self.unavailable)
                task.runQuantum(ctx, input_refs, output_refs)
            except NoWorkFound as err:
                status, message = QuantumStatus.NO_WORK, str(err)
                logging.getLogger(f"{TASK_LOGGER}.{quantum.task_label}").info(
                    "no work found for %s: %s", quantum.data_id, err
                )
            except Exception as err:
                status, error, message = QuantumStatus.FAILED, err, str(err)
                logging.getLogger(f"{TASK_LOGGER}.{quantum.task_label}").error(
                    "quantum %s (node %d, attempt %d) failed: %s: %s",
                    quantum.data_id, quantum.node_id, self.payload.attempt,
                    _qualified(err), err, exc_info=True,
                )
                if self.post_mortem is not None:
                    self.post_mortem(err.__traceback__)
                self.cache.discard_task(
                    self.spec,
                    self.payload.tasks[quantum.task_label],
                    self.payload.init_inputs.get(quantum.task_label, {}),
                )
        if status != QuantumStatus.SUCCEEDED:
            ctx.remove_written()
        try:
            if "_log" in quantum.outputs:
                ctx.put(records, quantum.outputs["_log"][0])
            if status != QuantumStatus.FAILED:
                metadata = task.getFullMetadata() if task is not None else TaskMetadata()
                metadata["quantum"] = {
                    "node_id": quantum.node_id,
                    "status": status,
                    "message": message,
                    "attempt": self.payload.attempt,
                    "execution_id": self.payload.execution_id,
                    "host": self.host,
                    "pid": os.getpid(),
                    "start_utc": start,
                    "end_utc": datetime.datetime.now(datetime.UTC).isoformat(),
                    "wall_time": time.perf_counter() - wall0,
                    "cpu_time": time.process_time() - cpu0,
                    "max_rss_bytes": _max_rss_bytes(),
                }
                ctx.put(metadata, quantum.metadata_ref)
        except Exception as err:  # could not write the log or metadata: the quantum failed
            ctx.remove_written()
            status, error, message = QuantumStatus.FAILED, err, f"writing log/metadata: {err}"
        if status == QuantumStatus.FAILED:
            self.failed_outputs |= outputs
            assert error is not None
            return QuantumOutcome(
                quantum.node_id,
                status,
                tuple(ctx.written.values()),
                error_type=_qualified(error),
                message=message,
                traceback="".join(traceback.format_exception(error)),
                repeatable=isinstance(error, (RepeatableQuantumError, InvalidQuantumError)),
                wall_time=time.perf_counter() - wall0,
                cpu_time=time.process_time() - cpu0,
                **common,
            )
        self.infos.update(ctx.written)
        self.unavailable |= outputs - ctx.written.keys()
        return QuantumOutcome(
            quantum.node_id,
            status,
            tuple(ctx.written.values()),
            message=message,
            wall_time=time.perf_counter() - wall0,
            cpu_time=time.process_time() - cpu0,
            **common,
        )


def run_quantum_cluster(
    spec: LimitedButlerSpec,
    payload: ClusterPayload,
    *,
    post_mortem: Callable[[Any], None] | None = None,
    cache: WorkerCache | Callable[[], WorkerCache | None] | None = None,
) -> list[QuantumOutcome]:
    """Run every quantum of a cluster, in order, and report what happened to each.

    Parameters
    ----------
    spec : `LimitedButlerSpec`
        From which the worker builds its limited butler.
    payload : `ClusterPayload`
        The quanta and what they need.
    post_mortem : callable, optional
        Called with the traceback of each failure before cleanup (``pdb.post_mortem``).
    cache : `WorkerCache` or callable, optional
        Butlers and tasks kept between calls, or a function returning the cache of the
        current worker (`None` if it has none). `None`: everything is built for this call.

    Returns
    -------
    outcomes : `list` [`QuantumOutcome`]
        One per quantum, in payload order. Task exceptions never propagate; only
        infrastructure errors (the butler cannot be built, the worker dies) do.
    """
    if callable(cache):
        cache = cache()
    runner = _ClusterRun(spec, payload, post_mortem, cache if cache is not None else WorkerCache())
    return [runner.run(quantum) for quantum in payload.quanta]
