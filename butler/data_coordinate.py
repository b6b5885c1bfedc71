"""Data IDs: `DataCoordinate`, a validated, normalized, hashable data ID.

A data ID has a value for every required dimension of a `~butler.dimensions.DimensionGroup`,
each of the dimension key's type; keys naming implied dimensions (``band`` for a visit) are
kept aside in `DataCoordinate.implied`; any other key is an error that names it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import DataIdError, DataIdValueError

if TYPE_CHECKING:
    from .dimensions import Dimension, DimensionGroup, DimensionUniverse

__all__ = ["DataCoordinate"]


class DataCoordinate(Mapping[str, Any]):
    """A validated, normalized data ID.

    Use `DataCoordinate.standardize` to build one; it checks that every
    required dimension has a value of the right type and that no unknown key
    is given.

    Parameters
    ----------
    group : `DimensionGroup`
        The dimensions the data ID is for.
    values : `tuple`
        One value per required dimension, in ``group.required`` order.
    implied : `dict`, optional
        Values of implied dimensions, when known (not part of identity).
    """

    __slots__ = ("group", "values_tuple", "implied", "_hash", "_string")

    def __init__(
        self,
        group: DimensionGroup,
        values: tuple[Any, ...],
        implied: Mapping[str, Any] | None = None,
    ) -> None:
        self.group = group
        self.values_tuple = values
        self.implied = dict(implied or {})
        self._hash = hash((group.required, values))
        self._string: str | None = None  # canonical_string, made on first use

    @classmethod
    def standardize(
        cls,
        data_id: Mapping[str, Any] | None = None,
        group: DimensionGroup | None = None,
        *,
        universe: DimensionUniverse | None = None,
        **kwargs: Any,
    ) -> DataCoordinate:
        """Validate and normalize a data ID.

        Parameters
        ----------
        data_id : `~collections.abc.Mapping`, optional
            Key-value pairs; ``kwargs`` are merged in.
        group : `DimensionGroup`, optional
            The dimensions expected. If `None`, the group is that of the keys
            given (requires ``universe``).
        universe : `DimensionUniverse`, optional
            Needed when ``group`` is `None`.

        Returns
        -------
        data_id : `DataCoordinate`

        Raises
        ------
        DataIdError
            A required key is missing or an unknown key is given.
        DataIdValueError
            A value has the wrong type.
        """
        if type(data_id) is dict and group is not None and not kwargs:
            # Fast path: exactly the required keys, each value already of its
            # key's type (what `_coerce` would return unchanged).
            names = group.required
            if len(data_id) == len(names):
                try:
                    values = tuple([data_id[n] for n in names])
                except KeyError:
                    pass
                else:
                    if tuple(map(type, values)) == group._key_types:
                        return cls(group, values)
        if isinstance(data_id, DataCoordinate) and not kwargs:
            if group is None or data_id.group == group:
                return data_id
        merged: dict[str, Any] = {}
        if data_id is not None:
            merged.update(data_id.full if isinstance(data_id, DataCoordinate) else data_id)
        merged.update(kwargs)
        if group is None:
            if universe is None:
                raise TypeError("standardize needs a group or a universe")
            group = universe.group(merged)
        universe = group.universe
        unknown = [k for k in merged if k not in universe]
        if unknown:
            raise DataIdError(universe._unknown_message("data ID key", unknown[0]))
        missing = [name for name in group.required if name not in merged]
        if missing:
            raise DataIdError(
                f"data ID {dict(merged)} is missing required key(s) {missing} "
                f"for dimensions {group}"
            )
        extra = [k for k in merged if k not in group.names and k not in group.implied]
        if extra:
            raise DataIdError(
                f"data ID key {extra[0]!r} is not a dimension of {group} "
                f"(allowed: {', '.join(group.required + group.implied)})"
            )
        values = tuple(_coerce(universe.dimension(n), merged[n]) for n in group.required)
        implied = {
            n: _coerce(universe.dimension(n), merged[n]) for n in group.implied if n in merged
        }
        return cls(group, values, implied)

    @property
    def universe(self) -> DimensionUniverse:
        """The universe of the data ID's dimensions."""
        return self.group.universe

    @property
    def required(self) -> dict[str, Any]:
        """The required values as a plain dict."""
        return dict(zip(self.group.required, self.values_tuple, strict=True))

    @property
    def full(self) -> dict[str, Any]:
        """Required and known implied values as a plain dict."""
        result = self.required
        result.update(self.implied)
        return result

    def subset(self, group: DimensionGroup) -> DataCoordinate:
        """Return the data ID restricted to a subgroup of its dimensions."""
        if group == self.group:
            return self
        full = self.full
        return DataCoordinate.standardize({k: full[k] for k in group.required if k in full}, group)

    def __getitem__(self, key: str) -> Any:
        try:
            return self.values_tuple[self.group.required.index(key)]
        except ValueError:
            if key in self.implied:
                return self.implied[key]
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.group.required)

    def __len__(self) -> int:
        return len(self.values_tuple)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DataCoordinate):
            return (
                self.group.required == other.group.required
                and self.values_tuple == other.values_tuple
            )
        if isinstance(other, Mapping):
            return self.required == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return (
            "{"
            + ", ".join(
                f"{k}: {v!r}" for k, v in zip(self.group.required, self.values_tuple, strict=True)
            )
            + "}"
        )

    def canonical_string(self) -> str:
        """Return a stable text form, used for deterministic dataset IDs and file names."""
        string = self._string
        if string is None:
            # "k1=v1,k2=v2", with each value formatted as by f"{v}".
            string = self._string = self.group._template.format(*self.values_tuple)
        return string


def int_from_text(text: str) -> int | None:
    """Return the integer an ASCII decimal string spells (``" -12 "``), or `None`.

    `str.isdigit` alone accepts characters `int` refuses (``"¹"``) and `int` accepts
    other scripts' digits (``"٣"``); data IDs take plain ASCII only.
    """
    stripped = text.strip()
    digits = stripped[1:] if stripped.startswith("-") else stripped
    return int(stripped) if digits.isascii() and digits.isdigit() else None


def _coerce(dimension: Dimension, value: Any) -> Any:
    """Check and normalize one data ID value against its dimension's key type."""
    pytype = dimension.key.pytype
    if pytype is int:
        if isinstance(value, bool):
            raise DataIdValueError(
                f"data ID key {dimension.name!r}: expected an int, got {value!r}"
            )
        if isinstance(value, int):
            return int(value)
        if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":  # numpy ints
            return int(value)
        if isinstance(value, str) and (number := int_from_text(value)) is not None:
            return number
        raise DataIdValueError(
            f"data ID key {dimension.name!r}: expected an int, got {type(value).__name__} {value!r}"
        )
    if pytype is str:
        if isinstance(value, str):
            return value
        raise DataIdValueError(
            f"data ID key {dimension.name!r}: expected a string, "
            f"got {type(value).__name__} {value!r}"
        )
    return pytype(value)
