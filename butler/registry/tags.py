"""TAGGED collections: which datasets a tagged collection holds.

Design
------
`DatasetTagManager` owns the ``dataset_tag`` table: one row per (TAGGED collection, dataset),
carrying the dataset's type and canonical data ID so that the unique constraint keeps one
dataset per (type, data ID) in a collection, as in daf_butler. `associate` reads the datasets'
own rows (so an unknown ID is refused, not tagged), skips those already tagged and refuses one
whose (type, data ID) the collection holds as another dataset; `disassociate` deletes rows.
Both run in one transaction. Searching a tagged collection is the dataset reads' job
(`dataset_reads`); removing a dataset or the collection removes its tags (foreign keys
cascade, and `CollectionManager.remove_collection` deletes them explicitly).

No mutable state of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa

from .._errors import CollectionTypeError, ConflictingDefinitionError, DatasetNotFoundError
from ..dataset_ref import DatasetRef
from ._schema import RegistrySchema
from ._util import chunks
from .collection_type import CollectionType
from .collections import CollectionManager
from .database import Database

__all__ = ["DatasetTagManager"]


class DatasetTagManager:
    """Adds datasets to TAGGED collections and removes them.

    Parameters
    ----------
    db : `Database`
        Transactions and connections.
    schema : `RegistrySchema`
        The tables (``dataset_tag``, and ``dataset`` to read what is tagged).
    collections : `CollectionManager`
        Resolves the tagged collection's name.
    """

    def __init__(
        self, db: Database, schema: RegistrySchema, collections: CollectionManager
    ) -> None:
        self._db = db
        self._tag = schema.dataset_tag
        self._dataset = schema.dataset
        self._collections = collections

    def _tagged_id(self, connection: sa.Connection, collection: str) -> int:
        collection_id, ctype = self._collections.find(connection, collection)
        if ctype is not CollectionType.TAGGED:
            raise CollectionTypeError(f"collection {collection!r} is a {ctype.name}, not TAGGED")
        return collection_id

    def associate(self, collection: str, refs: Iterable[DatasetRef | uuid.UUID]) -> int:
        """Add datasets to a TAGGED collection; return how many were not in it already.

        Raises
        ------
        MissingCollectionError
            If the collection does not exist.
        CollectionTypeError
            If it is not TAGGED.
        DatasetNotFoundError
            If a dataset is not in the registry.
        ConflictingDefinitionError
            If the collection holds another dataset of the same type and data ID (or two of
            the given datasets have the same type and data ID).
        """
        ids = list(dict.fromkeys(r.id if isinstance(r, DatasetRef) else r for r in refs))
        tag, dataset = self._tag, self._dataset
        added = 0
        with self._db.transaction() as connection:
            collection_id = self._tagged_id(connection, collection)
            for chunk in chunks(ids):
                rows = connection.execute(
                    sa.select(dataset.c.id, dataset.c.dataset_type_id, dataset.c.data_id).where(
                        dataset.c.id.in_(chunk)
                    )
                ).all()
                found = {r.id: r for r in rows}
                missing = [str(i) for i in chunk if i not in found]
                if missing:
                    more = ", ..." if len(missing) > 3 else ""
                    raise DatasetNotFoundError(
                        f"cannot associate {len(missing)} dataset(s) with {collection!r}: not in "
                        f"the registry ({', '.join(missing[:3])}{more})"
                    )
                keys = {(r.dataset_type_id, r.data_id) for r in rows}
                held = connection.execute(
                    sa.select(tag.c.dataset_id, tag.c.dataset_type_id, tag.c.data_id).where(
                        tag.c.collection_id == collection_id,
                        tag.c.data_id.in_({data_id for _, data_id in keys}),
                    )
                ).all()
                holder = {
                    (h.dataset_type_id, h.data_id): h.dataset_id
                    for h in held
                    if (h.dataset_type_id, h.data_id) in keys
                }
                new = []
                for dataset_id in chunk:
                    row = found[dataset_id]
                    key = (row.dataset_type_id, row.data_id)
                    current = holder.get(key)
                    if current == dataset_id:
                        continue
                    if current is not None:
                        raise ConflictingDefinitionError(
                            f"collection {collection!r} already holds dataset {current} with the "
                            f"dataset type and data ID {row.data_id} of {dataset_id}: "
                            "disassociate it first"
                        )
                    holder[key] = dataset_id
                    new.append(
                        {
                            "collection_id": collection_id,
                            "dataset_id": dataset_id,
                            "dataset_type_id": row.dataset_type_id,
                            "data_id": row.data_id,
                        }
                    )
                if new:
                    connection.execute(tag.insert(), new)
                added += len(new)
        return added

    def disassociate(self, collection: str, refs: Iterable[DatasetRef | uuid.UUID]) -> int:
        """Remove datasets from a TAGGED collection; return how many it held.

        The datasets themselves stay in their runs.

        Raises
        ------
        MissingCollectionError
            If the collection does not exist.
        CollectionTypeError
            If it is not TAGGED.
        """
        ids = list(dict.fromkeys(r.id if isinstance(r, DatasetRef) else r for r in refs))
        tag = self._tag
        removed = 0
        with self._db.transaction() as connection:
            collection_id = self._tagged_id(connection, collection)
            for chunk in chunks(ids):
                result = connection.execute(
                    tag.delete().where(
                        tag.c.collection_id == collection_id, tag.c.dataset_id.in_(chunk)
                    )
                )
                removed += result.rowcount
        return removed
