"""Dataset types: their registration, lookup by name or ID, and the cache of them.

Design
------
`DatasetTypeManager` owns the ``dataset_type`` table (name, required
dimensions as JSON, storage class). Lookups by name go through a cache that
holds (table ID, `DatasetType`); a miss reads the one row and, for a name
that is not registered, all names for a near-miss suggestion.

Mutable state: the cache of dataset types by name. Dataset types are never
redefined or removed, so it cannot go stale; it fills on lookup, not on
registration.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import sqlalchemy as sa

from .._errors import ConflictingDefinitionError, MissingDatasetTypeError
from ..dataset_type import DatasetType
from ..dimensions import DimensionUniverse
from ._schema import RegistrySchema
from ._util import insert_ignoring, suggest
from .database import Database

__all__ = ["DatasetTypeManager"]


class DatasetTypeManager:
    """The registry's dataset types.

    Parameters
    ----------
    db : `Database`
        Transactions and connections.
    schema : `RegistrySchema`
        The registry's tables (this manager uses ``dataset_type``).
    universe : `DimensionUniverse`
        The repository's dimensions, to rebuild dataset types from rows.
    """

    def __init__(self, db: Database, schema: RegistrySchema, universe: DimensionUniverse) -> None:
        self._db = db
        self._table = schema.dataset_type
        self._dataset_table = schema.dataset  # only to refuse removing a type still in use
        self._universe = universe
        self._cache: dict[str, tuple[int, DatasetType]] = {}

    def _from_row(self, row: Any) -> DatasetType:
        return DatasetType(
            row.name, self._universe.group(json.loads(row.dimensions)), row.storage_class
        )

    def register_dataset_type(self, dataset_type: DatasetType) -> bool:
        """Register a dataset type; True if inserted, False if an identical one exists.

        See `SqlRegistry.register_dataset_type`.
        """
        table = self._table
        values = {
            "name": dataset_type.name,
            "dimensions": json.dumps(list(dataset_type.dimensions.required)),
            "storage_class": dataset_type.storage_class,
        }
        with self._db.transaction() as connection:
            # Insert-or-nothing, then read: two clients registering one type at once both
            # succeed (a select-then-insert let both insert, and one died on the unique name).
            statement = insert_ignoring(connection, table, ["name"]).returning(table.c.id)
            if connection.execute(statement, values).first() is not None:
                return True
            row = connection.execute(
                sa.select(table).where(table.c.name == dataset_type.name)
            ).first()
        existing = self._from_row(row)
        if existing != dataset_type:
            raise ConflictingDefinitionError(
                f"dataset type {dataset_type.name!r} is already registered as "
                f"{existing.describe()}; cannot redefine it as {dataset_type.describe()}"
            )
        return False

    def entry(self, name: str | DatasetType) -> tuple[int, DatasetType]:
        """Return (table ID, dataset type) of a registered dataset type.

        Given a `DatasetType`, also check that it matches the registered one.

        Raises
        ------
        MissingDatasetTypeError
            If it is not registered (with a near-miss suggestion).
        ConflictingDefinitionError
            If a given `DatasetType` differs from the registered one.
        """
        key = name.name if isinstance(name, DatasetType) else name
        entry = self._cache.get(key)
        if entry is None:
            table = self._table
            with self._db.read() as connection:
                row = connection.execute(sa.select(table).where(table.c.name == key)).first()
                if row is None:
                    names = connection.execute(sa.select(table.c.name)).scalars().all()
                    raise MissingDatasetTypeError(
                        f"dataset type {key!r} is not registered{suggest(key, names)}"
                    )
            entry = (row.id, self._from_row(row))
            self._cache[key] = entry
        if isinstance(name, DatasetType) and name != entry[1]:
            raise ConflictingDefinitionError(
                f"dataset type {name.describe()} does not match the registered "
                f"{entry[1].describe()}"
            )
        return entry

    def remove_dataset_type(self, name: str) -> None:
        """Remove an unused dataset type. See `SqlRegistry.remove_dataset_type`."""
        type_id, _ = self.entry(name)
        table, datasets = self._table, self._dataset_table
        with self._db.transaction() as connection:
            if connection.dialect.name == "postgresql":  # inserts of its datasets finish first
                connection.execute(
                    sa.select(table.c.id).where(table.c.id == type_id).with_for_update()
                )
            used = connection.execute(
                sa.select(sa.func.count()).where(datasets.c.dataset_type_id == type_id)
            ).scalar_one()
            if used:
                raise ConflictingDefinitionError(
                    f"dataset type {name!r} still has {used} dataset(s); remove them first "
                    "(butler prune-datasets or remove-runs)"
                )
            connection.execute(table.delete().where(table.c.id == type_id))
        self._cache.pop(name, None)

    def get_dataset_type(self, name: str) -> DatasetType:
        """Return a registered dataset type (`MissingDatasetTypeError` if not registered)."""
        return self.entry(name)[1]

    def cached_entry(self, name: str) -> tuple[int, DatasetType] | None:
        """Return the cached (table ID, dataset type) of ``name``, without reading the database."""
        return self._cache.get(name)

    def by_id(self, type_id: int) -> DatasetType:
        """Return the dataset type with this table ID."""
        for entry_id, dataset_type in self._cache.values():
            if entry_id == type_id:
                return dataset_type
        table = self._table
        with self._db.read() as connection:
            name = connection.execute(
                sa.select(table.c.name).where(table.c.id == type_id)
            ).scalar_one()
        return self.entry(name)[1]

    def query_dataset_types(self, pattern: str | None = None) -> list[DatasetType]:
        """Return registered dataset types whose names match a glob pattern, sorted by name."""
        table = self._table
        with self._db.read() as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.name)).all()
        return [
            self._from_row(r)
            for r in rows
            if pattern is None or fnmatch.fnmatchcase(r.name, pattern)
        ]
