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
xxHash's XXH3-128: about 10 GB/s on one core, so a 64 MiB image costs a few
milliseconds at put and at get, against ~1 s for SHA-256. The digest is
written as ``xxh3_128:<hex>`` so that another algorithm can be told apart
later. Local files are hashed through a memory map of the page cache (the
file was just written, or is about to be read), remote ones streamed.

Both the local and the object-store code paths of `FileDatastore` call these
functions: at put on the artifact just written (the local temporary before
its rename or upload), at get on the artifact about to be read.

No state.
"""

from __future__ import annotations

import mmap
import os
import posixpath
import stat

import fsspec
import xxhash

from .._errors import ArtifactChecksumError, ArtifactIntegrityError, ArtifactSizeError
from ._atomic import is_local

__all__ = ["ALGORITHM", "artifact_size", "check_size", "digest", "verify_digest"]

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
    algorithm = expected.partition(":")[0]
    if algorithm != ALGORITHM:
        raise ArtifactIntegrityError(
            f"{where}: recorded checksum {expected!r} uses {algorithm!r}, which this "
            f"software cannot compute (it knows {ALGORITHM})"
        )
    actual = digest(fs, path)
    if actual != expected:
        raise ArtifactChecksumError(
            f"{where} does not have the bytes that were stored (checksum {actual}, recorded "
            f"{expected}): it was changed or damaged after it was written"
        )


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
