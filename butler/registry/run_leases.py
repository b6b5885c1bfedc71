"""Run leases: at most one process executes into a RUN collection at a time.

Design
------
A lease is one row of ``butler_attributes`` named ``run_lease:<collection ID>`` whose value
is JSON: the holder's token (unique per execution), host, process ID, the time it was taken
and the time of its last heartbeat. `RunLeaseManager.acquire` reads and writes it in one
write transaction (IMMEDIATE on SQLite, like every write: no second writer slips in between), so
two processes cannot both take it. A lease held by someone else is refused with
`RunLeaseError`, unless its holder is gone: a process of this host that no longer exists,
or (on another host) no heartbeat for ``stale_after`` seconds. `refresh` is the heartbeat;
`release` deletes the row if it is still the caller's. No schema change: the attributes
table holds any named value.

State: none besides the database rows.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import sqlalchemy as sa

from .._errors import MissingCollectionError, RunLeaseError
from ._schema import RegistrySchema
from ._util import insert_ignoring
from .collection_type import CollectionType
from .collections import CollectionManager
from .database import Database

__all__ = ["RunLeaseManager", "lease_holder_alive"]


def lease_holder_alive(lease: dict[str, Any], stale_after: float) -> bool:
    """Return whether the process holding ``lease`` may still be running."""
    if lease.get("host") == socket.gethostname():
        try:
            os.kill(int(lease["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process: it exists
            return True
        return True
    return time.time() - float(lease.get("heartbeat", 0.0)) < stale_after


def _held_by(run: str, held: dict[str, Any], now: float) -> RunLeaseError:
    """Return the error of a lease of ``run`` that another live process holds."""
    since = time.strftime("%H:%M:%S", time.localtime(held.get("since", now)))
    return RunLeaseError(
        f"run {run!r} is being executed by process {held.get('pid')} on "
        f"{held.get('host')} (since {since}); wait for it to finish or stop it "
        "first, or write to another run"
    )


class RunLeaseManager:
    """Takes, refreshes and gives back the execution lease of RUN collections.

    Parameters
    ----------
    db : `Database`
        Transactions and connections.
    schema : `RegistrySchema`
        The tables (only ``butler_attributes`` is used).
    collections : `CollectionManager`
        Resolves run names to collection IDs.
    """

    def __init__(
        self, db: Database, schema: RegistrySchema, collections: CollectionManager
    ) -> None:
        self._db = db
        self._table = schema.attributes
        self._collections = collections

    def _key(self, connection: sa.Connection, run: str) -> str:
        found = self._collections.collections_named(connection, [run]).get(run)
        if found is None or found[1] is not CollectionType.RUN:
            raise MissingCollectionError(f"run {run!r} does not exist (or is not a RUN)")
        return f"run_lease:{found[0]}"

    def _read(self, connection: sa.Connection, key: str) -> dict[str, Any] | None:
        value = connection.execute(
            sa.select(self._table.c.value).where(self._table.c.name == key)
        ).scalar()
        return None if value is None else json.loads(value)

    def acquire(self, run: str, token: str, *, stale_after: float = 120.0) -> None:
        """Take the lease of ``run`` for the caller identified by ``token``.

        Raises
        ------
        RunLeaseError
            If another live process holds it (the message names it).
        MissingCollectionError
            If ``run`` is not a RUN collection.
        """
        now = time.time()
        mine = {
            "token": token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": now,
            "heartbeat": now,
        }
        with self._db.transaction() as connection:
            key = self._key(connection, run)
            held = self._read(connection, key)
            if held is not None and held.get("token") != token:
                if lease_holder_alive(held, stale_after):
                    raise _held_by(run, held, now)
                connection.execute(self._table.delete().where(self._table.c.name == key))
            elif held is not None:
                connection.execute(self._table.delete().where(self._table.c.name == key))
            # Two processes that both found no lease (PostgreSQL reads do not lock) both
            # insert one: the second insert waits for the first to commit and then does
            # nothing, and its process is refused, naming the one that took it.
            inserted = connection.execute(
                insert_ignoring(connection, self._table, ["name"]).returning(self._table.c.name),
                {"name": key, "value": json.dumps(mine)},
            ).first()
            if inserted is None:
                raise _held_by(run, self._read(connection, key) or {}, now)

    def refresh(self, run: str, token: str) -> bool:
        """Record a heartbeat; return False if the lease is no longer the caller's."""
        with self._db.transaction() as connection:
            key = self._key(connection, run)
            held = self._read(connection, key)
            if held is None or held.get("token") != token:
                return False
            held["heartbeat"] = time.time()
            connection.execute(
                self._table.update()
                .where(self._table.c.name == key)
                .values(value=json.dumps(held))
            )
            return True

    def release(self, run: str, token: str) -> None:
        """Give the lease back (nothing happens if it is not the caller's)."""
        with self._db.transaction() as connection:
            key = self._key(connection, run)
            held = self._read(connection, key)
            if held is not None and held.get("token") == token:
                connection.execute(self._table.delete().where(self._table.c.name == key))

    def forget(self, connection: sa.Connection, collection_id: int) -> None:
        """Delete the lease of a run being removed (inside the caller's transaction)."""
        name = f"run_lease:{collection_id}"
        connection.execute(self._table.delete().where(self._table.c.name == name))

    def holder(self, run: str) -> dict[str, Any] | None:
        """Return the lease of ``run`` (token, host, pid, since, heartbeat), if any."""
        with self._db.read() as connection:
            return self._read(connection, self._key(connection, run))
