"""Dataset types: a name, the dimensions of its data IDs, and a storage class."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from ._errors import DatasetTypeError, InvalidNameError
from .dimensions import DimensionGroup, DimensionUniverse

__all__ = ["MAX_NAME_LENGTH", "DatasetType", "validate_name"]

#: Longest dataset type, collection (run) or instrument name, in characters. Names become
#: file and folder names (at most 255 bytes each on common filesystems) with a data ID and a
#: 32-character dataset ID beside them; 128 leaves room for both.
MAX_NAME_LENGTH = 128

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_INSTRUMENT_RE = re.compile(_PART)
_COLLECTION_RE = re.compile(rf"{_PART}(/{_PART})*")


def validate_name(
    name: str, *, what: str, collection: bool = False, instrument: bool = False
) -> str:
    """Check that a dataset type, run, collection or instrument name is safe: the one rule.

    Names become path components in the datastore, so they must not escape
    its root: no ``..``, no absolute paths, no odd characters (no whitespace,
    no trailing newline), at most `MAX_NAME_LENGTH` characters. Dataset type
    names are identifiers; collection and run names may contain ``/``
    between components of letters, digits, ``_``, ``.`` and ``-``
    (``u/someone/run1``); an instrument name is one such component. The
    registry checks every name when it is first registered, before anything
    is written.

    Parameters
    ----------
    name : `str`
        The name to check.
    what : `str`
        What the name is, for the message ("run", "dataset type", ...).
    collection : `bool`
        Allow the collection-name syntax.
    instrument : `bool`
        Use the instrument-name syntax.

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
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"{what} name {name[:40]!r}... has {len(name)} characters; at most "
            f"{MAX_NAME_LENGTH} are allowed"
        )
    pattern = _COLLECTION_RE if collection else _INSTRUMENT_RE if instrument else _NAME_RE
    parts = name.split("/")
    if ".." in parts or "." in parts or not pattern.fullmatch(name):
        allowed = (
            "letters, digits, '_', '.', '-' in '/'-separated parts, no '..'"
            if collection
            else "letters, digits, '_', '.', '-', no '/'"
            if instrument
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
