"""The pipeline graph: tasks joined by the dataset types they read and write, checked.

Design
------
The graph is bipartite: task nodes (by label) and dataset-type nodes (by name). An edge runs
from a dataset type to each task that reads it and from a task to each dataset type it writes.
Init-inputs and init-outputs (schemas, configs) are edges like any other, so they take part in
ordering and cycle detection. Every task also writes three dataset types of its own:
``<label>_metadata`` (``TaskMetadata``, task dimensions), ``<label>_log``
(``ButlerLogRecords``, task dimensions) and the init-output ``<label>_config`` (``Config``, no
dimensions).

`PipelineGraph.from_task_defs` builds everything once and checks, in this order: a dataset type
written by two tasks, a storage class or dimensions disagreement between a writer and a reader
(or between two readers of an overall input), an input that nothing writes and that is not in
``existing_dataset_types`` (only checked when that mapping is given), and a cycle. The object is
immutable afterwards; dimensions are plain frozensets of dimension names, since the framework
needs no more than equality here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import PipelineError

__all__ = [
    "ConnectionMismatchError",
    "DatasetTypeNode",
    "DuplicateProducerError",
    "EdgeSpec",
    "MissingInputError",
    "PipelineCycleError",
    "PipelineGraph",
    "PipelineGraphError",
    "TaskNode",
]

_INPUT_KINDS = ("inputs", "prerequisiteInputs", "initInputs")
_OUTPUT_KINDS = ("outputs", "initOutputs")
_ALL_KINDS = _INPUT_KINDS + _OUTPUT_KINDS


class PipelineGraphError(PipelineError, ValueError):
    """The tasks of a pipeline do not fit together."""


class DuplicateProducerError(PipelineGraphError):
    """Two tasks write the same dataset type."""


class PipelineCycleError(PipelineGraphError):
    """A task depends, through dataset types, on its own outputs."""


class MissingInputError(PipelineGraphError, LookupError):
    """A task reads a dataset type that no task writes and that does not exist yet."""


class ConnectionMismatchError(PipelineGraphError):
    """Two connections to one dataset type disagree on storage class or dimensions."""


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    """One connection of a task, reduced to what the graph needs.

    Parameters
    ----------
    attribute : `str`
        Name of the connection on the task's connections class (``exposure``).
    name : `str`
        Dataset type name (``calexp``).
    storage_class : `str`
        Storage class name.
    dimensions : `frozenset` [`str`]
        Dimension names of the dataset type.
    kind : `str`
        One of ``inputs``, ``prerequisiteInputs``, ``initInputs``, ``outputs``, ``initOutputs``.
    multiple : `bool`
        Whether the task reads or writes several datasets of this type per quantum.
    """

    attribute: str
    name: str
    storage_class: str
    dimensions: frozenset[str]
    kind: str
    multiple: bool = False

    @property
    def is_input(self) -> bool:
        """Whether the task reads this dataset type."""
        return self.kind in _INPUT_KINDS


@dataclass(frozen=True, slots=True)
class TaskNode:
    """A task in the graph: its label, dimensions and connections (automatic ones included)."""

    label: str
    dimensions: frozenset[str]
    edges: tuple[EdgeSpec, ...]
    task_def: Any = None

    @property
    def inputs(self) -> tuple[EdgeSpec, ...]:
        """Regular, prerequisite and init inputs."""
        return tuple(e for e in self.edges if e.is_input)

    @property
    def outputs(self) -> tuple[EdgeSpec, ...]:
        """Regular and init outputs, including metadata, log and config."""
        return tuple(e for e in self.edges if not e.is_input)


@dataclass(frozen=True, slots=True)
class DatasetTypeNode:
    """A dataset type in the graph, resolved from its writer (or its readers, or the butler)."""

    name: str
    dimensions: frozenset[str]
    storage_class: str
    is_prerequisite: bool
    is_init: bool
    producer: str | None
    consumers: tuple[str, ...]


def edges_from_connections(connections: Any) -> tuple[frozenset[str], tuple[EdgeSpec, ...]]:
    """Read a resolved connections object into task dimensions and edges.

    Parameters
    ----------
    connections : `object`
        Has ``dimensions`` and, for each kind in ``inputs``, ``prerequisiteInputs``,
        ``initInputs``, ``outputs``, ``initOutputs``, a collection of connection attribute names;
        ``getattr(connections, attribute)`` has ``name``, ``storageClass``, ``dimensions`` and
        optionally ``multiple``.

    Returns
    -------
    dimensions : `frozenset` [`str`]
        The task's dimensions.
    edges : `tuple` [`EdgeSpec`, ...]
        Its connections, sorted by kind then attribute.
    """
    edges = []
    for kind in _ALL_KINDS:
        for attribute in sorted(getattr(connections, kind, ()) or ()):
            conn = getattr(connections, attribute)
            dims = () if kind in ("initInputs", "initOutputs") else conn.dimensions
            edges.append(
                EdgeSpec(
                    attribute=attribute,
                    name=conn.name,
                    storage_class=conn.storageClass,
                    dimensions=_dimension_names(dims),
                    kind=kind,
                    multiple=bool(getattr(conn, "multiple", False)),
                )
            )
    return _dimension_names(connections.dimensions), tuple(edges)


def _dimension_names(dimensions: Iterable[Any]) -> frozenset[str]:
    return frozenset(getattr(d, "name", d) for d in dimensions or ())


def _automatic_edges(label: str, dimensions: frozenset[str]) -> tuple[EdgeSpec, ...]:
    return (
        EdgeSpec("_metadata", f"{label}_metadata", "TaskMetadata", dimensions, "outputs"),
        EdgeSpec("_log", f"{label}_log", "ButlerLogRecords", dimensions, "outputs"),
        EdgeSpec("_config", f"{label}_config", "Config", frozenset(), "initOutputs"),
    )


def _fmt_dims(dims: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(dims)) + "}"


class PipelineGraph:
    """Tasks and dataset types of a pipeline, checked; build with `from_task_defs`.

    Parameters
    ----------
    tasks : `~collections.abc.Sequence` [`TaskNode`]
        Task nodes in pipeline order.
    existing_dataset_types : `~collections.abc.Mapping`, optional
        Dataset type name to ``(dimensions, storageClass)`` for what the butler already has;
        `None` means unknown (missing inputs are then not an error).

    Raises
    ------
    PipelineGraphError
        One of its subclasses, as described in the module notes.
    """

    def __init__(
        self,
        tasks: Sequence[TaskNode],
        *,
        existing_dataset_types: Mapping[str, tuple[Iterable[str], str]] | None = None,
    ):
        self._tasks = {t.label: t for t in tasks}
        if len(self._tasks) != len(tasks):
            raise PipelineGraphError("duplicate task label in pipeline graph")
        self._producer: dict[str, tuple[str, EdgeSpec]] = {}
        self._consumers: dict[str, list[tuple[str, EdgeSpec]]] = {}
        self._find_producers()
        self._dataset_types = self._resolve(existing_dataset_types)
        self._order = self._sort()

    @classmethod
    def from_task_defs(
        cls,
        task_defs: Iterable[Any],
        *,
        existing_dataset_types: Mapping[str, tuple[Iterable[str], str]] | None = None,
    ) -> PipelineGraph:
        """Build and check the graph of a list of `TaskDef` (``label`` and ``connections``).

        Parameters
        ----------
        task_defs : `~collections.abc.Iterable` [`TaskDef`]
            The pipeline's tasks, in pipeline order.
        existing_dataset_types : `~collections.abc.Mapping`, optional
            ``name -> (dimensions, storageClass)`` of dataset types already in the butler.

        Returns
        -------
        graph : `PipelineGraph`
            The checked graph.

        Raises
        ------
        PipelineGraphError
            One of `DuplicateProducerError`, `ConnectionMismatchError`, `MissingInputError`,
            `PipelineCycleError`.
        """
        nodes = []
        for td in task_defs:
            dimensions, edges = edges_from_connections(td.connections)
            edges = edges + _automatic_edges(td.label, dimensions)
            nodes.append(TaskNode(td.label, dimensions, edges, td))
        return cls(nodes, existing_dataset_types=existing_dataset_types)

    # -- building -----------------------------------------------------------------------------

    def _find_producers(self) -> None:
        for label, node in self._tasks.items():
            for edge in node.edges:
                if edge.is_input:
                    self._consumers.setdefault(edge.name, []).append((label, edge))
                    continue
                if edge.name in self._producer:
                    other = self._producer[edge.name][0]
                    raise DuplicateProducerError(
                        f"dataset type {edge.name!r} is written by two tasks: "
                        f"{other!r} and {label!r}"
                    )
                self._producer[edge.name] = (label, edge)

    def _resolve(
        self, existing: Mapping[str, tuple[Iterable[str], str]] | None
    ) -> dict[str, DatasetTypeNode]:
        result = {}
        names = list(self._producer) + [n for n in self._consumers if n not in self._producer]
        for name in names:
            consumers = self._consumers.get(name, [])
            if name in self._producer:
                ref_label, ref = self._producer[name]
                ref_what = f"written by task {ref_label!r}"
            elif existing is not None and name in existing:
                dims, storage_class = existing[name]
                ref_label = None
                ref = EdgeSpec("", name, storage_class, _dimension_names(dims), "inputs")
                ref_what = "registered in the butler"
            elif existing is not None:
                readers = ", ".join(repr(label) for label, _ in consumers)
                raise MissingInputError(
                    f"dataset type {name!r} is read by task(s) {readers} but no task in the "
                    "pipeline writes it and it is not registered in the butler"
                )
            else:
                ref_label, ref = consumers[0]
                ref_what = f"read by task {ref_label!r}"
            for label, edge in consumers:
                self._check_match(name, ref_what, ref, label, edge)
            if name in self._producer and any(e.kind == "prerequisiteInputs" for _, e in consumers):
                raise ConnectionMismatchError(
                    f"dataset type {name!r} is a prerequisite input of "
                    f"{[lbl for lbl, e in consumers if e.kind == 'prerequisiteInputs']} but is "
                    f"written by task {ref_label!r}; prerequisites must exist before the run"
                )
            result[name] = DatasetTypeNode(
                name=name,
                dimensions=ref.dimensions,
                storage_class=ref.storage_class,
                is_prerequisite=bool(consumers)
                and all(e.kind == "prerequisiteInputs" for _, e in consumers),
                is_init=ref.kind in ("initInputs", "initOutputs"),
                producer=self._producer[name][0] if name in self._producer else None,
                consumers=tuple(label for label, _ in consumers),
            )
        return result

    @staticmethod
    def _check_match(name: str, ref_what: str, ref: EdgeSpec, label: str, edge: EdgeSpec) -> None:
        if edge.storage_class != ref.storage_class:
            raise ConnectionMismatchError(
                f"dataset type {name!r}: storage class {ref.storage_class!r} ({ref_what}) "
                f"differs from {edge.storage_class!r} (read by task {label!r} as "
                f"{edge.attribute!r})"
            )
        if edge.dimensions != ref.dimensions:
            raise ConnectionMismatchError(
                f"dataset type {name!r}: dimensions {_fmt_dims(ref.dimensions)} ({ref_what}) "
                f"differ from {_fmt_dims(edge.dimensions)} (read by task {label!r} as "
                f"{edge.attribute!r})"
            )

    def _upstream(self, label: str) -> list[str]:
        """Labels of the tasks that write what ``label`` reads, in pipeline order."""
        seen = []
        for edge in self._tasks[label].inputs:
            if edge.name in self._producer:
                producer = self._producer[edge.name][0]
                if producer not in seen:
                    seen.append(producer)
        return seen

    def _sort(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        path: list[str] = []

        def visit(label: str) -> None:
            state[label] = 1
            path.append(label)
            for upstream in self._upstream(label):
                if state.get(upstream) == 1:
                    self._raise_cycle(path[path.index(upstream) :])
                if upstream not in state:
                    visit(upstream)
            path.pop()
            state[label] = 2
            order.append(label)

        for label in self._tasks:
            if label not in state:
                visit(label)
        return order

    def _raise_cycle(self, loop: list[str]) -> None:
        # ``loop`` lists tasks each reading from the one before it: u0 <- u1 <- ... (reversed).
        tasks = list(reversed(loop))
        order = list(self._tasks)
        start = min(range(len(tasks)), key=lambda i: order.index(tasks[i]))
        tasks = tasks[start:] + tasks[:start]  # start at the task that comes first in the file
        parts = []
        for i, label in enumerate(tasks):
            following = tasks[(i + 1) % len(tasks)]
            via = next(
                e.name
                for e in self._tasks[following].inputs
                if self._producer.get(e.name, ("",))[0] == label
            )
            parts += [label, via]
        raise PipelineCycleError(f"pipeline has a cycle: {' -> '.join(parts + [tasks[0]])}")

    # -- queries ------------------------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, TaskNode]:
        """Task nodes by label, in pipeline order."""
        return dict(self._tasks)

    @property
    def sorted_labels(self) -> list[str]:
        """Task labels in an order where each task comes after every task it reads from."""
        return list(self._order)

    @property
    def dataset_types(self) -> Mapping[str, DatasetTypeNode]:
        """Every dataset type read or written, by name."""
        return dict(self._dataset_types)

    @property
    def overall_inputs(self) -> Mapping[str, DatasetTypeNode]:
        """Dataset types that the pipeline reads but does not write (needed from the butler)."""
        return {n: d for n, d in self._dataset_types.items() if d.producer is None}

    def producer_of(self, dataset_type: str) -> str | None:
        """Return the label of the task that writes ``dataset_type``, or `None`.

        Raises
        ------
        KeyError
            If no task reads or writes ``dataset_type``.
        """
        return self._node(dataset_type).producer

    def consumers_of(self, dataset_type: str) -> tuple[str, ...]:
        """Return the labels of the tasks that read ``dataset_type``.

        Raises
        ------
        KeyError
            If no task reads or writes ``dataset_type``.
        """
        return self._node(dataset_type).consumers

    def _node(self, name: str) -> DatasetTypeNode:
        try:
            return self._dataset_types[name]
        except KeyError:
            raise KeyError(f"dataset type {name!r} is not in the pipeline graph") from None

    # -- drawing ------------------------------------------------------------------------------

    def _drawn_edges(self) -> list[tuple[str, str]]:
        """(source, target) pairs, leaving out the automatic metadata/log/config outputs."""
        edges = []
        for label in self._order:
            for edge in self._tasks[label].edges:
                if edge.attribute.startswith("_"):
                    continue
                pair = (edge.name, label) if edge.is_input else (label, edge.name)
                edges.append(pair)
        return edges

    def to_dot(self) -> str:
        """Return a Graphviz description: tasks as boxes, dataset types as ellipses."""
        lines = ["digraph pipeline {"]
        for label in self._order:
            lines.append(f'  "task:{label}" [shape=box, style=filled, label="{label}"];')
        drawn = {n for pair in self._drawn_edges() for n in pair} - set(self._tasks)
        for name in sorted(drawn):
            d = self._dataset_types[name]
            lines.append(
                f'  "ds:{name}" [shape=ellipse, label="{name}\\n{_fmt_dims(d.dimensions)}'
                f'\\n{d.storage_class}"];'
            )
        for src, dst in self._drawn_edges():
            s = f"task:{src}" if src in self._tasks else f"ds:{src}"
            t = f"task:{dst}" if dst in self._tasks else f"ds:{dst}"
            lines.append(f'  "{s}" -> "{t}";')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        """Return a Mermaid flowchart: tasks as rectangles, dataset types as rounded nodes."""
        lines = ["flowchart TD"]
        for label in self._order:
            lines.append(f"  task_{label}[{label}]")
        drawn = {n for pair in self._drawn_edges() for n in pair} - set(self._tasks)
        for name in sorted(drawn):
            lines.append(f"  ds_{name}([{name}])")
        for src, dst in self._drawn_edges():
            s = f"task_{src}" if src in self._tasks else f"ds_{src}"
            t = f"task_{dst}" if dst in self._tasks else f"ds_{dst}"
            lines.append(f"  {s} --> {t}")
        return "\n".join(lines) + "\n"
