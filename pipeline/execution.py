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

Tasks are built once per cluster and label (class by dotted name, config from its YAML). No
state outlives a call.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import logging
import os
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


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


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
        butler: LimitedButler,
        payload: ClusterPayload,
        post_mortem: Callable[[Any], None] | None,
    ) -> None:
        self.butler = butler
        self.payload = payload
        self.post_mortem = post_mortem
        self.infos: dict[uuid.UUID, StoredFileInfo] = dict(payload.infos)
        self.unavailable: set[uuid.UUID] = set(payload.missing)
        self.failed_outputs: set[uuid.UUID] = set()
        self.tasks: dict[str, Any] = {}
        self.host = socket.gethostname()

    def task(self, label: str) -> Any:
        if label not in self.tasks:
            init_inputs = {
                name: self.butler.get(ref, info=info)
                for name, (ref, info) in self.payload.init_inputs.get(label, {}).items()
            }
            self.tasks[label] = build_task(self.payload.tasks[label], init_inputs)
        return self.tasks[label]

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

    Returns
    -------
    outcomes : `list` [`QuantumOutcome`]
        One per quantum, in payload order. Task exceptions never propagate; only
        infrastructure errors (the butler cannot be built, the worker dies) do.
    """
    butler = LimitedButler(spec)
    runner = _ClusterRun(butler, payload, post_mortem)
    return [runner.run(quantum) for quantum in payload.quanta]
