"""The registry's tables, built from a dimension universe with SQLAlchemy Core.

Design
------
Fixed tables:

``butler_attributes``
    Key/value pairs: ``schema_version`` and ``universe`` (the dimension
    configuration as JSON), so a repository is self-describing.
``dataset_type``
    id, unique name, dimensions (JSON list), storage class.
``collection``
    id, unique name, type (`CollectionType` value).
``collection_chain``
    (parent, position) -> child, the ordered members of CHAINED collections.
``dataset_tag``
    (TAGGED collection, dataset) pairs, with the dataset's type and canonical
    data ID so that a tagged collection holds at most one dataset per (type,
    data ID). Both foreign keys cascade on delete (SQLite runs with foreign
    keys on): removing a dataset or the collection removes its tags.
``dataset``
    One row per dataset: its UUID, dataset type, run, the data ID both as one
    nullable column per dimension of the universe (for queries) and as its
    canonical string (for the uniqueness of (dataset type, run, data ID),
    since SQL unique constraints treat NULLs as distinct), and the stored
    file info (path, formatter, storage class, size) — NULL until the
    datastore records it. One wide table: one insert per dataset, not two.
    There are no foreign keys to ``dataset_type`` and ``collection`` (older
    PostgreSQL repositories have them): the registry's own checks (dataset
    type registered, run exists and is a RUN, read in the inserting
    transaction; on PostgreSQL with those rows locked ``FOR KEY SHARE`` until
    it commits) are the enforcement, and removing a run or a dataset type
    locks its row ``FOR UPDATE`` first and deletes its datasets (or refuses)
    before it.

Per-universe tables:

``dim_<element>``
    Records of each dimension element except the sky pixelization: one
    column per required dimension (named after the dimension), the element's
    own key (named after its key field, e.g. ``id``), one column per implied
    dimension, the metadata columns and, for spatial elements, ``region``
    (JSON). Foreign keys point to the records of required dimensions.
``overlap_<element>``
    For spatial elements: the element's key columns and the sky pixel ID of
    every pixel its region overlaps.

The same code creates the schema on SQLite and PostgreSQL. There is no
module-level state: `RegistrySchema` is built per registry.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import sqlalchemy as sa

from .._errors import DimensionConfigError
from ..dimensions import Dimension, DimensionElement, DimensionUniverse, MetadataField

__all__ = ["SCHEMA_VERSION", "DatasetIdType", "ElementColumns", "RegistrySchema"]

#: Version of the table layout written by this software.
SCHEMA_VERSION = 3

_SQL_TYPES: dict[str, Any] = {
    "int": sa.BigInteger,
    "float": sa.Float,
    "bool": sa.Boolean,
}

#: Column names of the dataset table that are not dimension names.
DATASET_FIXED_COLUMNS = (
    "id",
    "dataset_type_id",
    "run_id",
    "data_id",
    "path",
    "formatter",
    "storage_class",
    "file_size",
    "checksum",
)


class DatasetIdType(sa.types.TypeDecorator[uuid.UUID]):
    """A dataset UUID: native ``UUID`` on PostgreSQL, 16 raw bytes elsewhere.

    Raw bytes index faster than SQLAlchemy's default 32-character text on
    SQLite (measured: ~30% faster bulk inserts).
    """

    impl = sa.LargeBinary(16)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        """Use the native UUID type where there is one."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Uuid())
        return dialect.type_descriptor(sa.LargeBinary(16))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        """Convert a `uuid.UUID` to what the column stores."""
        if value is None or dialect.name == "postgresql":
            return value
        return value.bytes

    @staticmethod
    def stores_bytes(dialect: sa.Dialect) -> bool:
        """Whether the DBAPI value is the UUID's 16 bytes (else the `uuid.UUID` itself).

        For bulk inserts, which convert IDs themselves.
        """
        return dialect.name != "postgresql"

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> uuid.UUID | None:
        """Convert a stored value back to a `uuid.UUID`."""
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(bytes=bytes(value))


def _sql_type(field: MetadataField) -> Any:
    if field.type == "string":
        return sa.String(field.length) if field.length else sa.String()
    return _SQL_TYPES[field.type]()


@dataclasses.dataclass(frozen=True, slots=True)
class ElementColumns:
    """How an element's records map to columns.

    Parameters
    ----------
    element : `DimensionElement`
        The element.
    required : `tuple` [`str`, ...]
        Names of the required dimensions stored as columns (not the element
        itself).
    key : `str` or `None`
        Column name of the element's own key (dimensions only).
    implied : `tuple` [`str`, ...]
        Implied dimensions stored as columns.
    metadata : `tuple` [`str`, ...]
        Metadata column names.
    """

    element: DimensionElement
    required: tuple[str, ...]
    key: str | None
    implied: tuple[str, ...]
    metadata: tuple[str, ...]

    @property
    def primary_key(self) -> tuple[str, ...]:
        """Columns identifying a record."""
        return self.required + ((self.key,) if self.key else ())

    @property
    def dimensions(self) -> tuple[tuple[str, str], ...]:
        """(dimension name, column name) of every identifying column."""
        pairs = tuple((d, d) for d in self.required)
        if self.key:
            pairs += ((self.element.name, self.key),)
        return pairs

    @property
    def all(self) -> tuple[str, ...]:
        """All record columns except ``region``."""
        return self.primary_key + self.implied + self.metadata


class RegistrySchema:
    """The tables of a registry for one universe.

    Parameters
    ----------
    universe : `DimensionUniverse`
        The dimensions; one table per element.

    Raises
    ------
    DimensionConfigError
        If a dimension name clashes with a fixed column of the dataset table,
        or an element's column names clash.
    """

    def __init__(self, universe: DimensionUniverse) -> None:
        self.universe = universe
        self.metadata = sa.MetaData()
        md = self.metadata
        self.attributes = sa.Table(
            "butler_attributes",
            md,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        self.dataset_type = sa.Table(
            "dataset_type",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(128), nullable=False, unique=True),
            sa.Column("dimensions", sa.Text, nullable=False),
            sa.Column("storage_class", sa.String(128), nullable=False),
        )
        self.collection = sa.Table(
            "collection",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(256), nullable=False, unique=True),
            sa.Column("type", sa.SmallInteger, nullable=False),
        )
        self.collection_chain = sa.Table(
            "collection_chain",
            md,
            sa.Column(
                "parent_id",
                sa.Integer,
                sa.ForeignKey("collection.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("position", sa.Integer, primary_key=True),
            sa.Column(
                "child_id",
                sa.Integer,
                sa.ForeignKey("collection.id", ondelete="CASCADE"),
                nullable=False,
                index=True,
            ),
        )
        self.dataset_tag = sa.Table(
            "dataset_tag",
            md,
            sa.Column(
                "collection_id",
                sa.Integer,
                sa.ForeignKey("collection.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column(
                "dataset_id",
                DatasetIdType(),
                sa.ForeignKey("dataset.id", ondelete="CASCADE"),
                primary_key=True,
                index=True,
            ),
            sa.Column("dataset_type_id", sa.Integer, nullable=False),
            sa.Column("data_id", sa.String, nullable=False),
            sa.UniqueConstraint(
                "collection_id", "dataset_type_id", "data_id", name="dataset_tag_unique"
            ),
        )
        self.elements: dict[str, ElementColumns] = {}
        self.element_tables: dict[str, sa.Table] = {}
        self.overlap_tables: dict[str, sa.Table] = {}
        for name in universe.element_names:
            if name == universe.skypix.name:
                continue
            self._add_element(universe[name])
        dimension_columns = []
        for name in universe.dimension_names:
            if name in DATASET_FIXED_COLUMNS:
                raise DimensionConfigError(
                    f"dimension {name!r} clashes with a column of the dataset table "
                    f"({', '.join(DATASET_FIXED_COLUMNS)})"
                )
            key_type = _sql_type(universe.dimension(name).key)
            dimension_columns.append(sa.Column(name, key_type, nullable=True))
        self.dataset = sa.Table(
            "dataset",
            md,
            sa.Column("id", DatasetIdType(), primary_key=True),
            sa.Column("dataset_type_id", sa.Integer, nullable=False),
            sa.Column("run_id", sa.Integer, nullable=False),
            sa.Column("data_id", sa.String, nullable=False),
            *dimension_columns,
            sa.Column("path", sa.String, nullable=True),
            sa.Column("formatter", sa.String(256), nullable=True),
            sa.Column("storage_class", sa.String(128), nullable=True),
            sa.Column("file_size", sa.BigInteger, nullable=True),
            # ``xxh3_128:<hex>`` in a repository created with checksums (butler.datastore.integrity)
            sa.Column("checksum", sa.String(80), nullable=True),
            # Run first: the same index serves lookups of a run's datasets.
            sa.UniqueConstraint("run_id", "dataset_type_id", "data_id", name="dataset_unique"),
            # No foreign keys to dataset_type and collection: checked per row they halved
            # PostgreSQL's bulk registration (see `dataset_writes`, which checks and locks
            # the referenced rows once per insert instead). Repositories created before
            # keep theirs; both work the same.
        )

    def _add_element(self, element: DimensionElement) -> None:
        universe = self.universe
        if isinstance(element, Dimension):
            required = tuple(
                d for d in universe.group([element.name]).required if d != element.name
            )
            key: str | None = element.key.name
        else:
            required = universe.group(element.requires).required
            key = None
        implied = tuple(element.implies)
        metadata = tuple(f.name for f in element.metadata)
        names = required + ((key,) if key else ()) + implied + metadata
        if len(set(names)) != len(names) or "region" in names:
            raise DimensionConfigError(
                f"element {element.name!r}: column names clash: {', '.join(names)}"
            )
        columns_info = ElementColumns(element, required, key, implied, metadata)
        columns: list[Any] = []
        for dim in required:
            columns.append(sa.Column(dim, _sql_type(universe.dimension(dim).key), primary_key=True))
        if isinstance(element, Dimension):
            columns.append(sa.Column(element.key.name, _sql_type(element.key), primary_key=True))
        for dim in implied:
            columns.append(sa.Column(dim, _sql_type(universe.dimension(dim).key), nullable=True))
        for field in element.metadata:
            columns.append(sa.Column(field.name, _sql_type(field), nullable=True))
        if element.spatial:
            columns.append(sa.Column("region", sa.Text, nullable=True))
        constraints = []
        for dim in required + implied:
            target = self.elements[dim]
            local = [d if d != target.element.name else dim for d, _ in target.dimensions]
            remote = [f"dim_{dim}.{c}" for _, c in target.dimensions]
            if all(col in names for col in local):
                constraints.append(sa.ForeignKeyConstraint(local, remote))
        table = sa.Table(f"dim_{element.name}", self.metadata, *columns, *constraints)
        self.elements[element.name] = columns_info
        self.element_tables[element.name] = table
        if element.spatial:
            skypix = universe.skypix.name
            overlap_columns = [
                sa.Column(c, table.c[c].type, primary_key=True) for c in columns_info.primary_key
            ]
            self.overlap_tables[element.name] = sa.Table(
                f"overlap_{element.name}",
                self.metadata,
                *overlap_columns,
                sa.Column(skypix, sa.BigInteger, primary_key=True),
                sa.ForeignKeyConstraint(
                    list(columns_info.primary_key),
                    [f"dim_{element.name}.{c}" for c in columns_info.primary_key],
                    ondelete="CASCADE",
                ),
                sa.Index(f"overlap_{element.name}_skypix", skypix),
            )
