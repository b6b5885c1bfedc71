"""The compact wire form of a cluster of quanta, sent from the client to a worker.

Design
------
Refs and stored-file records travel as plain tuples (`encode_cluster`, `decode_quanta`): the
frozen dataclasses (`DatasetRef`, `DataCoordinate`, `StoredFileInfo`) pickle several times
slower, and a `DimensionGroup` drags its universe along. What every cluster of an execution
shares (task definitions, dataset types, init-inputs) is pickled once into `SharedTables`
bytes (`share_tables`); a ref names its dataset type by index into those tables.

State: none; every function is pure. The public names are re-exported by
`pipeline.execution.worker`.
"""

from __future__ import annotations

import dataclasses
import pickle
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from butler.data_coordinate import DataCoordinate
from butler.dataset_ref import DatasetRef
from butler.dataset_type import DatasetType
from butler.datastore.stored_file_info import StoredFileInfo
from butler.dimensions import DimensionGroup

from ..graph.quantum_graph import Quantum, TaskInfo

__all__ = ["ClusterPayload", "SharedTables", "decode_quanta", "encode_cluster", "share_tables"]


@dataclasses.dataclass(frozen=True)
class SharedTables:
    """What every cluster of one execution shares, sent to each worker process once.

    Parameters
    ----------
    tasks : `dict` [`str`, `TaskInfo`]
        Definitions of the tasks.
    dataset_types : `tuple` [`DatasetType`, ...]
        Dataset types; compact refs name them by index.
    groups : `dict` [`str`, `DimensionGroup`]
        Dimensions of the quanta of each task.
    init_inputs : `dict` [`str`, `dict` [`str`, `tuple`]]
        Per label, connection name -> (`DatasetRef`, `StoredFileInfo` or `None`).
    """

    tasks: dict[str, TaskInfo]
    dataset_types: tuple[DatasetType, ...]
    groups: dict[str, DimensionGroup]
    init_inputs: dict[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]]


@dataclasses.dataclass(frozen=True)
class ClusterPayload:
    """What a worker needs to run one cluster of quanta, in a compact wire form.

    Frozen slotted dataclasses (`DatasetRef`, `DataCoordinate`, `StoredFileInfo`) pickle
    slowly, and a `DimensionGroup` drags its universe along; so a payload holds plain
    tuples, built by `encode_cluster` and decoded on the worker, plus the pickled
    `SharedTables` of the execution (the same bytes object in every payload, unpickled
    once per worker process and kept in its `WorkerCache`).

    Parameters
    ----------
    cluster_id : `int`
        Cluster index (for logs).
    shared : `bytes`
        The pickled `SharedTables`.
    quanta : `tuple`
        One ``(node_id, label, data ID values, inputs, outputs)`` per quantum, in a valid
        run order; ``inputs`` and ``outputs`` are ``((attribute, refs), ...)`` and a ref
        is ``(dataset type index, run, data ID values, UUID bytes)``.
    infos : `tuple`
        Stored-file records of the inputs that exist, as
        ``(UUID bytes, path, formatter, storage class, file size, checksum)``.
    missing : `frozenset` [`bytes`]
        UUID bytes of inputs known not to exist (not written by a quantum that found no work).
    attempt : `int`
        1 for the first try, 2 for the first retry, ...
    execution_id : `str`
        Identifies the `~pipeline.execution.run.execute_graph` call (recorded in the metadata,
        and the key of the shared tables in a worker's cache).
    """

    cluster_id: int
    shared: bytes
    quanta: tuple[tuple[Any, ...], ...]
    infos: tuple[tuple[bytes, str, str, str, int, str | None], ...] = ()
    missing: frozenset[bytes] = frozenset()
    attempt: int = 1
    execution_id: str = ""


def share_tables(
    tasks: Mapping[str, TaskInfo],
    dataset_types: Iterable[DatasetType],
    groups: Mapping[str, DimensionGroup],
    init_inputs: Mapping[str, dict[str, tuple[DatasetRef, StoredFileInfo | None]]],
) -> tuple[bytes, dict[str, int]]:
    """Pickle the `SharedTables` of an execution.

    Returns
    -------
    shared : `bytes`
        For `ClusterPayload.shared`.
    type_index : `dict` [`str`, `int`]
        Dataset type name -> index, for `encode_cluster`.
    """
    types = tuple(dataset_types)
    tables = SharedTables(dict(tasks), types, dict(groups), dict(init_inputs))
    return pickle.dumps(tables, protocol=pickle.HIGHEST_PROTOCOL), {
        t.name: i for i, t in enumerate(types)
    }


def _encode_refs(
    refs_by_attr: Mapping[str, tuple[DatasetRef, ...]], type_index: Mapping[str, int]
) -> tuple[Any, ...]:
    return tuple(
        (
            attr,
            tuple(
                (type_index[r.dataset_type.name], r.run, r.data_id.values_tuple, r.id.bytes)
                for r in refs
            ),
        )
        for attr, refs in refs_by_attr.items()
    )


def encode_cluster(
    quanta: Iterable[Quantum],
    infos: Iterable[StoredFileInfo],
    missing: Iterable[uuid.UUID],
    *,
    shared: bytes,
    type_index: Mapping[str, int],
    attempt: int,
    execution_id: str,
) -> ClusterPayload:
    """Build the compact `ClusterPayload` of some quanta (see its notes)."""
    encoded = tuple(
        (
            q.node_id,
            q.task_label,
            q.data_id.values_tuple,
            _encode_refs(q.inputs, type_index),
            _encode_refs(q.outputs, type_index),
        )
        for q in quanta
    )
    return ClusterPayload(
        cluster_id=encoded[0][0] if encoded else -1,
        shared=shared,
        quanta=encoded,
        infos=tuple(
            (i.dataset_id.bytes, i.path, i.formatter, i.storage_class, i.file_size, i.checksum)
            for i in infos
        ),
        missing=frozenset(m.bytes for m in missing),
        attempt=attempt,
        execution_id=execution_id,
    )


def _decode_refs(
    encoded: tuple[Any, ...], types: tuple[DatasetType, ...]
) -> dict[str, tuple[DatasetRef, ...]]:
    out = {}
    for attr, refs in encoded:
        out[attr] = tuple(
            DatasetRef(
                types[t],
                DataCoordinate(types[t].dimensions, values),
                run,
                uuid.UUID(bytes=id_bytes),
            )
            for t, run, values, id_bytes in refs
        )
    return out


def decode_quanta(payload: ClusterPayload, tables: SharedTables) -> list[Quantum]:
    """Rebuild the `Quantum` objects of a payload."""
    types = tables.dataset_types
    return [
        Quantum(
            node,
            label,
            DataCoordinate(tables.groups[label], values),
            _decode_refs(inputs, types),
            _decode_refs(outputs, types),
        )
        for node, label, values, inputs, outputs in payload.quanta
    ]
