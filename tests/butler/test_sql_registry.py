"""The registry conformance tests on SQLite (file and memory), plus SQLite specifics."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from butler._errors import (
    ConflictingDefinitionError,
    RepositoryNotFoundError,
    RepositoryVersionError,
)
from butler.dimensions import DimensionUniverse
from butler.registry import SqlRegistry
from butler.testing.registry_tests import RegistryTests


class TestSqliteMemoryRegistry(RegistryTests):
    def make_registry(self) -> SqlRegistry:
        return SqlRegistry.create("sqlite://", DimensionUniverse.default())


class TestSqliteFileRegistry(RegistryTests):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path):
        self.tmp_path = tmp_path
        self.count = 0

    def make_registry(self) -> SqlRegistry:
        self.count += 1
        return SqlRegistry.create(
            f"sqlite:///{self.tmp_path}/registry{self.count}.sqlite3", DimensionUniverse.default()
        )

    def reopen(self, registry: SqlRegistry, *, writeable: bool = True) -> SqlRegistry | None:
        url = registry.engine.url.render_as_string(hide_password=False)
        registry.close()
        return SqlRegistry.open(url, writeable=writeable)


def test_sqlite_pragmas(tmp_path):
    registry = SqlRegistry.create(f"sqlite:///{tmp_path}/r.sqlite3", DimensionUniverse.default())
    with registry.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_schema_version_refusal(tmp_path):
    url = f"sqlite:///{tmp_path}/r.sqlite3"
    registry = SqlRegistry.create(url, DimensionUniverse.default())
    with registry.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE butler_attributes SET value = '99' WHERE name = 'schema_version'")
        )
    registry.close()
    with pytest.raises(
        RepositoryVersionError,
        match=r"schema version 99 is newer than this software supports \(1\)",
    ):
        SqlRegistry.open(url)


def test_open_missing_and_create_twice(tmp_path):
    with pytest.raises(RepositoryNotFoundError):
        SqlRegistry.open(f"sqlite:///{tmp_path}/nothing.sqlite3")
    assert not (tmp_path / "nothing.sqlite3").exists()
    url = f"sqlite:///{tmp_path}/r.sqlite3"
    SqlRegistry.create(url, DimensionUniverse.default()).close()
    with pytest.raises(ConflictingDefinitionError):
        SqlRegistry.create(url, DimensionUniverse.default())


def test_transactions_are_per_thread(tmp_path):
    registry = SqlRegistry.create(f"sqlite:///{tmp_path}/r.sqlite3", DimensionUniverse.default())
    seen = []
    with registry.transaction():
        registry.register_run("pending")

        def read():
            seen.append([name for name, _ in registry.query_collections()])

        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        assert [name for name, _ in registry.query_collections()] == ["pending"]
    assert seen == [[]]  # the other thread did not see the uncommitted run
    assert [name for name, _ in registry.query_collections()] == ["pending"]
