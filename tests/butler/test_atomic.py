"""butler/datastore/_atomic.py: commits that replace, and commits that refuse to."""

from __future__ import annotations

import fsspec
import pytest

from butler.datastore._atomic import commit, discard, temporary_sibling


@pytest.fixture(params=["file", "memory"])
def fs_root(request, tmp_path):
    fs = fsspec.filesystem(request.param)
    root = str(tmp_path) if request.param == "file" else f"/atomic-{tmp_path.name}"
    fs.makedirs(root, exist_ok=True)
    yield fs, root
    if request.param == "memory":
        fs.rm(root, recursive=True)


def _write(fs, path, data, directory):
    if directory:
        fs.makedirs(path, exist_ok=True)
        fs.pipe_file(f"{path}/chunk", data)
    else:
        fs.pipe_file(path, data)


def _read(fs, path, directory):
    return fs.cat_file(f"{path}/chunk" if directory else path)


def _prepare(fs, final, existing, new, directory):
    """Put ``existing`` at ``final`` (unless None) and ``new`` under a temporary name."""
    if existing is not None:
        _write(fs, final, existing, directory)
    temporary = temporary_sibling(final)
    _write(fs, temporary, new, directory)
    return temporary


@pytest.mark.parametrize("directory", [False, True], ids=["file", "directory"])
def test_commit_without_replace_refuses_and_keeps_both(fs_root, directory):
    fs, root = fs_root
    final = f"{root}/a.dat"
    temporary = _prepare(fs, final, b"theirs", b"ours", directory)
    with pytest.raises(FileExistsError):
        commit(fs, temporary, final, is_directory=directory, replace=False)
    assert _read(fs, final, directory) == b"theirs"
    assert _read(fs, temporary, directory) == b"ours"  # left for the caller to discard
    discard(fs, temporary)
    assert not fs.exists(temporary)


@pytest.mark.parametrize("directory", [False, True], ids=["file", "directory"])
def test_commit_without_replace_into_a_free_path(fs_root, directory):
    fs, root = fs_root
    final = f"{root}/b.dat"
    temporary = _prepare(fs, final, None, b"ours", directory)
    commit(fs, temporary, final, is_directory=directory, replace=False)
    assert _read(fs, final, directory) == b"ours"
    assert not fs.exists(temporary)


@pytest.mark.parametrize("directory", [False, True], ids=["file", "directory"])
def test_commit_with_replace_replaces(fs_root, directory):
    fs, root = fs_root
    final = f"{root}/c.dat"
    temporary = _prepare(fs, final, b"old", b"new", directory)
    commit(fs, temporary, final, is_directory=directory)
    assert _read(fs, final, directory) == b"new"
    assert not fs.exists(temporary)
