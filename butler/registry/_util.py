"""Small helpers shared by the registry modules."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

__all__ = ["CHUNK", "chunks", "insert_ignoring", "suggest"]

#: Rows per statement for IN-lists (well below SQLite's 32766 parameter limit).
CHUNK = 5000


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Yield consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or ``""``."""
    near = difflib.get_close_matches(str(name), list(candidates), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def insert_ignoring(connection: sa.Connection, table: sa.Table, keys: Sequence[str]) -> Any:
    """Return an INSERT that skips rows whose ``keys`` already exist (SQLite, PostgreSQL)."""
    name = connection.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"skip-existing inserts are not implemented for {name}")
    return insert(table).on_conflict_do_nothing(index_elements=list(keys))
