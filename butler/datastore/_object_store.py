"""Writing artifacts to object stores (S3, GCS, ``memory://``...), where there are no renames.

An object store has no directories and no rename: s3fs "moves" a key by copying and deleting
it, and a zarr directory is only a common key prefix, so the local recipe (write a temporary
sibling, rename it into place) does not work there. Instead:

- the formatter writes the artifact into a local temporary directory (it only ever sees a
  local filesystem, so a failure half-way leaves nothing remote);
- the files are then uploaded under the final key prefix, data first and metadata last:
  chunks before ``zarr.json`` (deepest first, the root's last), so the file that makes a
  zarr array readable appears only once everything it points at is there;
- a new dataset (``Butler.put``) goes to a key of its own, ``<name>.attempt-<12 hex><ext>``,
  recorded in the registry: two processes putting the same dataset never share an object, and
  the one whose registration fails deletes only the key it wrote, never the winner's.

No state is kept here.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator

import fsspec

from ._atomic import is_local

__all__ = ["attempt_path", "copy_tree", "staged", "upload"]

#: Files that make a (zarr) directory readable: uploaded after the data they describe.
METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})


def attempt_path(path: str, extension: str) -> str:
    """Return ``path`` with a fresh attempt tag before ``extension``.

    Parameters
    ----------
    path : `str`
        Predicted relative path (ends with ``extension``).
    extension : `str`
        The formatter's extension (with its dot; may be empty).
    """
    stem = path[: len(path) - len(extension)] if extension and path.endswith(extension) else path
    return f"{stem}.attempt-{uuid.uuid4().hex[:12]}{extension}"


def _upload_order(names: list[str]) -> list[list[str]]:
    """Split relative file names into upload rounds: data, then metadata deepest first."""
    data = [n for n in names if posixpath.basename(n) not in METADATA_NAMES]
    metadata = [n for n in names if posixpath.basename(n) in METADATA_NAMES]
    rounds = [data] if data else []
    for depth in sorted({n.count("/") for n in metadata}, reverse=True):
        rounds.append([n for n in metadata if n.count("/") == depth])
    return rounds


def upload(local: str, fs: fsspec.AbstractFileSystem, final: str) -> int:
    """Upload a local file or directory to ``final`` on ``fs``, metadata last.

    Returns
    -------
    size : `int`
        Bytes uploaded (the sum over files for a directory).
    """
    if not os.path.isdir(local):
        fs.put_file(local, final)
        return os.path.getsize(local)
    names, size = [], 0
    for dirpath, _, filenames in os.walk(local):
        for name in filenames:
            full = os.path.join(dirpath, name)
            names.append(os.path.relpath(full, local).replace(os.sep, "/"))
            size += os.path.getsize(full)
    for batch in _upload_order(sorted(names)):
        lpaths = [os.path.join(local, *n.split("/")) for n in batch]
        rpaths = [posixpath.join(final, n) for n in batch]
        fs.put(lpaths, rpaths)  # concurrent on async stores (s3fs)
    return size


@contextlib.contextmanager
def staged(write: Callable[[fsspec.AbstractFileSystem, str], None]) -> Iterator[str]:
    """Call ``write(local_fs, local_path)`` into a local temporary directory; yield the path.

    The temporary is removed when the block ends; a failure of ``write`` touches no other
    filesystem.
    """
    local_fs = fsspec.filesystem("file")
    staging = tempfile.mkdtemp(prefix="skyquanta-put-")
    try:
        local = os.path.join(staging, "artifact")
        write(local_fs, local)
        yield local
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_tree(
    src_fs: fsspec.AbstractFileSystem, src: str, fs: fsspec.AbstractFileSystem, final: str
) -> None:
    """Copy a file or directory from any filesystem to ``final`` on an object store.

    Metadata files are copied last, as in `upload`.
    """
    if is_local(src_fs):
        upload(src, fs, final)
        return
    if not src_fs.isdir(src):
        fs.pipe_file(final, src_fs.cat_file(src))
        return
    names = [posixpath.relpath(n, src) for n in src_fs.find(src)]
    for batch in _upload_order(sorted(names)):
        for name in batch:
            fs.pipe_file(posixpath.join(final, name), src_fs.cat_file(posixpath.join(src, name)))
