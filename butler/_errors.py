"""Exceptions raised by the butler.

Every error derives from `ButlerError` and, where one fits, from the builtin
exception that says what happened, so callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "ArtifactExistsError",
    "ArtifactChecksumError",
    "ArtifactIntegrityError",
    "ArtifactSizeError",
    "ButlerError",
    "CollectionError",
    "CollectionTypeError",
    "ConflictingDefinitionError",
    "DataIdError",
    "DataIdValueError",
    "DatasetNotFoundError",
    "DatasetTypeError",
    "DimensionConfigError",
    "DuplicateDatasetError",
    "ExecutionSupersededError",
    "FormatterError",
    "InvalidNameError",
    "MissingCollectionError",
    "MissingDatasetTypeError",
    "RegistryBusyError",
    "RegistryFullError",
    "RegistryUnreadableError",
    "RepositoryNotFoundError",
    "RepositoryVersionError",
    "RunLeaseError",
    "StorageClassError",
]


class ButlerError(Exception):
    """Root of all butler errors."""


class RepositoryNotFoundError(ButlerError, FileNotFoundError):
    """No butler repository exists at the given location."""


class RepositoryVersionError(ButlerError, RuntimeError):
    """The repository was written by an incompatible (usually newer) version."""


class DimensionConfigError(ButlerError, ValueError):
    """The dimension universe definition is malformed."""


class DataIdError(ButlerError, KeyError):
    """A data ID is missing a required key or has an unknown one."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class DataIdValueError(ButlerError, ValueError):
    """A data ID value has the wrong type or refers to no known record."""


class InvalidNameError(ButlerError, ValueError):
    """A run, collection or dataset type name is not allowed (e.g. would escape the datastore)."""


class DatasetTypeError(ButlerError, ValueError):
    """A dataset type definition is invalid."""


class ConflictingDefinitionError(ButlerError, ValueError):
    """Something was registered again with a different definition."""


class MissingDatasetTypeError(ButlerError, LookupError):
    """A dataset type name is not registered."""


class CollectionError(ButlerError, ValueError):
    """A collection operation is invalid."""


class CollectionTypeError(CollectionError, TypeError):
    """A collection has the wrong type for the operation (e.g. putting into a CHAINED one)."""


class MissingCollectionError(ButlerError, LookupError):
    """A collection name is not registered."""


class DatasetNotFoundError(ButlerError, LookupError):
    """No dataset matches the given dataset type and data ID in the searched collections."""


class DuplicateDatasetError(ButlerError, ValueError):
    """A RUN already holds a dataset of that type and data ID."""


class StorageClassError(ButlerError, LookupError):
    """A storage class is unknown or cannot handle the given object."""


class FormatterError(ButlerError, OSError):
    """A formatter failed to read or write a file."""


class ArtifactExistsError(DuplicateDatasetError, FileExistsError):
    """An artifact is already where a new dataset's file must go, and may not be replaced."""


class ArtifactIntegrityError(ButlerError, OSError):
    """An artifact's size or checksum is not the one recorded when it was stored."""


class ArtifactSizeError(ArtifactIntegrityError):
    """An artifact's size is not the recorded one (truncated, extended, a file of it lost)."""


class ArtifactChecksumError(ArtifactIntegrityError):
    """An artifact's bytes do not have the recorded checksum."""


class ArtifactNotFoundError(DatasetNotFoundError, FileNotFoundError):
    """A dataset's file (or directory) is missing from the datastore."""


class ReadOnlyRegistryError(ButlerError, PermissionError):
    """A write was attempted through a registry opened read-only."""


class RegistryUnreadableError(ButlerError, OSError):
    """The registry database cannot be opened: not a database, corrupt, or unreachable."""


class RegistryConnectionError(ButlerError, ConnectionError):
    """The registry database cannot be reached or refuses the login (or its driver is missing).

    The message is one line naming the database URL (never its password) and the cause.
    """


class RegistryBusyError(ButlerError, TimeoutError):
    """The registry's database stayed locked by another process (or run) for too long."""


class RegistryFullError(ButlerError, OSError):
    """The registry's database could not write: its disk is full (nothing of the write was kept)."""


class RunLeaseError(ButlerError, RuntimeError):
    """Another process is executing into the same run (it holds the run's lease)."""


class ExecutionSupersededError(ButlerError, RuntimeError):
    """A worker's execution no longer holds its run: another one took it over (nothing written)."""
