"""Preparing an execution's output run, and deciding what is left to do (resume).

Design
------
`RunSetup` registers the graph's dataset types and the output run, finds the init-inputs and
writes the init-outputs once per run (configs first, checked against what the run holds).
`resume_state` finds the complete quanta, removes stale outputs of unfinished ones and adopts
quanta whose outputs were written but never registered (see `pipeline.execution.run` for the rules).

State: only inside `RunSetup` instances (the butler, graph and dataset types of one call).
"""

from __future__ import annotations

import io
import logging
import posixpath
import uuid
from collections.abc import Iterable
from typing import Any

import fsspec

from butler._errors import ArtifactExistsError
from butler.data_coordinate import DataCoordinate
from butler.dataset_ref import DatasetRef
from butler.dataset_type import DatasetType
from butler.datastore.stored_file_info import StoredFileInfo

from .._errors import InitOutputConflictError
from ..definition.loader import import_by_name
from ..graph.quantum_graph import Quantum, QuantumGraph
from .packages import package_versions
from .provenance import config_digest, mismatch
from .registration import retry_busy
from .worker import build_task

__all__ = [
    "GRAPH_DATASET",
    "PACKAGES_DATASET",
    "RUN_STATUS_DATASET",
    "RunSetup",
    "empty_ref",
    "resume_state",
    "save_graph",
    "task_resources",
]

# Log under the run driver's name: this code is part of a run (`pipeline.execution.run`).
_LOG = logging.getLogger("pipeline.execution.run")

#: Name of the dataset holding the status of the last execution of a run.
RUN_STATUS_DATASET = "run_status"
PACKAGES_DATASET = "packages"
#: Name of the dataset holding the graph of a run's first execution (what it is to make).
GRAPH_DATASET = "quantum_graph"


def empty_ref(qgraph: QuantumGraph, dtype: DatasetType) -> DatasetRef:
    """Return the ref of a run-level dataset (empty data ID) in the graph's output run."""
    return DatasetRef.make(dtype, DataCoordinate(qgraph.universe.group(()), ()), qgraph.output_run)


def _config_of(info: Any) -> Any:
    task_class = import_by_name(info.task_class, where=f"task {info.label!r}")
    config = task_class.ConfigClass()
    config.loadFromYaml(io.StringIO(info.config_yaml), where=f"graph task {info.label!r}")
    return config


def task_resources(qgraph: QuantumGraph) -> dict[str, dict[str, float]]:
    """Return the dask resource hints of each task label, from its config."""
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


class RunSetup:
    """Prepares the run; raises `RuntimeError` with a message when it cannot start."""

    def __init__(
        self, butler: Any, qgraph: QuantumGraph, *, clobber: bool, timeout: float = 60.0
    ) -> None:
        self.butler = butler
        self.timeout = timeout  # seconds a write waits for a busy registry
        self.qgraph = qgraph
        self.clobber = clobber
        #: Labels whose config in the run was replaced (``clobber``): what they made is stale.
        self.changed: set[str] = set()
        self.registry = butler.registry
        empty = qgraph.universe.group(())
        self.status_type = DatasetType(RUN_STATUS_DATASET, empty, "JsonDict")
        self.packages_type = DatasetType(PACKAGES_DATASET, empty, "Packages")
        self.graph_type = DatasetType(GRAPH_DATASET, empty, "QuantumGraph")

    def register(self) -> None:
        """Register the graph's dataset types, the run-level ones and the output run."""
        run_level = [self.status_type, self.packages_type, self.graph_type]
        for dtype in [*self.qgraph.dataset_types.values(), *run_level]:
            self.registry.register_dataset_type(dtype)
        self.registry.register_run(self.qgraph.output_run)

    def init_inputs(self) -> dict[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]]:
        """Return, per task label, its init-input refs with their stored-file records."""
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
                    ref = empty_ref(self.qgraph, dtype)
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
        """Write and register a dataset (waiting for a busy registry); no file if it fails."""
        info = self.butler.datastore.put(obj, ref)
        try:
            retry_busy(
                lambda: self.registry.insert_datasets([ref], [info]),
                self.timeout,
                what=ref.dataset_type.name,
            )
        except BaseException:
            self.butler.datastore.remove(info)
            raise

    def _remove(self, refs: Iterable[DatasetRef]) -> None:
        """Unregister datasets (waiting for a busy registry), then delete their files."""
        refs = list(refs)
        removed = retry_busy(
            lambda: self.registry.remove_datasets(refs), self.timeout, what="stale datasets"
        )
        for info in removed:
            self.butler.datastore.remove(info)

    def write_once(self, obj: Any, ref: DatasetRef, label: str, what: str) -> None:
        """Store init-output ``obj`` of task ``label`` unless the run has exactly it already.

        - registered and byte-identical to ``obj`` (`FileDatastore.same_artifact`): kept; a
          different one is an error, or with ``clobber`` replaced (``label`` then counts as
          changed: what its quanta made is stale);
        - a file at the dataset's path that no registry row owns: adopted (registered as it
          is, not rewritten) only if byte-identical. A different one is replaced, with a
          warning naming it: the caller holds the run's lease, so no live process writes into
          the run and the file was left by a dead execution of it (a client killed between
          writing and registering, or a run removed without its files), the rule outputs of
          unfinished quanta follow too;
        - otherwise written without replacing anything (``replace=False``) and registered; if
          another process registered the same dataset meanwhile, its artifact is compared and
          only this call's own file (never a shared one) is deleted.

        Raises
        ------
        InitOutputConflictError
            If the run holds a different ``what`` (without ``clobber``).
        """
        datastore = self.butler.datastore
        for _ in range(4):  # clobber, write, check; a concurrent writer adds one round
            stored = self._existing(ref)
            if stored is not None:
                if datastore.same_artifact(obj, stored):
                    return
                if not self.clobber:
                    raise self._conflict(what, datastore.uri(stored))
                _LOG.warning(
                    "replacing %s in run %r (--clobber-outputs): the stored one differs; every "
                    "quantum of task %r, and everything downstream, is run again",
                    what,
                    self.qgraph.output_run,
                    label,
                )
                self.changed.add(label)
                self._remove([ref])
                continue
            predicted = datastore.predict(ref)
            replace = False
            if datastore.exists(predicted):
                if datastore.same_artifact(obj, predicted):
                    (info,) = datastore.records_of_existing([predicted])
                    self._insert_ignoring_duplicates(ref, info)
                    _LOG.info("adopted %s: written (identical) but never registered", what)
                    continue  # check what is registered now
                _LOG.warning(
                    "replacing %s at %s: an earlier execution of run %r left a different file "
                    "there and never registered it",
                    what,
                    datastore.uri(predicted),
                    self.qgraph.output_run,
                )
                replace = True
            try:
                info = datastore.put(obj, ref, replace=replace)
            except ArtifactExistsError:
                continue  # another writer committed it a moment ago: look again
            try:
                self._insert_ignoring_duplicates(ref, info)
            except BaseException:
                datastore.remove(info)  # ours: registration failed, nobody points at it
                raise
            now = self._existing(ref)
            if now is not None and now.path != info.path:
                datastore.remove(info)  # another process registered its own key first
            continue  # check (and compare) what is registered now
        raise InitOutputConflictError(f"{what}: could not settle it against concurrent writers")

    def _insert_ignoring_duplicates(self, ref: DatasetRef, info: StoredFileInfo) -> None:
        retry_busy(
            lambda: self.registry.insert_datasets([ref], [info], on_conflict="ignore"),
            self.timeout,
            what=ref.dataset_type.name,
        )

    def _conflict(self, what: str, uri: str) -> InitOutputConflictError:
        return InitOutputConflictError(
            f"run {self.qgraph.output_run!r} already holds a different {what} ({uri}); it is "
            "left as it is (use another output run, or --clobber-outputs to replace it)"
        )

    def write_init_outputs(
        self, init_inputs: dict[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]]
    ) -> None:
        """Write configs first (checking them), then the tasks' own init-outputs (`write_once`)."""
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
                        + "\n(use another output run, or --clobber-outputs to replace them)"
                    )
                _LOG.warning(
                    "task %r: the config stored in run %r differs; every quantum made with it, "
                    "and everything downstream, is run again:\n  %s",
                    label,
                    self.qgraph.output_run,
                    "\n  ".join(diffs),
                )
                self.changed.add(label)
                self._remove([ref])
            self.write_once(config, ref, label, f"config of task {label!r}")
        for label, info in self.qgraph.tasks.items():
            wanted = {k: r for k, r in refs_by_label[label].items() if k != "_config"}
            if not wanted:
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
            for name, ref in wanted.items():
                what = f"init-output {ref.dataset_type.name!r} of task {label!r}"
                self.write_once(objects[name], ref, label, what)
        packages_ref = empty_ref(self.qgraph, self.packages_type)
        if self._existing(packages_ref) is None:
            self._put(package_versions(), packages_ref)


def save_graph(setup: RunSetup) -> None:
    """Store the graph in the run, unless the run already holds one.

    The first execution's graph is the run's plan; a resume's graph is part of it. The
    report counts the expected quanta from it, whatever happened to the executions.
    """
    ref = empty_ref(setup.qgraph, setup.graph_type)
    if setup._existing(ref) is None:
        setup._put(setup.qgraph, ref)


def _downstream(qgraph: QuantumGraph, quanta: dict[int, Quantum], labels: set[str]) -> set[int]:
    """Return the nodes of ``labels`` and every node downstream of them."""
    found = {node for node, quantum in quanta.items() if quantum.task_label in labels}
    stack = list(found)
    while stack:
        for successor in qgraph.successors(stack.pop()):
            if successor in quanta and successor not in found:
                found.add(successor)
                stack.append(successor)
    return found


def remove_temporaries(butler: Any, quanta: Iterable[Quantum]) -> int:
    """Delete temporaries (``.<name>.tmp-<hex>``) a killed writer left next to these outputs.

    Only the directories that outputs of ``quanta`` go to are looked at; call it only while
    holding the run's lease (no other process writes there). Returns how many were removed.
    """
    from butler.datastore._atomic import discard, is_temporary

    directories = {
        posixpath.dirname(butler.datastore.uri(butler.datastore.predict(ref)))
        for quantum in quanta
        for ref in quantum.all_outputs()
    }
    removed = 0
    for directory in sorted(directories):
        fs, path = fsspec.core.url_to_fs(directory)
        try:
            names = fs.ls(path, detail=False)
        except FileNotFoundError:
            continue
        for name in names:
            if is_temporary(posixpath.basename(name.rstrip("/"))):
                discard(fs, name)
                removed += 1
    return removed


def resume_state(
    setup: RunSetup,
    qgraph: QuantumGraph,
    quanta: dict[int, Quantum],
    skip_existing: bool,
    clobber: bool,
) -> tuple[set[int], dict[uuid.UUID, StoredFileInfo]]:
    """Return the complete nodes and the records of registered outputs; clean stale ones.

    Quanta of a task whose stored config was replaced (`RunSetup.changed`), and everything
    downstream of them, are never complete: what they made is removed and they run again.
    An unregistered metadata file is adopted only if its provenance is this quantum's
    (`~pipeline.execution.provenance.mismatch`). With ``skip_existing``, temporaries left by
    killed writers are removed first.
    """
    butler, registry = setup.butler, setup.registry
    if skip_existing:
        leftovers = remove_temporaries(butler, quanta.values())
        if leftovers:
            _LOG.info("removed %d temporary files left by interrupted writes", leftovers)
    redo = _downstream(qgraph, quanta, setup.changed) if setup.changed else set()
    all_refs = [ref for q in quanta.values() for ref in q.all_outputs()]
    registered = registry.get_stored_info(all_refs)
    complete: set[int] = set()
    stale: list[DatasetRef] = []
    for node, quantum in quanta.items():
        outputs = quantum.all_outputs()
        if skip_existing and quantum.metadata_ref.id in registered and node not in redo:
            complete.add(node)
            continue
        here = [r for r in outputs if r.id in registered]
        if here and quantum.metadata_ref.id in registered and not clobber:
            raise RuntimeError(
                f"quantum {quantum.task_label} {quantum.data_id} already has outputs in run "
                f"{qgraph.output_run!r}; resume with --skip-existing (or --resume), or replace "
                "them with --clobber-outputs"
            )
        stale.extend(here)
    if stale:
        _LOG.info("removing %d stale outputs of unfinished quanta", len(stale))
        setup._remove(stale)
        for ref in stale:
            registered.pop(ref.id, None)
    adopted, refused = 0, []
    digests = {label: config_digest(info.config_yaml) for label, info in qgraph.tasks.items()}
    datastore = butler.datastore
    # Which unfinished quanta have a metadata file: one listing per folder, not one request
    # per quantum (`FileDatastore.existing`).
    candidates = {
        node: datastore.predict(quantum.metadata_ref)
        for node, quantum in quanta.items()
        if skip_existing and node not in complete and node not in redo
    }
    with_metadata = datastore.existing(candidates.values())
    adoptable: list[int] = []
    for node, meta in candidates.items():
        if meta.path not in with_metadata:
            continue
        quantum = quanta[node]
        try:
            recorded = datastore.get(meta).to_dict().get("quantum")
        except Exception as err:  # unreadable: not ours to trust
            recorded, why = None, f"unreadable metadata ({err})"
        else:
            why = mismatch(recorded, quantum, digests[quantum.task_label])
        if why:
            refused.append(f"{quantum.task_label} {quantum.data_id}: {why}")
            continue
        adoptable.append(node)
    refs_by_id = {ref.id: ref for node in adoptable for ref in quanta[node].all_outputs()}
    # each quantum's outputs with its metadata last (`Quantum.all_outputs`), all in one batch
    infos = datastore.records_of_existing(datastore.predict(ref) for ref in refs_by_id.values())
    refs = [refs_by_id[info.dataset_id] for info in infos]
    if refs:
        retry_busy(
            lambda: registry.insert_datasets(refs, infos, on_conflict="ignore"),
            setup.timeout,
            what="adopted outputs",
        )
    registered.update({i.dataset_id: i for i in infos})
    complete.update(adoptable)
    adopted = len(adoptable)
    if adopted:
        _LOG.info("adopted %d quanta whose outputs were written but never registered", adopted)
    if refused:
        _LOG.warning(
            "not adopting %d quanta whose unregistered files this run did not make; they run "
            "again (first: %s)",
            len(refused),
            refused[0],
        )
    return complete, registered
