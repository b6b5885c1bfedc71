"""Registration of what workers wrote, in batches, during an execution.

State: only inside `Registrar` instances (the buffer and the time of the last flush).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from butler.dataset_ref import DatasetRef
from butler.datastore.stored_file_info import StoredFileInfo

from ..graph.quantum_graph import Quantum
from .worker import QuantumOutcome

__all__ = ["Registrar"]

# Log under the run driver's name: this code is part of a run (`pipeline.execution.run`).
_LOG = logging.getLogger("pipeline.execution.run")


class Registrar:
    """Registers what workers wrote, in batches; each quantum's outputs all or nothing.

    A flush inserts every buffered quantum's outputs with one bulk insert in one transaction
    (each quantum's refs in order, metadata last). If that fails (e.g. one quantum conflicts
    with a dataset already registered), it falls back to one transaction per quantum, so a
    bad quantum cannot take the others' registrations with it; the error is logged.
    State: the buffer and the time of the last flush.
    """

    def __init__(self, registry: Any, *, max_quanta: int = 500, max_delay: float = 0.5) -> None:
        self.registry = registry
        self.buffer: list[tuple[list[DatasetRef], list[StoredFileInfo]]] = []
        self.max_quanta = max_quanta
        self.max_delay = max_delay
        self.last = time.monotonic()

    def add(self, quantum: Quantum, outcome: QuantumOutcome) -> None:
        """Buffer what a finished quantum wrote; flush when the buffer is full or old."""
        written = {info.dataset_id: info for info in outcome.written}
        refs = [ref for ref in quantum.all_outputs() if ref.id in written]
        if refs:
            self.buffer.append((refs, [written[r.id] for r in refs]))
        if len(self.buffer) >= self.max_quanta or time.monotonic() - self.last > self.max_delay:
            self.flush()

    def flush(self) -> None:
        """Register every buffered quantum's outputs."""
        if self.buffer:
            refs = [ref for quantum_refs, _ in self.buffer for ref in quantum_refs]
            infos = [info for _, quantum_infos in self.buffer for info in quantum_infos]
            try:
                with self.registry.transaction():
                    self.registry.insert_datasets(refs, infos, on_conflict="ignore")
            except Exception as err:
                _LOG.warning("bulk registration failed (%s); registering quanta one by one", err)
                for quantum_refs, quantum_infos in self.buffer:
                    try:
                        with self.registry.transaction():
                            self.registry.insert_datasets(
                                quantum_refs, quantum_infos, on_conflict="ignore"
                            )
                    except Exception as one_err:
                        _LOG.error(
                            "could not register the outputs of the quantum of %s: %s",
                            quantum_refs[-1],
                            one_err,
                        )
            self.buffer.clear()
        self.last = time.monotonic()
