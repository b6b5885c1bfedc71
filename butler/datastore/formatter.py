"""The formatter plug-in point: how one storage class becomes bytes in a file.

A formatter reads and writes one file (or one directory, for zarr groups) on
an fsspec filesystem. It never decides where the file goes and never makes a
write atomic: the datastore hands it a temporary path and renames it into
place afterwards, so a formatter that fails half-way leaves nothing visible.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, ClassVar, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .._errors import FormatterError
from ..storage_class import StorageClass
from .integrity import HashingWriter, StreamDigest

__all__ = ["Formatter", "PartialReader"]

T = TypeVar("T")


class PartialReader:
    """Reads parts of one artifact many times; what a formatter learns on opening it is kept.

    Made by `Formatter.open_reader`. This default re-reads through `Formatter.read` on every
    call; a formatter whose files have a table or metadata to parse first returns a subclass
    that parses them once (a gather reading every sub-box of hundreds of inputs). Close it,
    or use it as a context manager, when done.

    Parameters
    ----------
    formatter : `Formatter`
        The formatter of the artifact.
    fs : `fsspec.AbstractFileSystem`
        Its filesystem.
    path : `str`
        The artifact.
    """

    def __init__(self, formatter: Formatter, fs: fsspec.AbstractFileSystem, path: str) -> None:
        self.formatter = formatter
        self.fs = fs
        self.path = path

    def read(self, parameters: Mapping[str, Any] | None = None) -> Any:
        """Read the part of the artifact the read ``parameters`` give (e.g. ``bbox``)."""
        return self.formatter.read(self.fs, self.path, parameters=parameters)

    def close(self) -> None:
        """Release what the reader holds (nothing by default)."""

    def __enter__(self) -> PartialReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Formatter(ABC):
    """Base class of formatters.

    Parameters
    ----------
    storage_class : `StorageClass`
        The storage class of the objects this formatter handles; `read` uses
        it to build the right in-memory type.

    Notes
    -----
    Subclasses set `extension` (with the dot, e.g. ``".fits"``), `is_directory`
    (True when the dataset is a directory, e.g. a zarr group), and
    `supported_parameters` (read parameters such as ``bbox``).

    A formatter that moves every byte of its files itself may set `feeds_digest`:
    then `write` and `read` also take a keyword ``digest``, a
    `~butler.datastore.integrity.StreamDigest` to feed the bytes as they are
    written or read (for a whole read), so that a repository with checksums
    does not read the artifact a second time. Feeding it is optional on any
    code path: whatever is not fed whole is read back by the datastore.
    """

    extension: ClassVar[str] = ""
    is_directory: ClassVar[bool] = False
    supported_parameters: ClassVar[frozenset[str]] = frozenset()
    #: Whether `write` and `read` accept ``digest`` (see the class notes).
    feeds_digest: ClassVar[bool] = False

    def __init__(self, storage_class: StorageClass) -> None:
        self.storage_class = storage_class

    @classmethod
    def dotted_name(cls) -> str:
        """Return ``module.ClassName``, the name stored in the registry."""
        return f"{cls.__module__}.{cls.__qualname__}"

    @abstractmethod
    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write ``obj`` to ``path`` on ``fs`` (a temporary path chosen by the datastore)."""

    @abstractmethod
    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read the object at ``path``, applying read ``parameters`` if given."""

    def open_reader(self, fs: fsspec.AbstractFileSystem, path: str) -> PartialReader:
        """Open ``path`` for many partial reads (see `PartialReader`; default: re-reads)."""
        return PartialReader(self, fs, path)

    @staticmethod
    def write_through(
        fs: fsspec.AbstractFileSystem,
        path: str,
        write: Callable[[BinaryIO], None],
        digest: StreamDigest | None = None,
    ) -> None:
        """Call ``write(stream)`` with a binary stream whose bytes end up at ``path``.

        Local files are written directly, through a `HashingWriter` feeding
        ``digest`` if one is given (``write`` must then write the file in order,
        without seeking); on other filesystems the bytes are collected in memory
        and stored with one write (one object-store put), and ``digest`` is not fed.
        """
        if isinstance(fs, LocalFileSystem):
            with open(path, "wb") as stream:
                write(stream if digest is None else HashingWriter(stream, digest))  # type: ignore[arg-type]
            return
        buffer = io.BytesIO()
        write(buffer)
        with fs.open(path, "wb") as stream:
            stream.write(buffer.getbuffer())

    @staticmethod
    def read_through(fs: fsspec.AbstractFileSystem, path: str, read: Callable[[Any], T]) -> T:
        """Return ``read(source)``: the local path itself, or the remote bytes in memory."""
        if isinstance(fs, LocalFileSystem):
            return read(path)
        with fs.open(path, "rb") as stream:
            return read(io.BytesIO(stream.read()))

    def check_parameters(self, parameters: Mapping[str, Any] | None) -> None:
        """Raise if a read parameter is not supported.

        Raises
        ------
        FormatterError
            Naming the unsupported parameter and the storage class.
        """
        unknown = set(parameters or ()) - set(self.supported_parameters)
        if unknown:
            raise FormatterError(
                f"storage class {self.storage_class.name!r} read by {type(self).__name__} "
                f"does not support parameter(s) {sorted(unknown)} "
                f"(supported: {sorted(self.supported_parameters)})"
            )
