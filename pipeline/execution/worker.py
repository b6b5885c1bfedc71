"""Worker side of an execution: run the quanta of one cluster with a limited butler.

Design
------
`run_quantum_cluster` is the only function an executor ships to a worker. It receives a
`LimitedButlerSpec` and a `ClusterPayload` (quanta in run order, the stored-file records of
their inputs), and returns one `QuantumOutcome` per quantum. Only refs, records and outcomes
travel; datasets are read and written by the worker itself. Refs and records travel as plain
tuples (`encode_cluster`, `decode_quanta`; outcomes pickle their records the same way): the
frozen dataclasses pickle several times slower, and on a small machine the client's pickling
competes with the in-process dask scheduler. What every cluster of an execution shares (task
definitions, dataset types, init-inputs) is pickled once into `SharedTables` bytes, and each
worker unpickles it once (`WorkerCache.tables`).

For each quantum, in order:

1. inputs that are known not to exist (outputs of quanta that found no work) are dropped; a
   quantum left without a required input raises `NoWorkFound`; a quantum that reads an output
   of a quantum that failed earlier in the same cluster is reported ``blocked`` and not run;
2. the task's ``runQuantum`` runs with a `WorkerQuantumContext`, its log records captured;
3. ``<label>_log`` is written, then ``<label>_metadata`` LAST (task metadata plus a
   ``quantum`` section: node, attempt, host, pid, wall and CPU time (and, on Linux, the
   time it waited for a core and the bytes it read and wrote: `.process_usage`), peak RSS, and the
   `~pipeline.execution.provenance` that resume checks before adopting it): the metadata
   dataset is the quantum's success marker, so it exists only if everything else does;
4. on failure every output written is removed, the log (with the traceback) is still written,
   and the outcome carries the exception type, message, traceback and the repeatable flag.

Every rename into place (and every cleanup deletion) first checks that this execution still
holds the run (`~butler.datastore.run_writer`: the client claims the run when it takes its
lease). A quantum of a dead client still running on an external cluster when a resumed
execution took the run over is refused there (`~butler.ExecutionSupersededError`, "superseded
by execution X"): it fails with nothing renamed or deleted, and the rest of its cluster is not
run.

With a ``timeout`` (``pipetask run --timeout``) each quantum runs in a thread of its own, and
one still running after ``timeout`` seconds gets `QuantumTimeoutError` raised inside it: it
fails (never retried) like any quantum that raises, and the cluster goes on with the next one.

Building a limited butler (it loads the storage-class plug-ins) and a task (import, config
parsed from YAML) costs milliseconds, more than a trivial quantum. A `WorkerCache` keeps both
for the life of a worker process: butlers keyed by their spec, tasks keyed by (spec, label,
class, config YAML, init-input IDs), so a changed config or another repository never reuses a
stale object. The executor owns the cache (a dask ``WorkerPlugin`` per worker, an attribute of
the synchronous executor) and passes it in; without one, nothing outlives a call. A cached task
is reused across quanta: its metadata is emptied before each quantum. The task loggers' level
is lowered once per cluster, not per quantum (`~pipeline.execution.log_capture.lowered_levels`).

The wire form lives in `pipeline.execution.payload`, the cache and `build_task` in
`pipeline.execution.worker_cache`; their public names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import logging
import os
import resource
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from butler._errors import ExecutionSupersededError, RegistryFullError
from butler.datastore.stored_file_info import StoredFileInfo
from butler.limited import LimitedButlerSpec

from .._errors import (
    InvalidQuantumError,
    NoWorkFound,
    QuantumTimeoutError,
    RepeatableQuantumError,
)
from ..connections import InputQuantizedConnection, OutputQuantizedConnection
from ..graph.quantum_graph import Quantum, TaskInfo
from ..task_metadata import TaskMetadata
from .log_capture import capture_logs, lowered_levels
from .payload import ClusterPayload, SharedTables, decode_quanta, encode_cluster, share_tables
from .process_usage import ProcessUsage
from .provenance import config_digest, provenance
from .quantum_context import WorkerQuantumContext
from .worker_cache import TASK_LOGGER, WorkerCache, build_task

__all__ = [
    "TASK_LOGGER",
    "WorkerCache",
    "ClusterPayload",
    "QuantumOutcome",
    "QuantumStatus",
    "SharedTables",
    "build_task",
    "decode_quanta",
    "encode_cluster",
    "is_disk_full",
    "run_quantum_cluster",
    "share_tables",
]

_LOG = logging.getLogger(__name__)
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class QuantumStatus:
    """The status strings of a quantum in outcomes, reports and progress."""

    SUCCEEDED = "succeeded"
    NO_WORK = "no_work"
    FAILED = "failed"
    BLOCKED = "blocked"
    SKIPPED = "skipped"  # already complete before this execution
    DONE = frozenset({SUCCEEDED, NO_WORK, SKIPPED})


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
    disk_full : `bool`
        It failed because a disk was full (``ENOSPC``/``EDQUOT`` somewhere in the
        exception's chain): not the task's fault, and every other quantum writing there
        would fail the same way, so the run stops (`pipeline.execution.run`).
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
    disk_full: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as plain tuples (a `StoredFileInfo` pickles slowly; outcomes travel back)."""
        written = tuple(
            (i.dataset_id.bytes, i.path, i.formatter, i.storage_class, i.file_size, i.checksum)
            for i in self.written
        )
        return (
            _rebuild_outcome,
            (
                self.node_id,
                self.status,
                written,
                self.error_type,
                self.message,
                self.traceback,
                self.repeatable,
                self.host,
                self.pid,
                self.attempt,
                self.wall_time,
                self.cpu_time,
                self.disk_full,
            ),
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an exception it was raised from, says a disk is full.

    That is an `OSError` with ``ENOSPC`` (no space) or ``EDQUOT`` (quota), e.g. the
    one under the `~butler.FormatterError` of a put, or a
    `~butler.RegistryFullError`.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RegistryFullError) or (
            isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _rebuild_outcome(
    node_id: int,
    status: str,
    written: tuple[tuple[bytes, str, str, str, int, str | None], ...],
    *rest: Any,
) -> QuantumOutcome:
    infos = tuple(StoredFileInfo(uuid.UUID(bytes=b), *fields) for b, *fields in written)
    return QuantumOutcome(node_id, status, infos, *rest)


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
        self.tables = cache.tables(payload.execution_id, payload.shared)
        self.post_mortem = post_mortem
        self.infos: dict[uuid.UUID, StoredFileInfo] = {}
        for id_bytes, *fields in payload.infos:
            dataset_id = uuid.UUID(bytes=id_bytes)
            self.infos[dataset_id] = StoredFileInfo(dataset_id, *fields)
        self.unavailable: set[uuid.UUID] = {uuid.UUID(bytes=b) for b in payload.missing}
        self.failed_outputs: set[uuid.UUID] = set()
        self.host = socket.gethostname()
        self.digests: dict[str, str] = {}
        #: node -> its context while it runs (``--timeout`` stops one from another thread)
        self.contexts: dict[int, WorkerQuantumContext] = {}
        self.disk_full = False  # a quantum failed for want of space: the rest are not run
        self.superseded = ""  # another execution holds the run now: why nothing more is run

    def digest(self, label: str) -> str:
        """Return the SHA-256 of the config of ``label`` (recorded as provenance)."""
        found = self.digests.get(label)
        if found is None:
            found = self.digests[label] = config_digest(self.tables.tasks[label].config_yaml)
        return found

    def task(self, label: str) -> Any:
        init_inputs = self.tables.init_inputs.get(label, {})
        return self.cache.task(
            self.spec,
            self.tables.tasks[label],
            init_inputs,
            lambda: {
                name: self.butler.get(ref, info=info) for name, (ref, info) in init_inputs.items()
            },
        )

    def finished_before(self, quantum: Quantum) -> QuantumOutcome | None:
        """Return the outcome of ``quantum`` if this execution already ran it to the end.

        dask runs a finished task again when the worker holding its result dies before the
        client has released it (the scheduler recomputes a lost key that is still wanted),
        and a retried batch holds quanta that finished before the worker died. The client may
        have registered the first run's outputs already: running the quantum again would
        overwrite registered files with other bytes (the metadata's timings), so that the
        registry no longer describes them. The metadata file is written last: if it exists
        and names this execution, the quantum is done, and its outcome is rebuilt from the
        files that are there instead (one existence check per quantum when it is not).
        """
        datastore = self.butler.datastore
        meta = datastore.predict(quantum.metadata_ref)
        if not datastore.exists(meta):
            return None
        try:
            recorded = datastore.get(meta).to_dict().get("quantum") or {}
        except Exception:  # unreadable (a torn leftover of another run): run it again
            return None
        if recorded.get("execution_id") != self.payload.execution_id:
            return None
        written = datastore.records_of_existing(datastore.predict(r) for r in quantum.all_outputs())
        _LOG.info(
            "quantum %s (node %d) was already run to the end by this execution (attempt %s); "
            "not running it again",
            quantum.data_id,
            quantum.node_id,
            recorded.get("attempt"),
        )
        return QuantumOutcome(
            quantum.node_id,
            recorded.get("status", QuantumStatus.SUCCEEDED),
            tuple(written),
            message=recorded.get("message", ""),
            host=recorded.get("host", ""),
            pid=int(recorded.get("pid", 0)),
            attempt=int(recorded.get("attempt", self.payload.attempt)),
            wall_time=float(recorded.get("wall_time", 0.0)),
            cpu_time=float(recorded.get("cpu_time", 0.0)),
        )

    def run(self, quantum: Quantum) -> QuantumOutcome:
        common = {"host": self.host, "pid": os.getpid(), "attempt": self.payload.attempt}
        if self.disk_full:  # an earlier quantum found the disk full: this one would too
            return QuantumOutcome(
                quantum.node_id,
                QuantumStatus.BLOCKED,
                message="not run: the disk is full",
                disk_full=True,
                **common,
            )
        if self.superseded:
            return QuantumOutcome(
                quantum.node_id, QuantumStatus.BLOCKED, message=self.superseded, **common
            )
        outputs = {r.id for rs in quantum.outputs.values() for r in rs}
        before = self.finished_before(quantum)
        if before is not None:
            return before
        if any(r.id in self.failed_outputs for r in quantum.all_inputs()):
            self.failed_outputs |= outputs
            return QuantumOutcome(quantum.node_id, QuantumStatus.BLOCKED, **common)
        usage0 = ProcessUsage.now()
        wall0, cpu0 = usage0.wall, usage0.cpu
        start = datetime.datetime.now(datetime.UTC).isoformat()
        ctx = WorkerQuantumContext(
            self.butler,
            quantum.data_id,
            quantum.all_inputs(),
            quantum.all_outputs(),
            self.infos,
            writer=self.payload.execution_id,
        )
        self.contexts[quantum.node_id] = ctx
        status, error, message = QuantumStatus.SUCCEEDED, None, ""
        task = None
        with capture_logs() as records:  # run_quantum_cluster lowered the task loggers' level
            try:
                task = self.task(quantum.task_label)
                task.emptyMetadata()
                info = self.tables.tasks[quantum.task_label]
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
                    quantum.data_id,
                    quantum.node_id,
                    self.payload.attempt,
                    _qualified(err),
                    err,
                    exc_info=not is_disk_full(err),  # a full disk is not the task's bug
                )
                if self.post_mortem is not None:
                    self.post_mortem(err.__traceback__)
                self.cache.discard_task(
                    self.spec,
                    self.tables.tasks[quantum.task_label],
                    self.tables.init_inputs.get(quantum.task_label, {}),
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
                    **ProcessUsage.now().since(usage0),
                    "max_rss_bytes": _max_rss_bytes(),
                    **provenance(quantum, self.digest(quantum.task_label)),
                }
                ctx.put(metadata, quantum.metadata_ref)
        except Exception as err:  # could not write the log or metadata: the quantum failed
            ctx.remove_written()
            status, error, message = QuantumStatus.FAILED, err, f"writing log/metadata: {err}"
        if status == QuantumStatus.FAILED:
            self.failed_outputs |= outputs
            assert error is not None
            self.disk_full = is_disk_full(error)
            if isinstance(error, ExecutionSupersededError):
                self.superseded = str(error)
                _LOG.warning("quantum %s (node %d): %s", quantum.data_id, quantum.node_id, error)
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
                disk_full=self.disk_full,
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


class _QuantumThread(threading.Thread):
    """The thread one quantum runs in under ``--timeout``; its message names the quantum."""

    def __init__(self, runner: _ClusterRun, quantum: Quantum, timeout_message: str) -> None:
        super().__init__(name=f"quantum-{quantum.node_id}", daemon=True)
        self.runner = runner
        self.quantum = quantum
        self.timeout_message = timeout_message  # read by QuantumTimeoutError()
        self.outcome: QuantumOutcome | None = None

    def run(self) -> None:
        try:
            self.outcome = self.runner.run(self.quantum)
        except QuantumTimeoutError:  # raised after the quantum's own handlers: it stopped
            pass


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in ``thread`` at its next Python instruction (not inside C calls)."""
    import ctypes

    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type)
        )


def _run_with_timeout(runner: _ClusterRun, quantum: Quantum, timeout: float) -> QuantumOutcome:
    """Run one quantum in its own thread; stop it after ``timeout`` seconds.

    A quantum still running then gets `QuantumTimeoutError` raised inside it: it fails like
    any quantum that raises (its outputs removed, its log written). One stuck inside a long
    C call cannot be interrupted: after a grace period it is given up on, its context
    refuses further writes and deletes what it wrote, and its thread is left to end alone.
    """
    data_id = dict(quantum.data_id.required)
    message = f"ran longer than --timeout {timeout:g} s: task {quantum.task_label!r} {data_id}"
    thread = _QuantumThread(runner, quantum, message)
    started = time.perf_counter()
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _raise_in(thread, QuantumTimeoutError)
        thread.join(max(1.0, min(timeout, 10.0)))
    if thread.outcome is not None:
        return thread.outcome
    outputs = {r.id for rs in quantum.outputs.values() for r in rs}
    runner.failed_outputs |= outputs
    ctx = runner.contexts.get(quantum.node_id)
    stuck = f"{message} and did not stop; its outputs were removed"
    if ctx is not None:
        ctx.stop(stuck)
    _LOG.error("%s (its thread is left running)", stuck)
    return QuantumOutcome(
        quantum.node_id,
        QuantumStatus.FAILED,
        error_type=_qualified(QuantumTimeoutError()),
        message=stuck,
        repeatable=True,
        host=runner.host,
        pid=os.getpid(),
        attempt=runner.payload.attempt,
        wall_time=time.perf_counter() - started,
    )


def run_quantum_cluster(
    spec: LimitedButlerSpec,
    payload: ClusterPayload,
    *,
    post_mortem: Callable[[Any], None] | None = None,
    cache: WorkerCache | Callable[[], WorkerCache | None] | None = None,
    timeout: float = 0.0,
    report: Callable[[str, int, str], None] | None = None,
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
    timeout : `float`
        Seconds one quantum may run (0: no limit); a longer one fails with
        `~pipeline._errors.QuantumTimeoutError` (see `_run_with_timeout`).
    report : callable, optional
        ``report(execution_id, node, "start" | "end")`` around each quantum (from the
        executor's ``watch_quanta``: the live display counts quanta actually running).

    Returns
    -------
    outcomes : `list` [`QuantumOutcome`]
        One per quantum, in payload order. Task exceptions never propagate; only
        infrastructure errors (the butler cannot be built, the worker dies) do. After
        a quantum that failed for a full disk the rest are not run (blocked, with
        ``disk_full``): the client stops the run.
    """
    if callable(cache):
        cache = cache()
    runner = _ClusterRun(spec, payload, post_mortem, cache if cache is not None else WorkerCache())
    quanta = decode_quanta(payload, runner.tables)
    with lowered_levels([TASK_LOGGER]):  # once per cluster: setLevel walks every logger
        if timeout <= 0 and report is None:
            return [runner.run(quantum) for quantum in quanta]
        outcomes = []
        for quantum in quanta:
            if report is not None:
                report(payload.execution_id, quantum.node_id, "start")
            try:
                if timeout > 0:
                    outcomes.append(_run_with_timeout(runner, quantum, timeout))
                else:
                    outcomes.append(runner.run(quantum))
            finally:
                if report is not None:
                    report(payload.execution_id, quantum.node_id, "end")
        return outcomes
