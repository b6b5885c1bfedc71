"""Collections: RUNs that own datasets, and CHAINED lists of collections.

Design
------
`CollectionsMixin` holds the collection half of `SqlRegistry`'s API. A
collection is a row of the ``collection`` table (unique name, type); a
chain's members are rows of ``collection_chain`` ordered by position.
Lookups read only the collections they name (a repository may hold many
thousands of runs); flattening a chain reads its children level by level,
depth-first, first occurrence wins. Cycle checks load all chain rows (chains
are few and small).

No state beyond the registry's own (see `sql_registry`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .._errors import CollectionError, CollectionTypeError, MissingCollectionError
from ..dataset_type import validate_name
from ..datastore.stored_file_info import StoredFileInfo
from ._util import chunks, suggest
from .collection_type import CollectionType

if TYPE_CHECKING:
    from .sql_registry import SqlRegistry

__all__ = ["CollectionsMixin"]


class CollectionsMixin:
    """Collection methods of `SqlRegistry` (see there for the attributes used)."""

    # -- collections -----------------------------------------------------------------

    def register_run(self: SqlRegistry, name: str) -> bool:
        """Register a RUN collection; True if new, False if it exists as a RUN."""
        return self.register_collection(name, CollectionType.RUN)

    def register_collection(self: SqlRegistry, name: str, type: CollectionType) -> bool:
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
        with self._read() as connection:  # the common case, without a write transaction
            found = connection.execute(sa.select(table.c.type).where(table.c.name == name)).first()
        if found is not None and found.type == type:
            return False
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

    def _collections(
        self: SqlRegistry, connection: sa.Connection
    ) -> dict[str, tuple[int, CollectionType]]:
        table = self.schema.collection
        rows = connection.execute(sa.select(table.c.name, table.c.id, table.c.type)).all()
        return {r.name: (r.id, CollectionType(r.type)) for r in rows}

    def _collection(
        self: SqlRegistry, connection: sa.Connection, name: str
    ) -> tuple[int, CollectionType]:
        table = self.schema.collection
        row = connection.execute(
            sa.select(table.c.id, table.c.type).where(table.c.name == name)
        ).first()
        if row is None:
            names = connection.execute(sa.select(table.c.name)).scalars().all()
            raise MissingCollectionError(
                f"collection {name!r} does not exist{suggest(str(name), names)}"
            )
        return row.id, CollectionType(row.type)

    def get_collection_type(self: SqlRegistry, name: str) -> CollectionType:
        """Return a collection's type (`MissingCollectionError` if it does not exist)."""
        with self._read() as connection:
            return self._collection(connection, name)[1]

    def _chains(self: SqlRegistry, connection: sa.Connection) -> dict[int, list[int]]:
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

    def set_collection_chain(self: SqlRegistry, parent: str, children: Sequence[str]) -> None:
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

    def get_collection_chain(self: SqlRegistry, parent: str) -> tuple[str, ...]:
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
        self: SqlRegistry,
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

    def _collections_named(
        self: SqlRegistry, connection: sa.Connection, names: Iterable[str]
    ) -> dict[str, tuple[int, CollectionType]]:
        """Return (ID, type) of those of ``names`` that exist, reading only their rows."""
        table = self.schema.collection
        wanted = list(dict.fromkeys(names))
        if len(wanted) == 1:  # the common case (one run), on the driver: see `_execute_cached`
            row = self._execute_cached(
                connection,
                "collection_by_name",
                lambda: sa.select(table.c.id, table.c.type).where(
                    table.c.name == sa.bindparam("name")
                ),
                {"name": wanted[0]},
            ).first()
            return {} if row is None else {wanted[0]: (row[0], CollectionType(row[1]))}
        result: dict[str, tuple[int, CollectionType]] = {}
        for chunk in chunks(wanted):
            rows = connection.execute(
                sa.select(table.c.name, table.c.id, table.c.type).where(table.c.name.in_(chunk))
            ).all()
            result.update((r.name, (r.id, CollectionType(r.type))) for r in rows)
        return result

    def _chain_children(
        self: SqlRegistry, connection: sa.Connection, parent_id: int
    ) -> list[tuple[int, str, CollectionType]]:
        """Return (ID, name, type) of a chain's children, in search order."""
        chain = self.schema.collection_chain
        table = self.schema.collection
        rows = connection.execute(
            sa.select(table.c.id, table.c.name, table.c.type)
            .join(chain, chain.c.child_id == table.c.id)
            .where(chain.c.parent_id == parent_id)
            .order_by(chain.c.position)
        ).all()
        return [(r.id, r.name, CollectionType(r.type)) for r in rows]

    def _resolve_run_ids(
        self, connection: sa.Connection, collections: Sequence[str] | str
    ) -> list[tuple[int, str]]:
        if isinstance(collections, str):
            collections = [collections]
        known = self._collections_named(connection, collections)
        for name in collections:
            if name not in known:
                all_names = connection.execute(sa.select(self.schema.collection.c.name))
                raise MissingCollectionError(
                    f"collection {name!r} does not exist"
                    f"{suggest(str(name), all_names.scalars().all())}"
                )
        result: list[tuple[int, str]] = []
        seen: set[int] = set()

        def visit(cid: int, name: str, ctype: CollectionType) -> None:
            if cid in seen:
                return
            seen.add(cid)
            if ctype is CollectionType.RUN:
                result.append((cid, name))
            else:
                for child in self._chain_children(connection, cid):
                    visit(*child)

        for name in collections:
            cid, ctype = known[name]
            visit(cid, name, ctype)
        return result

    def resolve_collections(self: SqlRegistry, collections: Sequence[str] | str) -> list[str]:
        """Return the RUN collections searched, in order (chains flattened depth-first).

        Raises
        ------
        MissingCollectionError
            If a collection does not exist (with a near-miss suggestion).
        """
        with self._read() as connection:
            return [name for _, name in self._resolve_run_ids(connection, collections)]

    def remove_run(self: SqlRegistry, name: str) -> list[StoredFileInfo]:
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
