"""The butler view a `PipelineTask` gets for one quantum on a worker (``butlerQC``).

Design
------
`WorkerQuantumContext` implements the `~pipeline.pipeline_task.QuantumContext` protocol over a
`~butler.limited.LimitedButler`. Reads go through the stored-file records the client resolved
(``infos``: dataset ID -> `StoredFileInfo`); a ref without a record is read from its predicted
location. Writes go to predicted locations and are recorded in ``written`` (dataset ID ->
`StoredFileInfo`), which the executor returns to the client for registration and uses to clean
up after a failure. Only refs that belong to the quantum may be read or written. With a
``writer`` (the execution's ID), every write and every cleanup deletion happens only while that
execution still holds the run (`~butler.datastore.run_writer`): once another execution took the
run over, `~butler.ExecutionSupersededError` is raised and nothing is renamed or deleted.

Mutable state: ``written`` (filled by `put`) and ``infos`` (extended by the executor with the
outputs of earlier quanta of the same cluster).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from butler._errors import ExecutionSupersededError
from butler.dataset_ref import DatasetRef
from butler.datastore.stored_file_info import StoredFileInfo
from butler.limited import LimitedButler

from ..connections import InputQuantizedConnection, OutputQuantizedConnection
from ..struct import Struct

__all__ = ["WorkerQuantumContext"]

_LOG = logging.getLogger(__name__)


class WorkerQuantumContext:
    """Read the inputs and write the outputs of one quantum through a limited butler.

    Parameters
    ----------
    butler : `LimitedButler`
        The worker's limited butler.
    data_id : `~butler.dimensions.DataCoordinate`
        The quantum's data ID.
    inputs : iterable of `DatasetRef`
        Refs the quantum may read.
    outputs : iterable of `DatasetRef`
        Refs the quantum may write.
    infos : mapping of `uuid.UUID` to `StoredFileInfo`
        Stored-file records of inputs (missing ones are read from their predicted location).
    writer : `str`
        The ID of the execution writing (its run's writer marker is checked before every
        rename and deletion); "" checks nothing.
    """

    def __init__(
        self,
        butler: LimitedButler,
        data_id: Any,
        inputs: Iterable[DatasetRef],
        outputs: Iterable[DatasetRef],
        infos: Mapping[uuid.UUID, StoredFileInfo],
        writer: str = "",
    ) -> None:
        self.butler = butler
        self._data_id = data_id
        self._inputs = {ref.id for ref in inputs}
        self._outputs = {ref.id: ref for ref in outputs}
        self._writer = writer
        self.infos = infos
        self.written: dict[uuid.UUID, StoredFileInfo] = {}
        self._stopped = ""  # why writing is over (`stop`), "" while the quantum may write

    @property
    def dataId(self) -> Any:
        """Data ID of the quantum."""
        return self._data_id

    data_id = dataId

    # -- reads ---------------------------------------------------------------------------------

    def _get_one(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> Any:
        if ref.id not in self._inputs:
            raise KeyError(f"{ref} is not an input of the quantum with data ID {self._data_id}")
        return self.butler.get(ref, info=self.infos.get(ref.id), parameters=parameters)

    def get(self, dataset: Any, *, parameters: Mapping[str, Any] | None = None) -> Any:
        """Read datasets (see `~pipeline.pipeline_task.QuantumContext.get`).

        ``parameters`` (e.g. ``bbox``) are read parameters of the storage class, passed to the
        formatter of every dataset read: a deferred input read in parts.

        Raises
        ------
        KeyError
            If a ref is not an input of this quantum.
        """
        if isinstance(dataset, InputQuantizedConnection):
            return {name: self.get(refs, parameters=parameters) for name, refs in dataset}
        if isinstance(dataset, DatasetRef):
            return self._get_one(dataset, parameters)
        if isinstance(dataset, (list, tuple)):
            return [self._get_one(ref, parameters) for ref in dataset]
        raise TypeError(f"cannot get {dataset!r}: not a DatasetRef, list or quantized connection")

    def open_reader(self, ref: DatasetRef) -> Any:
        """Open an input for many partial reads: ``reader.read(parameters)``, then ``close``.

        The formatter parses the artifact's table and metadata once, not on every read
        (`~butler.datastore.file_datastore.FileDatastore.open_reader`).

        Raises
        ------
        KeyError
            If ``ref`` is not an input of this quantum.
        """
        if ref.id not in self._inputs:
            raise KeyError(f"{ref} is not an input of the quantum with data ID {self._data_id}")
        return self.butler.open_reader(ref, info=self.infos.get(ref.id))

    # -- writes --------------------------------------------------------------------------------

    def _put_one(self, obj: Any, ref: DatasetRef) -> None:
        if ref.id not in self._outputs:
            raise KeyError(f"{ref} is not an output of the quantum with data ID {self._data_id}")
        if self._stopped:
            raise RuntimeError(f"not writing {ref}: {self._stopped}")
        info = self.butler.put(obj, ref, writer=self._writer)
        if self._stopped:  # stopped while this was being written
            self._remove(ref, info)
            raise RuntimeError(f"not keeping {ref}: {self._stopped}")
        self.written[ref.id] = info

    def put(self, values: Any, dataset: Any) -> None:
        """Write datasets (see `~pipeline.pipeline_task.QuantumContext.put`).

        Raises
        ------
        AttributeError
            If the `Struct` lacks an attribute for an output connection.
        KeyError
            If a ref is not an output of this quantum.
        """
        if isinstance(dataset, OutputQuantizedConnection):
            if not isinstance(values, Struct):
                raise TypeError(f"put to {dataset!r} needs a Struct, not {type(values).__name__}")
            for name, refs in dataset:
                if not hasattr(values, name):
                    raise AttributeError(
                        f"the Struct returned for data ID {self._data_id} has no attribute "
                        f"{name!r} for output connection {name!r}"
                    )
                self.put(getattr(values, name), refs)
            return
        if isinstance(dataset, DatasetRef):
            self._put_one(values, dataset)
            return
        if isinstance(dataset, (list, tuple)):
            if len(values) != len(dataset):
                raise ValueError(
                    f"{len(values)} objects for {len(dataset)} refs (data ID {self._data_id})"
                )
            for obj, ref in zip(values, dataset, strict=True):
                self._put_one(obj, ref)
            return
        raise TypeError(
            f"cannot put to {dataset!r}: not a DatasetRef, list or quantized connection"
        )

    def _remove(self, ref: DatasetRef, info: StoredFileInfo) -> None:
        self.butler.remove(info, run=ref.run, writer=self._writer)

    def remove_written(self) -> None:
        """Delete every artifact written so far (cleanup after a failure).

        Nothing is deleted once another execution holds the run: what is at those paths is
        the new holder's (a warning says so).
        """
        try:
            for dataset_id, info in list(self.written.items()):
                self._remove(self._outputs[dataset_id], info)
        except ExecutionSupersededError as err:
            _LOG.warning("%s", err)
        self.written.clear()

    def stop(self, reason: str) -> None:
        """Refuse every later write, and delete what was written (a quantum given up on).

        Called from another thread than the quantum's (``--timeout``): a write under way
        when this is called is deleted when it ends.
        """
        self._stopped = reason
        self.remove_written()
