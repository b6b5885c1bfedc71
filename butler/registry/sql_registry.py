"""The SQL registry: dimension records, dataset types, collections and datasets.

Design
------
`SqlRegistry` wraps one SQLAlchemy engine and the `RegistrySchema` built from
the repository's dimension universe (stored in the database, so `open` needs
no configuration). Every write runs in `transaction`: the outermost call
begins a database transaction on a connection held by the registry, nested
calls open SAVEPOINTs, and an exception rolls back to where the block began.
Reads run on that connection when inside a transaction, otherwise on a
fresh one. Bulk writes are one ``executemany`` per table and batch; on an
integrity error the registry rolls back and runs a few diagnostic queries to
say what conflicted.

Mutable state: the connection of the current transaction (so a registry
must not be shared by threads), and a cache of dataset types by name
(dataset types are never redefined or removed, so it cannot go stale).
Read-only mode is checked in one place, `transaction`.

On SQLite: WAL journal (file databases), foreign keys on,
``synchronous=NORMAL``; the driver's own transaction handling is switched
off so SAVEPOINTs work.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .._errors import (
    CollectionError,
    CollectionTypeError,
    ConflictingDefinitionError,
    DataIdError,
    DataIdValueError,
    MissingCollectionError,
    MissingDatasetTypeError,
    ReadOnlyRegistryError,
    RepositoryNotFoundError,
    RepositoryVersionError,
)
from ..dataset_type import DatasetType, validate_name
from ..datastore.stored_file_info import StoredFileInfo
from ..dimensions import DataCoordinate, DimensionUniverse
from ._datasets import DatasetsMixin
from ._dimension_records import normalize_record
from ._queries import QueryBuilder
from ._schema import SCHEMA_VERSION, RegistrySchema
from .collection_type import CollectionType
from .regions import Region

__all__ = ["SqlRegistry"]

#: Rows per statement for IN-lists (well below SQLite's 32766 parameter limit).
_CHUNK = 5000


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _suggest(name: str, candidates: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def _make_engine(db_url: str) -> sa.Engine:
    url = sa.make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url)
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {}
    if memory:
        kwargs = {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN; SAVEPOINTs work
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def _insert_ignoring(connection: sa.Connection, table: sa.Table, keys: Sequence[str]) -> Any:
    """Return an INSERT that skips rows whose ``keys`` already exist (SQLite, PostgreSQL)."""
    name = connection.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"skip-existing inserts are not implemented for {name}")
    return insert(table).on_conflict_do_nothing(index_elements=list(keys))


class SqlRegistry(DatasetsMixin):
    """A registry in an SQL database (SQLite or PostgreSQL).

    Use `create` or `open`, not the constructor.

    Parameters
    ----------
    engine : `sqlalchemy.Engine`
        The database.
    universe : `DimensionUniverse`
        The repository's dimensions.
    writeable : `bool`
        Whether writes are allowed.
    """

    def __init__(self, engine: sa.Engine, universe: DimensionUniverse, *, writeable: bool) -> None:
        self.engine = engine
        self.universe = universe
        self.writeable = writeable
        self.schema = RegistrySchema(universe)
        self._connection: sa.Connection | None = None
        self._dataset_types: dict[str, tuple[int, DatasetType]] = {}

    # -- construction -------------------------------------------------------

    @classmethod
    def create(cls, db_url: str, universe: DimensionUniverse) -> SqlRegistry:
        """Create the tables of a new registry.

        Parameters
        ----------
        db_url : `str`
            SQLAlchemy URL, e.g. ``sqlite:///repo/registry.sqlite3`` or
            ``sqlite://`` (in memory).
        universe : `DimensionUniverse`
            The dimensions; stored in the database.

        Raises
        ------
        ConflictingDefinitionError
            If the database already holds a registry.
        """
        registry = cls(_make_engine(db_url), universe, writeable=True)
        with registry.transaction() as connection:
            if sa.inspect(connection).has_table("butler_attributes"):
                raise ConflictingDefinitionError(f"a registry already exists at {db_url}")
            registry.schema.metadata.create_all(connection)
            connection.execute(
                registry.schema.attributes.insert(),
                [
                    {"name": "schema_version", "value": str(SCHEMA_VERSION)},
                    {"name": "universe", "value": json.dumps(universe.to_config())},
                ],
            )
        return registry

    @classmethod
    def open(cls, db_url: str, *, writeable: bool = True) -> SqlRegistry:
        """Open an existing registry.

        Raises
        ------
        RepositoryNotFoundError
            If there is no registry at ``db_url``.
        RepositoryVersionError
            If the registry's schema is newer than this software supports.
        """
        url = sa.make_url(db_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            if not Path(url.database).exists():
                raise RepositoryNotFoundError(f"no registry database at {url.database}")
        engine = _make_engine(db_url)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("butler_attributes"):
                engine.dispose()
                raise RepositoryNotFoundError(f"no registry tables in {db_url}")
            attributes = dict(
                connection.execute(sa.text("SELECT name, value FROM butler_attributes")).all()
            )
        version = int(attributes.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            engine.dispose()
            raise RepositoryVersionError(
                f"repository schema version {version} is newer than this software supports "
                f"({SCHEMA_VERSION})"
            )
        universe = DimensionUniverse(
            json.loads(attributes["universe"]), source=f"{db_url} universe"
        )
        return cls(engine, universe, writeable=writeable)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Run a block in a transaction (a SAVEPOINT when nested); roll back on error.

        Raises
        ------
        ReadOnlyRegistryError
            If the registry was opened read-only.
        """
        if not self.writeable:
            raise ReadOnlyRegistryError("this registry was opened read-only")
        if self._connection is None:
            with self.engine.begin() as connection:
                self._connection = connection
                try:
                    yield connection
                finally:
                    self._connection = None
        else:
            with self._connection.begin_nested():
                yield self._connection

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        if self._connection is not None:
            yield self._connection
        else:
            with self.engine.connect() as connection:
                yield connection

    # -- dimension records -------------------------------------------------------

    def _element(self, element: str) -> str:
        if element not in self.schema.elements:
            raise DataIdError(
                f"unknown dimension element {element!r}{_suggest(element, self.schema.elements)}"
            )
        return element

    def insert_dimension_records(
        self, element: str, records: Iterable[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> None:
        """Insert records of a dimension element, in one statement.

        Parameters
        ----------
        element : `str`
            Element name (``instrument``, ``detector``, ``visit``, ...).
        records : iterable of `~collections.abc.Mapping`
            Field values; the element's own key may be given under its key
            field (``id``) or the element's name.
        skip_existing : `bool`
            Skip records whose key exists instead of raising.

        Raises
        ------
        DataIdError, DataIdValueError
            If a record is invalid or refers to a missing record of a
            required dimension.
        ConflictingDefinitionError
            If a record with the same key exists (and not ``skip_existing``).
        """
        self._element(element)
        rows = [normalize_record(self.schema, element, r) for r in records]
        if not rows:
            return
        table = self.schema.element_tables[element]
        keys = self.schema.elements[element].primary_key
        try:
            with self.transaction() as connection:
                if skip_existing:
                    connection.execute(_insert_ignoring(connection, table, keys), rows)
                else:
                    connection.execute(table.insert(), rows)
        except sa.exc.IntegrityError:
            existing = self._existing_keys(element, rows)
            if existing:
                raise ConflictingDefinitionError(
                    f"element {element!r}: record(s) already exist for {sorted(existing)[:5]}"
                ) from None
            raise DataIdValueError(
                f"element {element!r}: record(s) refer to missing records of "
                f"{', '.join(self.schema.elements[element].required + self.schema.elements[element].implied)}"
            ) from None

    def _existing_keys(self, element: str, rows: Sequence[Mapping[str, Any]]) -> set[tuple]:
        table = self.schema.element_tables[element]
        keys = self.schema.elements[element].primary_key
        wanted = {tuple(r[k] for k in keys) for r in rows}
        with self._read() as connection:
            found = connection.execute(sa.select(*(table.c[k] for k in keys))).all()
        return {tuple(f) for f in found} & wanted

    def sync_dimension_record(self, element: str, record: Mapping[str, Any]) -> bool:
        """Insert a record unless an identical one exists.

        Returns
        -------
        inserted : `bool`
            True if inserted, False if an identical record already existed.

        Raises
        ------
        ConflictingDefinitionError
            If a record with the same key has different values.
        """
        self._element(element)
        row = normalize_record(self.schema, element, record)
        table = self.schema.element_tables[element]
        keys = self.schema.elements[element].primary_key
        with self.transaction() as connection:
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

        Raises
        ------
        UnknownNameError
            If ``where`` names an unknown identifier.
        """
        self._element(element)
        builder = QueryBuilder(self.schema)
        table = builder.join_element(element)
        builder.constrain(where, bind, data_id)
        columns = self.schema.elements[element]
        query = builder.select(*(table.c[c] for c in columns.all)).order_by(
            *(table.c[c] for c in columns.primary_key)
        )
        with self._read() as connection:
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

        Raises
        ------
        DataIdError
            If the element is not spatial or the data ID lacks a key.
        DataIdValueError
            If no record has that data ID.
        """
        key = self._record_key(element, data_id)
        if element not in self.schema.overlap_tables:
            raise DataIdError(f"element {element!r} is not spatial; it has no region")
        table = self.schema.element_tables[element]
        overlap = self.schema.overlap_tables[element]
        pixels = sorted(region.skypix_overlaps(self.universe))
        skypix = self.universe.skypix.name
        with self.transaction() as connection:
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
        """Return a record's region, or `None` if it has none.

        Raises
        ------
        DataIdValueError
            If no record has that data ID.
        """
        key = self._record_key(element, data_id)
        if element not in self.schema.overlap_tables:
            return None
        table = self.schema.element_tables[element]
        with self._read() as connection:
            row = connection.execute(
                sa.select(table.c.region).where(*(table.c[k] == v for k, v in key.items()))
            ).first()
        if row is None:
            raise DataIdValueError(f"element {element!r}: no record with data ID {key}")
        return None if row[0] is None else Region.from_dict(json.loads(row[0]))

    # -- dataset types ------------------------------------------------------------

    def _row_to_dataset_type(self, row: Any) -> DatasetType:
        return DatasetType(
            row.name, self.universe.group(json.loads(row.dimensions)), row.storage_class
        )

    def register_dataset_type(self, dataset_type: DatasetType) -> bool:
        """Register a dataset type.

        Returns
        -------
        inserted : `bool`
            True if inserted, False if an identical definition exists.

        Raises
        ------
        ConflictingDefinitionError
            If a different definition with the same name exists.
        """
        table = self.schema.dataset_type
        with self.transaction() as connection:
            row = connection.execute(
                sa.select(table).where(table.c.name == dataset_type.name)
            ).first()
            if row is None:
                connection.execute(
                    table.insert(),
                    [
                        {
                            "name": dataset_type.name,
                            "dimensions": json.dumps(list(dataset_type.dimensions.required)),
                            "storage_class": dataset_type.storage_class,
                        }
                    ],
                )
                return True
        existing = self._row_to_dataset_type(row)
        if existing != dataset_type:
            raise ConflictingDefinitionError(
                f"dataset type {dataset_type.name!r} is already registered as "
                f"{existing.describe()}; cannot redefine it as {dataset_type.describe()}"
            )
        return False

    def _dataset_type_entry(self, name: str | DatasetType) -> tuple[int, DatasetType]:
        key = name.name if isinstance(name, DatasetType) else name
        entry = self._dataset_types.get(key)
        if entry is None:
            table = self.schema.dataset_type
            with self._read() as connection:
                row = connection.execute(sa.select(table).where(table.c.name == key)).first()
                if row is None:
                    names = connection.execute(sa.select(table.c.name)).scalars().all()
                    raise MissingDatasetTypeError(
                        f"dataset type {key!r} is not registered{_suggest(key, names)}"
                    )
            entry = (row.id, self._row_to_dataset_type(row))
            self._dataset_types[key] = entry
        if isinstance(name, DatasetType) and name != entry[1]:
            raise ConflictingDefinitionError(
                f"dataset type {name.describe()} does not match the registered "
                f"{entry[1].describe()}"
            )
        return entry

    def get_dataset_type(self, name: str) -> DatasetType:
        """Return a registered dataset type.

        Raises
        ------
        MissingDatasetTypeError
            If it is not registered (with a near-miss suggestion).
        """
        return self._dataset_type_entry(name)[1]

    def query_dataset_types(self, pattern: str | None = None) -> list[DatasetType]:
        """Return registered dataset types whose names match a glob pattern, sorted by name."""
        table = self.schema.dataset_type
        with self._read() as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.name)).all()
        return [
            self._row_to_dataset_type(r)
            for r in rows
            if pattern is None or fnmatch.fnmatchcase(r.name, pattern)
        ]

    # -- collections -----------------------------------------------------------------

    def register_run(self, name: str) -> bool:
        """Register a RUN collection; True if new, False if it exists as a RUN."""
        return self.register_collection(name, CollectionType.RUN)

    def register_collection(self, name: str, type: CollectionType) -> bool:
        """Register a collection.

        Returns
        -------
        inserted : `bool`
            True if new, False if it exists with the same type.

        Raises
        ------
        InvalidNameError
            If the name is not allowed.
        CollectionTypeError
            If it exists with a different type.
        """
        validate_name(name, what="collection", collection=True)
        type = CollectionType(type)
        table = self.schema.collection
        with self.transaction() as connection:
            row = connection.execute(sa.select(table.c.type).where(table.c.name == name)).first()
            if row is None:
                connection.execute(table.insert(), [{"name": name, "type": int(type)}])
                return True
        if row.type != type:
            raise CollectionTypeError(
                f"collection {name!r} exists as {CollectionType(row.type).name}, not {type.name}"
            )
        return False

    def _collections(self, connection: sa.Connection) -> dict[str, tuple[int, CollectionType]]:
        table = self.schema.collection
        rows = connection.execute(sa.select(table.c.name, table.c.id, table.c.type)).all()
        return {r.name: (r.id, CollectionType(r.type)) for r in rows}

    def _collection(self, connection: sa.Connection, name: str) -> tuple[int, CollectionType]:
        table = self.schema.collection
        row = connection.execute(
            sa.select(table.c.id, table.c.type).where(table.c.name == name)
        ).first()
        if row is None:
            names = connection.execute(sa.select(table.c.name)).scalars().all()
            raise MissingCollectionError(
                f"collection {name!r} does not exist{_suggest(str(name), names)}"
            )
        return row.id, CollectionType(row.type)

    def get_collection_type(self, name: str) -> CollectionType:
        """Return a collection's type (`MissingCollectionError` if it does not exist)."""
        with self._read() as connection:
            return self._collection(connection, name)[1]

    def _chains(self, connection: sa.Connection) -> dict[int, list[int]]:
        chain = self.schema.collection_chain
        rows = connection.execute(
            sa.select(chain.c.parent_id, chain.c.child_id).order_by(
                chain.c.parent_id, chain.c.position
            )
        ).all()
        result: dict[int, list[int]] = {}
        for parent, child in rows:
            result.setdefault(parent, []).append(child)
        return result

    def set_collection_chain(self, parent: str, children: Sequence[str]) -> None:
        """Set the ordered children of a CHAINED collection.

        Raises
        ------
        MissingCollectionError
            If the parent or a child does not exist.
        CollectionTypeError
            If the parent is not CHAINED.
        CollectionError
            If the chain would contain itself (a cycle).
        """
        if isinstance(children, str):
            children = [children]
        chain = self.schema.collection_chain
        with self.transaction() as connection:
            parent_id, parent_type = self._collection(connection, parent)
            if parent_type is not CollectionType.CHAINED:
                raise CollectionTypeError(
                    f"collection {parent!r} is a {parent_type.name}, not CHAINED"
                )
            child_ids = [self._collection(connection, c)[0] for c in children]
            chains = self._chains(connection)
            chains[parent_id] = child_ids
            names = {i: n for n, (i, _) in self._collections(connection).items()}
            self._check_acyclic(parent_id, chains, names)
            connection.execute(chain.delete().where(chain.c.parent_id == parent_id))
            if child_ids:
                connection.execute(
                    chain.insert(),
                    [
                        {"parent_id": parent_id, "position": i, "child_id": c}
                        for i, c in enumerate(child_ids)
                    ],
                )

    @staticmethod
    def _check_acyclic(
        start: int, chains: Mapping[int, list[int]], names: Mapping[int, str]
    ) -> None:
        stack: list[tuple[int, tuple[int, ...]]] = [(start, (start,))]
        while stack:
            node, path = stack.pop()
            for child in chains.get(node, []):
                if child == start:
                    cycle = " -> ".join(names[i] for i in path + (child,))
                    raise CollectionError(f"collection chain would contain a cycle: {cycle}")
                if child not in path:
                    stack.append((child, path + (child,)))

    def get_collection_chain(self, parent: str) -> tuple[str, ...]:
        """Return the children of a CHAINED collection in search order."""
        with self._read() as connection:
            parent_id, parent_type = self._collection(connection, parent)
            if parent_type is not CollectionType.CHAINED:
                raise CollectionTypeError(
                    f"collection {parent!r} is a {parent_type.name}, not CHAINED"
                )
            names = {i: n for n, (i, _) in self._collections(connection).items()}
            return tuple(names[c] for c in self._chains(connection).get(parent_id, []))

    def query_collections(
        self,
        pattern: str | None = None,
        *,
        types: Iterable[CollectionType] | None = None,
        flatten_chains: bool = False,
    ) -> list[tuple[str, CollectionType]]:
        """Return (name, type) of collections matching a glob pattern, sorted by name.

        With ``flatten_chains``, the members of matching chains (recursively)
        follow each chain.
        """
        wanted = None if types is None else {CollectionType(t) for t in types}
        with self._read() as connection:
            collections = self._collections(connection)
            chains = self._chains(connection)
        names = {i: n for n, (i, _) in collections.items()}
        result: list[tuple[str, CollectionType]] = []
        seen: set[str] = set()

        def add(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            cid, ctype = collections[name]
            if wanted is None or ctype in wanted:
                result.append((name, ctype))
            if flatten_chains and ctype is CollectionType.CHAINED:
                for child in chains.get(cid, []):
                    add(names[child])

        for name in sorted(collections):
            if pattern is None or fnmatch.fnmatchcase(name, pattern):
                add(name)
        return result

    def _resolve_run_ids(
        self, connection: sa.Connection, collections: Sequence[str] | str
    ) -> list[tuple[int, str]]:
        if isinstance(collections, str):
            collections = [collections]
        known = self._collections(connection)
        chains = self._chains(connection)
        names = {i: n for n, (i, _) in known.items()}
        result: list[tuple[int, str]] = []
        seen: set[int] = set()

        def visit(cid: int, ctype: CollectionType) -> None:
            if cid in seen:
                return
            seen.add(cid)
            if ctype is CollectionType.RUN:
                result.append((cid, names[cid]))
            else:
                for child in chains.get(cid, []):
                    visit(child, known[names[child]][1])

        for name in collections:
            if name not in known:
                raise MissingCollectionError(
                    f"collection {name!r} does not exist{_suggest(str(name), known)}"
                )
            visit(*known[name])
        return result

    def resolve_collections(self, collections: Sequence[str] | str) -> list[str]:
        """Return the RUN collections searched, in order (chains flattened depth-first).

        Raises
        ------
        MissingCollectionError
            If a collection does not exist (with a near-miss suggestion).
        """
        with self._read() as connection:
            return [name for _, name in self._resolve_run_ids(connection, collections)]

    def remove_run(self, name: str) -> list[StoredFileInfo]:
        """Remove a RUN, its datasets, and its membership in chains.

        Returns
        -------
        infos : `list` [`StoredFileInfo`]
            The stored files of the removed datasets, for the datastore to delete.
        """
        dataset = self.schema.dataset
        chain = self.schema.collection_chain
        with self.transaction() as connection:
            run_id, run_type = self._collection(connection, name)
            if run_type is not CollectionType.RUN:
                raise CollectionTypeError(f"collection {name!r} is a {run_type.name}, not a RUN")
            infos = self._infos_where(connection, dataset.c.run_id == run_id)
            connection.execute(dataset.delete().where(dataset.c.run_id == run_id))
            connection.execute(chain.delete().where(chain.c.child_id == run_id))
            connection.execute(
                self.schema.collection.delete().where(self.schema.collection.c.id == run_id)
            )
        return infos

    def _infos_where(self, connection: sa.Connection, condition: Any) -> list[StoredFileInfo]:
        d = self.schema.dataset
        rows = connection.execute(
            sa.select(d.c.id, d.c.path, d.c.formatter, d.c.storage_class, d.c.file_size).where(
                condition, d.c.path.is_not(None)
            )
        ).all()
        return [
            StoredFileInfo(r.id, r.path, r.formatter, r.storage_class, r.file_size) for r in rows
        ]
