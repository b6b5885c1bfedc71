"""The dimension-records manager: records of dimension elements and their sky regions.

Design
------
`DimensionRecordManager` owns the record table of every dimension element
(``instrument``, ``detector``, ``visit``, ...) and the overlap tables of the
spatial ones. Records are validated and given every column by
`_record_values.normalize_record`, so a batch is one ``executemany``; on an
integrity error the manager reads the keys that exist to say whether the
records conflicted or referred to missing records. A region is stored as JSON
in its record's row, and the sky pixels it overlaps as rows of the element's
overlap table (replaced whenever the region is set).

No mutable state of its own (transactions are the `Database`'s).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .._errors import ConflictingDefinitionError, DataIdError, DataIdValueError
from ..data_coordinate import DataCoordinate
from ..dimensions import DimensionUniverse
from ._queries import QueryBuilder
from ._record_values import normalize_record
from ._schema import RegistrySchema
from ._util import insert_ignoring, suggest
from .database import Database
from .regions import Region

__all__ = ["DimensionRecordManager"]


class DimensionRecordManager:
    """The registry's dimension records and regions.

    Parameters
    ----------
    db : `Database`
        Transactions and connections.
    schema : `RegistrySchema`
        The registry's tables (the element and overlap tables).
    universe : `DimensionUniverse`
        The repository's dimensions.
    """

    def __init__(self, db: Database, schema: RegistrySchema, universe: DimensionUniverse) -> None:
        self._db = db
        self.schema = schema
        self.universe = universe

    def _element(self, element: str) -> str:
        if element not in self.schema.elements:
            raise DataIdError(
                f"unknown dimension element {element!r}{suggest(element, self.schema.elements)}"
            )
        return element

    def insert_dimension_records(
        self, element: str, records: Iterable[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> None:
        """Insert records of a dimension element, in one statement.

        See `SqlRegistry.insert_dimension_records`.
        """
        self._element(element)
        rows = [normalize_record(self.schema, element, r) for r in records]
        if not rows:
            return
        table = self.schema.element_tables[element]
        keys = self.schema.elements[element].primary_key
        try:
            with self._db.transaction() as connection:
                if skip_existing:
                    connection.execute(insert_ignoring(connection, table, keys), rows)
                else:
                    connection.execute(table.insert(), rows)
        except sa.exc.IntegrityError:
            existing = self._existing_keys(element, rows)
            columns = self.schema.elements[element]
            if existing:
                raise ConflictingDefinitionError(
                    f"element {element!r}: record(s) already exist for {sorted(existing)[:5]}"
                ) from None
            raise DataIdValueError(
                f"element {element!r}: record(s) refer to missing records of "
                f"{', '.join(columns.required + columns.implied)}"
            ) from None

    def _existing_keys(self, element: str, rows: Sequence[Mapping[str, Any]]) -> set[tuple]:
        table = self.schema.element_tables[element]
        keys = self.schema.elements[element].primary_key
        wanted = {tuple(r[k] for k in keys) for r in rows}
        with self._db.read() as connection:
            found = connection.execute(sa.select(*(table.c[k] for k in keys))).all()
        return {tuple(f) for f in found} & wanted

    def sync_dimension_record(self, element: str, record: Mapping[str, Any]) -> bool:
        """Insert a record unless an identical one exists.

        See `SqlRegistry.sync_dimension_record`.
        """
        self._element(element)
        row = normalize_record(self.schema, element, record)
        table = self.schema.element_tables[element]
        keys = self.schema.elements[element].primary_key
        with self._db.transaction() as connection:
            existing = (
                connection.execute(sa.select(table).where(*(table.c[k] == row[k] for k in keys)))
                .mappings()
                .first()
            )
            if existing is None:
                connection.execute(table.insert(), [row])
                return True
        given = {self.schema.elements[element].key if k == element else k for k in record}
        diffs = {k: (existing[k], row[k]) for k in given if existing[k] != row[k]}
        if diffs:
            detail = ", ".join(f"{k}: {old!r} != {new!r}" for k, (old, new) in diffs.items())
            raise ConflictingDefinitionError(
                f"element {element!r}: record {dict((k, row[k]) for k in keys)} exists with "
                f"different values ({detail})"
            )
        return False

    def query_dimension_records(
        self,
        element: str,
        *,
        where: str = "",
        bind: Mapping[str, Any] | None = None,
        data_id: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return records of an element as dicts of column values (no region).

        See `SqlRegistry.query_dimension_records`.
        """
        self._element(element)
        builder = QueryBuilder(self.schema)
        table = builder.join_element(element)
        builder.constrain(where, bind, data_id)
        columns = self.schema.elements[element]
        query = builder.select(*(table.c[c] for c in columns.all)).order_by(
            *(table.c[c] for c in columns.primary_key)
        )
        with self._db.read() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def _record_key(self, element: str, data_id: Mapping[str, Any]) -> dict[str, Any]:
        columns = self.schema.elements[self._element(element)]
        dims = [d for d, _ in columns.dimensions]
        coordinate = DataCoordinate.standardize(
            {k: v for k, v in data_id.items() if k in dims}, self.universe.group(dims)
        )
        return {column: coordinate[dim] for dim, column in columns.dimensions}

    def set_region(self, element: str, data_id: Mapping[str, Any], region: Region) -> None:
        """Store a record's sky region and the sky pixels it overlaps.

        See `SqlRegistry.set_region`.
        """
        key = self._record_key(element, data_id)
        if element not in self.schema.overlap_tables:
            raise DataIdError(f"element {element!r} is not spatial; it has no region")
        table = self.schema.element_tables[element]
        overlap = self.schema.overlap_tables[element]
        pixels = sorted(region.skypix_overlaps(self.universe))
        skypix = self.universe.skypix.name
        with self._db.transaction() as connection:
            updated = connection.execute(
                table.update()
                .where(*(table.c[k] == v for k, v in key.items()))
                .values(region=json.dumps(region.to_dict()))
            ).rowcount
            if updated != 1:
                raise DataIdValueError(f"element {element!r}: no record with data ID {key}")
            connection.execute(overlap.delete().where(*(overlap.c[k] == v for k, v in key.items())))
            if pixels:
                connection.execute(overlap.insert(), [{**key, skypix: p} for p in pixels])

    def get_region(self, element: str, data_id: Mapping[str, Any]) -> Region | None:
        """Return a record's region, or `None` if it has none. See `SqlRegistry.get_region`."""
        key = self._record_key(element, data_id)
        if element not in self.schema.overlap_tables:
            return None
        table = self.schema.element_tables[element]
        with self._db.read() as connection:
            row = connection.execute(
                sa.select(table.c.region).where(*(table.c[k] == v for k, v in key.items()))
            ).first()
        if row is None:
            raise DataIdValueError(f"element {element!r}: no record with data ID {key}")
        return None if row[0] is None else Region.from_dict(json.loads(row[0]))
