"""The built-in formatters: YAML, JSON, zarr, FITS and npy.

Each formatter writes one object to one path on an fsspec filesystem (the
temporary path the datastore chose; the datastore makes the write atomic)
and reads it back exactly: same type, dtype, shape, values, units and meta.

Array formatters understand the read parameter ``bbox``: either
``(x0, y0, width, height)`` in pixels (x is the last axis, y the one before)
or a tuple of `slice` objects applied as ``array[bbox]``. Only the needed
part of the file is read: the chunks a zarr array needs, the rows of a FITS
image a region needs, the pages of a memory-mapped local npy file.

Zarr choices (measured on a 4096x4096 float32 image): uncompressed chunks of
about 4 MiB made of whole rows, because float noise does not compress (any
codec only costs time) and row bands are contiguous, so whole-array writes
and reads of local files move each chunk with one system call and at most
one copy, without zarr-python (`~butler.datastore.zarr_raw`; zarr-python's
own path measured 2.4-2.9x slower than `numpy.save` + `numpy.load`, plus
2-3 ms per call); compressed or remote arrays go through zarr-python. Chunk
keys use the ``.`` separator (``c.0.0``) so chunk files sit flat in the
array directory: a subdirectory per chunk row measured ~0.7 ms each.

No state is kept between calls; formatters are cheap to construct.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import fsspec
import numpy as np
import yaml
from fsspec.implementations.local import LocalFileSystem

from .._errors import FormatterError
from .formatter import Formatter
from .integrity import HashingReader, StreamDigest
from .zarr_raw import (
    METADATA_KEY,
    WRITTEN_IN_FULL,
    RawLayout,
    parse_metadata,
    read_metadata_bytes,
    read_raw_array,
    read_raw_array_from,
    write_raw_array,
)

# libyaml's C loader and dumper when available (same safe subset, several times faster).
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

__all__ = [
    "FitsArrayFormatter",
    "FitsTableFormatter",
    "JsonFormatter",
    "NpyFormatter",
    "YamlFormatter",
    "ZarrArrayFormatter",
    "bbox_slices",
]


def bbox_slices(bbox: Any, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Turn a ``bbox`` read parameter into a tuple of slices, checked against ``shape``.

    Parameters
    ----------
    bbox : `tuple`
        ``(x0, y0, width, height)`` (x along the last axis) or a tuple of `slice`.
    shape : `tuple` [`int`, ...]
        Shape of the stored array.

    Returns
    -------
    slices : `tuple` [`slice`, ...]
        One slice per axis.

    Raises
    ------
    FormatterError
        If the bbox is malformed or not inside the array.
    """
    if isinstance(bbox, slice):
        bbox = (bbox,)
    if isinstance(bbox, tuple) and bbox and all(isinstance(s, slice) for s in bbox):
        if len(bbox) > len(shape):
            raise FormatterError(f"bbox {bbox} has more axes than the array shape {shape}")
        for s, n in zip(bbox, shape, strict=False):
            start, stop, step = s.indices(n)
            if (
                step != 1
                or (s.start is not None and not 0 <= s.start <= n)
                or (s.stop is not None and not 0 <= s.stop <= n)
            ):
                raise FormatterError(f"bbox slice {s} is outside the array shape {shape}")
        return tuple(bbox) + (slice(None),) * (len(shape) - len(bbox))
    try:
        x0, y0, width, height = (int(v) for v in bbox)
    except (TypeError, ValueError):
        raise FormatterError(
            f"bbox must be (x0, y0, width, height) or a tuple of slices, got {bbox!r}"
        ) from None
    if len(shape) < 2:
        raise FormatterError(f"bbox (x0, y0, width, height) needs a 2-D array, shape is {shape}")
    ny, nx = shape[-2:]
    if x0 < 0 or y0 < 0 or width < 0 or height < 0 or x0 + width > nx or y0 + height > ny:
        raise FormatterError(
            f"bbox (x0={x0}, y0={y0}, width={width}, height={height}) is outside the "
            f"array of shape {shape}"
        )
    lead = (slice(None),) * (len(shape) - 2)
    return lead + (slice(y0, y0 + height), slice(x0, x0 + width))


def _native(array: np.ndarray) -> np.ndarray:
    """Return ``array`` in native byte order (FITS data is big-endian on disk)."""
    if array.dtype.byteorder not in ("=", "|") and not array.dtype.isnative:
        return array.astype(array.dtype.newbyteorder("="))
    return array


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _remote_metadata(fs: fsspec.AbstractFileSystem, path: str) -> tuple[dict[str, Any], bytes]:
    """Return the parsed ``zarr.json`` of an array on any filesystem, and its bytes."""
    key = f"{path.rstrip('/')}/{METADATA_KEY}"
    text = fs.cat_file(key)
    try:
        return json.loads(text), text
    except ValueError as err:
        raise FormatterError(f"{key} is not valid JSON: {err}") from err


class _DictFormatter(Formatter):
    """Shared logic of the text formatters: ``to_dict`` out, ``from_dict`` in."""

    def _to_plain(self, obj: Any) -> Any:
        to_dict = getattr(obj, "to_dict", None)
        return to_dict() if callable(to_dict) else obj

    def _from_plain(self, data: Any) -> Any:
        pytype = self.storage_class.import_pytype()
        if getattr(builtins, pytype.__name__, None) is pytype:
            return data
        from_dict = getattr(pytype, "from_dict", None)
        if callable(from_dict):
            return from_dict(data)
        return data

    def _dumps(self, data: Any) -> str:
        raise NotImplementedError

    def _loads(self, text: str) -> Any:
        raise NotImplementedError

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write ``obj`` (or ``obj.to_dict()``) as text (local files opened directly)."""
        text = self._dumps(self._to_plain(obj))
        opener = open if _is_local(fs) else fs.open
        with opener(path, "w", encoding="utf-8") as stream:
            stream.write(text)

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the text and rebuild the storage class type via ``from_dict`` if it has one."""
        self.check_parameters(parameters)
        opener = open if _is_local(fs) else fs.open
        with opener(path, encoding="utf-8") as stream:
            return self._from_plain(self._loads(stream.read()))


class YamlFormatter(_DictFormatter):
    """YAML files (the safe subset, with libyaml when installed) for dicts, lists and scalars."""

    extension: ClassVar[str] = ".yaml"

    def _dumps(self, data: Any) -> str:
        try:
            return yaml.dump(data, Dumper=_YAML_DUMPER, sort_keys=False)
        except yaml.YAMLError as err:
            raise FormatterError(f"cannot write {type(data).__name__} as YAML: {err}") from err

    def _loads(self, text: str) -> Any:
        return yaml.load(text, Loader=_YAML_LOADER)


class JsonFormatter(_DictFormatter):
    """JSON files for dicts, lists and scalars."""

    extension: ClassVar[str] = ".json"

    def _dumps(self, data: Any) -> str:
        try:
            return json.dumps(data, indent=1)
        except (TypeError, ValueError) as err:
            raise FormatterError(f"cannot write {type(data).__name__} as JSON: {err}") from err

    def _loads(self, text: str) -> Any:
        return json.loads(text)


class ZarrArrayFormatter(Formatter):
    """A numpy array as a zarr v3 array (a directory).

    Notes
    -----
    Chunks are uncompressed and hold about `chunk_bytes` (4 MiB): bands of
    whole rows (one plane at a time for 3-D and up), e.g. 256 x 4096 for a
    4096 x 4096 float32 image. A band is contiguous in memory, so a whole
    array is written and read with one system call per chunk and no copy
    (as fast as `numpy.save`; square 1024 x 1024 tiles cost one extra copy,
    measured 30 vs 22 ms for 64 MiB). Rows longer than `chunk_bytes` fall
    back to `chunk_shape` tiles, as does any subclass that sets it. Reads
    with ``bbox`` fetch only the chunks that overlap it.
    """

    extension: ClassVar[str] = ".zarr"
    is_directory: ClassVar[bool] = True
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"bbox"})
    feeds_digest: ClassVar[bool] = True  # on the raw path (uncompressed, no custom store)
    #: Target chunk size in bytes.
    chunk_bytes: ClassVar[int] = 4 << 20
    #: Tile shape of the last two axes; `None` for row bands when they fit `chunk_bytes`.
    chunk_shape: ClassVar[tuple[int, int] | None] = None

    def _store(self, fs: fsspec.AbstractFileSystem, path: str, *, read_only: bool) -> Any:
        """Return the zarr store for ``path``; subclasses may wrap it."""
        from zarr.storage import FsspecStore, LocalStore

        if _is_local(fs):
            return LocalStore(path, read_only=read_only)
        return FsspecStore.from_url(
            fs.unstrip_protocol(path), storage_options=fs.storage_options, read_only=read_only
        )

    def _chunks(self, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
        """Return the chunk shape for an array (see the class notes)."""
        if not shape:
            return ()
        per_chunk = max(self.chunk_bytes // max(itemsize, 1), 1)
        if len(shape) == 1:
            return (max(min(shape[0], per_chunk), 1),)
        lead = (1,) * (len(shape) - 2)
        ny, nx = shape[-2:]
        if self.chunk_shape is None and nx <= per_chunk:
            return lead + (max(min(ny, per_chunk // max(nx, 1)), 1), max(nx, 1))
        tile = self.chunk_shape or (1024, 1024)
        return lead + tuple(max(min(n, c), 1) for n, c in zip((ny, nx), tile, strict=True))

    def write(
        self,
        obj: Any,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        digest: StreamDigest | None = None,
    ) -> None:
        """Write a numpy array as an uncompressed, chunked zarr v3 array."""
        array = np.asarray(obj)
        if array.dtype.hasobject or array.dtype.names is not None:
            raise FormatterError(f"zarr formatter cannot store dtype {array.dtype}")
        chunks = self._chunks(array.shape, array.dtype.itemsize)
        if self._raw_ok(fs) and array.ndim and RawLayout.supports(array.dtype):
            layout = RawLayout(array.shape, array.dtype, chunks, written_in_full=True)
            write_raw_array(array, path, layout, digest)
            return
        import zarr

        zarray = zarr.create_array(
            self._store(fs, path, read_only=False),
            shape=array.shape,
            dtype=array.dtype,
            chunks=chunks,
            compressors=None,
            fill_value=0,
            chunk_key_encoding={"name": "default", "separator": "."},
            config={"write_empty_chunks": True},
            attributes={WRITTEN_IN_FULL: True},  # every chunk is written (read_raw_array)
        )
        zarray[...] = array

    def _raw_ok(self, fs: fsspec.AbstractFileSystem) -> bool:
        """Return whether `~butler.datastore.zarr_raw` may move the files itself.

        That is for local files, unless a subclass routes the store elsewhere.
        """
        return _is_local(fs) and type(self)._store is ZarrArrayFormatter._store

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        digest: StreamDigest | None = None,
    ) -> Any:
        """Read the array, or only ``bbox`` of it."""
        self.check_parameters(parameters)
        bbox = (parameters or {}).get("bbox")
        if not fs.exists(f"{path}/{METADATA_KEY}"):
            raise FileNotFoundError(f"no zarr array at {path!r}")
        if self._raw_ok(fs):
            text = read_metadata_bytes(path)
            layout = RawLayout.from_metadata(parse_metadata(text, path))
            if layout is not None:
                region = None if bbox is None else bbox_slices(bbox, layout.shape)
                return read_raw_array(path, layout, region, digest=digest, metadata=text)
        elif type(self)._store is ZarrArrayFormatter._store:  # an object store: no zarr-python
            doc, text = _remote_metadata(fs, path)
            layout = RawLayout.from_metadata(doc)
            if layout is not None:
                region = None if bbox is None else bbox_slices(bbox, layout.shape)
                return read_raw_array_from(fs, path, layout, region, digest=digest, metadata=text)
        if digest is not None:
            digest.abandon()  # zarr-python moves the bytes: the datastore reads them back
        import zarr

        zarray = zarr.open_array(self._store(fs, path, read_only=True), mode="r")
        if bbox is not None:
            return np.asarray(zarray[bbox_slices(bbox, zarray.shape)])
        return np.asarray(zarray[...])


class FitsArrayFormatter(Formatter):
    """A numpy array in the primary HDU of a FITS file.

    Unscaled types (uint8, int16/32/64, float32/64) are written and read by
    `~butler.datastore.fits_image`, which swaps bytes through a small cached
    buffer instead of whole-array copies; other types (e.g. uint16, stored
    with ``BZERO``) and files that need scaling go through astropy. Both (astropy) are
    imported when a FITS file is first written or read: the module holds every formatter,
    and a put of a small YAML file should not import astropy.
    """

    extension: ClassVar[str] = ".fits"
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"bbox"})
    feeds_digest: ClassVar[bool] = True  # for unscaled images

    def write(
        self,
        obj: Any,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        digest: StreamDigest | None = None,
    ) -> None:
        """Write the array as the primary HDU."""
        from .fits_image import bitpix_for, write_primary_image

        array = np.asarray(obj)
        if array.ndim and bitpix_for(array.dtype) is not None:
            self.write_through(fs, path, lambda stream: write_primary_image(stream, array), digest)
            return
        from astropy.io import fits

        hdu = fits.PrimaryHDU(array)
        self.write_through(fs, path, hdu.writeto)

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        digest: StreamDigest | None = None,
    ) -> Any:
        """Read the primary HDU, or only the rows of ``bbox`` and then its columns."""
        from astropy.io import fits

        from .fits_image import plain_image_layout, read_data_unit

        self.check_parameters(parameters)
        bbox = (parameters or {}).get("bbox")
        if digest is not None and bbox is not None:
            digest.abandon()
            digest = None
        with open(path, "rb") if _is_local(fs) else fs.open(path, "rb") as stream:
            # Fed the header as astropy reads it, the data unit as it is read, then the rest.
            source = stream if digest is None else HashingReader(stream, digest)
            layout = plain_image_layout(fits.Header.fromfile(source))
            if layout is not None:
                if bbox is None:
                    image = read_data_unit(source, layout)
                    if digest is not None:
                        digest.update_from(stream)  # the padding after the data unit
                    return image
                slices = bbox_slices(bbox, layout.shape)
                rows = read_data_unit(stream, layout, slices[0])
                return np.ascontiguousarray(rows[(slice(None), *slices[1:])])
            if digest is not None:
                digest.abandon()  # astropy reads it: the datastore reads it back
            stream.seek(0)
            with fits.open(stream, memmap=False, lazy_load_hdus=True) as hdul:
                hdu = hdul[0]
                if bbox is None:
                    data = hdu.data
                else:
                    data = hdu.section[bbox_slices(bbox, hdu.shape)]
                if data is None:
                    return None
                native = _native(data)  # a new array when it had to swap bytes
                return native if native is not data else np.array(data, copy=True)


class FitsTableFormatter(Formatter):
    """An `astropy.table.Table` as a FITS binary table (units and meta kept)."""

    extension: ClassVar[str] = ".fits"

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write the table as a BinTable HDU."""
        self.write_through(fs, path, lambda stream: obj.write(stream, format="fits"))

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the table, as the storage class type (`~astropy.table.Table` or a subclass)."""
        self.check_parameters(parameters)
        pytype = self.storage_class.import_pytype()
        table = self.read_through(
            fs, path, lambda source: pytype.read(source, format="fits", character_as_bytes=False)
        )
        for name in table.colnames:  # FITS is big-endian; hand back native columns
            column = table[name]
            if column.dtype.kind not in "OSUb" and not column.dtype.isnative:
                table.replace_column(name, column.astype(column.dtype.newbyteorder("=")))
        return table


class NpyFormatter(Formatter):
    """A numpy array as a ``.npy`` file (no pickles)."""

    extension: ClassVar[str] = ".npy"
    supported_parameters: ClassVar[frozenset[str]] = frozenset({"bbox"})

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write with `numpy.save`."""
        array = np.asarray(obj)
        if _is_local(fs):
            with open(path, "wb") as stream:
                np.save(stream, array, allow_pickle=False)
            return
        with fs.open(path, "wb") as stream:
            np.save(stream, array, allow_pickle=False)

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read with `numpy.load`; a local file is memory-mapped for ``bbox`` reads."""
        self.check_parameters(parameters)
        bbox = (parameters or {}).get("bbox")
        if _is_local(fs):
            if bbox is None:
                return np.load(path, allow_pickle=False)
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)
            return np.array(mapped[bbox_slices(bbox, mapped.shape)])
        with fs.open(path, "rb") as stream:
            array = np.load(stream, allow_pickle=False)
        return array if bbox is None else array[bbox_slices(bbox, array.shape)].copy()
