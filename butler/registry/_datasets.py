"""Dataset registration, lookup, queries and removal for `SqlRegistry`.

Design
------
`DatasetsMixin` holds the dataset half of `SqlRegistry`'s API, over the one
wide ``dataset`` table (see `_schema`). Registration validates dataset types
and runs once per (dataset type, run) pair, builds one row per ref and
inserts each dataset type's rows with one ``executemany``; only when the
database reports an integrity error does it query what conflicted, to
raise an error naming the dataset type, data ID and run. Lookups in several
collections resolve them to RUNs in search order and keep, per data ID, the
dataset of the first RUN that has one ("find first").

The checks of dataset types and runs are the only ones on SQLite, where the
dataset table has no foreign keys (they cost ~5-10% of a bulk insert); they
read the collections inside the inserting transaction, and `remove_run`
deletes a run's datasets before the run.

No state beyond the registry's own (see `sql_registry`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .._errors import (
    CollectionTypeError,
    DataIdError,
    DatasetNotFoundError,
    DuplicateDatasetError,
    MissingCollectionError,
)
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore.stored_file_info import StoredFileInfo
from ..dimensions import DataCoordinate
from ._queries import QueryBuilder
from ._schema import DatasetIdType
from ._util import chunks, insert_ignoring, suggest
from .collection_type import CollectionType

if TYPE_CHECKING:
    from .sql_registry import SqlRegistry

__all__ = ["DatasetsMixin"]


#: Refs of one (dataset type, run) from which `get_stored_info` considers a scan.
_SCAN_MIN = 1000

_FIXED_HEAD = ("id", "dataset_type_id", "run_id", "data_id")
_FIXED_TAIL = ("path", "formatter", "storage_class", "file_size")


@dataclasses.dataclass(frozen=True, slots=True)
class _Batch:
    """Rows of datasets with the same dimensions, as tuples in ``columns`` order."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


_UUID_NEW = uuid.UUID.__new__
_SET = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def _as_uuid(value: Any) -> uuid.UUID:
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
    return _as_uuid(bytes(value))


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


class DatasetsMixin:
    """Dataset methods of `SqlRegistry` (see there for the attributes used)."""

    # -- registration ---------------------------------------------------------------

    def _prepare_rows(
        self: SqlRegistry,
        connection: sa.Connection,
        refs: Sequence[DatasetRef],
        infos: Sequence[StoredFileInfo],
    ) -> dict[tuple[str, ...], _Batch]:
        """Validate refs and build one batch of row tuples per set of dimensions.

        The ID goes into the row already converted for the driver (16 bytes on
        SQLite), so the rows can be handed to ``executemany`` as they are.
        When ``infos`` are given in the same order as ``refs`` (the usual case:
        one info per ref, made from it), they are paired by position; otherwise
        by dataset ID.
        """
        collections = self._collections(connection)
        raw_ids = DatasetIdType.stores_bytes(connection.dialect)
        if len(infos) == len(refs):
            batches = self._build_rows(refs, infos, None, collections, raw_ids)
            if batches is not None:
                return batches
        info_by_id = {info.dataset_id: info for info in infos}
        batches = self._build_rows(refs, None, info_by_id, collections, raw_ids)
        assert batches is not None
        stray = set(info_by_id).difference(ref.id for ref in refs) if info_by_id else ()
        if stray:
            raise DatasetNotFoundError(
                "stored file info given for dataset(s) not being inserted: "
                f"{sorted(map(str, stray))[:5]}"
            )
        return batches

    def _build_rows(
        self: SqlRegistry,
        refs: Sequence[DatasetRef],
        infos: Sequence[StoredFileInfo] | None,
        info_by_id: Mapping[uuid.UUID, StoredFileInfo] | None,
        collections: Mapping[str, tuple[int, CollectionType]],
        raw_ids: bool,
    ) -> dict[tuple[str, ...], _Batch] | None:
        """Build the rows of `_prepare_rows`, with infos by position or by ID.

        By position (``infos``), return `None` as soon as an info is not for
        the ref at its position. This is the hot loop of bulk registration:
        one pass, no per-row function calls beyond the data ID's (cached)
        canonical string.
        """
        keys: dict[tuple[str, str], tuple[int, int, tuple[str, ...]]] = {}
        batches: dict[tuple[str, ...], _Batch] = {}
        no_file = (None, None, None, None)
        last_pair: tuple[str, str] | None = None
        type_id = run_id = 0
        dims: tuple[str, ...] = ()
        append: Any = None
        for i, ref in enumerate(refs):
            pair = (ref.dataset_type.name, ref.run)
            if pair != last_pair:
                entry = keys.get(pair)
                if entry is None:
                    entry = keys[pair] = self._batch_key(ref, collections)
                    if entry[2] not in batches:
                        batches[entry[2]] = _Batch(_FIXED_HEAD + entry[2] + _FIXED_TAIL, [])
                type_id, run_id, dims = entry
                append = batches[dims].rows.append
                last_pair = pair
            data_id = ref.data_id
            required = data_id.group.required
            if required is not dims and required != dims:
                self._batch_key(ref, collections)  # raises the DataIdError
            dataset_id = ref.id
            if infos is not None:
                info = infos[i]
                if info.dataset_id is not dataset_id and info.dataset_id != dataset_id:
                    return None
            else:
                info = info_by_id.get(dataset_id)  # type: ignore[union-attr]
            tail = (
                no_file
                if info is None
                else (info.path, info.formatter, info.storage_class, info.file_size)
            )
            append(
                (
                    dataset_id.int.to_bytes(16, "big") if raw_ids else dataset_id,  # = .bytes
                    type_id,
                    run_id,
                    data_id.canonical_string(),
                    *data_id.values_tuple,
                    *tail,
                )
            )
        return batches

    def _batch_key(
        self: SqlRegistry, ref: DatasetRef, collections: Mapping[str, tuple[int, CollectionType]]
    ) -> tuple[int, int, tuple[str, ...]]:
        type_id, dataset_type = self._dataset_type_entry(ref.dataset_type)
        if ref.run not in collections:
            raise MissingCollectionError(
                f"cannot insert dataset {ref.dataset_type.name} {ref.data_id}: "
                f"run {ref.run!r} does not exist{suggest(ref.run, collections)}"
            )
        run_id, run_type = collections[ref.run]
        if run_type is not CollectionType.RUN:
            raise CollectionTypeError(
                f"cannot insert dataset {ref.dataset_type.name} {ref.data_id} into "
                f"{ref.run!r}: it is a {run_type.name} collection, not a RUN"
            )
        dims = dataset_type.dimensions.required
        if ref.data_id.group.required != dims:
            raise DataIdError(
                f"dataset {ref.dataset_type.name}: data ID {ref.data_id} does not have the "
                f"dimensions {dataset_type.dimensions}"
            )
        return type_id, run_id, dims

    def insert_datasets(
        self: SqlRegistry,
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
        if on_conflict not in ("raise", "ignore"):
            raise ValueError(f"on_conflict must be 'raise' or 'ignore', got {on_conflict!r}")
        refs = list(refs)
        infos = list(infos or ())
        if not refs and not infos:
            return 0
        with self.transaction() as connection:
            batches = self._prepare_rows(connection, refs, infos)
            count = 0
            try:
                with self.transaction():
                    for batch in batches.values():
                        count += self._execute_insert(
                            connection, batch, ignore=on_conflict == "ignore"
                        )
            except sa.exc.IntegrityError as err:
                # Diagnose only on failure, to keep the common path fast.
                self._check_batch_duplicates(refs, on_conflict)
                self._explain_conflict(connection, batches, refs)
                raise DuplicateDatasetError(f"could not insert datasets: {err.orig}") from err
        return count

    def _execute_insert(
        self: SqlRegistry, connection: sa.Connection, batch: _Batch, *, ignore: bool
    ) -> int:
        """Run one executemany of ``batch`` on the driver; return the rows inserted.

        The INSERT is compiled once by SQLAlchemy for the connection's dialect;
        rows go to the DBAPI as tuples, skipping SQLAlchemy's per-row parameter
        processing (the slowest part of a bulk insert); `_prepare_rows` has
        already converted the UUIDs for the driver. With ``ignore``, rows
        whose ID exists are skipped by the database (``ON CONFLICT (id) DO
        NOTHING``); a clash on (run, dataset type, data ID) still raises.
        """
        dialect = connection.dialect
        dataset = self.schema.dataset
        statement = insert_ignoring(connection, dataset, ["id"]) if ignore else dataset.insert()
        compiled = statement.compile(dialect=dialect, column_keys=list(batch.columns))
        rows = batch.rows
        if compiled.positional and tuple(compiled.positiontup or ()) == batch.columns:
            result = connection.exec_driver_sql(str(compiled), rows)
        else:
            names = [compiled.bind_names[compiled.binds[c]] for c in batch.columns]
            result = connection.exec_driver_sql(
                str(compiled), [dict(zip(names, row, strict=True)) for row in rows]
            )
        return len(rows) if not ignore else result.rowcount

    @staticmethod
    def _check_batch_duplicates(refs: Sequence[DatasetRef], on_conflict: str) -> None:
        """Raise a `DuplicateDatasetError` if ``refs`` hold two datasets for one data ID."""
        seen: dict[tuple[str, str, DataCoordinate], DatasetRef] = {}
        for ref in refs:
            other = seen.setdefault((ref.dataset_type.name, ref.run, ref.data_id), ref)
            if other is not ref and (other.id != ref.id or on_conflict == "raise"):
                raise DuplicateDatasetError(
                    f"dataset {ref.dataset_type.name} {ref.data_id} is given twice for run "
                    f"{ref.run!r} (ids {other.id} and {ref.id})"
                )

    def _explain_conflict(
        self: SqlRegistry,
        connection: sa.Connection,
        batches: Mapping[tuple[str, ...], _Batch],
        refs: Sequence[DatasetRef],
    ) -> None:
        """Raise a `DuplicateDatasetError` naming the first conflicting dataset, if found."""
        dataset = self.schema.dataset
        by_id = {ref.id: ref for ref in refs}
        for batch in batches.values():
            for chunk in chunks(batch.rows):
                ids = [_as_uuid(row[0]) for row in chunk]
                same = connection.execute(
                    sa.select(dataset.c.id).where(dataset.c.id.in_(ids))
                ).first()
                if same is not None:
                    ref = by_id[same.id]
                    raise DuplicateDatasetError(
                        f"dataset {ref.dataset_type.name} {ref.data_id} (id {ref.id}) is already "
                        f"registered in run {ref.run!r}"
                    )
                keys = {(row[1], row[2], row[3]): i for row, i in zip(chunk, ids, strict=True)}
                clash = connection.execute(
                    sa.select(
                        dataset.c.id, dataset.c.dataset_type_id, dataset.c.run_id, dataset.c.data_id
                    ).where(
                        dataset.c.dataset_type_id.in_({row[1] for row in chunk}),
                        dataset.c.data_id.in_([row[3] for row in chunk]),
                    )
                ).all()
                for row in clash:
                    new_id = keys.get((row.dataset_type_id, row.run_id, row.data_id))
                    if new_id is not None:
                        ref = by_id[new_id]
                        raise DuplicateDatasetError(
                            f"run {ref.run!r} already holds a dataset {ref.dataset_type.name} "
                            f"{ref.data_id} with id {row.id}; cannot add another with id {ref.id}"
                        )

    def store_info(self: SqlRegistry, infos: Iterable[StoredFileInfo]) -> None:
        """Record (or replace) the stored files of registered datasets.

        Raises
        ------
        DatasetNotFoundError
            If a dataset is not registered.
        """
        infos = list(infos)
        if not infos:
            return
        dataset = self.schema.dataset
        with self.transaction() as connection:
            ids = [info.dataset_id for info in infos]
            found: set[uuid.UUID] = set()
            for chunk in chunks(ids):
                found.update(
                    connection.execute(sa.select(dataset.c.id).where(dataset.c.id.in_(chunk)))
                    .scalars()
                    .all()
                )
            missing = [str(i) for i in ids if i not in found]
            if missing:
                raise DatasetNotFoundError(f"no registered dataset with id(s) {missing[:5]}")
            statement = (
                dataset.update()
                .where(dataset.c.id == sa.bindparam("b_id"))
                .values(
                    path=sa.bindparam("b_path"),
                    formatter=sa.bindparam("b_formatter"),
                    storage_class=sa.bindparam("b_storage_class"),
                    file_size=sa.bindparam("b_file_size"),
                )
            )
            connection.execute(
                statement,
                [
                    {
                        "b_id": i.dataset_id,
                        "b_path": i.path,
                        "b_formatter": i.formatter,
                        "b_storage_class": i.storage_class,
                        "b_file_size": i.file_size,
                    }
                    for i in infos
                ],
            )

    # -- lookups --------------------------------------------------------------------------

    def _dataset_type_by_id(self: SqlRegistry, type_id: int) -> DatasetType:
        for entry_id, dataset_type in self._dataset_types.values():
            if entry_id == type_id:
                return dataset_type
        table = self.schema.dataset_type
        with self._read() as connection:
            name = connection.execute(
                sa.select(table.c.name).where(table.c.id == type_id)
            ).scalar_one()
        return self._dataset_type_entry(name)[1]

    def get_dataset(self: SqlRegistry, id: uuid.UUID) -> DatasetRef | None:
        """Return the dataset with this ID, or `None`."""
        dataset = self.schema.dataset
        collection = self.schema.collection
        with self._read() as connection:
            row = connection.execute(
                sa.select(dataset, collection.c.name.label("run_name"))
                .join(collection, collection.c.id == dataset.c.run_id)
                .where(dataset.c.id == id)
            ).first()
        if row is None:
            return None
        dataset_type = self._dataset_type_by_id(row.dataset_type_id)
        group = dataset_type.dimensions
        data_id = DataCoordinate(group, tuple(getattr(row, d) for d in group.required))
        return DatasetRef(dataset_type, data_id, row.run_name, row.id)

    def get_stored_info(
        self: SqlRegistry, refs_or_ids: Iterable[DatasetRef | uuid.UUID]
    ) -> dict[uuid.UUID, StoredFileInfo]:
        """Return the stored files of the given datasets that have one, by dataset ID."""
        ids = [r.id if isinstance(r, DatasetRef) else r for r in refs_or_ids]
        dataset = self.schema.dataset
        result: dict[uuid.UUID, StoredFileInfo] = {}
        with self._read() as connection:
            if connection.dialect.name != "sqlite":
                for chunk in chunks(ids):
                    for info in self._infos_where(connection, dataset.c.id.in_(chunk)):
                        result[info.dataset_id] = info
                return result
            # SQLite: raw 16-byte IDs straight to the driver. Many refs of one
            # (dataset type, run) are read with one scan of that pair's rows;
            # the rest by IN-lists of IDs.
            refs = [r for r in refs_or_ids if isinstance(r, DatasetRef)]
            by_pair = self._pairs_to_scan(connection, refs)
            for (type_id, run_id), wanted in by_pair.items():
                rows = connection.exec_driver_sql(
                    "SELECT id, path, formatter, storage_class, file_size FROM dataset "
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
                    "SELECT id, path, formatter, storage_class, file_size FROM dataset "
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
        for raw_id, path, formatter, storage_class, file_size in rows:
            dataset_id = wanted.get(raw_id)
            if dataset_id is not None:
                result[dataset_id] = StoredFileInfo(
                    dataset_id, path, formatter, storage_class, file_size
                )

    def _pairs_to_scan(
        self: SqlRegistry, connection: sa.Connection, refs: Sequence[DatasetRef]
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
        collections = self._collections(connection)
        result: dict[tuple[int, int], dict[bytes, uuid.UUID]] = {}
        for (name, run), ids in big.items():
            entry = self._dataset_types.get(name)
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

    def find_dataset(
        self: SqlRegistry,
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
        type_id, dt = self._dataset_type_entry(dataset_type)
        group = dt.dimensions
        names = set(group.required) | set(group.implied)
        data_id = {k: v for k, v in dict(data_id).items() if k in names or k not in self.universe}
        coordinate = DataCoordinate.standardize(data_id, group)
        dataset = self.schema.dataset
        with self._read() as connection:
            runs = self._resolve_run_ids(connection, collections)
            if not runs:
                return None
            rank = {run_id: i for i, (run_id, _) in enumerate(runs)}
            rows = connection.execute(
                sa.select(dataset.c.id, dataset.c.run_id).where(
                    dataset.c.dataset_type_id == type_id,
                    dataset.c.data_id == coordinate.canonical_string(),
                    dataset.c.run_id.in_(list(rank)),
                )
            ).all()
        if not rows:
            return None
        best = min(rows, key=lambda r: rank[r.run_id])
        return DatasetRef(dt, coordinate, runs[rank[best.run_id]][1], best.id)

    # -- queries ------------------------------------------------------------------------------

    def query_datasets(
        self: SqlRegistry,
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
        type_id, dt = self._dataset_type_entry(dataset_type)
        dataset = self.schema.dataset
        group = dt.dimensions
        with self._read() as connection:
            runs = self._resolve_run_ids(connection, collections)
            if not runs:
                return []
            rank = {run_id: i for i, (run_id, _) in enumerate(runs)}
            builder = QueryBuilder(self.schema)
            builder.join(
                dataset,
                [dataset.c.dataset_type_id == type_id, dataset.c.run_id.in_(list(rank))],
            )
            for dim in group.required:
                builder.values[dim] = dataset.c[dim]
            builder.constrain(where, bind, data_id)
            query = builder.select(
                dataset.c.id, dataset.c.run_id, *(dataset.c[d] for d in group.required)
            )
            rows = _fetch_raw(connection, query)
        if len(runs) == 1 or not find_first:
            found = rows
        else:
            best: dict[tuple[Any, ...], tuple[int, Any]] = {}
            for row in rows:
                values = row[2:]
                order = rank[row[1]]
                current = best.get(values)
                if current is None or order < current[0]:
                    best[values] = (order, row)
            found = [row for _, row in best.values()]
        # Sorted by data ID, then search order.
        found.sort(key=lambda row: (row[2:], rank[row[1]]))
        run_names = {run_id: name for run_id, name in runs}
        return [
            DatasetRef(
                dt, DataCoordinate(group, tuple(row[2:])), run_names[row[1]], _as_uuid(row[0])
            )
            for row in found
        ]

    def query_data_ids(
        self: SqlRegistry,
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
        group = self.universe.group(dimensions)
        skypix = self.universe.skypix.name
        datasets = list(datasets)
        builder = QueryBuilder(self.schema)
        with self._read() as connection:
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
                run_ids = [i for i, _ in self._resolve_run_ids(connection, collections)]
                for name in datasets:
                    type_id, dt = self._dataset_type_entry(name)
                    alias = self.schema.dataset.alias(f"ds_{name}")
                    on = [alias.c.dataset_type_id == type_id, alias.c.run_id.in_(run_ids)]
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

    # -- removal ----------------------------------------------------------------------------

    def remove_datasets(
        self: SqlRegistry, refs: Iterable[DatasetRef | uuid.UUID]
    ) -> list[StoredFileInfo]:
        """Remove datasets; return their stored files for the datastore to delete."""
        ids = [r.id if isinstance(r, DatasetRef) else r for r in refs]
        dataset = self.schema.dataset
        infos: list[StoredFileInfo] = []
        with self.transaction() as connection:
            for chunk in chunks(ids):
                infos.extend(self._infos_where(connection, dataset.c.id.in_(chunk)))
                connection.execute(dataset.delete().where(dataset.c.id.in_(chunk)))
        return infos

    def _infos_where(
        self: SqlRegistry, connection: sa.Connection, condition: Any
    ) -> list[StoredFileInfo]:
        d = self.schema.dataset
        rows = connection.execute(
            sa.select(d.c.id, d.c.path, d.c.formatter, d.c.storage_class, d.c.file_size).where(
                condition, d.c.path.is_not(None)
            )
        ).all()
        return [
            StoredFileInfo(r.id, r.path, r.formatter, r.storage_class, r.file_size) for r in rows
        ]
