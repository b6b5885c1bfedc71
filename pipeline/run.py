"""Run a quantum graph against a butler: the client side of an execution.

Design
------
`execute_graph` prepares the output run, decides what is left to do, runs it through an
executor (all executors share `pipeline.executors.schedule`), registers what workers wrote and
summarizes. In order:

1. register the graph's dataset types and the output run (any error: exit code 2);
2. write the init-outputs once per run (``<label>_config`` and the task's own, plus a
   ``packages`` dataset); a run already holding a different config is refused with a
   field-by-field diff (`Config.compare`) unless ``clobber_outputs``;
3. resume: a quantum is complete when its ``<label>_metadata`` dataset is registered
   (``skip_existing``). For every other quantum, registered outputs are stale (e.g. the log
   of a failed attempt): they are unregistered and deleted. A quantum whose metadata
   *file* exists but was never registered (the client died after the worker finished) is
   adopted: its existing output files are registered. Everything else is re-run, and
   re-written files simply replace leftovers (dataset IDs and paths are deterministic);
4. cluster the remaining quanta and run them; outcomes are registered in batches, each
   quantum's outputs inside one transaction with its metadata last;
5. write a ``run_status`` dataset (what happened to each unfinished quantum) for the report,
   print the summary table, and return a `RunSummary` whose ``exit_code`` is 0 (all done,
   including nothing to do), 1 (some failed or blocked) or 2 (could not start).

State: local to one call (known stored-file records, the registration buffer, counts for the
progress display); nothing at module level.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import fsspec

from butler.dataset_ref import DatasetRef
from butler.dataset_type import DatasetType
from butler.datastore.stored_file_info import StoredFileInfo
from butler.dimensions import DataCoordinate

from ._loader import import_by_name
from .execution import (
    ClusterPayload,
    QuantumOutcome,
    QuantumStatus,
    build_task,
    encode_cluster,
    run_quantum_cluster,
    share_tables,
)
from .executors.base import ExecutionResult, Executor, schedule
from .quantum_graph import Quantum, QuantumGraph
from .storage_classes import package_versions

__all__ = ["EXIT_FAILED", "EXIT_NOT_STARTED", "EXIT_OK", "RunSummary", "execute_graph"]

_LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_STARTED = 2

#: Name of the dataset holding the status of the last execution of a run.
RUN_STATUS_DATASET = "run_status"
PACKAGES_DATASET = "packages"
_COLUMNS = ("expected", "skipped", "succeeded", "no_work", "failed", "blocked")


@dataclasses.dataclass
class RunSummary:
    """What an execution did, per task label.

    Parameters
    ----------
    counts : `dict` [`str`, `dict` [`str`, `int`]]
        Label -> column -> count; columns are ``expected``, ``skipped`` (complete before),
        ``succeeded``, ``no_work``, ``failed`` and ``blocked``.
    failures : `list` [`dict`]
        One per failed quantum: ``label``, ``data_id``, ``error_type``, ``message``,
        ``attempts``.
    blocked : `list` [`dict`]
        One per blocked quantum: ``label``, ``data_id``, ``blocked_by`` (a data ID).
    error : `str`
        Why the run could not start ("" if it did).
    execution_id, wall_time, dashboard_link
        Identity of the call, its duration (s) and the dask dashboard, if any.
    """

    counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    blocked: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str = ""
    execution_id: str = ""
    wall_time: float = 0.0
    dashboard_link: str | None = None
    result: ExecutionResult | None = None

    @property
    def exit_code(self) -> int:
        """0 all done, 1 some quanta failed or were blocked, 2 the run could not start."""
        if self.error:
            return EXIT_NOT_STARTED
        if any(c["failed"] or c["blocked"] for c in self.counts.values()):
            return EXIT_FAILED
        return EXIT_OK

    def total(self, column: str) -> int:
        """Sum of one column over every task label."""
        return sum(c[column] for c in self.counts.values())

    def table(self) -> Any:
        """Return a `rich.table.Table` of the counts per task label."""
        from rich.table import Table

        table = Table(title=f"execution {self.execution_id[:8]} ({self.wall_time:.1f} s)")
        table.add_column("task")
        for column in _COLUMNS:
            table.add_column(column, justify="right")
        for label, counts in self.counts.items():
            table.add_row(label, *(str(counts[c]) for c in _COLUMNS))
        table.add_row("[b]total", *(f"[b]{self.total(c)}" for c in _COLUMNS))
        return table


# -- helpers ------------------------------------------------------------------------------------


def _empty_ref(qgraph: QuantumGraph, dtype: DatasetType) -> DatasetRef:
    return DatasetRef.make(dtype, DataCoordinate(qgraph.universe.group(()), ()), qgraph.output_run)


def _artifact_size(butler: Any, info: StoredFileInfo) -> int:
    fs, path = fsspec.core.url_to_fs(butler.datastore.uri(info))
    return int(fs.du(path, total=True)) if fs.isdir(path) else int(fs.size(path))


def _config_of(info: Any) -> Any:
    task_class = import_by_name(info.task_class, where=f"task {info.label!r}")
    config = task_class.ConfigClass()
    config.loadFromYaml(io.StringIO(info.config_yaml), where=f"graph task {info.label!r}")
    return config


def _resources(qgraph: QuantumGraph) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for label, info in qgraph.tasks.items():
        resources = getattr(_config_of(info), "resources", None)
        hints: dict[str, float] = {}
        if resources is not None and hasattr(resources, "numberOfCores"):
            if resources.numberOfCores and resources.numberOfCores > 1:
                hints["cpus"] = float(resources.numberOfCores)
            if getattr(resources, "minMemoryMB", None):
                hints["memory_mb"] = float(resources.minMemoryMB)
        out[label] = hints
    return out


class _Setup:
    """Prepares the run; raises `RuntimeError` with a message when it cannot start."""

    def __init__(self, butler: Any, qgraph: QuantumGraph, *, clobber: bool) -> None:
        self.butler = butler
        self.qgraph = qgraph
        self.clobber = clobber
        self.registry = butler.registry
        empty = qgraph.universe.group(())
        self.status_type = DatasetType(RUN_STATUS_DATASET, empty, "JsonDict")
        self.packages_type = DatasetType(PACKAGES_DATASET, empty, "Packages")

    def register(self) -> None:
        for dtype in [*self.qgraph.dataset_types.values(), self.status_type, self.packages_type]:
            self.registry.register_dataset_type(dtype)
        self.registry.register_run(self.qgraph.output_run)

    def init_inputs(self) -> dict[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]]:
        produced = {
            conn.dataset_type
            for info in self.qgraph.tasks.values()
            for conn in info.connections_of("initOutputs")
        }
        result: dict[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]] = {}
        for label, info in self.qgraph.tasks.items():
            result[label] = {}
            for conn in info.connections_of("initInputs"):
                dtype = self.qgraph.dataset_types[conn.dataset_type]
                if conn.dataset_type in produced:
                    ref = _empty_ref(self.qgraph, dtype)
                    result[label][conn.attribute] = (ref, None)
                    continue
                ref = self.registry.find_dataset(
                    dtype, {}, collections=self.qgraph.input_collections
                )
                if ref is None:
                    raise RuntimeError(
                        f"init-input {conn.dataset_type!r} of task {label!r} not found in "
                        f"{self.qgraph.input_collections}"
                    )
                stored = self.registry.get_stored_info([ref]).get(ref.id)
                result[label][conn.attribute] = (ref, stored)
        return result

    def _existing(self, ref: DatasetRef) -> StoredFileInfo | None:
        return self.registry.get_stored_info([ref]).get(ref.id)

    def _put(self, obj: Any, ref: DatasetRef) -> None:
        info = self.butler.datastore.put(obj, ref)
        self.registry.insert_datasets([ref], [info])

    def _remove(self, refs: Iterable[DatasetRef]) -> None:
        for info in self.registry.remove_datasets(list(refs)):
            self.butler.datastore.remove(info)

    def write_init_outputs(
        self, init_inputs: dict[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]]
    ) -> None:
        """Write configs first (checking them), then the tasks' own init-outputs."""
        refs_by_label = {label: self.qgraph.init_output_refs(label) for label in self.qgraph.tasks}
        for label, info in self.qgraph.tasks.items():
            ref = refs_by_label[label].get("_config")
            if ref is None:
                continue
            config = _config_of(info)
            stored = self._existing(ref)
            if stored is not None:
                old = self.butler.datastore.get(stored)
                diffs = old.compare(config) if type(old) is type(config) else ["<config class>"]
                if not diffs:
                    continue
                if not self.clobber:
                    raise RuntimeError(
                        f"run {self.qgraph.output_run!r} already holds a different config for "
                        f"task {label!r}:\n  "
                        + "\n  ".join(diffs)
                        + "\n(use another output run, or clobber the outputs)"
                    )
                self._remove([ref])
            self._put(config, ref)
        for label, info in self.qgraph.tasks.items():
            wanted = {k: r for k, r in refs_by_label[label].items() if k != "_config"}
            missing = {k: r for k, r in wanted.items() if self._existing(r) is None}
            if not missing:
                continue
            task = build_task(
                info,
                {
                    name: self.butler.datastore.get(
                        stored if stored is not None else self.butler.datastore.predict(ref)
                    )
                    for name, (ref, stored) in init_inputs[label].items()
                },
            )
            objects = task.getInitOutputDatasets()
            for name, ref in missing.items():
                self._put(objects[name], ref)
        packages_ref = _empty_ref(self.qgraph, self.packages_type)
        if self._existing(packages_ref) is None:
            self._put(package_versions(), packages_ref)


class _Registrar:
    """Registers what workers wrote, in batches; each quantum's outputs all or nothing.

    A flush inserts every buffered quantum's outputs with one bulk insert in one transaction
    (each quantum's refs in order, metadata last). If that fails (e.g. one quantum conflicts
    with a dataset already registered), it falls back to one transaction per quantum, so a
    bad quantum cannot take the others' registrations with it; the error is logged.
    State: the buffer and the time of the last flush.
    """

    def __init__(self, registry: Any, *, max_quanta: int = 500, max_delay: float = 0.5) -> None:
        self.registry = registry
        self.buffer: list[tuple[list[DatasetRef], list[StoredFileInfo]]] = []
        self.max_quanta = max_quanta
        self.max_delay = max_delay
        self.last = time.monotonic()

    def add(self, quantum: Quantum, outcome: QuantumOutcome) -> None:
        written = {info.dataset_id: info for info in outcome.written}
        refs = [ref for ref in quantum.all_outputs() if ref.id in written]
        if refs:
            self.buffer.append((refs, [written[r.id] for r in refs]))
        if len(self.buffer) >= self.max_quanta or time.monotonic() - self.last > self.max_delay:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            refs = [ref for quantum_refs, _ in self.buffer for ref in quantum_refs]
            infos = [info for _, quantum_infos in self.buffer for info in quantum_infos]
            try:
                with self.registry.transaction():
                    self.registry.insert_datasets(refs, infos, on_conflict="ignore")
            except Exception as err:
                _LOG.warning("bulk registration failed (%s); registering quanta one by one", err)
                for quantum_refs, quantum_infos in self.buffer:
                    try:
                        with self.registry.transaction():
                            self.registry.insert_datasets(
                                quantum_refs, quantum_infos, on_conflict="ignore"
                            )
                    except Exception as one_err:
                        _LOG.error(
                            "could not register the outputs of the quantum of %s: %s",
                            quantum_refs[-1],
                            one_err,
                        )
            self.buffer.clear()
        self.last = time.monotonic()


class _Progress:
    """Counts per task label for the live display, kept up to date on every status change.

    State: the column of each node, the counts per label and column, and a rich Live (which
    renders the counts 4 times a second from its own thread, never walking the nodes).
    """

    _COLUMN_OF: Mapping[str, str] = {
        "skipped": "done",
        "succeeded": "done",
        "no_work": "done",
        "running": "running",
        "retry": "running",
        "failed": "failed",
        "blocked": "blocked",
    }

    def __init__(
        self,
        qgraph: QuantumGraph,
        enabled: bool,
        dashboard: str | None,
        label_of: Callable[[int], str],
    ) -> None:
        self.dashboard = dashboard
        self.label_of = label_of
        self.column: dict[int, str] = {}
        self.total = {label: qgraph.count(label) for label in qgraph.tasks}
        self.counts = {
            label: dict.fromkeys(("done", "running", "failed", "blocked"), 0)
            for label in self.total
        }
        self.live = None
        if enabled:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                get_renderable=self.render, console=Console(stderr=True), refresh_per_second=4
            )

    def set(self, node: int, status: str) -> None:
        """Record a node's new status (``on_status`` of the scheduling loop)."""
        column = self._COLUMN_OF.get(status)
        old = self.column.get(node)
        if column == old:
            return
        counts = self.counts[self.label_of(node)]
        if old is not None:
            counts[old] -= 1
            del self.column[node]
        if column is not None:
            counts[column] += 1
            self.column[node] = column

    def render(self) -> Any:
        from rich.table import Table

        counts = {label: dict(row) for label, row in self.counts.items()}
        title = "quanta" + (f"  (dashboard: {self.dashboard})" if self.dashboard else "")
        table = Table(title=title)
        for column in ("task", "done", "running", "failed", "blocked", "total"):
            table.add_column(column, justify="left" if column == "task" else "right")
        for label, row in counts.items():
            table.add_row(label, *(str(row[k]) for k in row), str(self.total[label]))
        return table

    def __enter__(self) -> _Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()


def _make_executor(
    executor: str | Executor,
    jobs: int,
    cluster_address: str | None,
    cluster_config: str | None,
    pdb: bool,
) -> Executor:
    if isinstance(executor, Executor):
        return executor
    if executor == "sync" or pdb:
        from .executors.sync import SyncExecutor

        return SyncExecutor(pdb=pdb)
    if executor == "dask":
        from .executors.dask import DaskExecutor

        return DaskExecutor(jobs=jobs, address=cluster_address, cluster_config=cluster_config)
    raise ValueError(f"unknown executor {executor!r}; use 'dask' or 'sync'")


def _resume_state(
    setup: _Setup,
    qgraph: QuantumGraph,
    quanta: dict[int, Quantum],
    skip_existing: bool,
    clobber: bool,
) -> tuple[set[int], dict[uuid.UUID, StoredFileInfo]]:
    """Return the complete nodes and the records of registered outputs; clean stale ones."""
    butler, registry = setup.butler, setup.registry
    all_refs = [ref for q in quanta.values() for ref in q.all_outputs()]
    registered = registry.get_stored_info(all_refs)
    complete: set[int] = set()
    stale: list[DatasetRef] = []
    for node, quantum in quanta.items():
        outputs = quantum.all_outputs()
        if skip_existing and quantum.metadata_ref.id in registered:
            complete.add(node)
            continue
        here = [r for r in outputs if r.id in registered]
        if here and not (clobber or not skip_existing or quantum.metadata_ref.id not in registered):
            raise RuntimeError("unreachable")
        if here and quantum.metadata_ref.id in registered and not clobber:
            raise RuntimeError(
                f"quantum {quantum.task_label} {quantum.data_id} already has outputs in run "
                f"{qgraph.output_run!r}; resume with skip_existing or clobber the outputs"
            )
        stale.extend(here)
    if stale:
        _LOG.info("removing %d stale outputs of unfinished quanta", len(stale))
        setup._remove(stale)
        for ref in stale:
            registered.pop(ref.id, None)
    adopted = 0
    for node, quantum in quanta.items():
        if node in complete or not skip_existing:
            continue
        meta = butler.datastore.predict(quantum.metadata_ref)
        if not butler.datastore.exists(meta):
            continue
        refs, infos = [], []
        for ref in quantum.all_outputs():
            predicted = butler.datastore.predict(ref)
            if butler.datastore.exists(predicted):
                info = dataclasses.replace(predicted, file_size=_artifact_size(butler, predicted))
                refs.append(ref)
                infos.append(info)
        with registry.transaction():
            registry.insert_datasets(refs, infos, on_conflict="ignore")
        registered.update({i.dataset_id: i for i in infos})
        complete.add(node)
        adopted += 1
    if adopted:
        _LOG.info("adopted %d quanta whose outputs were written but never registered", adopted)
    return complete, registered


def execute_graph(
    butler: Any,
    qgraph: QuantumGraph,
    *,
    executor: str | Executor = "dask",
    jobs: int = 1,
    cluster_address: str | None = None,
    cluster_config: str | None = None,
    retries: int = 0,
    clustering: str = "chains",
    skip_existing: bool = True,
    clobber_outputs: bool = False,
    extend_run: bool = False,
    progress: bool = True,
    pdb: bool = False,
) -> RunSummary:
    """Execute a quantum graph, resuming where an earlier execution stopped.

    Parameters
    ----------
    butler : `~butler.butler.Butler`
        The full butler (client side only; workers get a limited one).
    qgraph : `QuantumGraph`
        The graph to run.
    executor : `str` or `Executor`
        ``"dask"`` (default), ``"sync"`` (in-process), or an executor instance (not closed).
    jobs : `int`
        Worker processes of the local dask cluster.
    cluster_address : `str`, optional
        External dask scheduler address or scheduler file.
    cluster_config : `str`, optional
        Cluster YAML spec (see ``cluster/``).
    retries : `int`
        Retries of a failed quantum (never for `RepeatableQuantumError`).
    clustering : `str`
        ``"chains"`` (default), ``"off"`` or ``"per_task:N"`` (see `pipeline.clustering`).
    skip_existing : `bool`
        Skip quanta whose ``<label>_metadata`` is registered (resume).
    clobber_outputs : `bool`
        Replace a different stored config, and re-run complete quanta when
        ``skip_existing`` is False.
    extend_run : `bool`
        Allow running into a run that already holds outputs of this graph without
        skipping or clobbering them (treated as ``skip_existing``).
    progress : `bool`
        Show the live progress table and the end-of-run summary (on stderr).
    pdb : `bool`
        Run in-process and enter the post-mortem debugger on a failure.

    Returns
    -------
    summary : `RunSummary`
        Counts per task label, failures, and ``exit_code``.
    """
    from .clustering import make_clusters

    start = time.perf_counter()
    summary = RunSummary(execution_id=uuid.uuid4().hex)
    quanta = {node: qgraph.get_quantum(node) for node in qgraph.node_ids()}
    skip = skip_existing or extend_run
    setup = _Setup(butler, qgraph, clobber=clobber_outputs)
    try:
        setup.register()
        init_inputs = setup.init_inputs()
        setup.write_init_outputs(init_inputs)
        complete, known = _resume_state(setup, qgraph, quanta, skip, clobber_outputs)
        clusters = make_clusters(qgraph, [n for n in quanta if n not in complete], clustering)
        resources = _resources(qgraph)
    except Exception as err:
        summary.error = f"{type(err).__name__}: {err}"
        _LOG.error("cannot start the execution: %s", summary.error)
        return summary
    known.update(qgraph.input_infos)
    missing: set[uuid.UUID] = {
        ref.id for n in complete for ref in quanta[n].all_outputs() if ref.id not in known
    }
    spec = butler.limited_spec()
    todo = [n for c in clusters for n in c]
    predecessors = {n: qgraph.predecessors(n) for n in todo}
    successors = {n: [s for s in qgraph.successors(n) if s not in complete] for n in todo}
    registrar = _Registrar(butler.registry)
    summary.counts = {
        label: dict.fromkeys(_COLUMNS, 0) | {"expected": qgraph.count(label)}
        for label in qgraph.tasks
    }
    for node in complete:
        summary.counts[quanta[node].task_label]["skipped"] += 1

    shared, type_index = share_tables(
        qgraph.tasks,
        qgraph.dataset_types.values(),
        {label: qgraph.universe.group(info.dimensions) for label, info in qgraph.tasks.items()},
        init_inputs,
    )

    def make_payload(nodes: tuple[int, ...], attempt: int) -> ClusterPayload:
        members = [quanta[n] for n in nodes]
        ids = {r.id for q in members for r in q.all_inputs()}
        return encode_cluster(
            members,
            [known[i] for i in ids if i in known],
            ids & missing,
            shared=shared,
            type_index=type_index,
            attempt=attempt,
            execution_id=summary.execution_id,
        )

    def on_outcomes(outcomes: list[QuantumOutcome]) -> None:
        for outcome in outcomes:
            quantum = quanta[outcome.node_id]
            if outcome.status in QuantumStatus.DONE:
                written = {i.dataset_id: i for i in outcome.written}
                known.update(written)
                missing.update(r.id for r in quantum.all_outputs() if r.id not in written)
                registrar.add(quantum, outcome)
            elif outcome.status == QuantumStatus.FAILED and (
                outcome.repeatable or outcome.attempt > retries
            ):
                registrar.add(quantum, outcome)  # the log, with the traceback

    try:
        runner = _make_executor(executor, jobs, cluster_address, cluster_config, pdb)
    except Exception as err:
        summary.error = f"cannot start the executor: {type(err).__name__}: {err}"
        _LOG.error("%s", summary.error)
        return summary
    summary.dashboard_link = runner.dashboard_link
    fn = functools.partial(run_quantum_cluster, **runner.run_options())

    def submit(nodes: tuple[int, ...], attempt: int) -> Any:
        hints: dict[str, float] = {}
        for label in {quanta[n].task_label for n in nodes}:
            for key, value in resources[label].items():
                hints[key] = max(hints.get(key, 0.0), value)
        return runner.submit(fn, spec, make_payload(nodes, attempt), resources=hints or None)

    display = _Progress(qgraph, progress, runner.dashboard_link, lambda n: quanta[n].task_label)
    for node in complete:
        display.set(node, QuantumStatus.SKIPPED)
    try:
        with display:
            result = schedule(
                clusters,
                predecessors,
                successors,
                submit=submit,
                wait=runner.wait,
                on_outcomes=on_outcomes,
                on_status=display.set,
                retries=retries,
                parallelism=runner.parallelism(),
            )
            registrar.flush()
    finally:
        if not isinstance(executor, Executor):
            runner.close()
    summary.result = result
    for node, status in result.status.items():
        summary.counts[quanta[node].task_label][status] += 1
        quantum = quanta[node]
        if status == QuantumStatus.FAILED:
            outcome = result.outcomes[node]
            summary.failures.append(
                {
                    "label": quantum.task_label,
                    "data_id": dict(quantum.data_id.required),
                    "error_type": outcome.error_type,
                    "message": outcome.message,
                    "attempts": result.attempts.get(node, 0),
                }
            )
        elif status == QuantumStatus.BLOCKED:
            cause = result.blocked_by.get(node)
            summary.blocked.append(
                {
                    "label": quantum.task_label,
                    "data_id": dict(quantum.data_id.required),
                    "blocked_by": None
                    if cause is None
                    else {
                        "label": quanta[cause].task_label,
                        "data_id": dict(quanta[cause].data_id.required),
                    },
                }
            )
    summary.wall_time = time.perf_counter() - start
    _write_status(setup, qgraph, summary)
    if progress:
        from rich.console import Console

        console = Console(stderr=True)
        console.print(summary.table())
        for failure in summary.failures:
            console.print(
                f"[red]failed[/red] {failure['label']} {failure['data_id']}: "
                f"{failure['error_type']}: {failure['message']}"
            )
    return summary


def _write_status(setup: _Setup, qgraph: QuantumGraph, summary: RunSummary) -> None:
    """Replace the run's ``run_status`` dataset with this execution's summary."""
    ref = _empty_ref(qgraph, setup.status_type)
    data = {
        "execution_id": summary.execution_id,
        "counts": summary.counts,
        "failures": summary.failures,
        "blocked": summary.blocked,
        "wall_time": summary.wall_time,
    }
    try:
        setup._remove([ref])
        setup._put(data, ref)
    except Exception as err:  # the status file is a convenience; never fail the run for it
        _LOG.warning("could not write the run status dataset: %s", err)
