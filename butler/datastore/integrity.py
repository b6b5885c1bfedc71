"""Knowing when an artifact's bytes are not the ones that were stored: sizes and checksums.

Every stored-file record carries the artifact's size (all files of a
directory artifact together) from the moment it was written; `check_size`
compares it with what is on disk before a read, so a truncated, extended or
partly deleted artifact (a zarr chunk gone) is an error naming the dataset and
file rather than wrong pixels or zeros.

A repository created with checksums (``butler create --checksums``) also
records a digest of the bytes: `digest` hashes a file, or every file of a
directory in the order of their relative names (each name and length is
hashed too, so moving bytes between files changes the digest). The hash is
xxHash's XXH3-128, written as ``xxh3_128:<hex>`` so that another algorithm
can be told apart later.

Hashing a 64 MiB image that has left the CPU cache costs 6-7 ms (memory
bandwidth), hashing a 4 MiB block that is still in the cache about 0.1 ms.
So the formatters that move every byte themselves (the butler's FITS image
and uncompressed zarr array code, `Formatter.feeds_digest`) hash each block
as they write it to or read it from the file, into a `StreamDigest`: no
second pass over the artifact at put, and at get the digest is of exactly
the bytes that were decoded. `StreamDigest.finish` then lists the artifact
on disk and returns the digest only if every file was fed whole, in
`digest`'s order; otherwise (and for every other formatter, ingested files
and ``butler check``) `digest` reads the artifact back: local files through a
memory map of the page cache, remote ones streamed. Both give the same value
for the same bytes (tested).

Both the local and the object-store code paths of `FileDatastore` use these:
at put on the artifact just written (the local temporary before its rename or
upload), at get on the artifact being read.

No state outside a `StreamDigest`.
"""

from __future__ import annotations

import io
import mmap
import os
import posixpath
import stat

import fsspec
import xxhash

from .._errors import ArtifactChecksumError, ArtifactIntegrityError, ArtifactSizeError
from ._atomic import is_local

__all__ = [
    "ALGORITHM",
    "HashingReader",
    "HashingWriter",
    "StreamDigest",
    "artifact_size",
    "check_algorithm",
    "check_size",
    "compare_digest",
    "digest",
    "local_files",
    "remote_files",
    "verify_digest",
]

#: Name of the hash, the prefix of every recorded digest.
ALGORITHM = "xxh3_128"
_BLOCK = 1 << 22
# Map every page of the (page-cached) file in one call rather than fault them in one by one.
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def artifact_size(fs: fsspec.AbstractFileSystem, path: str) -> int:
    """Return the size in bytes of a file, or of all regular files under a directory."""
    if is_local(fs):  # one stat (a scan for a directory), no fsspec path handling
        st = os.stat(path)
        return _tree_size(path) if stat.S_ISDIR(st.st_mode) else st.st_size
    if fs.isdir(path):
        return int(fs.du(path, total=True))
    return int(fs.size(path))


def check_size(fs: fsspec.AbstractFileSystem, path: str, expected: int, where: str) -> None:
    """Raise `ArtifactSizeError` if the artifact's size is not ``expected`` (-1: unknown).

    Parameters
    ----------
    fs : `fsspec.AbstractFileSystem`
        Its filesystem.
    path : `str`
        The artifact.
    expected : `int`
        The recorded size; -1 (not recorded) is never an error.
    where : `str`
        What it is, for the message (dataset and URI).
    """
    if expected < 0:
        return
    size = artifact_size(fs, path)
    if size != expected:
        change = "truncated or partly deleted" if size < expected else "extended"
        raise ArtifactSizeError(
            f"{where} has {size} bytes, but {expected} were stored: it was {change} "
            "after it was written ('butler check' lists every such artifact)"
        )


def digest(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Return the recorded form (``xxh3_128:<hex>``) of the digest of a file or directory."""
    hasher = xxhash.xxh3_128()
    if not (os.path.isdir(path) if is_local(fs) else fs.isdir(path)):
        _hash_file(hasher, fs, path)
    else:
        for name in sorted(_relative_files(fs, path)):
            full = posixpath.join(path, name)
            size = os.path.getsize(full) if is_local(fs) else fs.size(full)
            hasher.update(f"\0{name}\0{size}\0".encode())
            _hash_file(hasher, fs, full)
    return f"{ALGORITHM}:{hasher.hexdigest()}"


def verify_digest(fs: fsspec.AbstractFileSystem, path: str, expected: str, where: str) -> None:
    """Raise `ArtifactChecksumError` if the artifact's digest is not the recorded one.

    An algorithm this software cannot compute is an `ArtifactIntegrityError`.
    """
    check_algorithm(expected, where)
    compare_digest(digest(fs, path), expected, where)


def check_algorithm(expected: str, where: str) -> None:
    """Raise `ArtifactIntegrityError` if a recorded digest uses an algorithm not known here."""
    algorithm = expected.partition(":")[0]
    if algorithm != ALGORITHM:
        raise ArtifactIntegrityError(
            f"{where}: recorded checksum {expected!r} uses {algorithm!r}, which this "
            f"software cannot compute (it knows {ALGORITHM})"
        )


def compare_digest(actual: str, expected: str, where: str) -> None:
    """Raise `ArtifactChecksumError` if the digest of the artifact is not the recorded one."""
    check_algorithm(expected, where)
    if actual != expected:
        raise ArtifactChecksumError(
            f"{where} does not have the bytes that were stored (checksum {actual}, recorded "
            f"{expected}): it was changed or damaged after it was written"
        )


class StreamDigest:
    """The `digest` of an artifact, fed its bytes by the code that writes or reads them.

    A file artifact is fed with `update` only, in file order. A directory artifact
    is fed one file after the other in the sorted order of their relative names
    (as `digest` hashes them): `start_file` with the file's name and size, then
    its bytes with `update`. `finish` compares what was fed with the artifact on
    disk and gives the digest only if every file was fed whole; any gap (a
    formatter path that does not feed it, a file it did not know about) gives
    `None`, and the caller reads the artifact back with `digest` instead. So a
    digest from here is never of other bytes than `digest` would hash.
    """

    def __init__(self) -> None:
        self._hasher = xxhash.xxh3_128()
        self._files: list[tuple[str, int]] = []  # directory members started so far
        self._fed = 0  # bytes fed to the current file (the whole artifact for a file)
        self._broken = False

    def start_file(self, name: str, size: int) -> None:
        """Start the next file of a directory artifact: ``name`` relative to it, ``size`` bytes.

        Names must come in sorted order and the previous file must have been fed
        whole; otherwise the digest is abandoned (`finish` gives `None`).
        """
        if self._files:
            previous, expected = self._files[-1]
            if name <= previous or self._fed != expected:
                self._broken = True
        elif self._fed:  # bytes fed before any file was started
            self._broken = True
        self._files.append((name, size))
        self._fed = 0
        self._hasher.update(f"\0{name}\0{size}\0".encode())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the current file (no copy is made)."""
        self._hasher.update(data)
        self._fed += memoryview(data).nbytes

    def update_from(self, stream: io.BufferedIOBase | io.RawIOBase) -> None:
        """Feed everything ``stream`` still holds, to its end."""
        while block := stream.read(_BLOCK):
            self.update(block)

    def abandon(self) -> None:
        """Give up: the bytes are not all going through here (`finish` gives `None`)."""
        self._broken = True

    def finish(self, fs: fsspec.AbstractFileSystem, path: str) -> str | None:
        """Return the digest (``xxh3_128:<hex>``) if it covers the artifact at ``path`` whole.

        Parameters
        ----------
        fs : `fsspec.AbstractFileSystem`
            The artifact's filesystem.
        path : `str`
            The artifact that was written or read.

        Returns
        -------
        digest : `str` or `None`
            `None` unless every file of the artifact, as listed on disk now, was
            fed whole and in order (then `digest` must be used).
        """
        if self._broken:
            return None
        local = is_local(fs)
        if os.path.isdir(path) if local else fs.isdir(path):
            if not self._files or self._fed != self._files[-1][1]:
                return None
            if (local_files(path) if local else remote_files(fs, path)) != self._files:
                return None
        elif self._files or not self._fed:
            return None  # an empty file fed nothing: read it back (it costs nothing)
        elif self._fed != (os.path.getsize(path) if local else fs.size(path)):
            return None
        return f"{ALGORITHM}:{self._hasher.hexdigest()}"


class _HashingStream(io.RawIOBase):
    """A binary stream over a file that feeds a `StreamDigest` the bytes passing through."""

    def __init__(self, stream: io.BufferedIOBase | io.RawIOBase, digest: StreamDigest) -> None:
        super().__init__()
        self._stream = stream
        self._digest = digest

    def fileno(self) -> int:  # noqa: D102
        return self._stream.fileno()

    def tell(self) -> int:  # noqa: D102
        return self._stream.tell()


class HashingWriter(_HashingStream):
    """A binary stream that feeds a `StreamDigest` exactly the bytes it passes to a file.

    Parameters
    ----------
    stream : `typing.BinaryIO`
        The file, open for writing at its start; `fileno` and `tell` are its own
        (for preallocation). It cannot seek: bytes written over would not be the
        ones hashed.
    digest : `StreamDigest`
        Fed each block after the file accepted it.
    """

    def writable(self) -> bool:  # noqa: D102
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        """Write ``data`` to the file and feed the part it took to the digest."""
        written = self._stream.write(data)
        view = memoryview(data).cast("B")
        taken = view.nbytes if written is None else written
        self._digest.update(view[:taken])
        return taken

    def flush(self) -> None:  # noqa: D102
        if not self._stream.closed:
            self._stream.flush()


class HashingReader(_HashingStream):
    """A binary stream that feeds a `StreamDigest` exactly the bytes read through it.

    Parameters
    ----------
    stream : `typing.BinaryIO`
        The file, open for reading at its start. It cannot seek (skipped bytes
        would not be hashed); the reader calls `StreamDigest.update_from` at the
        end to feed what it did not need (e.g. a FITS file's padding).
    digest : `StreamDigest`
        Fed each block as it is read.
    """

    mode = "rb"

    def readable(self) -> bool:  # noqa: D102
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left by default) and feed them."""
        data = self._stream.read(size)
        self._digest.update(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer`` and feed the bytes read (no copy)."""
        n = self._stream.readinto(buffer)
        if n:
            self._digest.update(memoryview(buffer).cast("B")[:n])
        return n or 0


def remote_files(fs: fsspec.AbstractFileSystem, path: str) -> list[tuple[str, int]]:
    """Return (relative name, size) of every file under a directory on any filesystem, sorted.

    The order and names are the ones `digest` hashes a directory in (one listing call).
    """
    found = fs.find(path, detail=True)
    return sorted(
        (posixpath.relpath(name, path), int(entry["size"])) for name, entry in found.items()
    )


def local_files(path: str) -> list[tuple[str, int]]:
    """Return (relative name, size) of every regular file under a local directory, sorted.

    The order and names are the ones `digest` hashes a directory in.
    """
    found = []
    for dirpath, _, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        for name in filenames:
            full = os.path.join(dirpath, name)
            found.append((name if rel == "." else posixpath.join(rel, name), os.path.getsize(full)))
    return sorted(found)


def _hash_file(hasher: xxhash.xxh3_128, fs: fsspec.AbstractFileSystem, path: str) -> None:
    if is_local(fs):
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                return
            with mmap.mmap(stream.fileno(), 0, flags=_MAP_FLAGS, prot=mmap.PROT_READ) as mapped:
                # 4 MiB at a time: between blocks another thread (a reader of the same
                # file, see FileDatastore.get) gets the interpreter, so both run at once.
                view = memoryview(mapped)
                try:
                    for start in range(0, len(view), _BLOCK):
                        hasher.update(view[start : start + _BLOCK])
                finally:
                    view.release()
        return
    with fs.open(path, "rb") as stream:
        while block := stream.read(_BLOCK):
            hasher.update(block)


def _relative_files(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    if not is_local(fs):
        return [posixpath.relpath(name, path) for name in fs.find(path)]
    names = []
    for dirpath, _, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        names.extend(name if rel == "." else posixpath.join(rel, name) for name in filenames)
    return names


def _tree_size(path: str) -> int:
    """Return the total size of the regular files under a local directory."""
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                total += _tree_size(entry.path)
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total
