"""Direct reads of the stamps groups `imaging.stamps_io` writes, on a local disk.

A stamps zarr group stores each plane as one shard file (``<plane>/c/0/0/0``) of
``(1, 100, 100)`` chunks, each ``bytes`` (little endian) + ``zstd``, with the shard index
(``bytes`` + ``crc32c``) at its end. Reading a sub-box of a few stamps through zarr's array
API costs ~7 ms of Python per call whatever its size (its event loop, codec pipeline and
index parsing on every call); a gather makes hundreds of such reads. `ShardedPlane` reads
and checks the index once, then serves each read with one ``pread`` and one zstd
decompression per chunk touched (both release the GIL), ~1 ms for 16 stamps of 100².

The group's attributes and its small table arrays (one chunk each, ``bytes`` + ``zstd``)
are read the same way (`read_group_attributes`, `read_single_chunk_array`): through zarr,
opening a group and its nine table arrays costs ~17 ms of CPU, mostly its event loop; a
gather opens hundreds of groups (378 on a focal plane: 6.4 s of its ~24 s).

Only those exact layouts are read here: each function returns `None` for anything else
(other codecs, index at the start, several shards or chunks, a remote store), and the
caller reads through zarr. Chunks absent from the index are the fill value, as zarr reads
them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import Box

__all__ = [
    "PlaneLayout",
    "ShardedPlane",
    "plane_layout",
    "read_group_attributes",
    "read_single_chunk_array",
]

_EMPTY = np.uint64(2**64 - 1)  # index entry of a chunk not stored
_DTYPES = {"float32": "<f4", "uint32": "<u4", "float64": "<f8", "int64": "<i8"}


_LITTLE = {"name": "bytes", "configuration": {"endian": "little"}}
_SCALAR_DTYPES = {**_DTYPES, "int32": "<i4", "uint64": "<u8", "bool": "|b1"}
_INDEX_CODECS = [_LITTLE, {"name": "crc32c"}]


class ShardedPlane:
    """One ``(stamps, y, x)`` plane of a stamps group, its shard index read once.

    Use `open`; `read` may then be called from several threads at once.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int, int],
        chunk: tuple[int, int],
        dtype: str,
        fill: Any,
        index: np.ndarray | None,
    ) -> None:
        self.path = path
        self.shape = shape
        self.chunk = chunk
        self.dtype = np.dtype(dtype)
        self.fill = fill
        self._index = index  # (stamps, chunk rows, chunk columns, 2) offset, size; None: empty
        self._fd = os.open(path, os.O_RDONLY) if index is not None else -1

    @classmethod
    def open(cls, root: Path, name: str) -> ShardedPlane | None:
        """Return the plane ``name`` of the group at ``root``, or `None` if not this layout."""
        import google_crc32c

        layout = plane_layout(_metadata(root / name / "zarr.json"))
        if layout is None:
            return None
        shape, chunk, n_chunks = layout.shape, layout.chunk, layout.n_chunks
        path = root / name / "c" / "0" / "0" / "0"
        fill, dtype = layout.fill, layout.dtype
        if not path.exists():  # every chunk is the fill value: zarr wrote no shard
            return cls(path, shape, chunk, dtype, fill, None)
        size = path.stat().st_size
        length = int(np.prod(n_chunks)) * 16 + 4
        with open(path, "rb") as stream:
            stream.seek(size - length)
            raw = stream.read(length)
        if int.from_bytes(raw[-4:], "little") != google_crc32c.value(raw[:-4]):
            return None  # let zarr read it and report the damage
        index = np.frombuffer(raw[:-4], dtype="<u8").reshape(*n_chunks, 2)
        return cls(path, shape, chunk, dtype, fill, index)

    def read(self, chosen: Sequence[int], box: Box) -> np.ndarray:
        """Return the ``(len(chosen), box.height, box.width)`` cube of stamps ``chosen``."""
        import numcodecs

        out = np.empty((len(chosen), box.height, box.width), dtype=self.dtype)
        if self._index is None:
            out.fill(self.fill)
            return out
        ch, cw = self.chunk
        codec = numcodecs.Zstd()
        for cy in range(box.y0 // ch, (box.y1 - 1) // ch + 1):
            y0, y1 = max(box.y0, cy * ch), min(box.y1, (cy + 1) * ch)
            for cx in range(box.x0 // cw, (box.x1 - 1) // cw + 1):
                x0, x1 = max(box.x0, cx * cw), min(box.x1, (cx + 1) * cw)
                target = (slice(y0 - box.y0, y1 - box.y0), slice(x0 - box.x0, x1 - box.x0))
                inside = (slice(y0 - cy * ch, y1 - cy * ch), slice(x0 - cx * cw, x1 - cx * cw))
                for k, i in enumerate(chosen):
                    offset, nbytes = self._index[i, cy, cx]
                    if offset == _EMPTY and nbytes == _EMPTY:
                        out[k][target] = self.fill
                        continue
                    data = os.pread(self._fd, int(nbytes), int(offset))
                    if len(data) != int(nbytes):
                        raise OSError(f"{self.path}: short read of chunk ({i}, {cy}, {cx})")
                    chunk = np.frombuffer(codec.decode(data), dtype=self.dtype)
                    out[k][target] = chunk.reshape(ch, cw)[inside]
        return out

    def close(self) -> None:
        """Close the shard file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class PlaneLayout:
    """Where the chunks of a sharded ``(stamps, y, x)`` plane are (see `plane_layout`)."""

    shape: tuple[int, int, int]
    chunk: tuple[int, int]  # (rows, columns) of a chunk; one stamp deep
    n_chunks: tuple[int, int, int]  # chunks in the one shard, along each axis
    dtype: str  # numpy little-endian
    fill: int | float
    zstd: dict[str, Any]  # the chunks' zstd configuration


def plane_layout(metadata: dict[str, Any] | None) -> PlaneLayout | None:
    """Return the layout of a stamps plane from its ``zarr.json``, or `None` if not this one.

    This one: zarr v3, one ``sharding_indexed`` shard (index at the end, ``bytes`` +
    ``crc32c``) of ``(1, ch, cw)`` chunks, each ``bytes`` (little endian) + ``zstd``, a
    numeric fill value, the default ``/`` chunk keys. Both `ShardedPlane` and
    `imaging._shard_writer` hold to it.
    """
    if metadata is None:
        return None
    shape = tuple(int(v) for v in metadata.get("shape", ()))
    codecs = metadata.get("codecs") or []
    if metadata.get("zarr_format") != 3 or len(shape) != 3 or len(codecs) != 1:
        return None
    config = codecs[0].get("configuration", {})
    chunk = [int(v) for v in config.get("chunk_shape", [])]
    inner = config.get("codecs") or []
    if (
        codecs[0].get("name") != "sharding_indexed"
        or len(chunk) != 3
        or chunk[0] != 1
        or len(inner) != 2
        or inner[0] != _LITTLE
        or inner[1].get("name") != "zstd"
        or config.get("index_codecs") != _INDEX_CODECS
        or config.get("index_location") != "end"
        or metadata.get("data_type") not in _DTYPES
    ):
        return None
    grid = metadata.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", [])
    keys = metadata.get("chunk_key_encoding", {})
    separator = keys.get("configuration", {}).get("separator", "/")
    if (
        len(grid) != 3
        or any(int(g) < s for g, s in zip(grid, shape, strict=True))  # one shard
        or any(int(g) % c for g, c in zip(grid, chunk, strict=True))
        or keys.get("name") != "default"
        or separator != "/"
    ):
        return None
    fill = metadata.get("fill_value", 0)
    if isinstance(fill, bool) or not isinstance(fill, int | float):
        return None
    return PlaneLayout(
        shape=(shape[0], shape[1], shape[2]),
        chunk=(chunk[1], chunk[2]),
        n_chunks=(int(grid[0]), int(grid[1]) // chunk[1], int(grid[2]) // chunk[2]),
        dtype=_DTYPES[metadata["data_type"]],
        fill=fill,
        zstd=dict(inner[1].get("configuration", {})),
    )


def _metadata(path: Path) -> dict[str, Any] | None:
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return metadata if isinstance(metadata, dict) else None


def read_group_attributes(root: Path) -> dict[str, Any] | None:
    """Return the attributes of the zarr v3 group at ``root``, or `None` if it is not one."""
    metadata = _metadata(root / "zarr.json")
    if metadata is None or metadata.get("zarr_format") != 3 or metadata.get("node_type") != "group":
        return None
    attributes = metadata.get("attributes", {})
    return attributes if isinstance(attributes, dict) else None


def read_single_chunk_array(root: Path, name: str) -> np.ndarray | None:
    """Return the array ``name`` of the group at ``root``, or `None` if not one chunk.

    `imaging.stamps_io` stores its table columns as one ``bytes`` + ``zstd`` chunk each;
    anything else is read through zarr.
    """
    import numcodecs

    metadata = _metadata(root / name / "zarr.json")
    if metadata is None:
        return None
    shape = tuple(int(v) for v in metadata.get("shape", ()))
    grid = metadata.get("chunk_grid", {})
    chunk = [int(v) for v in grid.get("configuration", {}).get("chunk_shape", [])]
    codecs = metadata.get("codecs") or []
    keys = metadata.get("chunk_key_encoding", {})
    fill = metadata.get("fill_value", 0)
    if (
        metadata.get("zarr_format") != 3
        or metadata.get("node_type") != "array"
        or metadata.get("data_type") not in _SCALAR_DTYPES
        or metadata.get("storage_transformers")
        or grid.get("name") != "regular"
        or not shape
        or len(chunk) != len(shape)
        or any(c < s for c, s in zip(chunk, shape, strict=True))  # one chunk
        or len(codecs) != 2
        or codecs[0] != _LITTLE
        or codecs[1].get("name") != "zstd"
        or keys.get("name") != "default"
        or keys.get("configuration", {}).get("separator", "/") != "/"
        or isinstance(fill, bool)
        or not isinstance(fill, int | float)
    ):
        return None
    dtype = np.dtype(_SCALAR_DTYPES[metadata["data_type"]])
    path = root / name / "c" / "/".join("0" * len(shape))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:  # every value is the fill value: zarr wrote no chunk
        return np.full(shape, fill, dtype=dtype)
    values = np.frombuffer(numcodecs.Zstd().decode(raw), dtype=dtype)
    if values.size != int(np.prod(chunk)):
        return None  # let zarr read it and report the damage
    return values.reshape(chunk)[tuple(slice(0, n) for n in shape)].copy()
