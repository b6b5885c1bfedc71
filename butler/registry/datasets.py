"""The datasets manager: registration, lookup, queries and removal of datasets.

Design
------
`DatasetManager` owns the one wide ``dataset`` table (see `_schema`) and is
made of two halves, each its own class and module:

- `reads` (`dataset_reads.DatasetReads`): lookups by ID or data ID,
  stored-file reads and the dataset and data ID queries, with their fast
  paths;
- `writes` (`dataset_writes.DatasetWrites`): registration (bulk
  ``executemany`` inserts, conflict diagnosis on integrity errors),
  stored-file updates and removal.

Both are given the dataset types (`DatasetTypeManager`) and the collections
(`CollectionManager`) they resolve names with; neither knows the registry.

No mutable state of its own: the dataset-type cache is the
`DatasetTypeManager`'s, transactions and the compiled-SQL cache the
`Database`'s.
"""

from __future__ import annotations

from ..dimensions import DimensionUniverse
from ._schema import RegistrySchema
from .collections import CollectionManager
from .database import Database
from .dataset_reads import DatasetReads
from .dataset_types import DatasetTypeManager
from .dataset_writes import DatasetWrites

__all__ = ["DatasetManager"]


class DatasetManager:
    """The registry's datasets, as a reading and a writing half.

    Parameters
    ----------
    db : `Database`
        Transactions, connections and compiled hot statements.
    schema : `RegistrySchema`
        The registry's tables.
    universe : `DimensionUniverse`
        The repository's dimensions.
    dataset_types : `DatasetTypeManager`
        The registry's dataset types.
    collections : `CollectionManager`
        The registry's collections.
    """

    def __init__(
        self,
        db: Database,
        schema: RegistrySchema,
        universe: DimensionUniverse,
        dataset_types: DatasetTypeManager,
        collections: CollectionManager,
    ) -> None:
        self.reads = DatasetReads(db, schema, universe, dataset_types, collections)
        self.writes = DatasetWrites(db, schema, dataset_types, collections)
