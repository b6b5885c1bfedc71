"""Source catalogs: astropy Tables with a declared schema.

A `CatalogSchema` is an ordered tuple of `ColumnSpec` (name, numpy dtype, astropy unit string,
description). Flag columns are ``bool``. The schema makes empty tables (`CatalogSchema.make_table`),
checks tables produced elsewhere (`CatalogSchema.validate`), and serializes to plain dictionaries
for YAML/JSON (`to_dict` / `from_dict`). It is a value object: extend it with `extended`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table

from ._errors import CatalogSchemaError

__all__ = ["CatalogSchema", "ColumnSpec"]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a catalog.

    Parameters
    ----------
    name : `str`
        Column name.
    dtype : `str`
        Numpy dtype name (``"float64"``, ``"int64"``, ``"bool"`` for flags, ...).
    unit : `str`
        Astropy unit string; ``""`` for dimensionless.
    description : `str`
        What the column holds.
    """

    name: str
    dtype: str
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        except TypeError as err:
            raise CatalogSchemaError(f"Column {self.name!r}: bad dtype {self.dtype!r}") from err
        if self.unit:
            try:
                u.Unit(self.unit)
            except ValueError as err:
                raise CatalogSchemaError(f"Column {self.name!r}: bad unit {self.unit!r}") from err

    @property
    def is_flag(self) -> bool:
        """`True` for boolean flag columns."""
        return self.dtype == "bool"


@dataclass(frozen=True, slots=True)
class CatalogSchema:
    """An ordered set of column declarations.

    Parameters
    ----------
    columns : `tuple` [`ColumnSpec`, ...]
        Columns in table order; names must be unique.
    """

    columns: tuple[ColumnSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise CatalogSchemaError(f"Duplicate catalog columns: {', '.join(dupes)}")

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"Catalog schema has no column {name!r}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def extended(self, columns: Iterable[ColumnSpec]) -> CatalogSchema:
        """Return a schema with ``columns`` appended."""
        return CatalogSchema(self.columns + tuple(columns))

    def make_table(self, n: int = 0) -> Table:
        """Return a table of ``n`` rows: zeros, `False` flags, with units and descriptions."""
        table = Table()
        for column in self.columns:
            table[column.name] = np.zeros(n, dtype=column.dtype)
            if column.unit:
                table[column.name].unit = column.unit
            table[column.name].description = column.description
        return table

    def validate(
        self, table: Table, *, source: str = "table", allow_missing_units: bool = False
    ) -> None:
        """Check that ``table`` has every column with a matching dtype kind and unit.

        Extra columns are allowed. Integer and float widths may differ (``int32`` for ``int64``).
        With ``allow_missing_units`` a column without a unit passes (a wrong unit never does).

        Raises
        ------
        CatalogSchemaError
            Naming ``source`` and the first offending column.
        """
        for column in self.columns:
            if column.name not in table.colnames:
                raise CatalogSchemaError(f"{source}: missing column {column.name!r}")
            have = table[column.name].dtype
            want = np.dtype(column.dtype)
            if have.kind != want.kind and not (have.kind in "iu" and want.kind in "iu"):
                raise CatalogSchemaError(
                    f"{source}: column {column.name!r} has dtype {have}, expected {want}"
                )
            unit = table[column.name].unit
            if unit is None and allow_missing_units:
                continue
            if column.unit and (unit is None or u.Unit(unit) != u.Unit(column.unit)):
                raise CatalogSchemaError(
                    f"{source}: column {column.name!r} has unit {unit}, expected {column.unit}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"columns": [{"name", "dtype", "unit", "description"}, ...]}``."""
        return {
            "columns": [
                {"name": c.name, "dtype": c.dtype, "unit": c.unit, "description": c.description}
                for c in self.columns
            ]
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CatalogSchema:
        """Inverse of `to_dict`.

        Raises
        ------
        CatalogSchemaError
            If ``columns`` is missing or an entry lacks ``name`` or ``dtype``.
        """
        try:
            return cls(tuple(ColumnSpec(**entry) for entry in data["columns"]))
        except (KeyError, TypeError) as err:
            raise CatalogSchemaError(f"Bad catalog schema dictionary: {err}") from err
