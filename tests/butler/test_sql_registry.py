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
from butler.registry import CollectionType, SqlRegistry
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
        assert connection.exec_driver_sql("PRAGMA page_size").scalar() == 32768


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
        match=r"schema version 99 is newer than this software supports \(3\)",
    ):
        SqlRegistry.open(url)


def test_version_1_registry_gains_the_checksum_column(tmp_path):
    """A registry written before checksums (schema 1) is upgraded in place when opened."""
    url = f"sqlite:///{tmp_path}/r.sqlite3"
    SqlRegistry.create(url, DimensionUniverse.default()).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE dataset DROP COLUMN checksum"))
        connection.execute(
            sa.text("UPDATE butler_attributes SET value = '1' WHERE name = 'schema_version'")
        )
    engine.dispose()
    registry = SqlRegistry.open(url)
    columns = {c["name"] for c in sa.inspect(registry.engine).get_columns("dataset")}
    assert "checksum" in columns
    registry.close()


def test_version_2_registry_gains_tagged_collections(tmp_path):
    """A registry written before TAGGED collections (schema 2) gets the tag table when opened."""
    url = f"sqlite:///{tmp_path}/r.sqlite3"
    SqlRegistry.create(url, DimensionUniverse.default()).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE dataset_tag"))
        connection.execute(
            sa.text("UPDATE butler_attributes SET value = '2' WHERE name = 'schema_version'")
        )
    engine.dispose()
    registry = SqlRegistry.open(url)
    assert sa.inspect(registry.engine).has_table("dataset_tag")
    registry.register_collection("tagged", CollectionType.TAGGED)
    assert registry.associate("tagged", []) == 0
    registry.close()


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


def test_bulk_paths_match_small_ones():
    """Large reads take fast paths (scans, raw rows); results equal the per-ID ones."""
    import uuid

    from butler import DatasetRef, DatasetType
    from butler.datastore.stored_file_info import StoredFileInfo

    registry = SqlRegistry.create("sqlite://", DimensionUniverse.default())
    universe = registry.universe
    registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    registry.insert_dimension_records(
        "detector", [{"instrument": "Cam", "id": d} for d in range(60)]
    )
    registry.insert_dimension_records("band", [{"name": "r"}])
    registry.insert_dimension_records(
        "physical_filter", [{"instrument": "Cam", "name": "r1", "band": "r"}]
    )
    registry.insert_dimension_records(
        "visit", [{"instrument": "Cam", "id": v, "physical_filter": "r1"} for v in range(30)]
    )
    raw = DatasetType.make("raw", ["visit", "detector"], "NumpyArray", universe)
    registry.register_dataset_type(raw)
    for run in ("a", "b"):
        registry.register_run(run)
    refs = {
        run: [
            DatasetRef.make(raw, {"instrument": "Cam", "visit": v, "detector": d}, run)
            for v in range(30)
            for d in range(60)
        ]
        for run in ("a", "b")
    }
    # Every other ref of run "a" has a file; run "b" refs all have one.
    infos = [StoredFileInfo(r.id, f"p/{i}", "F", "S", i) for i, r in enumerate(refs["a"][::2])]
    infos += [StoredFileInfo(r.id, f"q/{i}", "F", "S", i) for i, r in enumerate(refs["b"])]
    # Infos not in ref order: paired by ID.
    assert registry.insert_datasets(refs["a"] + refs["b"], infos[::-1]) == 3600
    wanted = refs["a"] + refs["b"][:100] + [uuid.uuid4()]
    stored = registry.get_stored_info(wanted)
    assert stored == {info.dataset_id: info for info in infos[:900] + infos[900:1000]}
    one_by_one = {}
    for ref in wanted[::97]:
        one_by_one.update(registry.get_stored_info([ref]))
    assert all(stored[k] == v for k, v in one_by_one.items())
    found = registry.query_datasets("raw", collections=["b", "a"])
    by_data_id = sorted(refs["b"], key=lambda r: r.data_id.values_tuple)
    assert [r.id for r in found] == [r.id for r in by_data_id]
    everything = registry.query_datasets("raw", collections=["b", "a"], find_first=False)
    assert len(everything) == 3600
    assert [r.run for r in everything[:2]] == ["b", "a"]
    data_ids = registry.query_data_ids(
        ["visit", "detector"], datasets=["raw"], collections=["a", "b"]
    )
    assert len(data_ids) == 1800
    assert data_ids[0].implied == {"physical_filter": "r1", "band": "r"}
    assert data_ids == sorted(data_ids, key=lambda d: d.values_tuple)


def test_dataset_table_has_no_foreign_keys():
    """The registry checks (and on PostgreSQL locks) dataset types and runs once per insert
    instead of per row (test_postgres_registry: removals racing inserts leave no orphans)."""
    from sqlalchemy.dialects import postgresql

    registry = SqlRegistry.create("sqlite://", DimensionUniverse.default())
    with registry.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_key_list(dataset)").all() == []
    ddl = str(sa.schema.CreateTable(registry.schema.dataset).compile(dialect=postgresql.dialect()))
    assert "FOREIGN KEY" not in ddl and "dataset_unique" in ddl


def test_make_dataset_id_is_uuid5():
    import uuid

    from butler.data_coordinate import DataCoordinate
    from butler.dataset_ref import DATASET_ID_NAMESPACE, make_dataset_id

    universe = DimensionUniverse.default()
    data_id = DataCoordinate.standardize(
        {"instrument": "Cam", "visit": 7, "detector": 3}, universe.group(["visit", "detector"])
    )
    made = make_dataset_id("u/me/run", "calexp", data_id)
    expected = uuid.uuid5(
        DATASET_ID_NAMESPACE, f"u/me/run\x00calexp\x00{data_id.canonical_string()}"
    )
    assert made == expected and made.bytes == expected.bytes and str(made) == str(expected)
    assert hash(made) == hash(expected) and made.version == 5
    assert uuid.UUID(str(made)) == made
