"""Dataset lookups and queries: the reading half of the datasets manager.

Design
------
`DatasetReads` reads the one wide ``dataset`` table (see `_schema`).
Lookups in several collections resolve them to the RUN and TAGGED
collections searched, in order (`_Search`), and keep, per data ID, the
dataset of the first collection that has one ("find first"); a dataset
found through a TAGGED collection keeps its own run. Without TAGGED
collections in the search, the query is the plain ``run_id IN (...)``.
Large reads skip SQLAlchemy's per-row result processing (`_fetch_raw`)
and convert IDs with `as_uuid`; on SQLite, `get_stored_info` reads many
refs of one (dataset type, run) with one scan of that pair's rows.

No mutable state of its own: it uses the dataset-type cache of
`DatasetTypeManager`, and the `Database`'s connections and compiled-SQL cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .._errors import CollectionTypeError, DataIdError, MissingCollectionError
from ..data_coordinate import DataCoordinate
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore.stored_file_info import StoredFileInfo
from ..dimensions import DimensionUniverse
from ._queries import QueryBuilder
from ._schema import RegistrySchema
from ._util import chunks
from .collection_type import CollectionType
from .collections import CollectionManager
from .database import Database
from .dataset_types import DatasetTypeManager

__all__ = ["DatasetReads", "as_uuid", "infos_where"]


#: Refs of one (dataset type, run) from which `get_stored_info` considers a scan.
_SCAN_MIN = 1000

_UUID_NEW = uuid.UUID.__new__
_SET = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def as_uuid(value: Any) -> uuid.UUID:
    """Return a dataset ID from a driver value (16 bytes on SQLite, UUID or text elsewhere).

    The bytes case builds the `uuid.UUID` without its constructor's argument
    checks (several times faster; the result is an ordinary UUID): it is
    called once per row of large reads.
    """
    if type(value) is bytes:
        result = _UUID_NEW(uuid.UUID)
        _SET(result, "int", int.from_bytes(value, "big"))
        _SET(result, "is_safe", _UNKNOWN_SAFETY)
        return result
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        return uuid.UUID(value)
    return as_uuid(bytes(value))


def _fetch_raw(connection: sa.Connection, query: Any) -> list[Any]:
    """Run a SELECT and return the driver's rows as they are.

    Skips SQLAlchemy's per-row result processing (`Row` objects, the UUID
    type's conversion): the caller converts the few columns that need it.
    """
    result = connection.execute(query)
    try:
        return result.cursor.fetchall()  # type: ignore[attr-defined]
    finally:
        result.close()


def infos_where(
    connection: sa.Connection, dataset: sa.Table, condition: Any
) -> list[StoredFileInfo]:
    """Return the stored files of the datasets matching ``condition`` (also for removal)."""
    rows = connection.execute(
        sa.select(
            dataset.c.id,
            dataset.c.path,
            dataset.c.formatter,
            dataset.c.storage_class,
            dataset.c.file_size,
            dataset.c.checksum,
        ).where(condition, dataset.c.path.is_not(None))
    ).all()
    return [
        StoredFileInfo(r.id, r.path, r.formatter, r.storage_class, r.file_size, r.checksum)
        for r in rows
    ]


class DatasetReads:
    """Dataset lookups and queries.

    Parameters
    ----------
    db : `Database`
        Connections and compiled hot statements.
    schema : `RegistrySchema`
        The registry's tables (the ``dataset`` table, and the dimension
        tables for queries).
    universe : `DimensionUniverse`
        The repository's dimensions.
    dataset_types : `DatasetTypeManager`
        The registry's dataset types.
    collections : `CollectionManager`
        The registry's collections, to resolve the collections searched to RUNs.
    """

    def __init__(
        self,
        db: Database,
        schema: RegistrySchema,
        universe: DimensionUniverse,
        dataset_types: DatasetTypeManager,
        collections: CollectionManager,
    ) -> None:
        self._db = db
        self.schema = schema
        self.universe = universe
        self._dataset_types = dataset_types
        self._collections = collections

    # -- lookups --------------------------------------------------------------------------

    def get_dataset(self, id: uuid.UUID) -> DatasetRef | None:
        """Return the dataset with this ID, or `None`."""
        dataset = self.schema.dataset
        collection = self.schema.collection
        with self._db.read() as connection:
            row = connection.execute(
                sa.select(dataset, collection.c.name.label("run_name"))
                .join(collection, collection.c.id == dataset.c.run_id)
                .where(dataset.c.id == id)
            ).first()
        if row is None:
            return None
        dataset_type = self._dataset_types.by_id(row.dataset_type_id)
        group = dataset_type.dimensions
        data_id = DataCoordinate(group, tuple(getattr(row, d) for d in group.required))
        return DatasetRef(dataset_type, data_id, row.run_name, row.id)

    def stored_artifacts(self) -> Iterator[tuple[str, str, str, StoredFileInfo]]:
        """Yield (run, dataset type name, data ID, stored file) of every dataset with a file.

        Rows are read in batches of 10,000 (one query; a repository may hold millions).
        """
        dataset, collection = self.schema.dataset, self.schema.collection
        names = {}
        with self._db.read() as connection:
            result = connection.execution_options(yield_per=10_000).execute(
                sa.select(
                    collection.c.name,
                    dataset.c.dataset_type_id,
                    dataset.c.data_id,
                    dataset.c.id,
                    dataset.c.path,
                    dataset.c.formatter,
                    dataset.c.storage_class,
                    dataset.c.file_size,
                    dataset.c.checksum,
                )
                .join(collection, collection.c.id == dataset.c.run_id)
                .where(dataset.c.path.is_not(None))
            )
            for run, type_id, data_id, *fields in result:
                if type_id not in names:
                    names[type_id] = self._dataset_types.by_id(type_id).name
                yield run, names[type_id], data_id, StoredFileInfo(as_uuid(fields[0]), *fields[1:])

    def get_stored_info(
        self, refs_or_ids: Iterable[DatasetRef | uuid.UUID]
    ) -> dict[uuid.UUID, StoredFileInfo]:
        """Return the stored files of the given datasets that have one, by dataset ID."""
        ids = [r.id if isinstance(r, DatasetRef) else r for r in refs_or_ids]
        dataset = self.schema.dataset
        result: dict[uuid.UUID, StoredFileInfo] = {}
        with self._db.read() as connection:
            if connection.dialect.name != "sqlite":
                for chunk in chunks(ids):
                    for info in infos_where(connection, dataset, dataset.c.id.in_(chunk)):
                        result[info.dataset_id] = info
                return result
            # SQLite: raw 16-byte IDs straight to the driver. Many refs of one
            # (dataset type, run) are read with one scan of that pair's rows;
            # the rest by IN-lists of IDs.
            refs = [r for r in refs_or_ids if isinstance(r, DatasetRef)]
            by_pair = self._pairs_to_scan(connection, refs)
            for (type_id, run_id), wanted in by_pair.items():
                rows = connection.exec_driver_sql(
                    "SELECT id, path, formatter, storage_class, file_size, checksum FROM dataset "
                    "WHERE run_id = ? AND dataset_type_id = ? AND path IS NOT NULL",
                    (run_id, type_id),
                ).cursor.fetchall()
                self._add_infos(result, rows, wanted)
            rest = ids
            scanned = sum(len(wanted) for wanted in by_pair.values())
            if scanned == len(ids):
                rest = []
            elif scanned:
                done = {i for wanted in by_pair.values() for i in wanted.values()}
                rest = [i for i in ids if i not in done]
            for chunk in chunks(rest):
                wanted = {i.bytes: i for i in chunk}
                statement = (
                    "SELECT id, path, formatter, storage_class, file_size, checksum FROM dataset "
                    f"WHERE path IS NOT NULL AND id IN ({','.join('?' * len(wanted))})"
                )
                rows = connection.exec_driver_sql(statement, tuple(wanted)).cursor.fetchall()
                self._add_infos(result, rows, wanted)
        return result

    @staticmethod
    def _add_infos(
        result: dict[uuid.UUID, StoredFileInfo],
        rows: Iterable[tuple[Any, ...]],
        wanted: Mapping[bytes, uuid.UUID],
    ) -> None:
        """Add the `StoredFileInfo` of the rows whose raw ID is in ``wanted``."""
        for raw_id, path, formatter, storage_class, file_size, checksum in rows:
            dataset_id = wanted.get(raw_id)
            if dataset_id is not None:
                result[dataset_id] = StoredFileInfo(
                    dataset_id, path, formatter, storage_class, file_size, checksum
                )

    def _pairs_to_scan(
        self, connection: sa.Connection, refs: Sequence[DatasetRef]
    ) -> dict[tuple[int, int], dict[bytes, uuid.UUID]]:
        """Group refs by (dataset type ID, run ID) where reading the pair's rows is cheaper.

        That is where the refs are at least a quarter of the pair's datasets
        (and there are enough of them to matter), so a scan reads little
        that was not asked for.
        """
        groups: dict[tuple[str, str], list[uuid.UUID]] = {}
        for ref in refs:
            groups.setdefault((ref.dataset_type.name, ref.run), []).append(ref.id)
        big = {pair: ids for pair, ids in groups.items() if len(ids) >= _SCAN_MIN}
        if not big:
            return {}
        collections = self._collections.collections_named(connection, {run for _, run in big})
        result: dict[tuple[int, int], dict[bytes, uuid.UUID]] = {}
        for (name, run), ids in big.items():
            entry = self._dataset_types.cached_entry(name)
            if entry is None or run not in collections:
                continue
            key = (entry[0], collections[run][0])
            total = connection.exec_driver_sql(
                "SELECT count(*) FROM dataset WHERE run_id = ? AND dataset_type_id = ?",
                (key[1], key[0]),
            ).scalar_one()
            if 4 * len(ids) >= total:
                result[key] = {i.bytes: i for i in ids}
        return result

    def find_in_run(self, ref: DatasetRef) -> tuple[bool, uuid.UUID | None]:
        """Look up a run and what it holds for a ref's dataset type and data ID, in one query.

        See `SqlRegistry.find_in_run`.
        """
        type_id, _ = self._dataset_types.entry(ref.dataset_type)
        collection, dataset = self.schema.collection, self.schema.dataset

        def build() -> Any:
            joined = collection.outerjoin(
                dataset,
                sa.and_(
                    dataset.c.run_id == collection.c.id,
                    dataset.c.dataset_type_id == sa.bindparam("type_id"),
                    dataset.c.data_id == sa.bindparam("data_id"),
                ),
            )
            return (
                sa.select(collection.c.type, dataset.c.id)
                .select_from(joined)
                .where(collection.c.name == sa.bindparam("run"))
            )

        params = {"type_id": type_id, "data_id": ref.data_id.canonical_string(), "run": ref.run}
        with self._db.read() as connection:
            row = self._db.execute_cached(connection, "find_in_run", build, params).first()
        if row is None:
            return False, None
        if row[0] != CollectionType.RUN:
            raise CollectionTypeError(
                f"cannot put into {ref.run!r}: it is a {CollectionType(row[0]).name} "
                "collection, not a RUN"
            )
        return True, None if row[1] is None else as_uuid(row[1])

    def find_dataset(
        self,
        dataset_type: str | DatasetType,
        data_id: Mapping[str, Any],
        *,
        collections: Sequence[str] | str,
    ) -> DatasetRef | None:
        """Return the dataset of this type and data ID in the first collection that has one.

        See `SqlRegistry.find_dataset`.
        """
        type_id, dt = self._dataset_types.entry(dataset_type)
        group = dt.dimensions
        names = set(group.required) | set(group.implied)
        data_id = {k: v for k, v in dict(data_id).items() if k in names or k not in self.universe}
        coordinate = DataCoordinate.standardize(data_id, group)
        dataset, tag = self.schema.dataset, self.schema.dataset_tag
        key = coordinate.canonical_string()
        with self._db.read() as connection:
            search = _Search(self, connection, collections)
            found: list[tuple[int, Any, int]] = []  # (rank, ID, run ID)
            if search.runs:
                rows = connection.execute(
                    sa.select(dataset.c.id, dataset.c.run_id).where(
                        dataset.c.dataset_type_id == type_id,
                        dataset.c.data_id == key,
                        dataset.c.run_id.in_(search.runs),
                    )
                ).all()
                found += [(search.rank[r.run_id], r.id, r.run_id) for r in rows]
            if search.tags:  # through the tag table's (collection, type, data ID) index
                rows = connection.execute(
                    sa.select(dataset.c.id, dataset.c.run_id, tag.c.collection_id)
                    .select_from(tag.join(dataset, dataset.c.id == tag.c.dataset_id))
                    .where(
                        tag.c.collection_id.in_(search.tags),
                        tag.c.dataset_type_id == type_id,
                        tag.c.data_id == key,
                    )
                ).all()
                found += [(search.rank[r.collection_id], r.id, r.run_id) for r in rows]
            if not found:
                return None
            _, best_id, run_id = min(found, key=lambda item: item[0])
            run = search.run_names([run_id])[run_id]
        return DatasetRef(dt, coordinate, run, best_id)

    # -- queries ------------------------------------------------------------------------------

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

        See `SqlRegistry.query_datasets`.
        """
        type_id, dt = self._dataset_types.entry(dataset_type)
        dataset = self.schema.dataset
        group = dt.dimensions
        with self._db.read() as connection:
            search = _Search(self, connection, collections)
            if not search.rank:
                return []
            rows: list[Any] = []  # (ID, run ID, data ID values...)
            if search.runs:
                builder = QueryBuilder(self.schema)
                builder.join(
                    dataset,
                    [dataset.c.dataset_type_id == type_id, dataset.c.run_id.in_(search.runs)],
                )
                for dim in group.required:
                    builder.values[dim] = dataset.c[dim]
                builder.constrain(where, bind, data_id)
                query = builder.select(
                    dataset.c.id, dataset.c.run_id, *(dataset.c[d] for d in group.required)
                )
                rows = _fetch_raw(connection, query)
            tagged: list[Any] = []  # (ID, run ID, tagged collection ID, data ID values...)
            if search.tags:
                tag = self.schema.dataset_tag
                builder = QueryBuilder(self.schema)
                builder.join(
                    tag,
                    [tag.c.collection_id.in_(search.tags), tag.c.dataset_type_id == type_id],
                )
                builder.join(dataset, [dataset.c.id == tag.c.dataset_id])
                for dim in group.required:
                    builder.values[dim] = dataset.c[dim]
                builder.constrain(where, bind, data_id)
                query = builder.select(
                    dataset.c.id,
                    dataset.c.run_id,
                    tag.c.collection_id,
                    *(dataset.c[d] for d in group.required),
                )
                tagged = _fetch_raw(connection, query)
            run_names = search.run_names(
                search.runs if not tagged else {row[1] for row in (*rows, *tagged)}
            )
        rank = search.rank
        if not tagged:  # the common case, as fast as before tags existed
            if len(rank) == 1 or not find_first:
                found = rows
            else:
                first: dict[tuple[Any, ...], Any] = {}
                for row in rows:
                    values = row[2:]
                    current = first.get(values)
                    if current is None or rank[row[1]] < rank[current[1]]:
                        first[values] = row
                found = list(first.values())
            # Sorted by data ID, then search order.
            found.sort(key=lambda row: (row[2:], rank[row[1]]))
            return [
                DatasetRef(
                    dt, DataCoordinate(group, tuple(row[2:])), run_names[row[1]], as_uuid(row[0])
                )
                for row in found
            ]
        # rank each row by the first collection holding it, one row per dataset
        ranked: dict[Any, tuple[int, tuple[Any, ...]]] = {}
        for row in rows:
            ranked[row[0]] = (rank[row[1]], tuple(row))
        for row in tagged:
            order = rank[row[2]]
            current = ranked.get(row[0])
            if current is None or order < current[0]:
                ranked[row[0]] = (order, (row[0], row[1], *row[3:]))
        pairs = list(ranked.values())
        if find_first:
            best: dict[tuple[Any, ...], tuple[int, Any]] = {}
            for order, row in pairs:
                values = row[2:]
                held = best.get(values)
                if held is None or order < held[0]:
                    best[values] = (order, row)
            pairs = list(best.values())
        pairs.sort(key=lambda pair: (pair[1][2:], pair[0]))
        return [
            DatasetRef(
                dt, DataCoordinate(group, tuple(row[2:])), run_names[row[1]], as_uuid(row[0])
            )
            for _, row in pairs
        ]

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

        See `SqlRegistry.query_data_ids`.
        """
        group = self.universe.group(dimensions)
        skypix = self.universe.skypix.name
        datasets = list(datasets)
        builder = QueryBuilder(self.schema)
        with self._db.read() as connection:
            for dim in group.required:
                if dim != skypix:
                    builder.join_element(dim)
            if skypix in group.required:
                builder.join_overlaps(skypix)
            if datasets:
                if collections is None:
                    raise MissingCollectionError(
                        "querying data IDs with datasets needs collections"
                    )
                search = _Search(self, connection, collections)
                for name in datasets:
                    type_id, dt = self._dataset_types.entry(name)
                    alias = self.schema.dataset.alias(f"ds_{name}")
                    on = [alias.c.dataset_type_id == type_id, search.holds(alias)]
                    for dim in dt.dimensions.required:
                        if dim in builder.values:
                            on.append(alias.c[dim] == builder.values[dim])
                        elif dim in group.required:
                            builder.values[dim] = alias.c[dim]
                    builder.join(alias, on)
            if skypix in group.required and skypix not in builder.values:
                raise DataIdError(
                    f"cannot enumerate {skypix} values: the query has no spatial element "
                    f"(e.g. visit) and no dataset type with {skypix}"
                )
            builder.constrain(where, bind, data_id)
            columns = [builder.values[d] for d in group.required]
            implied = []
            for dim in group.implied:
                try:
                    implied.append((dim, builder.dimension_column(dim)))
                except KeyError:
                    continue
            # No DISTINCT: ordering by every selected column puts duplicates next
            # to each other, and dropping them here is cheaper than the
            # database's extra temporary B-tree.
            selected = [*columns, *(c for _, c in implied)]
            rows = _fetch_raw(connection, builder.select(*selected).order_by(*selected))
        n = len(columns)
        names = [dim for dim, _ in implied]
        result = []
        previous = None
        for row in rows:
            if row == previous:
                continue
            previous = row
            if not names:
                result.append(DataCoordinate(group, tuple(row)))
                continue
            known = dict(zip(names, row[n:], strict=True))
            if None in known.values():
                known = {dim: value for dim, value in known.items() if value is not None}
            result.append(DataCoordinate(group, tuple(row[:n]), known))
        return result


class _Search:
    """The RUN and TAGGED collections a dataset lookup searches, in order.

    A dataset is in the search if its run is one of the RUNs or a TAGGED collection of the
    search holds it; its rank is the position of the first of those. Lookups query the RUNs
    as before (``run_id IN (...)``) and, only if there are TAGGED collections, the tag table
    joined to the datasets, which says which collection holds each row.

    Parameters
    ----------
    reads : `DatasetReads`
        Whose schema and collections are used.
    connection : `sqlalchemy.Connection`
        The connection of the lookup.
    collections : `str` or sequence of `str`
        The collections searched, in order.
    """

    def __init__(
        self, reads: DatasetReads, connection: sa.Connection, collections: Sequence[str] | str
    ) -> None:
        self._connection = connection
        self._schema = reads.schema
        searched = reads._collections.resolve_search(connection, collections)
        self.rank = {cid: i for i, (cid, _, _) in enumerate(searched)}
        self._names = {cid: name for cid, name, ctype in searched if ctype is CollectionType.RUN}
        self.runs = list(self._names)
        self.tags = [cid for cid, _, ctype in searched if ctype is CollectionType.TAGGED]

    def holds(self, dataset: Any) -> Any:
        """Return the SQL condition that a row of ``dataset`` (or an alias) is in the search."""
        in_runs = dataset.c.run_id.in_(self.runs)
        if not self.tags:
            return in_runs
        tag = self._schema.dataset_tag
        tagged = sa.select(tag.c.dataset_id).where(tag.c.collection_id.in_(self.tags))
        return sa.or_(in_runs, dataset.c.id.in_(tagged))

    def run_names(self, run_ids: Iterable[int]) -> dict[int, str]:
        """Return the names of runs of found datasets (a tagged dataset's run may be outside)."""
        wanted = set(run_ids)
        result = {cid: name for cid, name in self._names.items() if cid in wanted}
        others = wanted - result.keys()
        if others:
            collection = self._schema.collection
            rows = self._connection.execute(
                sa.select(collection.c.id, collection.c.name).where(
                    collection.c.id.in_(list(others))
                )
            ).all()
            result.update((r.id, r.name) for r in rows)
        return result
