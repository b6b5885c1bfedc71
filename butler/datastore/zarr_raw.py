"""Uncompressed zarr v3 arrays in local files, written and read without zarr-python.

zarr-python 3 runs every call on a background event loop: creating or
opening an array costs 1.5-3.5 ms of thread hand-offs and metadata objects
before the first byte moves (measured here), and its codec pipeline copies
every chunk. For the layout the butler writes by default (one ``bytes``
codec, little-endian, regular chunks, default chunk-key encoding) the format
is simple enough to move directly: ``zarr.json`` is a small JSON document and
each chunk file is the raw bytes of one chunk, edge chunks padded to the full
chunk shape. `RawLayout.from_metadata` recognises exactly that layout
(anything else, e.g. compressed or big-endian arrays, gives `None` and is
left to zarr-python); `write_raw_array` writes it, chunks first and
``zarr.json`` last; `read_raw_array` reads all of it or only the chunks a
region needs, from local files; `read_raw_array_from` does the same on any
fsspec filesystem (object stores), fetching the chunks it needs in one call.
The files are plain zarr v3: zarr-python reads what is written here and the
other way round (both tested).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import FormatterError
from .integrity import StreamDigest, local_files, remote_files
from .preallocate import preallocate

__all__ = [
    "METADATA_KEY",
    "WRITTEN_IN_FULL",
    "RawLayout",
    "parse_metadata",
    "read_metadata",
    "read_metadata_bytes",
    "read_raw_array",
    "read_raw_array_from",
    "write_raw_array",
]

#: Name of the array metadata document inside the array's directory.
METADATA_KEY = "zarr.json"
#: Attribute of an array whose every chunk was written: a missing chunk file is an error.
WRITTEN_IN_FULL = "written_in_full"

_DATA_TYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
    | {"float16", "float32", "float64"}
)
_PAGE = 4096
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class RawLayout:
    """Shape, type and chunking of an uncompressed, little-endian zarr v3 array.

    Parameters
    ----------
    shape : `tuple` [`int`, ...]
        Array shape.
    dtype : `numpy.dtype`
        Native (little-endian) dtype.
    chunk_shape : `tuple` [`int`, ...]
        Regular chunk shape.
    separator : `str`
        Chunk-key separator: ``"."`` (``c.0.1``) or ``"/"`` (``c/0/1``).
    fill_value : `object`
        Value of chunks that have no file.
    written_in_full : `bool`
        Whether every chunk was written (the butler's arrays, attribute
        ``written_in_full`` in ``zarr.json``): then a chunk without a file was
        lost and reading it is an error, not the fill value.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    chunk_shape: tuple[int, ...]
    separator: str = "."
    fill_value: Any = 0
    written_in_full: bool = False

    @classmethod
    def supports(cls, dtype: np.dtype) -> bool:
        """Return whether arrays of ``dtype`` can be stored in this layout on this machine."""
        return sys.byteorder == "little" and dtype.isnative and dtype.name in _DATA_TYPES

    @classmethod
    def from_metadata(cls, doc: Mapping[str, Any]) -> RawLayout | None:
        """Return the layout a ``zarr.json`` document describes, or `None` if it is another one.

        Parameters
        ----------
        doc : `~collections.abc.Mapping`
            The parsed ``zarr.json``.
        """
        try:
            if doc.get("zarr_format") != 3 or doc.get("node_type") != "array":
                return None
            if doc.get("storage_transformers") or doc["data_type"] not in _DATA_TYPES:
                return None
            dtype = np.dtype(doc["data_type"])
            grid, encoding, codecs = doc["chunk_grid"], doc["chunk_key_encoding"], doc["codecs"]
            if grid["name"] != "regular" or encoding["name"] != "default":
                return None
            if len(codecs) != 1 or codecs[0]["name"] != "bytes":
                return None
            endian = codecs[0].get("configuration", {}).get("endian", "little")
            if (endian != "little" and dtype.itemsize > 1) or not cls.supports(dtype):
                return None
            shape = _lengths(doc["shape"], minimum=0)
            chunk_shape = _lengths(grid["configuration"]["chunk_shape"], minimum=1)
            separator = encoding.get("configuration", {}).get("separator", "/")
            fill = doc["fill_value"]
            fill = _SPECIAL_FLOATS.get(fill, fill) if isinstance(fill, str) else fill
            attributes = doc.get("attributes") or {}
            in_full = bool(attributes.get(WRITTEN_IN_FULL, False))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None
        if (
            shape is None
            or chunk_shape is None
            or len(chunk_shape) != len(shape)
            or not shape
            or separator not in (".", "/")
            or not isinstance(fill, int | float)
        ):
            return None
        return cls(shape, dtype, chunk_shape, separator, fill, in_full)

    def to_metadata(self) -> dict[str, Any]:
        """Return the ``zarr.json`` document of this layout (as zarr-python writes it)."""
        fill: Any = self.fill_value
        if isinstance(fill, np.generic):  # numpy scalars: as Python numbers for JSON
            fill = fill.item()
        if isinstance(fill, float) and math.isnan(fill):
            fill = "NaN"
        elif isinstance(fill, float) and math.isinf(fill):
            fill = "Infinity" if fill > 0 else "-Infinity"
        elif self.dtype.kind == "f":
            fill = float(fill)
        elif self.dtype.kind == "b":
            fill = bool(fill)
        else:
            fill = int(fill)
        return {
            "shape": list(self.shape),
            "data_type": self.dtype.name,
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": list(self.chunk_shape)},
            },
            "chunk_key_encoding": {
                "name": "default",
                "configuration": {"separator": self.separator},
            },
            "fill_value": fill,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {WRITTEN_IN_FULL: True} if self.written_in_full else {},
            "zarr_format": 3,
            "node_type": "array",
            "storage_transformers": [],
        }

    def chunks(
        self, region: tuple[slice, ...] | None = None
    ) -> Iterator[tuple[str, tuple[slice, ...]]]:
        """Yield (chunk key, the chunk's slices of the array) for chunks overlapping ``region``.

        Parameters
        ----------
        region : `tuple` [`slice`, ...], optional
            One step-1 slice per axis with resolved bounds; the whole array by default.
        """
        ranges = []
        for axis, (n, c) in enumerate(zip(self.shape, self.chunk_shape, strict=True)):
            if region is None:
                ranges.append(range(-(-n // c)))
            else:
                start, stop = region[axis].start, region[axis].stop
                ranges.append(range(start // c, -(-stop // c)) if stop > start else range(0))
        for index in itertools.product(*ranges):
            key = self.separator.join(["c", *(str(i) for i in index)])
            slices = tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(index, self.chunk_shape, self.shape, strict=True)
            )
            yield key, slices


def _lengths(values: Any, *, minimum: int) -> tuple[int, ...] | None:
    """Return ``values`` as a tuple of JSON integers >= ``minimum``, or `None` if they are not."""
    if not isinstance(values, list):
        return None
    if not all(type(n) is int and n >= minimum for n in values):
        return None
    return tuple(values)


def read_metadata(path: str) -> dict[str, Any]:
    """Return the parsed ``zarr.json`` of the array directory ``path``.

    Raises
    ------
    FileNotFoundError
        If there is no ``zarr.json``.
    FormatterError
        If it is not valid JSON.
    """
    return parse_metadata(read_metadata_bytes(path), path)


def read_metadata_bytes(path: str) -> bytes:
    """Return the bytes of the ``zarr.json`` of the array directory ``path``."""
    with open(os.path.join(path, METADATA_KEY), "rb") as stream:
        return stream.read()


def parse_metadata(text: bytes, path: str) -> dict[str, Any]:
    """Parse the bytes of the ``zarr.json`` of ``path`` (named in the error if not JSON)."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise FormatterError(
            f"{os.path.join(path, METADATA_KEY)} is not valid JSON: {err}"
        ) from err


def write_raw_array(
    array: np.ndarray, path: str, layout: RawLayout, digest: StreamDigest | None = None
) -> None:
    """Write ``array`` as a zarr v3 array directory: chunk files, then ``zarr.json``.

    Parameters
    ----------
    array : `numpy.ndarray`
        Data; its shape and dtype must be the layout's.
    path : `str`
        Local directory to create (must not hold another array).
    layout : `RawLayout`
        How to chunk it.
    digest : `~butler.datastore.integrity.StreamDigest`, optional
        Fed every file's bytes as they are written (chunks in the sorted order of
        their keys, then ``zarr.json``, which sorts last), while each chunk is
        still in the CPU cache.
    """
    os.makedirs(path, exist_ok=True)
    made: set[str] = {path}
    chunks = layout.chunks()
    if digest is not None:
        chunks = iter(sorted(chunks, key=lambda item: item[0]))
    for key, slices in chunks:
        block = array[slices]
        if block.shape != layout.chunk_shape:
            padded = np.full(layout.chunk_shape, layout.fill_value, dtype=layout.dtype)
            padded[tuple(slice(0, n) for n in block.shape)] = block
            block = padded
        target = os.path.join(path, key)
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        data = memoryview(np.ascontiguousarray(block)).cast("B")
        with open(target, "wb") as stream:
            preallocate(stream, block.nbytes, 0)
            stream.write(data)
        if digest is not None:
            digest.start_file(key, data.nbytes)
            digest.update(data)
    text = json.dumps(layout.to_metadata(), indent=2).encode("utf-8")
    with open(os.path.join(path, METADATA_KEY), "wb") as stream:
        stream.write(text)
    if digest is not None:
        digest.start_file(METADATA_KEY, len(text))
        digest.update(text)


def read_raw_array(
    path: str,
    layout: RawLayout,
    region: tuple[slice, ...] | None = None,
    *,
    digest: StreamDigest | None = None,
    metadata: bytes | None = None,
) -> np.ndarray:
    """Read the whole array, or ``region`` of it touching only the chunks it overlaps.

    Parameters
    ----------
    path : `str`
        The array's local directory.
    layout : `RawLayout`
        Its layout (from `RawLayout.from_metadata`).
    region : `tuple` [`slice`, ...], optional
        One step-1 slice per axis; the whole array by default.
    digest : `~butler.datastore.integrity.StreamDigest`, optional
        For a whole read: fed every file of the directory in sorted order, each
        chunk as it is read (files that are not chunks of the array are read
        for the digest only), so it is the digest of the bytes returned.
    metadata : `bytes`, optional
        With ``digest``: the bytes of ``zarr.json`` the layout was parsed from.

    Returns
    -------
    array : `numpy.ndarray`
        A new array; chunks without a file read as the fill value.

    Raises
    ------
    FormatterError
        If a chunk file is shorter than a chunk, or missing from an array
        written in full.
    """
    region, shape = _resolve(layout, region)
    out = page_aligned_empty(shape, layout.dtype)
    placements = {key: (wanted, inside) for key, wanted, inside in _placements(layout, region)}
    scratch = np.empty(layout.chunk_shape, dtype=layout.dtype) if placements else None
    if digest is not None and region is None and metadata is not None:
        for name, size in local_files(path):
            digest.start_file(name, size)
            if name == METADATA_KEY:
                digest.update(metadata)
                continue
            with open(os.path.join(path, name), "rb") as stream:
                if name in placements:
                    wanted, inside = placements.pop(name)
                    _read_chunk(stream, out[wanted], inside, scratch, name, path, digest)
                digest.update_from(stream)  # the rest: normally nothing
    elif digest is not None:
        digest.abandon()
    for key, (wanted, inside) in placements.items():
        try:
            stream = open(os.path.join(path, key), "rb")
        except FileNotFoundError:
            _missing_chunk(layout, key, path)
            out[wanted] = layout.fill_value
            continue
        with stream:
            _read_chunk(stream, out[wanted], inside, scratch, key, path, None)
    return out


def _read_chunk(
    stream: Any,
    target: np.ndarray,
    inside: tuple[slice, ...],
    scratch: Any,
    key: str,
    path: str,
    digest: StreamDigest | None,
) -> None:
    """Read one chunk file into ``target`` (its part ``inside``), feeding ``digest`` the bytes."""
    if target.shape == scratch.shape and target.flags.c_contiguous:
        # A whole chunk that is one contiguous block of the output: straight in.
        view = memoryview(target).cast("B")
        if stream.readinto(view) != target.nbytes:
            raise FormatterError(f"zarr chunk {key!r} of {path!r} is truncated")
        if digest is not None:
            digest.update(view)
        return
    view = memoryview(scratch).cast("B")
    if stream.readinto(view) != scratch.nbytes:
        raise FormatterError(f"zarr chunk {key!r} of {path!r} is truncated")
    if digest is not None:
        digest.update(view)
    target[...] = scratch[inside]


def _resolve(
    layout: RawLayout, region: tuple[slice, ...] | None
) -> tuple[tuple[slice, ...] | None, tuple[int, ...]]:
    """Return ``region`` with resolved bounds and the shape of what is read."""
    if region is not None:
        region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, layout.shape, strict=True))
    shape = layout.shape if region is None else tuple(max(s.stop - s.start, 0) for s in region)
    return region, shape


def _placements(
    layout: RawLayout, region: tuple[slice, ...] | None
) -> Iterator[tuple[str, tuple[slice, ...], tuple[slice, ...]]]:
    """Yield (chunk key, where it goes in the output, which part of the chunk) per chunk."""
    for key, slices in layout.chunks(region):
        if region is None:
            yield key, slices, tuple(slice(0, s.stop - s.start) for s in slices)
            continue
        wanted = tuple(
            slice(max(s.start, r.start), min(s.stop, r.stop))
            for s, r in zip(slices, region, strict=True)
        )
        inside = tuple(
            slice(w.start - s.start, w.stop - s.start) for w, s in zip(wanted, slices, strict=True)
        )
        wanted = tuple(
            slice(w.start - r.start, w.stop - r.start) for w, r in zip(wanted, region, strict=True)
        )
        yield key, wanted, inside


def read_raw_array_from(
    fs: Any,
    path: str,
    layout: RawLayout,
    region: tuple[slice, ...] | None = None,
    *,
    digest: StreamDigest | None = None,
    metadata: bytes | None = None,
) -> np.ndarray:
    """`read_raw_array` on any fsspec filesystem: the needed chunks are fetched in one call.

    Parameters
    ----------
    fs : `fsspec.AbstractFileSystem`
        Where the array is (e.g. an object store).
    path : `str`
        The array's path on ``fs``.
    layout : `RawLayout`
        Its layout.
    region : `tuple` [`slice`, ...], optional
        One step-1 slice per axis; the whole array by default.
    digest : `~butler.datastore.integrity.StreamDigest`, optional
        For a whole read: fed every file under ``path`` (as listed) in sorted order, the
        chunks from the bytes fetched to decode, so nothing is downloaded twice.
    metadata : `bytes`, optional
        With ``digest``: the bytes of ``zarr.json`` the layout was parsed from.
    """
    region, shape = _resolve(layout, region)
    out = np.empty(shape, dtype=layout.dtype)
    placements = list(_placements(layout, region))
    paths = [f"{path.rstrip('/')}/{key}" for key, _, _ in placements]
    found = fs.cat(paths, on_error="omit") if paths else {}
    if digest is not None and region is None and metadata is not None:
        _feed_remote(fs, path, found, metadata, digest)
    elif digest is not None:
        digest.abandon()
    chunk_bytes = math.prod(layout.chunk_shape) * layout.dtype.itemsize
    for (key, wanted, inside), chunk_path in zip(placements, paths, strict=True):
        data = found.get(chunk_path)
        if data is None:
            _missing_chunk(layout, key, path)
            out[wanted] = layout.fill_value
            continue
        if len(data) < chunk_bytes:
            raise FormatterError(f"zarr chunk {key!r} of {path!r} is truncated")
        chunk = np.frombuffer(data, dtype=layout.dtype, count=math.prod(layout.chunk_shape))
        out[wanted] = chunk.reshape(layout.chunk_shape)[inside]
    return out


def _feed_remote(
    fs: Any, path: str, found: Mapping[str, bytes], metadata: bytes, digest: StreamDigest
) -> None:
    """Feed ``digest`` every file under ``path`` in sorted order; fetch only what is not in hand."""
    for name, size in remote_files(fs, path):
        digest.start_file(name, size)
        full = f"{path.rstrip('/')}/{name}"
        if name == METADATA_KEY:
            digest.update(metadata)
        elif full in found:
            digest.update(found[full])
        else:  # not a chunk of the array: fetched for the digest only
            digest.update(fs.cat_file(full))


def _missing_chunk(layout: RawLayout, key: str, path: str) -> None:
    """Raise if a chunk of an array written in full has no file (it was lost, not empty)."""
    if layout.written_in_full:
        raise FormatterError(
            f"zarr chunk {key!r} of {path!r} is missing, but the array was written in full: "
            "the chunk was lost (it would read as the fill value)"
        )


def page_aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Return an uninitialised C-contiguous array whose data starts on a 4 KiB page boundary.

    Large numpy arrays start 16 bytes past a page boundary (the C library's block
    header), while a chunk file's bytes start at a page boundary in the page cache.
    Copying between addresses 16 bytes apart modulo 4 KiB makes the CPU mistake each
    load for one depending on the store just before it ("4K aliasing"): reading 64 MiB
    from a chunk file into such an array measured 41 ms, and 16-18 ms at any other
    offset, page-aligned included. (`numpy.load` escapes it by luck: its header moves
    the data 128 bytes into the file.) The array is a view of a buffer 4 KiB larger.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = np.empty(nbytes + _PAGE, dtype=np.uint8)
    start = -buffer.ctypes.data % _PAGE
    return buffer[start : start + nbytes].view(dtype).reshape(shape)
