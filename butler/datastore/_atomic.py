"""Atomic replacement of files and directories on an fsspec filesystem.

Every artifact is first written under a temporary sibling name
``.<name>.tmp-<32 hex>`` (a hidden file in the same directory, so the final
rename never crosses a filesystem) and then renamed into place:

- a file replaces the old one with `os.replace` (local) or ``fs.mv``;
- a directory cannot replace another atomically, so the old one is first
  renamed aside (to another temporary name), the new one renamed in, and the
  old one deleted. A reader sees either the old or the new artifact, never a
  mix; a crash in between leaves at most a temporary that
  `is_temporary` recognizes and the datastore's cleanup removes.

No state is kept here.
"""

from __future__ import annotations

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
    fs: fsspec.AbstractFileSystem, temporary: str, final: str, *, is_directory: bool
) -> None:
    """Rename ``temporary`` to ``final``, replacing whatever is there.

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
    """
    local = is_local(fs)
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
