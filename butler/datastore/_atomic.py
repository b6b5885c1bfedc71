"""Atomic replacement of files and directories on an fsspec filesystem.

Every artifact is first written under a temporary sibling name
``.<name>.tmp-<32 hex>`` (a hidden file in the same directory, so the final
rename never crosses a filesystem) and then renamed into place:

- a file replaces the old one with `os.replace` (local) or ``fs.mv``;
- a directory cannot replace another atomically, so the old one is first
  renamed aside (to another temporary name), the new one renamed in, and the
  old one deleted. A reader sees either the old or the new artifact, never a
  mix; a crash in between leaves at most a temporary that
  `is_temporary` recognizes and the datastore's cleanup removes;
- with ``replace=False`` (a new dataset's file, `Butler.put`) nothing is
  replaced: a file is hard-linked into place, which fails atomically if
  another writer got there first, so two processes putting the same dataset
  cannot overwrite each other's file.

No state is kept here.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem

__all__ = ["commit", "discard", "is_local", "is_temporary", "temporary_sibling"]

_TEMP_RE = re.compile(r"^\..+\.tmp-[0-9a-f]{32}$")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local filesystem (real renames, links, permissions)."""
    return isinstance(fs, LocalFileSystem)


def temporary_sibling(path: str) -> str:
    """Return a fresh temporary name next to ``path``."""
    parent, name = posixpath.split(path)
    return posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")


def is_temporary(name: str) -> bool:
    """Whether a base name is one made by `temporary_sibling`."""
    return bool(_TEMP_RE.match(name))


def discard(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove ``path`` (file or directory) if it exists; never raise for a missing one."""
    try:
        if is_local(fs):
            if os.path.isdir(path) and not os.path.islink(path):
                fs.rm(path, recursive=True)
            elif os.path.lexists(path):
                os.unlink(path)
        elif fs.exists(path):
            fs.rm(path, recursive=fs.isdir(path))
    except FileNotFoundError:
        pass


def commit(
    fs: fsspec.AbstractFileSystem,
    temporary: str,
    final: str,
    *,
    is_directory: bool,
    replace: bool = True,
) -> None:
    """Rename ``temporary`` to ``final``, replacing whatever is there unless told not to.

    Parameters
    ----------
    fs : `fsspec.AbstractFileSystem`
        The filesystem of both paths.
    temporary : `str`
        The fully written temporary artifact.
    final : `str`
        Where it goes.
    is_directory : `bool`
        Whether the artifact is a directory.
    replace : `bool`
        Whether an artifact already at ``final`` is replaced. If not, a local file
        is hard-linked into place, which fails if another process got there first;
        a directory (or a remote file) is checked for and then renamed.

    Raises
    ------
    FileExistsError
        If ``replace`` is false and something is at ``final``; ``temporary`` is left
        for the caller to discard.
    """
    local = is_local(fs)
    if not replace:
        _commit_new(fs, temporary, final, is_directory=is_directory)
        return
    exists = os.path.lexists(final) if local else fs.exists(final)
    if not is_directory or not exists:
        if local:
            os.replace(temporary, final)
        else:
            if exists:
                fs.rm(final, recursive=fs.isdir(final))
            fs.mv(temporary, final, recursive=is_directory)
        return
    aside = temporary_sibling(final)
    if local:
        os.replace(final, aside)
        os.replace(temporary, final)
    else:
        fs.mv(final, aside, recursive=True)
        fs.mv(temporary, final, recursive=True)
    discard(fs, aside)


def _commit_new(
    fs: fsspec.AbstractFileSystem, temporary: str, final: str, *, is_directory: bool
) -> None:
    """Move ``temporary`` to ``final`` only if nothing is there (see `commit`)."""
    if is_local(fs) and not is_directory:
        try:
            os.link(temporary, final)  # atomic: fails if ``final`` exists
        except FileExistsError:
            raise
        except OSError:  # no hard links on this filesystem: check, then rename
            if os.path.lexists(final):
                raise FileExistsError(errno.EEXIST, "artifact exists", final) from None
            os.replace(temporary, final)
            return
        os.unlink(temporary)
        return
    if os.path.lexists(final) if is_local(fs) else fs.exists(final):
        raise FileExistsError(errno.EEXIST, "artifact exists", final)
    if is_local(fs):
        os.rename(temporary, final)  # fails on a non-empty directory that appeared meanwhile
    else:
        fs.mv(temporary, final, recursive=is_directory)
