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

from ._shard_reader import PlaneLayout, plane_layout

__all__ = ["can_write_plane", "write_plane_shard"]


def can_write_plane(root: Path, name: str) -> PlaneLayout | None:
    """Return the layout of the plane array ``name`` zarr created at ``root``, if this one.

    `None` unless `~imaging._shard_reader.plane_layout` accepts its ``zarr.json`` and its
    zstd frames carry no checksum (the caller then writes through zarr).
    """
    try:
        metadata = json.loads((root / name / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    layout = plane_layout(metadata if isinstance(metadata, dict) else None)
    if layout is None or layout.zstd.get("checksum", False):
        return None
    return layout


def write_plane_shard(root: Path, name: str, data: np.ndarray, layout: PlaneLayout) -> None:
    """Write ``data`` (``(stamps, y, x)``) as the plane's one shard.

    Parameters
    ----------
    root : `pathlib.Path`
        The group's directory.
    name : `str`
        The plane array, created by zarr with a layout `can_write_plane` accepts.
    data : `numpy.ndarray`
        The whole plane, of the array's shape.
    layout : `~imaging._shard_reader.PlaneLayout`
        Its layout, from `can_write_plane`.
    """
    import google_crc32c
    import numcodecs

    if data.shape != layout.shape:
        raise ValueError(f"plane {name!r}: data of shape {data.shape}, array of {layout.shape}")
    (ch, cw), (n, gy, gx) = layout.chunk, layout.n_chunks
    padded = np.full((n, gy * ch, gx * cw), layout.fill, dtype=layout.dtype)
    padded[: data.shape[0], : data.shape[1], : data.shape[2]] = data
    codec = numcodecs.Zstd(level=int(layout.zstd.get("level", 0)))
    index = np.empty((n, gy, gx, 2), dtype="<u8")
    pieces: list[bytes] = []
    offset = 0
    for i in range(n):
        for cy in range(gy):
            for cx in range(gx):
                block = padded[i, cy * ch : (cy + 1) * ch, cx * cw : (cx + 1) * cw]
                encoded = codec.encode(np.ascontiguousarray(block))
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
