"""Direct writes of the sharded stamp planes `imaging.stamps_io` makes, on a local disk.

The layout is the one `imaging._shard_reader` reads: a ``(stamps, y, x)`` plane is one shard
file ``<plane>/c/0/0/0`` of ``(1, ch, cw)`` chunks, each ``bytes`` (little endian) + ``zstd``,
followed by the shard index (``(stamps, y chunks, x chunks, 2)`` little-endian ``uint64``
offset and size of each chunk) and the ``crc32c`` of the index. zarr creates the array (its
``zarr.json``); only the shard's bytes are made here. Writing them through zarr's array API
costs ~0.07 s of Python per plane of 24 stamps of 275² (its event loop and the sharding
codec's work per chunk, 216 chunks); compressing them is ~0.02 s.

Every chunk is stored, edge chunks padded with the fill value, so what is read back is
exactly what was written (zarr leaves out chunks equal to the fill value, reading back
``+0.0`` for a chunk of ``-0.0``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["can_write_plane", "write_plane_shard"]

_LITTLE = {"name": "bytes", "configuration": {"endian": "little"}}
_INDEX_CODECS = [_LITTLE, {"name": "crc32c"}]


def can_write_plane(root: Path, name: str) -> tuple[int, int, int] | None:
    """Return the chunk shape of the plane array ``name`` zarr created at ``root``, if this layout.

    `None` if its metadata is not exactly one ``sharding_indexed`` shard of ``(1, ch, cw)``
    ``bytes`` + ``zstd`` chunks with the index at the end (the caller then writes through zarr).
    """
    try:
        metadata = json.loads((root / name / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    shape = [int(v) for v in metadata.get("shape", ())]
    codecs = metadata.get("codecs") or []
    if metadata.get("zarr_format") != 3 or len(shape) != 3 or len(codecs) != 1:
        return None
    config = codecs[0].get("configuration", {})
    chunk = [int(v) for v in config.get("chunk_shape", [])]
    inner = config.get("codecs") or []
    grid = metadata.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", [])
    keys = metadata.get("chunk_key_encoding", {})
    if (
        codecs[0].get("name") != "sharding_indexed"
        or len(chunk) != 3
        or chunk[0] != 1
        or len(inner) != 2
        or inner[0] != _LITTLE
        or inner[1].get("name") != "zstd"
        or inner[1].get("configuration", {}).get("checksum", False)
        or config.get("index_codecs") != _INDEX_CODECS
        or config.get("index_location") != "end"
        or len(grid) != 3
        or [int(g) for g in grid] != [-(-s // c) * c for s, c in zip(shape, chunk, strict=True)]
        or keys.get("name") != "default"
        or keys.get("configuration", {}).get("separator", "/") != "/"
        or metadata.get("fill_value") != 0
    ):
        return None
    return (chunk[0], chunk[1], chunk[2])


def write_plane_shard(
    root: Path, name: str, data: np.ndarray, chunk: tuple[int, int, int], level: int
) -> None:
    """Write ``data`` (``(stamps, y, x)``, the array's dtype) as the plane's one shard.

    Parameters
    ----------
    root : `pathlib.Path`
        The group's directory.
    name : `str`
        The plane array, created by zarr with the layout `can_write_plane` accepts.
    data : `numpy.ndarray`
        The whole plane.
    chunk : `tuple` [`int`, `int`, `int`]
        Its chunk shape, from `can_write_plane`.
    level : `int`
        The zstd level of the array's codec.
    """
    import google_crc32c
    import numcodecs

    n, ny, nx = data.shape
    _, ch, cw = chunk
    gy, gx = -(-ny // ch), -(-nx // cw)
    little = data.astype(data.dtype.newbyteorder("<"), copy=False)
    padded = np.zeros((n, gy * ch, gx * cw), dtype=little.dtype)
    padded[:, :ny, :nx] = little
    codec = numcodecs.Zstd(level=level)
    index = np.empty((n, gy, gx, 2), dtype="<u8")
    pieces: list[bytes] = []
    offset = 0
    for i in range(n):
        for cy in range(gy):
            for cx in range(gx):
                block = np.ascontiguousarray(
                    padded[i, cy * ch : (cy + 1) * ch, cx * cw : (cx + 1) * cw]
                )
                encoded = codec.encode(block)
                pieces.append(encoded)
                index[i, cy, cx] = (offset, len(encoded))
                offset += len(encoded)
    raw_index = index.tobytes()
    pieces.append(raw_index)
    pieces.append(int(google_crc32c.value(raw_index)).to_bytes(4, "little"))
    path = root / name / "c" / "0" / "0" / "0"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        stream.write(b"".join(pieces))
