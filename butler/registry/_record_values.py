"""Validation and normalization of dimension records and data ID values.

Design
------
A record given by a caller is a mapping of field name to value. It may name
an element's own key by the key field (``{"id": 3}`` for a detector) or by the
dimension name (``{"detector": 3}``); both become the key column. Every
value is checked against its column's type (ints given as digit strings or
numpy integers are accepted, floats accept ints, bools must be bools), and
every normalized record has every column, so a batch can be inserted with
one ``executemany``. Errors name the element and the field.

Pure functions; no state.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from typing import Any

from .._errors import DataIdError, DataIdValueError
from ..data_coordinate import int_from_text
from ..dimensions import DimensionUniverse, MetadataField
from ._schema import ElementColumns, RegistrySchema

__all__ = ["coerce_data_id_value", "field_types", "normalize_record"]


def _coerce(value: Any, field: MetadataField, where: str) -> Any:
    kind = field.type
    if kind == "int":
        if isinstance(value, bool):
            raise DataIdValueError(f"{where}: expected an int, got {value!r}")
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, str) and (number := int_from_text(value)) is not None:
            return number
    elif kind == "float":
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif kind == "string":
        if isinstance(value, str):
            if field.length is not None and len(value) > field.length:
                raise DataIdValueError(
                    f"{where}: string of length {len(value)} exceeds the maximum {field.length}"
                )
            return value
    elif kind == "bool":
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return bool(value)
    raise DataIdValueError(f"{where}: expected {kind}, got {type(value).__name__} {value!r}")


def coerce_data_id_value(universe: DimensionUniverse, dimension: str, value: Any) -> Any:
    """Check and normalize the value of one dimension in a data ID.

    Raises
    ------
    DataIdError
        If ``dimension`` is not a dimension (with a near-miss suggestion).
    DataIdValueError
        If the value has the wrong type.
    """
    field = universe.dimension(dimension).key
    return _coerce(value, field, f"data ID key {dimension!r}")


def field_types(universe: DimensionUniverse, columns: ElementColumns) -> dict[str, MetadataField]:
    """Return the type of every record column of an element, by column name."""
    types: dict[str, MetadataField] = {}
    for dim in columns.required + columns.implied:
        types[dim] = universe.dimension(dim).key
    element = columns.element
    if columns.key is not None:
        types[columns.key] = universe.dimension(element.name).key
    for field in element.metadata:
        types[field.name] = field
    return types


def normalize_record(
    schema: RegistrySchema, element: str, record: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate a record and return it with one entry per column.

    Parameters
    ----------
    schema : `RegistrySchema`
        The registry's tables.
    element : `str`
        Element name.
    record : `~collections.abc.Mapping`
        Field values; the element's own key may be given under the element's
        name.

    Returns
    -------
    row : `dict`
        Column name to normalized value (`None` for absent optional fields).

    Raises
    ------
    DataIdError
        If a key field is missing or a field is unknown.
    DataIdValueError
        If a value has the wrong type.
    """
    columns = schema.elements[element]
    types = field_types(schema.universe, columns)
    row: dict[str, Any] = dict.fromkeys(columns.all)
    given: set[str] = set()
    for name, value in record.items():
        column = name
        if name == element and columns.key is not None:
            column = columns.key
        if column not in types:
            near = difflib.get_close_matches(str(name), list(types), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise DataIdError(
                f"element {element!r}: unknown field {name!r}{hint} "
                f"(fields: {', '.join(columns.all)})"
            )
        where = f"element {element!r} field {name!r}"
        normalized = None if value is None else _coerce(value, types[column], where)
        if column in given and row[column] != normalized:
            raise DataIdValueError(
                f"element {element!r}: key given twice with different values "
                f"({columns.key}={row[column]!r}, {element}={normalized!r})"
            )
        given.add(column)
        row[column] = normalized
    missing = [c for c in columns.primary_key if row[c] is None]
    if missing:
        raise DataIdError(
            f"element {element!r}: record {dict(record)!r} is missing key field(s) {missing}"
        )
    return row
