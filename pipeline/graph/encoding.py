"""Columnar encoding of quantum graphs for ``.qgraph`` files (see `pipeline.graph.quantum_graph`).

Data ID values are stored as int64 columns; string values (e.g. instrument names) become
indices into one string table kept in the header. Input lists are stored CSR-style (offsets +
flat indices). Decoding rebuilds the plain Python lists the graph uses in memory with a few
vectorized passes; stored-file records are decoded only when asked for.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgpack
import numpy as np

from butler.dataset_type import DatasetType
from butler.datastore.stored_file_info import StoredFileInfo
from butler.dimensions import DimensionUniverse


@dataclasses.dataclass(slots=True)
class _TaskBlock:
    data_ids: list[tuple[Any, ...]]
    # per input connection attribute: per quantum, list of ref-table indices
    inputs: dict[str, list[list[int]]]
    first_node: int


class _StringTable:
    def __init__(self) -> None:
        self.values: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        index = self._index.get(value)
        if index is None:
            index = self._index[value] = len(self.values)
            self.values.append(value)
        return index


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def _encode_values(
    rows: Sequence[Sequence[Any]], width: int, strings: _StringTable
) -> tuple[bytes, list[bool]]:
    """Encode data ID rows as an int64 matrix; return its bytes and which columns are strings."""
    matrix = np.zeros((len(rows), width), dtype=np.int64)
    is_string = [False] * width
    for j in range(width):
        column = [row[j] if j < len(row) else 0 for row in rows]
        if any(isinstance(v, str) for v in column):
            is_string[j] = True
            column = [strings(v) if isinstance(v, str) else 0 for v in column]
        if column:
            matrix[:, j] = column
    return matrix.tobytes(), is_string


def _decode_columns(raw: bytes, n: int, width: int) -> list[list[int]]:
    matrix = (
        np.frombuffer(raw, dtype=np.int64).reshape(n, width)
        if n
        else np.zeros((0, width), np.int64)
    )
    return [matrix[:, j].tolist() for j in range(width)]


def _encode_refs(refs: Sequence[Sequence[Any]], strings: _StringTable) -> dict[str, Any]:
    width = max((len(r[2]) for r in refs), default=0)
    values, _ = _encode_values([r[2] for r in refs], width, strings)
    ids = b"".join(bytes(r[3]) if r[3] else bytes(16) for r in refs)
    return {
        "n": len(refs),
        "width": width,
        "type": np.array([r[0] for r in refs], dtype=np.int32).tobytes(),
        "run": np.array([r[1] for r in refs], dtype=np.int32).tobytes(),
        "producer": np.array([r[4] for r in refs], dtype=np.int64).tobytes(),
        "values": values,
        "ids": ids,
    }


def _value_kinds(
    universe: DimensionUniverse, dataset_types: Iterable[DatasetType]
) -> dict[str, list[bool]]:
    return {
        d.name: [universe.dimension(n).key.type == "string" for n in d.dimensions.required]
        for d in dataset_types
    }


def _decode_refs(
    data: Mapping[str, Any], strings: Sequence[str], kinds: Sequence[Sequence[bool]]
) -> list[tuple[int, int, tuple[Any, ...], bytes, int]]:
    n, width = data["n"], data["width"]
    types = np.frombuffer(data["type"], dtype=np.int32).tolist()
    runs = np.frombuffer(data["run"], dtype=np.int32).tolist()
    producers = np.frombuffer(data["producer"], dtype=np.int64).tolist()
    columns = _decode_columns(data["values"], n, width)
    ids = data["ids"]
    zero = bytes(16)
    refs = []
    rows = list(zip(*columns, strict=True)) if width else [()] * n
    for i in range(n):
        kind = kinds[types[i]]
        row = rows[i][: len(kind)]
        if any(kind):
            row = tuple(strings[v] if k else v for v, k in zip(row, kind, strict=True))
        id_bytes = ids[16 * i : 16 * i + 16]
        refs.append((types[i], runs[i], row, b"" if id_bytes == zero else id_bytes, producers[i]))
    return refs


def _encode_block(block: _TaskBlock, width: int, strings: _StringTable) -> dict[str, Any]:
    values, _ = _encode_values(block.data_ids, width, strings)
    inputs = {}
    for attr, per_quantum in block.inputs.items():
        offsets = np.zeros(len(per_quantum) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(x) for x in per_quantum])
        flat = np.fromiter(
            (i for x in per_quantum for i in x), dtype=np.int64, count=int(offsets[-1])
        )
        inputs[attr] = [offsets.tobytes(), flat.tobytes()]
    return {"n": len(block.data_ids), "width": width, "values": values, "inputs": inputs}


def _decode_block(
    data: Mapping[str, Any], kinds: Sequence[bool], strings: Sequence[str], first: int
) -> _TaskBlock:
    n, width = data["n"], data["width"]
    columns = _decode_columns(data["values"], n, width)
    for j, is_string in enumerate(kinds):
        if is_string:
            columns[j] = [strings[v] for v in columns[j]]
    data_ids = list(zip(*columns, strict=True)) if width else [()] * n
    inputs = {}
    for attr, (raw_offsets, raw_flat) in data["inputs"].items():
        offsets = np.frombuffer(raw_offsets, dtype=np.int64).tolist()
        flat = np.frombuffer(raw_flat, dtype=np.int64).tolist()
        inputs[attr] = [flat[offsets[k] : offsets[k + 1]] for k in range(n)]
    return _TaskBlock(data_ids, inputs, first)


def _encode_infos(
    infos: Mapping[uuid.UUID, StoredFileInfo], strings: _StringTable
) -> dict[str, Any]:
    values = list(infos.values())
    return {
        "ids": b"".join(i.dataset_id.bytes for i in values),
        "path": [i.path for i in values],
        "formatter": [strings(i.formatter) for i in values],
        "storage_class": [strings(i.storage_class) for i in values],
        "size": np.array([i.file_size for i in values], dtype=np.int64).tobytes(),
        "checksum": [i.checksum for i in values],
    }


def _decode_infos(data: Mapping[str, Any], strings: Sequence[str]) -> _LazyInfos:
    return _LazyInfos(data, strings)


class _LazyInfos(Mapping[uuid.UUID, StoredFileInfo]):
    """Stored-file records decoded only when asked for (a graph may hold 100,000s)."""

    def __init__(self, data: Mapping[str, Any], strings: Sequence[str]) -> None:
        ids = data["ids"]
        self._index = {ids[16 * k : 16 * k + 16]: k for k in range(len(ids) // 16)}
        self._data = data
        self._strings = strings
        self._sizes = np.frombuffer(data["size"], dtype=np.int64)

    def __getitem__(self, key: uuid.UUID) -> StoredFileInfo:
        k = self._index[key.bytes]
        d = self._data
        return StoredFileInfo(
            key,
            d["path"][k],
            self._strings[d["formatter"][k]],
            self._strings[d["storage_class"][k]],
            int(self._sizes[k]),
            d["checksum"][k] if "checksum" in d else None,
        )

    def __iter__(self) -> Iterator[uuid.UUID]:
        return (uuid.UUID(bytes=b) for b in self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, uuid.UUID) and key.bytes in self._index
