"""Build a quantum graph from a pipeline graph and the datasets in a butler.

Algorithm
---------
The whole graph comes from a handful of bulk registry queries, never one
query per quantum:

1. One data-ID query over the union of the dimensions of every task and every
   regular input, constrained by the user's ``where`` and by the existence of
   the pipeline's overall inputs in the input collections. Each row is one
   point of the data-ID space.
2. One dataset query per overall-input dataset type (find-first over the
   input collections), and one stored-file query for all of them.
3. One spatial query per prerequisite input with a sky-pixel dimension (e.g.
   reference-catalog shards): the sky pixels overlapping each quantum's
   region, joined with one dataset query for that dataset type.
4. With ``skip_existing_in``, one dataset query per task for its
   ``<label>_metadata`` datasets: quanta that already finished are left out
   and their outputs are read from those collections instead.

Then, task by task in pipeline order, quanta are the distinct projections of
the data-ID space onto the task's dimensions; each input connection is matched
by projecting the quantum's data ID onto the dataset type's dimensions (or, for
``multiple=True`` gathers, by grouping the finer data IDs under the quantum's).
A quantum missing a required input is dropped (and so are quanta downstream of
it). Output IDs are deterministic, so only inputs are recorded; see
`~pipeline.graph.quantum_graph` for the storage layout.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from butler.dataset_ref import DatasetRef
from butler.dataset_type import DatasetType
from butler.dimensions import DimensionUniverse
from butler.expressions import identifiers

from .._errors import PipelineError
from ..definition.pipeline_graph import EdgeSpec, PipelineGraph
from .gc_pause import gc_paused
from .quantum_graph import ConnectionInfo, QuantumGraph, TaskInfo, _TaskBlock

__all__ = ["EmptyGraphError", "NothingToDoError", "build_quantum_graph"]

_LOG = logging.getLogger(__name__)


class EmptyGraphError(PipelineError, LookupError):
    """The pipeline selects no quanta; the message says why."""


class NothingToDoError(EmptyGraphError):
    """Every selected quantum already finished (its metadata exists): a success, not a failure."""


def _task_info(label: str, node: Any, universe: DimensionUniverse) -> TaskInfo:
    task_def = node.task_def
    config_yaml = ""
    task_class = ""
    if task_def is not None:
        task_class = f"{task_def.task_class.__module__}.{task_def.task_class.__qualname__}"
        config_yaml = _config_to_yaml(task_def.config)
    connections = tuple(
        ConnectionInfo(e.attribute, e.name, e.kind, bool(e.multiple)) for e in node.edges
    )
    dims = universe.group(node.dimensions).required
    return TaskInfo(label, task_class, config_yaml, dims, connections)


def _config_to_yaml(config: Any) -> str:
    import io

    stream = io.StringIO()
    config.saveToYaml(stream)
    return stream.getvalue()


def _dataset_types(graph: PipelineGraph, universe: DimensionUniverse) -> dict[str, DatasetType]:
    result = {}
    for name, node in graph.dataset_types.items():
        dims = () if node.is_init else node.dimensions
        result[name] = DatasetType(name, universe.group(dims), node.storage_class)
    return result


def _projector(source: Sequence[str], target: Sequence[str]) -> Any:
    """Return a function mapping a value tuple over ``source`` to one over ``target``."""
    index = [source.index(name) for name in target]
    if index == list(range(len(source))):
        return lambda values: values
    if len(index) == 1:
        i = index[0]
        return lambda values: (values[i],)
    return lambda values: tuple(values[i] for i in index)


def build_quantum_graph(
    butler: Any,
    pipeline_graph: PipelineGraph,
    *,
    input_collections: Sequence[str],
    output_run: str,
    where: str = "",
    bind: Mapping[str, Any] | None = None,
    skip_existing_in: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> QuantumGraph:
    """Expand a pipeline over the data IDs in a butler.

    Parameters
    ----------
    butler : `butler.Butler`
        The full butler (its registry is queried).
    pipeline_graph : `PipelineGraph`
        The checked pipeline graph.
    input_collections : sequence of `str`
        Collections to search for the overall inputs, in order.
    output_run : `str`
        RUN collection of the outputs.
    where : `str`
        User data-ID constraint (the ``--where`` language).
    bind : mapping, optional
        Bind values for ``where``.
    skip_existing_in : sequence of `str`
        Collections whose ``<label>_metadata`` datasets mark quanta as done.
    metadata : mapping, optional
        Provenance stored in the graph.

    Returns
    -------
    graph : `QuantumGraph`

    Raises
    ------
    EmptyGraphError
        If no quantum is selected; the message counts what was found.
    """
    with gc_paused():
        return _build(
            butler,
            pipeline_graph,
            input_collections=input_collections,
            output_run=output_run,
            where=where,
            bind=bind,
            skip_existing_in=skip_existing_in,
            metadata=metadata,
        )


def _build(
    butler: Any,
    pipeline_graph: PipelineGraph,
    *,
    input_collections: Sequence[str],
    output_run: str,
    where: str,
    bind: Mapping[str, Any] | None,
    skip_existing_in: Sequence[str],
    metadata: Mapping[str, Any] | None,
) -> QuantumGraph:
    t0 = time.perf_counter()
    registry = butler.registry
    universe: DimensionUniverse = registry.universe
    labels = pipeline_graph.sorted_labels
    tasks = pipeline_graph.tasks
    dataset_types = _dataset_types(pipeline_graph, universe)
    overall = {
        name: node for name, node in pipeline_graph.overall_inputs.items() if not node.is_init
    }
    regular_overall = [n for n, node in overall.items() if not node.is_prerequisite]
    where_names = {n.split(".")[0] for n in identifiers(where, bind=bind)} if where else set()

    # 1. the data-ID space
    space_dims: set[str] = set()
    for label in labels:
        space_dims |= set(tasks[label].dimensions)
        for edge in tasks[label].inputs:
            if edge.kind == "inputs":
                space_dims |= set(edge.dimensions)
    space_dims |= {n for n in where_names if n in universe and universe[n].is_dimension}
    space_group = universe.group(space_dims)
    space_names = space_group.required
    # A dimension that others in the space imply (band, by visit through physical_filter) is
    # read from the rows' implied values, never joined as an independent factor: a (band,
    # instrument) gather over visit-level inputs reads the visits of its band only.
    implied_here = _implied_by_others(universe, space_names)
    rows = registry.query_data_ids(
        [n for n in space_names if n not in implied_here],
        where=where,
        bind=bind,
        datasets=regular_overall,
        collections=list(input_collections) if regular_overall else None,
    )
    space = _space_values(rows, space_names, implied_here)
    _LOG.debug("data ID space: %d rows over %s", len(space), space_names)

    # 2. overall inputs from the butler
    runs: list[str] = []
    run_index: dict[str, int] = {}
    type_names = list(dataset_types)
    type_index = {name: i for i, name in enumerate(type_names)}
    refs: list[tuple[int, int, tuple[Any, ...], bytes, int]] = []
    existing: dict[str, dict[tuple[Any, ...], int]] = {}

    def run_index_of(run: str) -> int:
        ri = run_index.get(run)
        if ri is None:
            ri = run_index[run] = len(runs)
            runs.append(run)
        return ri

    def add_ref(
        dtype_name: str, run: str, values: tuple[Any, ...], id_bytes: bytes, producer: int
    ) -> int:
        refs.append((type_index[dtype_name], run_index_of(run), values, id_bytes, producer))
        return len(refs) - 1

    found_refs: list[DatasetRef] = []
    for name in overall:
        if overall[name].is_prerequisite and any(
            universe[d].spatial and d == universe.skypix.name
            for d in dataset_types[name].dimensions
        ):
            continue  # spatial prerequisites are looked up in step 3
        dtype_dims = set(dataset_types[name].dimensions.required)
        usable_where = where if where_names and where_names <= dtype_dims else ""
        got = registry.query_datasets(
            name, collections=list(input_collections), where=usable_where, bind=bind
        )
        table = existing.setdefault(name, {})
        for ref in got:
            table[ref.data_id.values_tuple] = add_ref(
                name, ref.run, ref.data_id.values_tuple, ref.id.bytes, -1
            )
        found_refs.extend(got)

    # 3. spatial prerequisites
    spatial_lookup: dict[str, dict[tuple[Any, ...], list[int]]] = {}
    for name, node in overall.items():
        dims = dataset_types[name].dimensions.required
        if not (node.is_prerequisite and universe.skypix.name in dims):
            continue
        got = registry.query_datasets(name, collections=list(input_collections))
        by_pixel: dict[Any, list[int]] = defaultdict(list)
        pix_pos = dims.index(universe.skypix.name)
        for ref in got:
            by_pixel[ref.data_id.values_tuple[pix_pos]].append(
                add_ref(name, ref.run, ref.data_id.values_tuple, ref.id.bytes, -1)
            )
        found_refs.extend(got)
        consumers = [lab for lab in labels if any(e.name == name for e in tasks[lab].inputs)]
        for label in consumers:
            task_dims = universe.group(tasks[label].dimensions).required
            overlap = registry.query_data_ids(
                list(task_dims) + [universe.skypix.name], where=where, bind=bind
            )
            key_of = _projector(overlap[0].group.required, task_dims) if overlap else None
            pix_of = overlap[0].group.required.index(universe.skypix.name) if overlap else 0
            table2: dict[tuple[Any, ...], list[int]] = defaultdict(list)
            for data_id in overlap:
                values = data_id.values_tuple
                table2[key_of(values)].extend(by_pixel.get(values[pix_of], ()))
            spatial_lookup[f"{label}:{name}"] = table2

    input_infos = registry.get_stored_info(found_refs) if found_refs else {}

    # 4. skip existing
    done: dict[str, set[tuple[Any, ...]]] = {}
    done_outputs: dict[str, dict[tuple[Any, ...], int]] = {}
    if skip_existing_in:
        for label in labels:
            meta_name = f"{label}_metadata"
            try:
                got = registry.query_datasets(meta_name, collections=list(skip_existing_in))
            except LookupError:
                got = []
            done[label] = {ref.data_id.values_tuple for ref in got}
            if not done[label]:
                continue
            for edge in tasks[label].outputs:
                if edge.kind != "outputs" or edge.attribute.startswith("_"):
                    continue
                try:
                    outs = registry.query_datasets(edge.name, collections=list(skip_existing_in))
                except LookupError:
                    outs = []
                table = done_outputs.setdefault(edge.name, {})
                for ref in outs:
                    table[ref.data_id.values_tuple] = add_ref(
                        edge.name, ref.run, ref.data_id.values_tuple, ref.id.bytes, -1
                    )
                input_infos.update(registry.get_stored_info(outs))

    # 5. quanta, task by task
    produced: dict[str, dict[tuple[Any, ...], int]] = {}  # dataset type -> values -> ref index
    sorted_by_dims: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    blocks: dict[str, _TaskBlock] = {}
    sizes: dict[str, int] = {}
    next_node = 0
    dropped: dict[str, int] = {}
    for label in labels:
        node = tasks[label]
        task_dims = universe.group(node.dimensions).required
        candidates = sorted_by_dims.get(task_dims)
        if candidates is None:  # tasks with the same dimensions share one sorted list
            if task_dims == space_names:
                candidates = _sorted(space)
            else:
                project = _projector(space_names, task_dims)
                candidates = _sorted({project(values) for values in space})
            sorted_by_dims[task_dims] = candidates
        skip = done.get(label, set())
        input_edges = [e for e in node.inputs if e.kind in ("inputs", "prerequisiteInputs")]
        lookups = [
            _input_lookup(
                e,
                task_dims,
                dataset_types,
                existing,
                produced,
                done_outputs,
                spatial_lookup.get(f"{label}:{e.name}"),
                space,
                space_names,
            )
            for e in input_edges
        ]
        required = [e.kind == "inputs" for e in input_edges]
        data_ids: list[tuple[Any, ...]] = []
        columns: list[list[list[int]]] = [[] for _ in input_edges]
        n_dropped = 0
        if len(input_edges) == 1 and not skip:
            # the common case, kept lean: one input connection, nothing to skip
            (lookup,), (needed,), (column,) = lookups, required, columns
            for values in candidates:
                found = lookup(values)
                if needed and not found:
                    n_dropped += 1
                    continue
                column.append(found)
                data_ids.append(values)
        else:
            pairs = list(zip(lookups, required, strict=True))
            for values in candidates:
                if values in skip:
                    continue
                resolved = [lookup(values) for lookup, _ in pairs]
                missing = (n and not f for (_, n), f in zip(pairs, resolved, strict=True))
                if any(missing):
                    n_dropped += 1
                    continue
                for column, found in zip(columns, resolved, strict=True):
                    column.append(found)
                data_ids.append(values)
        if n_dropped:
            dropped[label] = n_dropped
        inputs = {e.attribute: column for e, column in zip(input_edges, columns, strict=True)}
        first = next_node
        for edge in node.outputs:
            if edge.kind != "outputs" or not pipeline_graph.consumers_of(edge.name):
                continue  # only outputs some task reads need a ref-table entry
            dtype = dataset_types[edge.name]
            out_project = _projector(task_dims, dtype.dimensions.required)
            table = produced.setdefault(edge.name, {})
            head = (type_index[edge.name], run_index_of(output_run))
            for offset, values in enumerate(data_ids):
                out_values = out_project(values)
                if out_values not in table:
                    # produced refs get their deterministic ID lazily, from the graph
                    table[out_values] = len(refs)
                    refs.append((*head, out_values, b"", first + offset))
        blocks[label] = _TaskBlock(data_ids, inputs, first)
        sizes[label] = len(data_ids)
        next_node += len(data_ids)

    if next_node == 0:
        already = sum(len(v) for v in done.values())
        if already:
            raise NothingToDoError(
                f"all {already} quanta already have their metadata in "
                f"{list(skip_existing_in)}"
            )
        detail = ", ".join(f"{n}: {len(existing.get(n, {}))} found" for n in regular_overall)
        raise EmptyGraphError(
            "the quantum graph is empty: "
            + (
                f"the where-expression {where!r} selects no data IDs; "
                if where and not space
                else ""
            )
            + (
                f"{len(space)} data IDs match, but required inputs are missing ({detail}) "
                f"in collections {list(input_collections)}"
                if space
                else f"no data IDs with all overall inputs ({detail}) "
                f"in collections {list(input_collections)}"
            )
        )
    task_infos = [_task_info(label, tasks[label], universe) for label in labels]
    meta = {
        "user": getpass.getuser(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "where": where,
        "build_seconds": time.perf_counter() - t0,
        "dropped": dropped,
    }
    meta.update(metadata or {})
    return QuantumGraph(
        universe=universe,
        tasks=task_infos,
        dataset_types=dataset_types,
        output_run=output_run,
        input_collections=input_collections,
        refs=refs,
        runs=runs,
        blocks=blocks,
        block_sizes=sizes,
        input_infos=input_infos,
        metadata=meta,
    )


def _implied_by_others(universe: DimensionUniverse, names: Sequence[str]) -> set[str]:
    """Dimensions of ``names`` implied by the group of the others (e.g. band by visit)."""
    implied: set[str] = set()
    for name in names:
        others = [n for n in names if n != name and n not in implied]
        if name in universe.group(others).implied:
            implied.add(name)
    return implied


def _space_values(
    rows: Sequence[Any], space_names: Sequence[str], implied_here: set[str]
) -> set[tuple[Any, ...]]:
    """Value tuples over ``space_names``; implied ones come from each row's implied values."""
    if not implied_here:
        return {data_id.values_tuple for data_id in rows}
    space = set()
    for data_id in rows:
        known = dict(zip(data_id.group.required, data_id.values_tuple, strict=True))
        known.update(data_id.implied)
        if all(known.get(n) is not None for n in space_names):
            space.add(tuple(known[n] for n in space_names))
    return space


def _sorted(items: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Sort data ID value tuples (natively when every position has one type)."""
    items = list(items)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=_sort_key)


def _sort_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((0, v) if isinstance(v, int) else (1, str(v)) for v in values)


def _input_lookup(
    edge: EdgeSpec,
    task_dims: tuple[str, ...],
    dataset_types: Mapping[str, DatasetType],
    existing: Mapping[str, Mapping[tuple[Any, ...], int]],
    produced: Mapping[str, Mapping[tuple[Any, ...], int]],
    done_outputs: Mapping[str, Mapping[tuple[Any, ...], int]],
    spatial: Mapping[tuple[Any, ...], list[int]] | None,
    space: set[tuple[Any, ...]] | None = None,
    space_names: Sequence[str] = (),
) -> Any:
    """Return ``lookup(quantum_values) -> list of ref indices`` for one input connection."""
    if spatial is not None:
        return lambda values: list(spatial.get(values, ()))
    dtype = dataset_types[edge.name]
    ddims = dtype.dimensions.required
    tables = [
        t
        for t in (produced.get(edge.name), done_outputs.get(edge.name), existing.get(edge.name))
        if t
    ]

    def merged_get(key: tuple[Any, ...]) -> int | None:
        for table in tables:
            index = table.get(key)
            if index is not None:
                return index
        return None

    if set(ddims) <= set(task_dims):
        project = _projector(task_dims, ddims)

        def lookup(values: tuple[Any, ...]) -> list[int]:
            index = merged_get(project(values))
            return [] if index is None else [index]

        return lookup
    # gather: the dataset has finer dimensions than the quantum
    common = [d for d in ddims if d in task_dims]
    key_in_dataset = _projector(ddims, common)
    key_in_task = _projector(task_dims, common)
    groups: dict[tuple[Any, ...], list[int]] | None = None
    # Quantum dimensions the dataset lacks (band for visit-level inputs) are implied by the
    # dataset's: the data-ID space says which quantum each dataset belongs to.
    by_space = (
        space is not None
        and not set(task_dims) <= set(ddims)
        and set(ddims) <= set(space_names)
    )

    def gather(values: tuple[Any, ...]) -> list[int]:
        nonlocal groups
        if groups is None:  # built on first use, after upstream tasks filled `produced`
            groups = defaultdict(list)
            seen: set[tuple[Any, ...]] = set()
            owners: dict[tuple[Any, ...], set[tuple[Any, ...]]] | None = None
            if by_space:
                owners = defaultdict(set)
                to_task = _projector(space_names, task_dims)
                to_dataset = _projector(space_names, ddims)
                for row in space:
                    owners[to_dataset(row)].add(to_task(row))
            for table in tables:
                for dvalues, index in table.items():
                    if dvalues in seen:
                        continue
                    seen.add(dvalues)
                    if owners is None:
                        groups[key_in_dataset(dvalues)].append(index)
                    else:
                        for owner in owners.get(dvalues, ()):
                            groups[owner].append(index)
        key = values if by_space else key_in_task(values)
        return list(groups.get(key, ()))  # filled in data ID order

    return gather


def collect_existing_types(
    butler: Any, names: Iterable[str]
) -> dict[str, tuple[tuple[str, ...], str]]:
    """Return ``name -> (dimensions, storage class)`` for the names the butler knows."""
    result = {}
    for dtype in butler.registry.query_dataset_types():
        if dtype.name in set(names):
            result[dtype.name] = (dtype.dimensions.required, dtype.storage_class)
    return result
