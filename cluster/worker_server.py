"""Start local dask worker processes by forking them from a server that has imported dask.

Design
------
A spawned worker process starts a new interpreter and imports distributed, numpy and the
worker's own modules: about 0.6 s of CPU each, which on a 2-core machine was most of a small
``pipetask run -j 2`` (84 quanta: 3.0 s of CPU, 2.6 s of it starting and stopping the
cluster). Local clusters (`cluster.local_cluster`) use multiprocessing's ``forkserver``
method instead: one server process imports those modules once, and every worker is a
``fork`` of that single-threaded server, ready in milliseconds. The workers are still
real processes running the same code; only their start differs. Never ``fork`` of the
client itself: it has threads and open database connections.

`start` launches the server (a no-op when it runs) with what a spawned worker would get:
this process's environment plus dask's ``distributed.nanny.pre-spawn-environ`` (applied to
this process's environment, as the nanny itself does before spawning), its ``sys.path``
and working directory. ``pipetask run`` calls it first thing (before it imports dask: the
environment then comes from distributed's defaults and the local cluster settings), so the
server imports while the client imports dask and the butler and builds the graph, on the
other core.

A forked worker sees the server's environment, ``sys.path`` and working directory as they
were at its launch; `matches` tells whether they still equal what a spawned worker would get
now, and `local_cluster` spawns the workers when they do not (e.g. a test changed an
environment variable since, or a cluster spec asks for another pre-spawn environment).

State: the environment, ``sys.path`` and working directory the server was launched with
(module level: the server is one per process, multiprocessing's own).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_PRELOAD", "matches", "pre_spawn_environ", "start"]

#: Modules every local dask worker imports, imported once by the server.
DEFAULT_PRELOAD = ("distributed", "numpy")

_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"

_LOG = logging.getLogger(__name__)

#: What the server was launched with: environment, sys.path, working directory.
_launched: tuple[dict[str, str], list[str], str] | None = None


def pre_spawn_environ(settings: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Return the environment variables dask's nanny sets before it starts a worker process.

    The same rule as the nanny's: ``distributed.nanny.pre-spawn-environ`` (a value of `None`
    unsets nothing and is left out; a variable already in the environment wins), plus
    ``PYTHONHASHSEED=6640`` when unset or 0, so that all workers hash alike. The setting is
    distributed's default, then dask's configuration if dask is imported, then ``settings``
    (dotted keys, as for ``dask.config.set``).
    """
    config = dict(_distributed_default(_PRE_SPAWN))
    if "dask.config" in sys.modules:
        import dask.config

        config.update(dask.config.get(_PRE_SPAWN, default=None) or {})
    for key, value in (settings or {}).items():
        if key == _PRE_SPAWN:
            config.update(value or {})
        elif key.startswith(_PRE_SPAWN + "."):
            config[key[len(_PRE_SPAWN) + 1 :]] = value
    env = {name: os.environ.get(name, str(v)) for name, v in config.items() if v is not None}
    if env.get("PYTHONHASHSEED") in (None, "0"):
        env["PYTHONHASHSEED"] = "6640"
    return env


def _distributed_default(key: str) -> dict[str, Any]:
    """Return distributed's default for a dotted config ``key``.

    distributed adds its defaults to dask's configuration when it is imported; the server is
    launched before that, so they are read from its ``distributed.yaml`` (2 ms with libyaml).
    """
    if "distributed.config" in sys.modules:
        return {}  # imported: dask's configuration has them
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("distributed")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = os.path.join(list(spec.submodule_search_locations)[0], "distributed.yaml")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path) as stream:
            value: Any = yaml.load(stream, Loader=loader)  # noqa: S506 (a safe loader)
    except OSError:
        return {}
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def _wanted(
    settings: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], list[str], str]:
    return {**os.environ, **pre_spawn_environ(settings)}, list(sys.path), os.getcwd()


def matches(settings: Mapping[str, Any] | None = None) -> bool:
    """Return True if the server runs and forked workers would see what spawned ones would.

    ``settings``: dask settings in force when the workers start, as for `start`.
    """
    return _launched is not None and _launched == _wanted(settings)


def start(
    preload: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
    *,
    with_dask: bool = True,
) -> bool:
    """Launch the fork server now, importing `DEFAULT_PRELOAD` and ``preload``.

    ``settings`` are dask settings that will be in force when the cluster starts (see
    `pre_spawn_environ`), for a launch before dask is imported. ``with_dask=False``: only
    ``preload`` (for workers that run without dask; forked dask workers import it).

    Returns
    -------
    started : `bool`
        True if the server runs with what a spawned worker would get now (launched here or
        earlier with the same); False if it was launched with something else or cannot run
        here (then `local_cluster` spawns its workers).
    """
    import multiprocessing

    global _launched
    if _launched is not None:
        return matches(settings)
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False  # e.g. Windows: workers are spawned
    # as the nanny does before it spawns a worker: the server and its forks inherit these;
    # __DASK_PARENT_PID (the nanny's process, where dask shows worker process titles from)
    # too, so that the environment compares equal once a nanny has set it
    os.environ.update(pre_spawn_environ(settings))
    os.environ["__DASK_PARENT_PID"] = str(os.getpid())
    context: Any = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*(DEFAULT_PRELOAD if with_dask else ()), *preload])
    from multiprocessing import forkserver

    try:
        forkserver.ensure_running()
    except OSError as err:  # e.g. no room for its socket: spawn instead
        _LOG.warning("could not start the dask worker fork server (%s); spawning workers", err)
        return False
    _launched = _wanted(settings)
    # atexit runs handlers last-in first-out, and distributed registers its cluster clean-up
    # when it is imported, after this: clusters close first, then the server is stopped and
    # waited for, so that no process of ours outlives the command and the server's CPU time
    # (and its workers') counts in the command's.
    atexit.register(_stop_server)
    return True


def _stop_server(grace: float = 5.0) -> None:
    """Stop multiprocessing's fork server and wait for it (at exit; idempotent).

    As multiprocessing's own ``_stop`` (close the server's "alive" pipe, which tells it to
    end, and wait), but bounded: a server that has not ended after ``grace`` seconds (e.g.
    one still stuck in a preload import) is killed, so the command never hangs at its exit.
    """
    import signal
    import time
    from multiprocessing import forkserver, util

    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if server is None or pid is None or alive is None:
        return
    try:
        os.close(alive)
        server._forkserver_alive_fd = None
        deadline = time.monotonic() + grace
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() >= deadline:
                _LOG.debug("the dask worker fork server did not stop in %g s: killed", grace)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
        server._forkserver_pid = None
        address = getattr(server, "_forkserver_address", None)
        if address and not util.is_abstract_socket_namespace(address):
            with contextlib.suppress(OSError):
                os.unlink(address)
        server._forkserver_address = None
    except (OSError, ChildProcessError) as err:
        _LOG.debug("stopping the dask worker fork server: %s", err)
