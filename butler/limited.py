"""The limited butler: what a worker may use.

A worker reads inputs by their resolved refs and the stored-file records the
client resolved for it, and writes outputs to their predicted locations. It
never opens the registry; the client registers what the worker wrote.

A `LimitedButlerSpec` is a small picklable value sent to workers; each worker
builds its `LimitedButler` from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .dataset_ref import DatasetRef
from .datastore.file_datastore import DatasetReader, FileDatastore
from .datastore.stored_file_info import StoredFileInfo
from .datastore.templates import FileTemplates
from .dimensions import DimensionUniverse
from .storage_class import StorageClassRegistry

__all__ = ["LimitedButler", "LimitedButlerSpec"]


@dataclasses.dataclass(frozen=True)
class LimitedButlerSpec:
    """Everything a worker needs to build a `LimitedButler`.

    Parameters
    ----------
    datastore_root : `str`
        Path or fsspec URL of the datastore root.
    templates : `dict` [`str`, `str`]
        File templates (``default`` and per-dataset-type overrides).
    formatters : `dict` [`str`, `str`]
        Formatter overrides.
    universe_config : `dict`
        The dimension universe definition.
    storage_options : `dict`
        fsspec options of the datastore root's filesystem (never credentials: workers
        take those from their environment).
    checksums : `bool`
        Whether outputs get a recorded checksum (the repository's setting).
    """

    datastore_root: str
    templates: dict[str, str]
    formatters: dict[str, str]
    universe_config: dict[str, Any]
    storage_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    checksums: bool = False


class LimitedButler:
    """Read and write datasets by known refs, without a registry.

    Parameters
    ----------
    spec : `LimitedButlerSpec`
        Where the datastore is and how it is configured.
    """

    def __init__(self, spec: LimitedButlerSpec) -> None:
        self.spec = spec
        self.universe = DimensionUniverse(spec.universe_config, source="<repository>")
        self.storage_classes = StorageClassRegistry()
        templates = None
        if spec.templates:
            overrides = {k: v for k, v in spec.templates.items() if k != "default"}
            if "default" in spec.templates:
                templates = FileTemplates(default=spec.templates["default"], overrides=overrides)
            else:
                templates = FileTemplates(overrides=overrides)
        self.datastore = FileDatastore(
            spec.datastore_root,
            storage_classes=self.storage_classes,
            templates=templates,
            formatter_overrides=spec.formatters,
            storage_options=spec.storage_options,
            checksums=spec.checksums,
        )

    def predict(self, ref: DatasetRef) -> StoredFileInfo:
        """Return where ``ref`` will be written."""
        return self.datastore.predict(ref)

    def get(
        self,
        ref: DatasetRef,
        *,
        info: StoredFileInfo | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read a dataset from its stored record (or its predicted location)."""
        return self.datastore.get(
            info if info is not None else self.predict(ref), parameters=parameters, ref=ref
        )

    def open_reader(self, ref: DatasetRef, *, info: StoredFileInfo | None = None) -> DatasetReader:
        """Open a dataset for many partial reads (`FileDatastore.open_reader`)."""
        return self.datastore.open_reader(info if info is not None else self.predict(ref), ref=ref)

    def put(self, obj: Any, ref: DatasetRef, *, writer: str = "") -> StoredFileInfo:
        """Write a dataset to its predicted location, atomically; return its record.

        With ``writer`` (the ID of the worker's execution), the run's writer marker is
        checked immediately before the artifact is renamed into place: if another execution
        holds the run now, `~butler.ExecutionSupersededError` is raised and nothing is
        renamed (`~butler.datastore.run_writer`).
        """
        if not writer:
            return self.datastore.put(obj, ref)
        info = self.predict(ref)

        def check() -> None:
            self.datastore.check_run_writer(ref.run, writer, f"write {info.path}")

        return self.datastore.put(obj, ref, info=info, before_commit=check)

    def exists(self, ref: DatasetRef, *, info: StoredFileInfo | None = None) -> bool:
        """Whether the artifact of ``ref`` exists."""
        return self.datastore.exists(info if info is not None else self.predict(ref))

    def remove(self, info: StoredFileInfo, *, run: str = "", writer: str = "") -> None:
        """Delete an artifact (used to clean up after a failed quantum).

        With ``writer``, only while that execution still holds ``run`` (else
        `~butler.ExecutionSupersededError`: the file is the new holder's now).
        """
        if writer:
            self.datastore.check_run_writer(run, writer, f"remove {info.path}")
        self.datastore.remove(info)
