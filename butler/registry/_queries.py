"""Building SELECTs over dimension records and datasets.

Design
------
A `QueryBuilder` grows one FROM clause by joins. It tracks, for each
dimension whose value is known in the query, the column holding it
(``values``), and which element tables are already joined. Joining an
element table equates its key columns with the known values (or makes them
the values). Identifiers of a ``where`` expression are resolved lazily by
`resolve`, joining what they need:

* a dimension name is the dimension's value (``visit`` -> visit id); an
  implied dimension (``band`` for a visit query) is found by joining the
  record table of a dimension that implies it;
* ``element.field`` is a record column (``visit.exposure_time``); the
  element's table is joined on its keys, which must all be known.

The builder is used for one query and then discarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from .._errors import DataIdError
from ..dimensions import DimensionUniverse
from ..expressions import compile_where
from ._record_values import coerce_data_id_value
from ._schema import RegistrySchema

__all__ = ["QueryBuilder"]


class QueryBuilder:
    """Accumulates joins and conditions of one query.

    Parameters
    ----------
    schema : `RegistrySchema`
        The registry's tables.
    """

    def __init__(self, schema: RegistrySchema) -> None:
        self.schema = schema
        self.universe: DimensionUniverse = schema.universe
        self.from_clause: sa.FromClause | None = None
        self.values: dict[str, sa.ColumnElement[Any]] = {}
        self.implied_values: dict[str, sa.ColumnElement[Any]] = {}
        self.joined: dict[str, sa.FromClause] = {}
        self.conditions: list[sa.ColumnElement[bool]] = []

    # -- joins --------------------------------------------------------------

    def join(
        self,
        table: sa.FromClause,
        on: Iterable[sa.ColumnElement[bool]] = (),
        *,
        outer: bool = False,
    ) -> None:
        """Join ``table`` on the given conditions (a cross join if there are none).

        With ``outer``, a LEFT OUTER JOIN: rows without a match are kept.
        """
        on = list(on)
        if self.from_clause is None:
            self.from_clause = table
            self.conditions.extend(on)
        else:
            self.from_clause = self.from_clause.join(
                table, sa.and_(*on) if on else sa.true(), isouter=outer
            )

    def join_element(self, element: str, *, outer: bool = False) -> sa.FromClause:
        """Join an element's record table on the known dimension values.

        ``outer`` is for tables joined only to look up implied dimensions:
        a record whose implied value is NULL must not drop the row.
        """
        if element in self.joined:
            return self.joined[element]
        columns = self.schema.elements[element]
        table = self.schema.element_tables[element]
        on = []
        for dim, column in columns.dimensions:
            if dim in self.values:
                on.append(table.c[column] == self.values[dim])
            elif dim in self.implied_values:
                on.append(table.c[column] == self.implied_values[dim])
            else:
                self.values[dim] = table.c[column]
        for dim in columns.implied:
            if dim in self.values:
                on.append(table.c[dim] == self.values[dim])
            self.implied_values.setdefault(dim, table.c[dim])
        self.join(table, on, outer=outer)
        self.joined[element] = table
        return table

    def join_overlaps(self, skypix: str) -> bool:
        """Join the overlap table of the most specific spatial element the query knows.

        Returns
        -------
        joined : `bool`
            Whether a spatial element was available.
        """
        best: str | None = None
        best_size = -1
        for name, overlap in self.schema.overlap_tables.items():
            keys = self.schema.elements[name].dimensions
            if all(dim in self.values for dim, _ in keys) and len(keys) > best_size:
                best, best_size = name, len(keys)
        if best is None:
            return False
        overlap = self.schema.overlap_tables[best]
        on = [
            overlap.c[column] == self.values[dim]
            for dim, column in self.schema.elements[best].dimensions
        ]
        if skypix in self.values:
            on.append(overlap.c[skypix] == self.values[skypix])
        else:
            self.values[skypix] = overlap.c[skypix]
        self.join(overlap, on)
        return True

    # -- identifiers ---------------------------------------------------------

    def dimension_column(self, name: str, _seen: frozenset[str] = frozenset()) -> Any:
        """Return the column of a dimension's value, joining tables to reach an implied one.

        Raises
        ------
        KeyError
            If the dimension is unknown or cannot be reached from the query.
        """
        if name in self.values:
            return self.values[name]
        if name in self.implied_values:
            return self.implied_values[name]
        if name not in self.universe.dimension_names:
            raise KeyError(name)
        for other in self.universe.dimension_names:
            if other in _seen or other not in self.schema.elements:
                continue
            if name in self.universe.dimension(other).implies:
                try:
                    self.dimension_column(other, _seen | {name})
                except KeyError:
                    continue
                if all(d in self.values for d in self.schema.elements[other].required):
                    self.join_element(other, outer=True)
                    return self.implied_values[name]
        raise KeyError(name)

    def resolve(self, identifier: str) -> Any:
        """Map a ``where`` identifier to a column (`KeyError` if impossible)."""
        if "." in identifier:
            element, field = identifier.split(".", 1)
            columns = self.schema.elements.get(element)
            if columns is None or field not in columns.all:
                raise KeyError(identifier)
            if element not in self.joined:
                for dim, _ in columns.dimensions:
                    self.dimension_column(dim)
            return self.join_element(element).c[field]
        return self.dimension_column(identifier)

    def known_names(self) -> list[str]:
        """Return the identifiers a ``where`` expression may use (for suggestions)."""
        reachable = set(self.values) | set(self.implied_values)
        for name in list(reachable):
            reachable.update(self.universe.dimension(name).implies)
        names = sorted(reachable)
        for name, columns in self.schema.elements.items():
            if all(dim in reachable for dim, _ in columns.dimensions):
                names.extend(f"{name}.{c}" for c in columns.all)
        return names

    def constrain(
        self,
        where: str,
        bind: Mapping[str, Any] | None,
        data_id: Mapping[str, Any] | None,
    ) -> None:
        """Add a ``where`` expression and data ID equality constraints.

        Raises
        ------
        DataIdError
            If a data ID key is unknown or not reachable from the query.
        """
        if where:
            self.conditions.append(
                compile_where(where, self.resolve, bind=bind, known_names=self.known_names())
            )
        for key, value in (data_id or {}).items():
            normalized = coerce_data_id_value(self.universe, key, value)
            try:
                column = self.dimension_column(key)
            except KeyError:
                raise DataIdError(
                    f"data ID key {key!r} does not apply to this query "
                    f"(dimensions: {', '.join(self.values)})"
                ) from None
            self.conditions.append(column == normalized)

    def select(self, *columns: Any, distinct: bool = False) -> sa.Select[Any]:
        """Return the SELECT of ``columns`` over the joins, with all conditions."""
        query = sa.select(*columns)
        if self.from_clause is not None:
            query = query.select_from(self.from_clause)
        if self.conditions:
            query = query.where(*self.conditions)
        return query.distinct() if distinct else query
