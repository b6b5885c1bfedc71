"""The execution lease of a run: one client process executes into a run at a time.

Design
------
`RunLeaseKeeper` takes the registry's lease of the output run when an execution starts
(`~butler.registry.SqlRegistry.acquire_run_lease`; another live holder means
`~butler.RunLeaseError`, and the execution does not start), refreshes it from a daemon
thread every ``interval`` seconds (so that a client on another host, whose process ID cannot
be checked, is known to be alive), and gives it back when the execution ends, however it
ends. A client killed with SIGKILL leaves its lease behind; the next client of this host
sees that its process is gone and takes it over (from another host: once the heartbeat is
older than ``stale_after``).

Workers never open the registry, so with a ``datastore`` the keeper also claims the run there
(`~butler.datastore.file_datastore.FileDatastore.claim_run`: a marker naming this execution)
right after taking the lease: a dead client's quanta still running on an external cluster are
then refused before they rename anything into a run a resumed execution holds
(`~butler.datastore.run_writer`). The marker stays after the lease is given back.

State: the token of this execution, the heartbeat thread and its stop event.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from butler._errors import RegistryFullError

__all__ = ["RunLeaseKeeper"]

_LOG = logging.getLogger("pipeline.execution.run")


class RunLeaseKeeper:
    """Holds the lease of one run for one execution (a context manager).

    Parameters
    ----------
    registry : `~butler.registry.SqlRegistry`
        The client's registry.
    run : `str`
        The output run (it must exist).
    token : `str`
        Unique to this execution (its ID).
    interval : `float`
        Seconds between heartbeats.
    stale_after : `float`
        Seconds without a heartbeat after which another host's lease counts as abandoned.
    datastore : `~butler.datastore.file_datastore.FileDatastore`, optional
        Where the run is claimed for this execution once the lease is taken.
    """

    def __init__(
        self,
        registry: Any,
        run: str,
        token: str,
        *,
        interval: float = 30.0,
        stale_after: float = 300.0,
        datastore: Any = None,
    ) -> None:
        self.registry = registry
        self.run = run
        self.token = token
        self.interval = interval
        self.stale_after = stale_after
        self.datastore = datastore
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLeaseKeeper:
        self.registry.acquire_run_lease(self.run, self.token, stale_after=self.stale_after)
        if self.datastore is not None:
            try:
                self.datastore.claim_run(self.run, self.token)
            except BaseException:
                self.registry.release_run_lease(self.run, self.token)
                raise
        self._thread = threading.Thread(
            target=self._beat, name=f"run-lease-{self.run}", daemon=True
        )
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.registry.refresh_run_lease(self.run, self.token):
                    _LOG.warning("the lease of run %r was taken over by another process", self.run)
                    return
            except Exception as err:  # a busy registry: try again at the next beat
                _LOG.info("could not refresh the lease of run %r: %s", self.run, err)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.registry.release_run_lease(self.run, self.token)
        except Exception as err:  # the next client takes over a dead holder's lease
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            # A full registry disk has been reported by the run already (and is the
            # reason it stopped): not a second warning about the same disk.
            level = logging.INFO if isinstance(err, RegistryFullError) else logging.WARNING
            _LOG.log(level, "could not release the lease of run %r: %s", self.run, first)
