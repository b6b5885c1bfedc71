"""Collections: RUNs that own datasets, CHAINED lists of collections, TAGGED sets of datasets.

Design
------
`CollectionManager` owns the ``collection`` and ``collection_chain`` tables. A
collection is a row of the ``collection`` table (unique name, type); a
chain's members are rows of ``collection_chain`` ordered by position.
Lookups read only the collections they name (a repository may hold many
thousands of runs); flattening a chain reads its children level by level,
depth-first, first occurrence wins. Cycle checks load all chain rows (chains
are few and small). A chain is changed under a row lock on its parent's
``collection`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one
writer at a time anyway), and `update_collection_chain` reads the current
children under that lock: two clients prepending their runs to one output
chain at once both end up in it (a client-side read, then `set_collection_chain`,
lost one of them).

The dataset managers use it to resolve collections to the RUNs and TAGGED
collections searched inside their own connections (`collections_named`,
`resolve_search`); the tags themselves are `tags.DatasetTagManager`'s; removing a RUN is split
between the datasets (its datasets) and this manager (`remove`), in one
transaction of the registry.

No mutable state of its own (transactions and the compiled-SQL cache are the
`Database`'s).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa

from .._errors import CollectionError, CollectionTypeError, MissingCollectionError
from ..dataset_type import validate_name
from ._schema import RegistrySchema
from ._util import chunks, insert_ignoring, suggest
from .collection_type import CollectionType
from .database import Database

__all__ = ["CollectionManager"]


class CollectionManager:
    """The registry's collections.

    Parameters
    ----------
    db : `Database`
        Transactions, connections and compiled hot statements.
    schema : `RegistrySchema`
        The registry's tables (this manager uses ``collection`` and
        ``collection_chain``).
    """

    def __init__(self, db: Database, schema: RegistrySchema) -> None:
        self._db = db
        self._table = schema.collection
        self._chain = schema.collection_chain
        self._tag = schema.dataset_tag

    def register_run(self, name: str) -> bool:
        """Register a RUN collection; True if new, False if it exists as a RUN."""
        return self.register_collection(name, CollectionType.RUN)

    def register_collection(self, name: str, type: CollectionType) -> bool:
        """Register a collection. See `SqlRegistry.register_collection`."""
        validate_name(name, what="collection", collection=True)
        type = CollectionType(type)
        table = self._table
        with self._db.read() as connection:  # the common case, without a write transaction
            found = connection.execute(sa.select(table.c.type).where(table.c.name == name)).first()
        if found is not None and found.type == type:
            return False
        with self._db.transaction() as connection:
            # Another process may register the same name between our read and insert
            # (PostgreSQL reads do not lock): the insert then does nothing and we read theirs.
            inserted = connection.execute(
                insert_ignoring(connection, table, ["name"]).returning(table.c.id),
                {"name": name, "type": int(type)},
            ).first()
            if inserted is not None:
                return True
            row = connection.execute(sa.select(table.c.type).where(table.c.name == name)).one()
        if row.type != type:
            raise CollectionTypeError(
                f"collection {name!r} exists as {CollectionType(row.type).name}, not {type.name}"
            )
        return False

    def _collections(self, connection: sa.Connection) -> dict[str, tuple[int, CollectionType]]:
        table = self._table
        rows = connection.execute(sa.select(table.c.name, table.c.id, table.c.type)).all()
        return {r.name: (r.id, CollectionType(r.type)) for r in rows}

    def find(self, connection: sa.Connection, name: str) -> tuple[int, CollectionType]:
        """Return (ID, type) of a collection (`MissingCollectionError` if it does not exist)."""
        table = self._table
        row = connection.execute(
            sa.select(table.c.id, table.c.type).where(table.c.name == name)
        ).first()
        if row is None:
            names = self.all_names(connection)
            raise MissingCollectionError(
                f"collection {name!r} does not exist{suggest(str(name), names)}"
            )
        return row.id, CollectionType(row.type)

    def get_collection_type(self, name: str) -> CollectionType:
        """Return a collection's type (`MissingCollectionError` if it does not exist)."""
        with self._db.read() as connection:
            return self.find(connection, name)[1]

    def _chains(self, connection: sa.Connection) -> dict[int, list[int]]:
        chain = self._chain
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

        See `SqlRegistry.set_collection_chain`.
        """
        if isinstance(children, str):
            children = [children]
        with self._db.transaction() as connection:
            parent_id = self._lock_chain(connection, parent)
            self._write_chain(connection, parent_id, list(children))

    def update_collection_chain(
        self, parent: str, *, prepend: Sequence[str] = (), append: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """Change a chain relative to its current children, atomically.

        See `SqlRegistry.update_collection_chain`.
        """
        with self._db.transaction() as connection:
            parent_id = self._lock_chain(connection, parent)
            names = {i: n for n, (i, _) in self._collections(connection).items()}
            current = [names[c] for c in self._chains(connection).get(parent_id, [])]
            children = list(dict.fromkeys(prepend))
            children += [c for c in current if c not in children]
            children += [c for c in dict.fromkeys(append) if c not in children]
            self._write_chain(connection, parent_id, children)
        return tuple(children)

    def _lock_chain(self, connection: sa.Connection, parent: str) -> int:
        """Lock the parent's row until the transaction ends; return its ID."""
        table = self._table
        row = connection.execute(
            sa.select(table.c.id, table.c.type).where(table.c.name == parent).with_for_update()
        ).first()
        if row is None:
            self.find(connection, parent)  # raises the MissingCollectionError
        parent_type = CollectionType(row.type)
        if parent_type is not CollectionType.CHAINED:
            raise CollectionTypeError(f"collection {parent!r} is a {parent_type.name}, not CHAINED")
        return row.id

    def _write_chain(self, connection: sa.Connection, parent_id: int, children: list[str]) -> None:
        """Replace the children of a (locked) chain, refusing cycles."""
        chain = self._chain
        child_ids = [self.find(connection, c)[0] for c in children]
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
        with self._db.read() as connection:
            parent_id, parent_type = self.find(connection, parent)
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

        See `SqlRegistry.query_collections`.
        """
        wanted = None if types is None else {CollectionType(t) for t in types}
        with self._db.read() as connection:
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

    def collections_named(
        self, connection: sa.Connection, names: Iterable[str]
    ) -> dict[str, tuple[int, CollectionType]]:
        """Return (ID, type) of those of ``names`` that exist, reading only their rows."""
        table = self._table
        wanted = list(dict.fromkeys(names))
        if len(wanted) == 1:  # the common case (one run), on the driver
            row = self._db.execute_cached(
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
        self, connection: sa.Connection, parent_id: int
    ) -> list[tuple[int, str, CollectionType]]:
        """Return (ID, name, type) of a chain's children, in search order."""
        chain = self._chain
        table = self._table
        rows = connection.execute(
            sa.select(table.c.id, table.c.name, table.c.type)
            .join(chain, chain.c.child_id == table.c.id)
            .where(chain.c.parent_id == parent_id)
            .order_by(chain.c.position)
        ).all()
        return [(r.id, r.name, CollectionType(r.type)) for r in rows]

    def resolve_search(
        self, connection: sa.Connection, collections: Sequence[str] | str
    ) -> list[tuple[int, str, CollectionType]]:
        """Return (ID, name, type) of the RUN and TAGGED collections searched, in order.

        Chains are flattened depth-first; the first occurrence of a collection wins.

        Raises
        ------
        MissingCollectionError
            If a collection does not exist (with a near-miss suggestion).
        """
        if isinstance(collections, str):
            collections = [collections]
        known = self.collections_named(connection, collections)
        for name in collections:
            if name not in known:
                names = self.all_names(connection)
                raise MissingCollectionError(
                    f"collection {name!r} does not exist{suggest(str(name), names)}"
                )
        result: list[tuple[int, str, CollectionType]] = []
        seen: set[int] = set()

        def visit(cid: int, name: str, ctype: CollectionType) -> None:
            if cid in seen:
                return
            seen.add(cid)
            if ctype is CollectionType.CHAINED:
                for child in self._chain_children(connection, cid):
                    visit(*child)
            else:
                result.append((cid, name, ctype))

        for name in collections:
            cid, ctype = known[name]
            visit(cid, name, ctype)
        return result

    def resolve_run_ids(
        self, connection: sa.Connection, collections: Sequence[str] | str
    ) -> list[tuple[int, str]]:
        """Return (ID, name) of the RUNs searched, in order (chains flattened depth-first).

        TAGGED collections are left out (see `resolve_search`).

        Raises
        ------
        MissingCollectionError
            If a collection does not exist (with a near-miss suggestion).
        """
        return [
            (cid, name)
            for cid, name, ctype in self.resolve_search(connection, collections)
            if ctype is CollectionType.RUN
        ]

    def resolve_collections(self, collections: Sequence[str] | str) -> list[str]:
        """Return the RUN collections searched, in order (chains flattened depth-first).

        See `SqlRegistry.resolve_collections`.
        """
        with self._db.read() as connection:
            return [name for _, name in self.resolve_run_ids(connection, collections)]

    def run_id(self, connection: sa.Connection, name: str) -> int:
        """Return the ID of a RUN collection.

        Raises
        ------
        MissingCollectionError
            If it does not exist.
        CollectionTypeError
            If it is not a RUN.
        """
        run_id, run_type = self.find(connection, name)
        if run_type is not CollectionType.RUN:
            raise CollectionTypeError(f"collection {name!r} is a {run_type.name}, not a RUN")
        return run_id

    def remove(self, connection: sa.Connection, collection_id: int) -> None:
        """Remove a collection and its membership in chains (its datasets must be gone)."""
        connection.execute(self._chain.delete().where(self._chain.c.child_id == collection_id))
        connection.execute(self._table.delete().where(self._table.c.id == collection_id))

    def remove_collection(self, name: str) -> None:
        """Remove a CHAINED or TAGGED collection (not its children, not the datasets it tags).

        See `SqlRegistry.remove_collection`.
        """
        chain = self._chain
        with self._db.transaction() as connection:
            collection_id, ctype = self.find(connection, name)
            if ctype is CollectionType.RUN:
                raise CollectionTypeError(
                    f"collection {name!r} is a RUN: remove it with its datasets (remove-runs)"
                )
            parents = connection.execute(
                sa.select(self._table.c.name)
                .join(chain, chain.c.parent_id == self._table.c.id)
                .where(chain.c.child_id == collection_id)
            ).scalars().all()
            if parents:
                raise CollectionError(
                    f"collection {name!r} is a child of {', '.join(sorted(parents))}: remove it "
                    "from that chain first (butler collection-chain PARENT "
                    f"{name} --mode remove)"
                )
            connection.execute(chain.delete().where(chain.c.parent_id == collection_id))
            connection.execute(self._tag.delete().where(self._tag.c.collection_id == collection_id))
            connection.execute(self._table.delete().where(self._table.c.id == collection_id))

    def all_names(self, connection: sa.Connection) -> list[str]:
        """Return the names of all collections (for near-miss suggestions)."""
        return list(connection.execute(sa.select(self._table.c.name)).scalars().all())
