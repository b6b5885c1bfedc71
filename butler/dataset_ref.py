"""Dataset references: a resolved dataset, with its deterministic ID."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from typing import Any

from .data_coordinate import DataCoordinate
from .dataset_type import DatasetType
from .dimensions import DimensionUniverse

__all__ = ["DATASET_ID_NAMESPACE", "DatasetRef", "make_dataset_id"]

#: Namespace of the UUID5 dataset IDs (fixed forever: changing it breaks resumes).
DATASET_ID_NAMESPACE = uuid.UUID("7c3e6a52-4d0e-5b6b-9d5a-2f1f0b8c9e11")
_NAMESPACE_BYTES = DATASET_ID_NAMESPACE.bytes
_UUID_NEW = uuid.UUID.__new__
_SET = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown
# Version (bits 76-79) and variant (bits 62-63) of a name-based SHA-1 UUID.
_VERSION_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_VERSION_5_BITS = (0x5 << 76) | (0x2 << 62)


def make_dataset_id(run: str, dataset_type_name: str, data_id: DataCoordinate) -> uuid.UUID:
    """Return the deterministic ID of a dataset.

    The ID is a UUID5 of the run, the dataset type name and the canonical data
    ID, so putting the same dataset into the same run again, on any machine,
    gives the same ID; re-runs and resumes de-duplicate on it.
    """
    key = f"{run}\x00{dataset_type_name}\x00{data_id.canonical_string()}"
    # Same result as uuid.uuid5(DATASET_ID_NAMESPACE, key), without its overhead:
    # the version and variant bits are set on the integer, and the UUID is
    # built without its constructor's argument checks.
    value = int.from_bytes(hashlib.sha1(_NAMESPACE_BYTES + key.encode()).digest()[:16], "big")
    result = _UUID_NEW(uuid.UUID)
    _SET(result, "int", (value & _VERSION_MASK) | _VERSION_5_BITS)
    _SET(result, "is_safe", _UNKNOWN_SAFETY)
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class DatasetRef:
    """A reference to one dataset in one RUN collection.

    Parameters
    ----------
    dataset_type : `DatasetType`
        Its dataset type.
    data_id : `DataCoordinate`
        Its data ID (for ``dataset_type.dimensions``).
    run : `str`
        The RUN collection that owns it.
    id : `uuid.UUID`
        Its ID; `make` computes the deterministic one.
    """

    dataset_type: DatasetType
    data_id: DataCoordinate
    run: str
    id: uuid.UUID

    @classmethod
    def make(cls, dataset_type: DatasetType, data_id: Any, run: str) -> DatasetRef:
        """Build a ref with the deterministic ID for (run, dataset type, data ID)."""
        data_id = DataCoordinate.standardize(data_id, dataset_type.dimensions)
        return cls(dataset_type, data_id, run, make_dataset_id(run, dataset_type.name, data_id))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DatasetRef):
            return self.id == other.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        name = self.dataset_type.name
        return f"DatasetRef({name}, {self.data_id!r}, run={self.run!r}, id={self.id})"

    def to_dict(self) -> dict[str, Any]:
        """Return a serializable form (JSON-compatible)."""
        return {
            "id": str(self.id),
            "run": self.run,
            "dataset_type": self.dataset_type.to_dict(),
            "data_id": self.data_id.required,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], universe: DimensionUniverse) -> DatasetRef:
        """Rebuild from `to_dict` output."""
        dataset_type = DatasetType.from_dict(data["dataset_type"], universe)
        data_id = DataCoordinate.standardize(data["data_id"], dataset_type.dimensions)
        return cls(dataset_type, data_id, data["run"], uuid.UUID(data["id"]))
