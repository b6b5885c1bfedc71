"""The quantum graph: one node per (task, data ID), with resolved inputs and predicted outputs.

Design
------
The graph is stored column-wise, so that building and loading a graph of
hundreds of thousands of quanta costs a few Python tuples per quantum, not a
tree of objects:

- a *ref table* holds every dataset that some quantum reads:
  ``(dataset type index, run index, data ID values, UUID bytes, producer node)``;
  the producer is the node that writes it, or -1 for a dataset already in the
  butler (its stored-file record is kept in ``input_infos``);
- per task label, a *task block* holds the quanta of that task: their data ID
  values (in the task's dimension order) and, per input connection, the list
  of ref-table indices each quantum reads.

Outputs are not stored: a quantum's output refs are fully determined by its
data ID, the output dataset types and the output run (dataset IDs are
deterministic), and `QuantumGraph.get_quantum` computes them on demand.

Node IDs are integers in a topological order (tasks in pipeline order, quanta
of a task in data ID order), so a node's predecessors always have smaller IDs.
`Quantum` objects are made on access and not cached; the graph holds no other
mutable state after construction.

File format (``.qgraph``): a magic string and format version, a msgpack
header (task definitions, universe, run, dataset types, byte ranges of each
block and a CRC32 of each), then the ref table and the task blocks, each a
msgpack blob. Loading checks the magic, version, lengths and checksums, so a
truncated file or one from another version is a clear error; ``nodes=`` loads
only the task blocks that hold the requested nodes.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from butler.data_coordinate import DataCoordinate
from butler.dataset_ref import DatasetRef, make_dataset_id
from butler.dataset_type import DatasetType
from butler.datastore.stored_file_info import StoredFileInfo
from butler.dimensions import DimensionUniverse

from .._errors import PipelineError
from .encoding import (
    _decode_block,
    _decode_infos,
    _decode_refs,
    _encode_block,
    _encode_infos,
    _encode_refs,
    _LazyInfos,
    _pack,
    _StringTable,
    _TaskBlock,
    _unpack,
    _value_kinds,
)
from .gc_pause import gc_paused

__all__ = [
    "QGRAPH_FORMAT_VERSION",
    "ConnectionInfo",
    "Quantum",
    "QuantumGraph",
    "QuantumGraphFileError",
    "TaskInfo",
]

#: Version of the file format written by `QuantumGraph.save`.
QGRAPH_FORMAT_VERSION = 1
_MAGIC = b"SKYQGRAPH\x00"
_PREFIX = struct.Struct("<10sIQ")  # magic, format version, header length


class QuantumGraphFileError(PipelineError, ValueError):
    """A graph file is truncated, corrupt, or from another format version."""


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One connection of a task in a graph.

    Parameters
    ----------
    attribute : `str`
        Connection name on the task's connections class (``_metadata``,
        ``_log`` and ``_config`` for the automatic ones).
    dataset_type : `str`
        Dataset type name.
    kind : `str`
        ``inputs``, ``prerequisiteInputs``, ``initInputs``, ``outputs`` or ``initOutputs``.
    multiple : `bool`
        Whether a quantum reads or writes a list of datasets through it.
    """

    attribute: str
    dataset_type: str
    kind: str
    multiple: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class TaskInfo:
    """What a worker needs to build and run a task.

    Parameters
    ----------
    label : `str`
        Task label in the pipeline.
    task_class : `str`
        Dotted name of the `PipelineTask` subclass.
    config_yaml : `str`
        The task's frozen config, as YAML.
    dimensions : `tuple` [`str`, ...]
        Quantum dimensions (required, canonical order).
    connections : `tuple` [`ConnectionInfo`, ...]
        All connections, automatic ones included.
    """

    label: str
    task_class: str
    config_yaml: str
    dimensions: tuple[str, ...]
    connections: tuple[ConnectionInfo, ...]

    def connections_of(self, *kinds: str) -> tuple[ConnectionInfo, ...]:
        """Return the connections of the given kinds."""
        return tuple(c for c in self.connections if c.kind in kinds)

    def to_dict(self) -> dict[str, Any]:
        """Return a msgpack/JSON-compatible form."""
        return {
            "label": self.label,
            "task_class": self.task_class,
            "config_yaml": self.config_yaml,
            "dimensions": list(self.dimensions),
            "connections": [dataclasses.astuple(c) for c in self.connections],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskInfo:
        """Rebuild from `to_dict` output."""
        return cls(
            data["label"],
            data["task_class"],
            data["config_yaml"],
            tuple(data["dimensions"]),
            tuple(ConnectionInfo(*c) for c in data["connections"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Quantum:
    """One unit of work: a task run on one data ID.

    Parameters
    ----------
    node_id : `int`
        Node ID in its graph.
    task_label : `str`
        Label of the task.
    data_id : `DataCoordinate`
        The quantum's data ID.
    inputs : `dict` [`str`, `tuple` [`DatasetRef`, ...]]
        Regular and prerequisite inputs, by connection attribute.
    outputs : `dict` [`str`, `tuple` [`DatasetRef`, ...]]
        Predicted outputs, by connection attribute (``_metadata`` and
        ``_log`` included).
    """

    node_id: int
    task_label: str
    data_id: DataCoordinate
    inputs: dict[str, tuple[DatasetRef, ...]]
    outputs: dict[str, tuple[DatasetRef, ...]]

    @property
    def metadata_ref(self) -> DatasetRef:
        """The ``<label>_metadata`` output: the quantum's success marker."""
        return self.outputs["_metadata"][0]

    def all_outputs(self) -> list[DatasetRef]:
        """All output refs, the metadata one last."""
        refs = [r for name, rs in self.outputs.items() if name != "_metadata" for r in rs]
        return refs + [self.metadata_ref]

    def all_inputs(self) -> list[DatasetRef]:
        """All input refs."""
        return [r for rs in self.inputs.values() for r in rs]


class QuantumGraph:
    """A graph of quanta; build it with `~pipeline.graph.builder.build_quantum_graph`.

    Parameters
    ----------
    universe : `DimensionUniverse`
        Dimension universe of the data IDs.
    tasks : sequence of `TaskInfo`
        Tasks in pipeline (topological) order.
    dataset_types : mapping of `str` to `DatasetType`
        Every dataset type a task reads or writes.
    output_run : `str`
        RUN collection the outputs go to.
    input_collections : sequence of `str`
        Collections the inputs were found in.
    refs : `list` [`tuple`]
        The ref table (see the module notes).
    runs : `list` [`str`]
        Run names indexed by the ref table.
    blocks : mapping of `str` to `_TaskBlock`
        Quanta per task label (only the loaded ones after a partial load).
    input_infos : mapping of `uuid.UUID` to `StoredFileInfo`
        Stored-file records of the datasets read from the butler.
    metadata : `dict`
        Free-form provenance (who built it, when, with what command).
    """

    def __init__(
        self,
        *,
        universe: DimensionUniverse,
        tasks: Sequence[TaskInfo],
        dataset_types: Mapping[str, DatasetType],
        output_run: str,
        input_collections: Sequence[str],
        refs: list[tuple[int, int, tuple[Any, ...], bytes, int]],
        runs: list[str],
        blocks: Mapping[str, _TaskBlock],
        block_sizes: Mapping[str, int],
        input_infos: Mapping[uuid.UUID, StoredFileInfo],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.universe = universe
        self.tasks = {t.label: t for t in tasks}
        self.dataset_types = dict(dataset_types)
        self._dataset_type_names = list(self.dataset_types)
        self.output_run = output_run
        self.input_collections = list(input_collections)
        self._refs = refs
        self._runs = runs
        self._blocks = dict(blocks)
        self._block_sizes = dict(block_sizes)
        self.input_infos = input_infos if isinstance(input_infos, _LazyInfos) else dict(input_infos)
        self.metadata = dict(metadata or {})
        self._groups = {label: universe.group(t.dimensions) for label, t in self.tasks.items()}
        starts, total = {}, 0
        for label in self.tasks:
            starts[label] = total
            total += self._block_sizes[label]
        self._starts = starts
        self._total = total
        self._successors: dict[int, list[int]] | None = None

    # -- size and iteration -----------------------------------------------------

    def __len__(self) -> int:
        """Return the number of quanta in the whole graph (loaded or not)."""
        return self._total

    @property
    def loaded_labels(self) -> list[str]:
        """Task labels whose quanta are loaded."""
        return [label for label in self.tasks if label in self._blocks]

    def count(self, label: str) -> int:
        """Return the number of quanta of one task."""
        return self._block_sizes[label]

    def node_ids(self, label: str | None = None) -> range | list[int]:
        """Node IDs of one task, or of every loaded task."""
        if label is not None:
            return range(self._starts[label], self._starts[label] + self._block_sizes[label])
        return [n for lab in self.loaded_labels for n in self.node_ids(lab)]

    def task_label_of(self, node_id: int) -> str:
        """Return the label of the task of a node."""
        for label in reversed(self.tasks):
            if node_id >= self._starts[label]:
                if node_id >= self._starts[label] + self._block_sizes[label]:
                    break
                return label
        raise KeyError(f"node {node_id} is not in this graph (0..{self._total - 1})")

    def _block(self, label: str) -> _TaskBlock:
        try:
            return self._blocks[label]
        except KeyError:
            raise KeyError(
                f"quanta of task {label!r} were not loaded from the graph file"
            ) from None

    # -- quanta -------------------------------------------------------------------

    def _ref(self, index: int) -> DatasetRef:
        type_index, run_index, values, id_bytes, _ = self._refs[index]
        dtype = self.dataset_types[self._dataset_type_names[type_index]]
        data_id = DataCoordinate(dtype.dimensions, tuple(values))
        run = self._runs[run_index]
        if id_bytes:
            return DatasetRef(dtype, data_id, run, uuid.UUID(bytes=bytes(id_bytes)))
        return DatasetRef(dtype, data_id, run, make_dataset_id(run, dtype.name, data_id))

    def data_id(self, node_id: int) -> DataCoordinate:
        """Return the data ID of a node (cheap: no refs are built)."""
        label = self.task_label_of(node_id)
        values = self._block(label).data_ids[node_id - self._starts[label]]
        return DataCoordinate(self._groups[label], tuple(values))

    def get_quantum(self, node_id: int) -> Quantum:
        """Build the `Quantum` of a node, with its input and predicted output refs."""
        label = self.task_label_of(node_id)
        block = self._block(label)
        local = node_id - self._starts[label]
        data_id = DataCoordinate(self._groups[label], tuple(block.data_ids[local]))
        inputs = {
            attr: tuple(self._ref(i) for i in per_quantum[local])
            for attr, per_quantum in block.inputs.items()
        }
        outputs = {}
        for conn in self.tasks[label].connections_of("outputs"):
            dtype = self.dataset_types[conn.dataset_type]
            out_id = data_id.subset(dtype.dimensions)
            ref = DatasetRef(
                dtype, out_id, self.output_run, make_dataset_id(self.output_run, dtype.name, out_id)
            )
            outputs[conn.attribute] = (ref,)
        return Quantum(node_id, label, data_id, inputs, outputs)

    def iter_quanta(self, label: str | None = None) -> Iterator[Quantum]:
        """Yield the quanta of one task, or of every loaded task, in node order."""
        for node_id in self.node_ids(label):
            yield self.get_quantum(node_id)

    def init_output_refs(self, label: str) -> dict[str, DatasetRef]:
        """Return the init-output refs of a task (``_config`` included)."""
        result = {}
        empty = self.universe.group(())
        for conn in self.tasks[label].connections_of("initOutputs"):
            dtype = self.dataset_types[conn.dataset_type]
            result[conn.attribute] = DatasetRef.make(
                dtype, DataCoordinate(empty, ()), self.output_run
            )
        return result

    # -- edges ------------------------------------------------------------------------

    def predecessors(self, node_id: int) -> list[int]:
        """Nodes that produce an input of ``node_id``."""
        label = self.task_label_of(node_id)
        block = self._block(label)
        local = node_id - self._starts[label]
        result = {
            self._refs[i][4]
            for per_quantum in block.inputs.values()
            for i in per_quantum[local]
            if self._refs[i][4] >= 0
        }
        return sorted(result)

    def successors(self, node_id: int) -> list[int]:
        """Nodes that read an output of ``node_id`` (among loaded tasks)."""
        if self._successors is None:
            succ: dict[int, list[int]] = {}
            for node in self.node_ids():
                for pred in self.predecessors(node):
                    succ.setdefault(pred, []).append(node)
            self._successors = succ
        return self._successors.get(node_id, [])

    def stored_info(self, ref: DatasetRef) -> StoredFileInfo | None:
        """Stored-file record of an input read from the butler (`None` for produced ones)."""
        return self.input_infos.get(ref.id)

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the graph to a file, atomically (temporary name, then rename)."""
        if len(self._blocks) != len(self.tasks):
            raise QuantumGraphFileError("cannot save a partially loaded graph")
        strings = _StringTable()
        blobs = [_pack(_encode_refs(self._refs, strings))]
        for label in self.tasks:
            blobs.append(
                _pack(
                    _encode_block(self._blocks[label], len(self.tasks[label].dimensions), strings)
                )
            )
        blobs.append(_pack(_encode_infos(self.input_infos, strings)))
        header = {
            "universe": self.universe.to_config(),
            "tasks": [t.to_dict() for t in self.tasks.values()],
            "dataset_types": [d.to_dict() for d in self.dataset_types.values()],
            "output_run": self.output_run,
            "input_collections": self.input_collections,
            "runs": self._runs,
            "block_sizes": self._block_sizes,
            "strings": strings.values,
            "metadata": self.metadata,
            "blobs": [[len(b), zlib.crc32(b)] for b in blobs],
        }
        head = _pack(header)
        tmp = f"{os.fspath(path)}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as stream:
                stream.write(_PREFIX.pack(_MAGIC, QGRAPH_FORMAT_VERSION, len(head)))
                stream.write(head)
                for blob in blobs:
                    stream.write(blob)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, nodes: Iterable[int] | None = None
    ) -> QuantumGraph:
        """Read a graph file (see `_load`; the garbage collector is paused meanwhile)."""
        with gc_paused():
            return cls._load(path, nodes=nodes)

    @classmethod
    def _load(
        cls, path: str | os.PathLike[str], *, nodes: Iterable[int] | None = None
    ) -> QuantumGraph:
        """Read a graph file.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            The ``.qgraph`` file.
        nodes : iterable of `int`, optional
            Load only the task blocks holding these node IDs.

        Raises
        ------
        QuantumGraphFileError
            If the file is not a graph, is from another format version, or is
            truncated or corrupt.
        """
        path = os.fspath(path)
        with open(path, "rb") as stream:
            data = stream.read()
        if len(data) < _PREFIX.size:
            raise QuantumGraphFileError(f"{path}: too short to be a quantum graph file")
        magic, version, head_len = _PREFIX.unpack_from(data)
        if magic != _MAGIC:
            raise QuantumGraphFileError(f"{path}: not a skyquanta quantum graph file")
        if version != QGRAPH_FORMAT_VERSION:
            raise QuantumGraphFileError(
                f"{path}: graph file format version {version}; this software reads version "
                f"{QGRAPH_FORMAT_VERSION} (rebuild the graph with 'pipetask qgraph')"
            )
        offset = _PREFIX.size
        if len(data) < offset + head_len:
            raise QuantumGraphFileError(f"{path}: truncated (header incomplete)")
        try:
            header = _unpack(data[offset : offset + head_len])
        except Exception as err:
            raise QuantumGraphFileError(f"{path}: corrupt header: {err}") from err
        offset += head_len
        spans = []
        for length, crc in header["blobs"]:
            spans.append((offset, length, crc))
            offset += length
        if len(data) < offset:
            raise QuantumGraphFileError(f"{path}: truncated ({len(data)} bytes, expected {offset})")
        universe = DimensionUniverse(header["universe"], source=path)
        tasks = [TaskInfo.from_dict(t) for t in header["tasks"]]
        sizes = {k: int(v) for k, v in header["block_sizes"].items()}
        wanted = {t.label for t in tasks}
        if nodes is not None:
            bounds, total, wanted = {}, 0, set()
            for t in tasks:
                bounds[t.label] = (total, total + sizes[t.label])
                total += sizes[t.label]
            for node in nodes:
                label = next((lab for lab, (lo, hi) in bounds.items() if lo <= node < hi), None)
                if label is None:
                    raise KeyError(f"node {node} is not in graph {path} (0..{total - 1})")
                wanted.add(label)

        def blob(i: int) -> Any:
            start, length, crc = spans[i]
            raw = data[start : start + length]
            if zlib.crc32(raw) != crc:
                raise QuantumGraphFileError(
                    f"{path}: checksum mismatch in block {i} (corrupt file)"
                )
            return _unpack(raw)

        strings = header["strings"]
        dataset_types = {
            d["name"]: DatasetType.from_dict(d, universe) for d in header["dataset_types"]
        }
        kinds = _value_kinds(universe, dataset_types.values())
        refs = _decode_refs(blob(0), strings, [kinds[n] for n in dataset_types])
        blocks = {}
        first = 0
        for i, task in enumerate(tasks):
            if task.label in wanted:
                task_kinds = [universe.dimension(d).key.type == "string" for d in task.dimensions]
                blocks[task.label] = _decode_block(blob(i + 1), task_kinds, strings, first)
            first += sizes[task.label]
        input_infos = _decode_infos(blob(len(tasks) + 1), strings)
        return cls(
            universe=universe,
            tasks=tasks,
            dataset_types=dataset_types,
            output_run=header["output_run"],
            input_collections=header["input_collections"],
            refs=refs,
            runs=header["runs"],
            blocks=blocks,
            block_sizes=sizes,
            input_infos=input_infos,
            metadata=header["metadata"],
        )
