"""Which execution may write into a run: a marker in the datastore that workers can read.

Design
------
The registry's run lease says which client process executes into a run, but workers never
open the registry. A client whose lease-holder died is taken over by the next client
(``pipetask run --resume``), while the dead client's quanta may still be running on an external
cluster: finishing later, they would rename their outputs over the files the new execution
registered (same deterministic paths, other bytes), and the registry would no longer describe
the files. So the client that takes the lease also writes the ID of its execution to a small
marker in the datastore, ``<root>/.run-writers/<run, %-quoted>`` (`claim`, replaced
atomically: a rename on a local disk, one PUT on an object store), and a worker checks it
(`check`) immediately before every final rename of an output and before deleting one after a
failure. A marker naming another execution, or no marker (the run was removed), refuses the
write with `~butler.ExecutionSupersededError`: the temporary is discarded, nothing is renamed,
added or deleted under the run's paths.

The marker stays when an execution ends: it names the run's last execution, whose own quanta
(still running after an interrupted client) may go on writing unregistered files for the next
resume to adopt or replace, as before; a later execution's `claim` ends that.

Remaining window: a check and the rename after it are two system calls. A worker that passed
the check and is then paused (SIGSTOP, swapped out) for longer than the new client needs to
start, claim the run and re-run the quantum can still rename once; on an object store the
window is the upload that follows the check (several requests).

Cost: each check reads the marker: on a local or shared disk one ``open``/``read``/``close``
(~10-20 us on the project's loaded 2-core machine; three writes per trivial quantum), on an
object store one GET. It is not cached by ``stat``: on NFS a ``stat`` may answer from the
client's attribute cache for up to a minute, an ``open`` revalidates (close-to-open
consistency); a cache of fixed validity would widen the window by that validity.

No state is kept here.
"""

from __future__ import annotations

import os
import posixpath
import urllib.parse
import uuid

import fsspec

from .._errors import ExecutionSupersededError
from ._atomic import is_local

__all__ = ["MARKER_DIRECTORY", "check", "claim", "current", "forget", "marker_path"]

#: The top-level directory of the datastore root that holds the markers (not the butler's).
MARKER_DIRECTORY = ".run-writers"


def marker_path(root: str, run: str) -> str:
    """Return the path of the marker of ``run`` under the datastore's ``root``."""
    return posixpath.join(root, MARKER_DIRECTORY, urllib.parse.quote(run, safe=""))


def claim(fs: fsspec.AbstractFileSystem, root: str, run: str, execution_id: str) -> None:
    """Make ``execution_id`` the only execution whose workers may write into ``run``.

    Call it only while holding the run's lease, before anything of the run is written.
    """
    path = marker_path(root, run)
    data = execution_id.encode()
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    os.makedirs(posixpath.dirname(path), exist_ok=True)
    temporary = f"{path}.{uuid.uuid4().hex}.new"
    try:
        with open(temporary, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def current(fs: fsspec.AbstractFileSystem, root: str, run: str) -> str | None:
    """Return the execution that may write into ``run``, or `None` if no marker exists."""
    path = marker_path(root, run)
    try:
        if is_local(fs):
            fd = os.open(path, os.O_RDONLY)  # no Python file object: a third of the cost
            try:
                return os.read(fd, 4096).decode()
            finally:
                os.close(fd)
        return bytes(fs.cat_file(path)).decode()
    except FileNotFoundError:
        return None


def check(
    fs: fsspec.AbstractFileSystem, root: str, run: str, execution_id: str, what: str
) -> None:
    """Raise unless ``execution_id`` may still write into ``run``.

    Parameters
    ----------
    fs, root
        The datastore's filesystem and root.
    run : `str`
        The run written into.
    execution_id : `str`
        The execution of the caller.
    what : `str`
        What is about to happen, for the message (``"write <path>"``).

    Raises
    ------
    ExecutionSupersededError
        If the marker names another execution, or is missing.
    """
    holder = current(fs, root, run)
    if holder == execution_id:
        return
    if holder is None:
        raise ExecutionSupersededError(
            f"execution {execution_id} may no longer write into run {run!r}: its writer marker "
            f"{marker_path(root, run)!r} is gone (the run was removed?); not done: {what}"
        )
    raise ExecutionSupersededError(
        f"execution {execution_id} of run {run!r} was superseded by execution {holder} (a "
        f"resumed or new execution holds the run now); not done: {what}"
    )


def forget(fs: fsspec.AbstractFileSystem, root: str, run: str) -> None:
    """Remove the marker of ``run`` (the run is removed); a missing one is fine."""
    path = marker_path(root, run)
    try:
        if is_local(fs):
            os.unlink(path)
        else:
            fs.rm_file(path)
    except FileNotFoundError:
        pass
