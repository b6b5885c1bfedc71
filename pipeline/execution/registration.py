"""Registration of what workers wrote, in batches, during an execution.

Design
------
A quantum counts as succeeded only once its outputs are registered. `Registrar` buffers the
outputs of finished quanta and registers them in one transaction per flush (each quantum's
refs in order, metadata last). A busy registry (another process holds the write lock) is
waited for: the transaction is retried with exponential backoff until ``timeout`` seconds
have passed since the flush began (`retry_busy`). What still cannot be registered is
*unregistered*: the quantum's files stay where they are (``--resume`` adopts them), and every
later quantum that reads one of its outputs is not registered either, so the registry never
holds an output whose inputs it does not hold. A registry whose disk is full
(`~butler.RegistryFullError`) is not retried one quantum at a time (each would fail the same
way, noisily): the batch is unregistered and ``Registrar.full`` says why, so the run stops.

State: only inside `Registrar` instances (the buffer, the time of the last flush, the
unregistered nodes and their output IDs).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from butler._errors import RegistryBusyError, RegistryFullError
from butler.dataset_ref import DatasetRef
from butler.datastore.stored_file_info import StoredFileInfo

from ..graph.quantum_graph import Quantum
from .worker import QuantumOutcome, QuantumStatus

__all__ = ["DEFAULT_REGISTRY_TIMEOUT", "Registrar", "retry_busy"]

# Log under the run driver's name: this code is part of a run (`pipeline.execution.run`).
_LOG = logging.getLogger("pipeline.execution.run")

#: Seconds a registration waits for a busy registry before its quanta count as unregistered.
DEFAULT_REGISTRY_TIMEOUT = 60.0

_T = TypeVar("_T")


def retry_busy(
    action: Callable[[], _T], timeout: float, *, what: str, first_delay: float = 0.05
) -> _T:
    """Call ``action`` until it does not raise `RegistryBusyError` or ``timeout`` is spent.

    Parameters
    ----------
    action : callable
        One whole transaction (it is repeated from its start).
    timeout : `float`
        Seconds, from now, after which the last `RegistryBusyError` is raised.
    what : `str`
        What is being written, for the log.
    first_delay : `float`
        First pause (s); it doubles after every busy attempt, up to 2 s.

    Raises
    ------
    RegistryBusyError
        If the registry was still busy when ``timeout`` ran out.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        try:
            return action()
        except RegistryBusyError as err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            _LOG.info("registry busy while registering %s (%s); retrying", what, err)
            time.sleep(min(delay, left))
            delay = min(2 * delay, 2.0)


@dataclasses.dataclass
class _Pending:
    node: int
    done: bool  # the quantum succeeded (or found no work); False: only its failure log
    inputs: frozenset[uuid.UUID]
    outputs: frozenset[uuid.UUID]  # every predicted output, written or not
    refs: list[DatasetRef]
    infos: list[StoredFileInfo]


class Registrar:
    """Registers what workers wrote, in batches; each quantum's outputs all or nothing.

    A flush inserts every buffered quantum's outputs with one bulk insert in one transaction,
    retried while the registry is busy (`retry_busy`). If it fails otherwise (e.g. one quantum
    conflicts with a dataset already registered), it falls back to one transaction per
    quantum, so a bad quantum cannot take the others' registrations with it. A done quantum
    whose outputs could not be registered, or that read an output of such a quantum, is added
    to ``unregistered``.

    Parameters
    ----------
    registry : `~butler.registry.SqlRegistry`
        The client's registry.
    max_quanta : `int`
        Flush when this many quanta are buffered.
    max_delay : `float`
        Flush when the last flush is older than this (s).
    timeout : `float`
        Seconds one flush waits for a busy registry.
    """

    def __init__(
        self,
        registry: Any,
        *,
        max_quanta: int = 500,
        max_delay: float = 0.5,
        timeout: float = DEFAULT_REGISTRY_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.buffer: list[_Pending] = []
        self.max_quanta = max_quanta
        self.max_delay = max_delay
        self.timeout = timeout
        self.last = time.monotonic()
        #: Done quanta whose outputs are not registered, and why (node -> message).
        self.unregistered: dict[int, str] = {}
        #: Why the registry's disk is full, once a registration failed for that ("": it is not).
        self.full = ""
        self._tainted: set[uuid.UUID] = set()  # outputs of unregistered quanta

    def add(self, quantum: Quantum, outcome: QuantumOutcome) -> None:
        """Buffer what a finished quantum wrote; flush when the buffer is full or old."""
        written = {info.dataset_id: info for info in outcome.written}
        refs = [ref for ref in quantum.all_outputs() if ref.id in written]
        self.buffer.append(
            _Pending(
                quantum.node_id,
                outcome.status in QuantumStatus.DONE,
                frozenset(ref.id for ref in quantum.all_inputs()),
                frozenset(ref.id for ref in quantum.all_outputs()),
                refs,
                [written[r.id] for r in refs],
            )
        )
        if len(self.buffer) >= self.max_quanta or time.monotonic() - self.last > self.max_delay:
            self.flush()

    def _insert(self, entries: list[_Pending]) -> None:
        refs = [ref for entry in entries for ref in entry.refs]
        infos = [info for entry in entries for info in entry.infos]

        def insert() -> None:
            with self.registry.transaction():
                self.registry.insert_datasets(refs, infos, on_conflict="ignore")

        if refs:
            retry_busy(insert, self.timeout, what=f"the outputs of {len(entries)} quanta")

    def _give_up(self, entry: _Pending, why: str) -> None:
        if entry.done:
            self.unregistered[entry.node] = why.splitlines()[0] if why else why
            self._tainted |= entry.outputs

    def flush(self) -> None:
        """Register every buffered quantum's outputs (see the class notes).

        The buffer is emptied only at the end: if a signal stops a flush, the next flush
        registers the same quanta again (registration ignores what is already there).
        """
        entries = list(self.buffer)
        ready: list[_Pending] = []
        for entry in entries:  # in completion order: producers before their consumers
            if entry.inputs & self._tainted:
                self._give_up(entry, "an input was not registered")
            else:
                ready.append(entry)
        try:
            self._insert(ready)
        except RegistryBusyError as err:
            _LOG.error(
                "registry still busy after %.0f s: the outputs of %d quanta are not registered "
                "(%s)",
                self.timeout,
                len(ready),
                err,
            )
            for entry in ready:
                self._give_up(entry, f"registry busy: {err}")
        except RegistryFullError as err:  # one by one would fail the same way, noisily
            self.full = str(err)
            for entry in ready:
                self._give_up(entry, f"{type(err).__name__}: {err}")
        except Exception as err:
            _LOG.warning("bulk registration failed (%s); registering quanta one by one", err)
            busy = ""
            for entry in ready:
                if busy:  # the registry stayed busy for a whole timeout: do not wait again
                    self._give_up(entry, busy)
                    continue
                if entry.inputs & self._tainted:
                    self._give_up(entry, "an input was not registered")
                    continue
                try:
                    self._insert([entry])
                except RegistryBusyError as one_err:
                    busy = f"registry busy: {one_err}"
                    self._give_up(entry, busy)
                except RegistryFullError as one_err:
                    self.full = str(one_err)
                    busy = f"{type(one_err).__name__}: {one_err}"  # the rest: the same
                    self._give_up(entry, busy)
                except Exception as one_err:
                    _LOG.error(
                        "could not register the outputs of the quantum of %s: %s",
                        entry.refs[-1] if entry.refs else entry.node,
                        one_err,
                    )
                    self._give_up(entry, f"{type(one_err).__name__}: {one_err}")
        self.buffer = []
        self.last = time.monotonic()
