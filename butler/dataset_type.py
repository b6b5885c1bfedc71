"""Dataset types: a name, the dimensions of its data IDs, and a storage class."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from ._errors import DatasetTypeError, InvalidNameError
from .dimensions import DimensionGroup, DimensionUniverse

__all__ = ["DatasetType", "validate_name"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")


def validate_name(name: str, *, what: str, collection: bool = False) -> str:
    """Check that a dataset type, run or collection name is safe.

    Names become path components in the datastore, so they must not escape
    its root: no ``..``, no absolute paths, no odd characters. Collection
    and run names may contain ``/`` between safe components
    (``u/someone/run1``).

    Parameters
    ----------
    name : `str`
        The name to check.
    what : `str`
        What the name is, for the message ("run", "dataset type", ...).
    collection : `bool`
        Allow the collection-name syntax.

    Returns
    -------
    name : `str`
        The name, unchanged.

    Raises
    ------
    InvalidNameError
        If the name is not allowed; the message says why.
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{what} name must be a non-empty string, got {name!r}")
    pattern = _COLLECTION_RE if collection else _NAME_RE
    parts = name.split("/")
    if ".." in parts or name.startswith("/") or not pattern.match(name):
        allowed = (
            "letters, digits, '_', '.', '-' in '/'-separated parts, no '..'"
            if collection
            else "letters, digits and '_', not starting with a digit"
        )
        raise InvalidNameError(f"{what} name {name!r} is not allowed (use {allowed})")
    return name


@dataclasses.dataclass(frozen=True, slots=True)
class DatasetType:
    """A named kind of dataset.

    Parameters
    ----------
    name : `str`
        Dataset type name (e.g. ``postISRCCD``).
    dimensions : `DimensionGroup`
        Dimensions of its data IDs.
    storage_class : `str`
        Name of the storage class of its in-memory objects.
    """

    name: str
    dimensions: DimensionGroup
    storage_class: str

    def __post_init__(self) -> None:
        validate_name(self.name, what="dataset type")
        if not isinstance(self.storage_class, str) or not self.storage_class:
            raise DatasetTypeError(
                f"dataset type {self.name!r}: storage class must be a name, "
                f"got {self.storage_class!r}"
            )

    @classmethod
    def make(
        cls, name: str, dimensions: Iterable[str], storage_class: str, universe: DimensionUniverse
    ) -> DatasetType:
        """Build a dataset type from dimension names."""
        return cls(name, universe.group(dimensions), storage_class)

    def to_dict(self) -> dict[str, Any]:
        """Return a serializable form."""
        return {
            "name": self.name,
            "dimensions": list(self.dimensions.required),
            "storage_class": self.storage_class,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], universe: DimensionUniverse) -> DatasetType:
        """Rebuild from `to_dict` output."""
        return cls.make(data["name"], data["dimensions"], data["storage_class"], universe)

    def describe(self) -> str:
        """One-line description used in messages."""
        return f"{self.name}({', '.join(self.dimensions.required)}) [{self.storage_class}]"
