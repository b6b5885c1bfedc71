"""The SQL registry: dimension records, dataset types, collections and datasets.

Design
------
`SqlRegistry` is the registry's public face and the owner of its managers,
the way daf_butler keeps them. It wraps one SQLAlchemy engine and the
`RegistrySchema` built from the repository's dimension universe (stored in
the database, so `open` needs no configuration), and builds, each given only
what it needs:

- `Database` (`database`): transactions, per-thread connections, the
  compiled-SQL cache of hot statements; every manager takes it;
- `DimensionRecordManager` (`dimension_records`): dimension records, regions;
- `DatasetTypeManager` (`dataset_types`): dataset types and their cache;
- `CollectionManager` (`collections`): RUN, CHAINED and TAGGED collections;
- `DatasetTagManager` (`tags`): which datasets a TAGGED collection holds;
- `DatasetManager` (`datasets`): datasets, as a reading and a writing half,
  given the dataset types and collections it resolves names with;
- `RunLeaseManager` (`run_leases`): which process executes into a run.

The public methods delegate to the manager that owns the concept; the few
operations that span managers (`remove_run`: a run's datasets, then the
run) run here, in one transaction. No manager knows this class.

Mutable state: none of its own; see the managers' module docstrings (the
per-thread transaction connection and the compiled-SQL cache in
`database`, the dataset-type cache in `dataset_types`). Read-only mode is
checked in one place, `Database.transaction`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .._errors import (
    ConflictingDefinitionError,
    RepositoryNotFoundError,
    RepositoryVersionError,
)
from ..data_coordinate import DataCoordinate
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType, validate_name
from ..datastore.stored_file_info import StoredFileInfo
from ..dimensions import DimensionUniverse
from ._schema import SCHEMA_VERSION, RegistrySchema
from .collection_type import CollectionType
from .collections import CollectionManager
from .database import (
    Database,
    connection_error,
    display_url,
    make_engine,
    registry_schema,
)
from .dataset_types import DatasetTypeManager
from .datasets import DatasetManager
from .dimension_records import DimensionRecordManager
from .regions import Region
from .run_leases import RunLeaseManager
from .tags import DatasetTagManager

__all__ = ["SqlRegistry"]


class SqlRegistry:
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
        self.schema = RegistrySchema(universe)
        self._db = Database(engine, writeable=writeable)
        self._dimensions = DimensionRecordManager(self._db, self.schema, universe)
        self._dataset_types = DatasetTypeManager(self._db, self.schema, universe)
        self._collections = CollectionManager(self._db, self.schema)
        self._leases = RunLeaseManager(self._db, self.schema, self._collections)
        self._tags = DatasetTagManager(self._db, self.schema, self._collections)
        self._datasets = DatasetManager(
            self._db, self.schema, universe, self._dataset_types, self._collections
        )

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
            If the database (or the URL's schema) already holds a registry.
        RegistryConnectionError
            If the database cannot be reached, refuses the login, or its driver is
            missing (one line, without the password).

        Notes
        -----
        Everything is created in one transaction (PostgreSQL and SQLite both have
        transactional DDL): a failure leaves no table, schema or attribute behind.
        """
        engine = make_engine(db_url)
        _check_connection(engine, db_url)
        registry = cls(engine, universe, writeable=True)
        schema = registry_schema(db_url)
        with registry.transaction() as connection:
            if schema is not None:
                connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            if sa.inspect(connection).has_table("butler_attributes"):
                raise ConflictingDefinitionError(
                    f"a registry already exists at {display_url(db_url)}"
                )
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
            If the registry's schema version is not the one this software reads.
        RegistryConnectionError
            If the database cannot be reached, refuses the login, or its driver is
            missing (one line, without the password).
        """
        url = sa.make_url(db_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            if not Path(url.database).exists():
                raise RepositoryNotFoundError(f"no registry database at {url.database}")
        engine = make_engine(db_url)
        _check_connection(engine, db_url)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("butler_attributes"):
                engine.dispose()
                raise RepositoryNotFoundError(f"no registry tables in {display_url(db_url)}")
            attributes = dict(
                connection.execute(sa.text("SELECT name, value FROM butler_attributes")).all()
            )
        version = int(attributes.get("schema_version", "0"))
        if version == 1:  # version 2 added the dataset table's checksum column: migrate
            with engine.begin() as connection:
                connection.execute(sa.text("ALTER TABLE dataset ADD COLUMN checksum VARCHAR(80)"))
                connection.execute(
                    sa.text(
                        "UPDATE butler_attributes SET value = '2' WHERE name = 'schema_version'"
                    )
                )
            version = 2
        if version == 2:  # version 3 added TAGGED collections (the dataset_tag table)
            universe = DimensionUniverse(
                json.loads(attributes["universe"]), source=f"{db_url} universe"
            )
            with engine.begin() as connection:
                RegistrySchema(universe).dataset_tag.create(connection, checkfirst=True)
                connection.execute(
                    sa.text(
                        "UPDATE butler_attributes SET value = '3' WHERE name = 'schema_version'"
                    )
                )
            version = 3
        if version != SCHEMA_VERSION:
            engine.dispose()
            newer = version > SCHEMA_VERSION
            raise RepositoryVersionError(
                f"registry at {display_url(db_url)}: schema version {version} is "
                f"{'newer' if newer else 'older'} than this software supports "
                f"({SCHEMA_VERSION}); "
                + ("upgrade skyquanta" if newer else "no migration exists: use the skyquanta "
                   "that wrote it, or re-create the repository")
            )
        universe = DimensionUniverse(
            json.loads(attributes["universe"]), source=f"{db_url} universe"
        )
        return cls(engine, universe, writeable=writeable)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    @property
    def writeable(self) -> bool:
        """Whether writes are allowed."""
        return self._db.writeable

    @property
    def busy_timeout(self) -> float:
        """Seconds a write waits for a database that another process keeps busy.

        After that, the write raises `RegistryBusyError` (default 5 s).
        """
        return self._db.busy_timeout

    @busy_timeout.setter
    def busy_timeout(self, seconds: float) -> None:
        self._db.busy_timeout = float(seconds)

    def transaction(self) -> contextlib.AbstractContextManager[sa.Connection]:
        """Run a block in a transaction (a SAVEPOINT when nested); roll back on error.

        Raises
        ------
        ReadOnlyRegistryError
            If the registry was opened read-only.
        """
        return self._db.transaction()

    # -- dimension records -------------------------------------------------------

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
        InvalidNameError
            If an instrument's name breaks the naming rule (`validate_name`).
        """
        records = list(records)
        if element == "instrument":
            for record in records:
                _check_instrument(record)
        return self._dimensions.insert_dimension_records(
            element, records, skip_existing=skip_existing
        )

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
        InvalidNameError
            If an instrument's name breaks the naming rule (`validate_name`).
        """
        if element == "instrument":
            _check_instrument(record)
        return self._dimensions.sync_dimension_record(element, record)

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
        return self._dimensions.query_dimension_records(
            element, where=where, bind=bind, data_id=data_id
        )

    def set_region(self, element: str, data_id: Mapping[str, Any], region: Region) -> None:
        """Store a record's sky region and the sky pixels it overlaps.

        Raises
        ------
        DataIdError
            If the element is not spatial or the data ID lacks a key.
        DataIdValueError
            If no record has that data ID.
        """
        return self._dimensions.set_region(element, data_id, region)

    def get_region(self, element: str, data_id: Mapping[str, Any]) -> Region | None:
        """Return a record's region, or `None` if it has none.

        Raises
        ------
        DataIdValueError
            If no record has that data ID.
        """
        return self._dimensions.get_region(element, data_id)

    # -- dataset types ------------------------------------------------------------

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
        return self._dataset_types.register_dataset_type(dataset_type)

    def remove_dataset_type(self, name: str) -> None:
        """Remove a dataset type that no dataset uses.

        Raises
        ------
        MissingDatasetTypeError
            If it is not registered.
        ConflictingDefinitionError
            If datasets of this type exist (in any run).
        """
        self._dataset_types.remove_dataset_type(name)

    def get_dataset_type(self, name: str) -> DatasetType:
        """Return a registered dataset type.

        Raises
        ------
        MissingDatasetTypeError
            If it is not registered (with a near-miss suggestion).
        """
        return self._dataset_types.get_dataset_type(name)

    def query_dataset_types(self, pattern: str | None = None) -> list[DatasetType]:
        """Return registered dataset types whose names match a glob pattern, sorted by name."""
        return self._dataset_types.query_dataset_types(pattern)

    # -- collections -----------------------------------------------------------------

    def register_run(self, name: str) -> bool:
        """Register a RUN collection; True if new, False if it exists as a RUN."""
        return self._collections.register_run(name)

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
        return self._collections.register_collection(name, type)

    def get_collection_type(self, name: str) -> CollectionType:
        """Return a collection's type (`MissingCollectionError` if it does not exist)."""
        return self._collections.get_collection_type(name)

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
        return self._collections.set_collection_chain(parent, children)

    def update_collection_chain(
        self, parent: str, *, prepend: Sequence[str] = (), append: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """Change a CHAINED collection relative to its current children, atomically.

        The new children are ``prepend`` (in order), then the current children not in
        it, then the collections of ``append`` not yet there. The current children are
        read under a row lock on the parent, so concurrent updates never lose each
        other's changes (``pipetask run -o OUTPUT`` prepends its run this way).

        Returns
        -------
        children : `tuple` [`str`, ...]
            The chain as written.

        Raises
        ------
        MissingCollectionError
            If the parent or a child does not exist.
        CollectionTypeError
            If the parent is not CHAINED.
        CollectionError
            If the chain would contain itself (a cycle).
        """
        return self._collections.update_collection_chain(parent, prepend=prepend, append=append)

    def get_collection_chain(self, parent: str) -> tuple[str, ...]:
        """Return the children of a CHAINED collection in search order."""
        return self._collections.get_collection_chain(parent)

    def remove_collection(self, name: str) -> None:
        """Remove a CHAINED or TAGGED collection; its children and the datasets it tags stay.

        Raises
        ------
        MissingCollectionError
            If it does not exist.
        CollectionTypeError
            If it is a RUN (use `remove_run`: a RUN owns datasets).
        CollectionError
            If it is a child of another chain (remove it from there first).
        """
        self._collections.remove_collection(name)

    def associate(self, collection: str, refs: Iterable[DatasetRef | uuid.UUID]) -> int:
        """Add existing datasets to a TAGGED collection (daf_butler's ``associate``).

        A tagged collection holds at most one dataset per (dataset type, data ID); one
        already there is skipped. Searching the collection (also through a chain) finds
        the datasets, each with its own run.

        Returns
        -------
        added : `int`
            How many datasets were not in the collection before.

        Raises
        ------
        MissingCollectionError
            If the collection does not exist.
        CollectionTypeError
            If it is not TAGGED.
        DatasetNotFoundError
            If a dataset is not in the registry.
        ConflictingDefinitionError
            If the collection holds another dataset of the same type and data ID.
        """
        return self._tags.associate(collection, refs)

    def disassociate(self, collection: str, refs: Iterable[DatasetRef | uuid.UUID]) -> int:
        """Remove datasets from a TAGGED collection (they stay in their runs).

        Returns
        -------
        removed : `int`
            How many of them the collection held.

        Raises
        ------
        MissingCollectionError
            If the collection does not exist.
        CollectionTypeError
            If it is not TAGGED.
        """
        return self._tags.disassociate(collection, refs)

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
        return self._collections.query_collections(
            pattern, types=types, flatten_chains=flatten_chains
        )

    def resolve_collections(self, collections: Sequence[str] | str) -> list[str]:
        """Return the RUN collections searched, in order (chains flattened depth-first).

        Raises
        ------
        MissingCollectionError
            If a collection does not exist (with a near-miss suggestion).
        """
        return self._collections.resolve_collections(collections)

    def remove_run(self, name: str) -> list[StoredFileInfo]:
        """Remove a RUN, its datasets, and its membership in chains.

        Returns
        -------
        infos : `list` [`StoredFileInfo`]
            The stored files of the removed datasets, for the datastore to delete.
        """
        with self.transaction() as connection:
            run_id = self._collections.run_id(connection, name)
            infos = self._datasets.writes.remove_run_datasets(connection, run_id)
            self._leases.forget(connection, run_id)
            self._collections.remove(connection, run_id)
        return infos

    # -- run leases -------------------------------------------------------------------

    def acquire_run_lease(self, run: str, token: str, *, stale_after: float = 300.0) -> None:
        """Take the execution lease of ``run`` (see `run_leases`).

        Parameters
        ----------
        run : `str`
            An existing RUN collection.
        token : `str`
            Identifies the caller's execution (unique).
        stale_after : `float`
            Seconds without a heartbeat after which another host's lease is abandoned.

        Raises
        ------
        RunLeaseError
            If another live process holds it.
        """
        self._leases.acquire(run, token, stale_after=stale_after)

    def refresh_run_lease(self, run: str, token: str) -> bool:
        """Record a heartbeat of the caller's lease; False if it is no longer the caller's."""
        return self._leases.refresh(run, token)

    def release_run_lease(self, run: str, token: str) -> None:
        """Give back the caller's lease of ``run`` (nothing happens if it is not the caller's)."""
        self._leases.release(run, token)

    def run_lease(self, run: str) -> dict[str, Any] | None:
        """Return who holds the lease of ``run`` (token, host, pid, since, heartbeat), if any."""
        return self._leases.holder(run)

    # -- datasets ----------------------------------------------------------------------

    def get_dataset(self, id: uuid.UUID) -> DatasetRef | None:
        """Return the dataset with this ID, or `None`."""
        return self._datasets.reads.get_dataset(id)

    def get_stored_info(
        self, refs_or_ids: Iterable[DatasetRef | uuid.UUID]
    ) -> dict[uuid.UUID, StoredFileInfo]:
        """Return the stored files of the given datasets that have one, by dataset ID."""
        return self._datasets.reads.get_stored_info(refs_or_ids)

    def stored_artifacts(self) -> Iterator[tuple[str, str, str, StoredFileInfo]]:
        """Yield (run, dataset type name, data ID, stored file) of every dataset with a file."""
        return self._datasets.reads.stored_artifacts()

    def find_in_run(self, ref: DatasetRef) -> tuple[bool, uuid.UUID | None]:
        """Look up a run and what it holds for a ref's dataset type and data ID, in one query.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset about to be stored (its type must be registered).

        Returns
        -------
        run_exists : `bool`
            Whether ``ref.run`` exists as a RUN collection.
        existing : `uuid.UUID` or `None`
            ID of the dataset of the same type and data ID already in the run.

        Raises
        ------
        CollectionTypeError
            If ``ref.run`` exists but is not a RUN.
        """
        return self._datasets.reads.find_in_run(ref)

    def find_dataset(
        self,
        dataset_type: str | DatasetType,
        data_id: Mapping[str, Any],
        *,
        collections: Sequence[str] | str,
    ) -> DatasetRef | None:
        """Return the dataset of this type and data ID in the first collection that has one.

        Keys of ``data_id`` that are dimensions of the universe but not of the
        dataset type are ignored.

        Raises
        ------
        MissingDatasetTypeError, MissingCollectionError
            If the dataset type or a collection does not exist.
        DataIdError
            If the data ID lacks a key of the dataset type.
        """
        return self._datasets.reads.find_dataset(dataset_type, data_id, collections=collections)

    def query_datasets(
        self,
        dataset_type: str | DatasetType,
        *,
        collections: Sequence[str] | str,
        where: str = "",
        bind: Mapping[str, Any] | None = None,
        data_id: Mapping[str, Any] | None = None,
        find_first: bool = True,
    ) -> list[DatasetRef]:
        """Return datasets of a type in collections, constrained by ``where`` and ``data_id``.

        Parameters
        ----------
        dataset_type : `str` or `DatasetType`
            The dataset type.
        collections : `str` or `~collections.abc.Sequence` [`str`]
            Collections to search, in order.
        where : `str`
            Expression over dimension names (``visit``) and record fields
            (``visit.exposure_time``).
        bind : `~collections.abc.Mapping`, optional
            Values for names in ``where``.
        data_id : `~collections.abc.Mapping`, optional
            Required dimension values.
        find_first : `bool`
            Return only the dataset of the first collection that has one for
            each data ID (otherwise all, from every run).

        Returns
        -------
        refs : `list` [`DatasetRef`]
            Sorted by data ID, then search order.
        """
        return self._datasets.reads.query_datasets(
            dataset_type,
            collections=collections,
            where=where,
            bind=bind,
            data_id=data_id,
            find_first=find_first,
        )

    def query_data_ids(
        self,
        dimensions: Iterable[str],
        *,
        where: str = "",
        bind: Mapping[str, Any] | None = None,
        data_id: Mapping[str, Any] | None = None,
        datasets: Iterable[str] = (),
        collections: Sequence[str] | str | None = None,
    ) -> list[DataCoordinate]:
        """Return the data IDs of the given dimensions that have records and match.

        Implied dimensions (``physical_filter`` and ``band`` of a visit) are
        filled in `DataCoordinate.implied` where the records give them.

        The record tables of the requested dimensions (and those they require)
        are joined; with the sky pixelization among them, the overlap table of
        the most specific spatial element in the query (e.g.
        ``visit_detector_region`` for visit + detector) gives its values;
        ``datasets`` restricts to data IDs for which datasets of those types
        exist in ``collections``.

        Raises
        ------
        DataIdError
            If the sky pixelization is requested with neither a spatial
            element nor a dataset type to take it from.
        MissingCollectionError
            If ``datasets`` are given without ``collections``.
        """
        return self._datasets.reads.query_data_ids(
            dimensions,
            where=where,
            bind=bind,
            data_id=data_id,
            datasets=datasets,
            collections=collections,
        )

    def insert_datasets(
        self,
        refs: Sequence[DatasetRef],
        infos: Sequence[StoredFileInfo] | None = None,
        *,
        on_conflict: str = "raise",
    ) -> int:
        """Register datasets (and optionally their stored files) in one transaction.

        Parameters
        ----------
        refs : `~collections.abc.Sequence` [`DatasetRef`]
            The datasets; their dataset types must be registered and their
            runs exist.
        infos : `~collections.abc.Sequence` [`StoredFileInfo`], optional
            Stored files of (some of) the datasets.
        on_conflict : `str`
            ``"raise"``: a dataset whose ID is already registered is an error;
            ``"ignore"``: it is skipped.

        Returns
        -------
        count : `int`
            Number of datasets inserted.

        Raises
        ------
        DuplicateDatasetError
            If a run already holds a different dataset of the same type and
            data ID, or (``on_conflict="raise"``) the same dataset.
        MissingDatasetTypeError, MissingCollectionError, CollectionTypeError
            If a dataset type is not registered or a run does not exist.
        """
        return self._datasets.writes.insert_datasets(refs, infos, on_conflict=on_conflict)

    def store_info(self, infos: Iterable[StoredFileInfo]) -> None:
        """Record (or replace) the stored files of registered datasets.

        Raises
        ------
        DatasetNotFoundError
            If a dataset is not registered.
        """
        return self._datasets.writes.store_info(infos)

    def remove_datasets(self, refs: Iterable[DatasetRef | uuid.UUID]) -> list[StoredFileInfo]:
        """Remove datasets; return their stored files for the datastore to delete."""
        return self._datasets.writes.remove_datasets(refs)


def _check_connection(engine: sa.Engine, db_url: str) -> None:
    """Connect once; turn a refused connection or login into a one-line error."""
    try:
        with engine.connect():
            pass
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
        engine.dispose()
        raise connection_error(db_url, err) from err


def _check_instrument(record: Mapping[str, Any]) -> None:
    """Check an instrument record's name (it becomes part of file names and data IDs)."""
    name = record.get("name", record.get("instrument"))
    validate_name(name, what="instrument", instrument=True)
