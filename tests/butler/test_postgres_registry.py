"""The registry conformance tests on a real PostgreSQL server (initdb + pg_ctl on 127.0.0.1)."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from butler._errors import (
    ConflictingDefinitionError,
    RegistryConnectionError,
    RepositoryNotFoundError,
    RepositoryVersionError,
)
from butler.cli import main
from butler.dimensions import DimensionUniverse
from butler.registry import SqlRegistry
from butler.testing.registry_tests import RegistryTests
from butler.testing.servers import free_port


class TestPostgresRegistry(RegistryTests):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_server):
        self.server = postgres_server

    def make_registry(self) -> SqlRegistry:
        url = self.server.url(self.server.create_database())
        return SqlRegistry.create(url, DimensionUniverse.default())

    def reopen(self, registry: SqlRegistry, *, writeable: bool = True) -> SqlRegistry | None:
        url = registry.engine.url.render_as_string(hide_password=False)
        registry.close()
        return SqlRegistry.open(url, writeable=writeable)


def test_a_schema_per_repository(postgres_server):
    database = postgres_server.create_database()
    url = postgres_server.url(database)
    first = SqlRegistry.create(f"{url}?schema=survey_a", DimensionUniverse.default())
    second = SqlRegistry.create(f"{url}?schema=survey_b", DimensionUniverse.default())
    first.register_run("only/in/a")
    assert [n for n, _ in second.query_collections()] == []
    again = SqlRegistry.open(f"{url}?schema=survey_a")
    assert [n for n, _ in again.query_collections()] == ["only/in/a"]
    with pytest.raises(ConflictingDefinitionError, match="already exists"):
        SqlRegistry.create(f"{url}?schema=survey_b", DimensionUniverse.default())
    with pytest.raises(RepositoryNotFoundError):
        SqlRegistry.open(f"{url}?schema=survey_c")
    with pytest.raises(RegistryConnectionError, match="schema must be a plain name"):
        SqlRegistry.open(f"{url}?schema=a;drop")
    for registry in (first, second, again):
        registry.close()


def test_schema_version_is_checked(postgres_server):
    url = postgres_server.url(postgres_server.create_database())
    registry = SqlRegistry.create(url, DimensionUniverse.default())
    with registry.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE butler_attributes SET value = '0' WHERE name = 'schema_version'")
        )
    registry.close()
    with pytest.raises(RepositoryVersionError, match="schema version 0 is older") as excinfo:
        SqlRegistry.open(url)
    assert postgres_server.password not in str(excinfo.value)


@pytest.mark.parametrize("problem", ["password", "port"])
def test_connection_failures_are_one_line(postgres_server, tmp_path, problem):
    good = postgres_server.url(postgres_server.create_database())
    if problem == "password":
        url = good.replace(postgres_server.password, "wrong-password")
        expected = "password authentication failed"
    else:
        url = good.replace(f":{postgres_server.port}/", f":{free_port()}/")
        expected = "Connection refused"
    with pytest.raises(RegistryConnectionError, match=expected) as excinfo:
        SqlRegistry.open(url)
    message = str(excinfo.value)
    assert "\n" not in message and "wrong-password" not in message
    assert message.startswith("cannot connect to the registry at postgresql+psycopg://")
    # the command line: one line, exit status 1, and a failed create leaves nothing behind
    result = CliRunner().invoke(main, ["create", str(tmp_path / "repo"), "--db", url])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and expected in result.output
    assert "wrong-password" not in result.output
    assert not (tmp_path / "repo").exists()


def test_missing_driver_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(RegistryConnectionError, match=r"pip install 'skyquanta\[postgres\]'"):
        SqlRegistry.open("postgresql+psycopg://someone@127.0.0.1:5/db")


def test_chain_updates_under_a_row_lock(postgres_server):
    """Many clients prepending their runs to one chain at once: none is lost."""
    import threading

    from butler.registry import CollectionType

    url = postgres_server.url(postgres_server.create_database())
    registry = SqlRegistry.create(url, DimensionUniverse.default())
    registry.register_run("inputs")
    registry.register_collection("out", CollectionType.CHAINED)
    assert registry.update_collection_chain("out", append=["inputs"]) == ("inputs",)
    names = [f"out/run{i}" for i in range(8)]
    for name in names:
        registry.register_run(name)
    barrier = threading.Barrier(len(names))
    errors = []

    def prepend(name):
        client = SqlRegistry.open(url)
        try:
            barrier.wait(30)
            client.update_collection_chain("out", prepend=[name], append=["inputs"])
        except Exception as err:  # reported below
            errors.append(err)
        finally:
            client.close()

    threads = [threading.Thread(target=prepend, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    chain = registry.get_collection_chain("out")
    assert sorted(chain[:-1]) == names and chain[-1] == "inputs"
    registry.close()


def test_concurrent_dataset_type_registration(postgres_server):
    """Clients registering the same dataset types at once all succeed (no IntegrityError)."""
    import threading

    from butler.dataset_type import DatasetType

    url = postgres_server.url(postgres_server.create_database())
    SqlRegistry.create(url, DimensionUniverse.default()).close()
    clients = [SqlRegistry.open(url) for _ in range(4)]
    names = [f"type_{i}" for i in range(30)]
    barrier = threading.Barrier(len(clients))
    errors: list[BaseException] = []
    inserted: list[bool] = []

    def register(registry: SqlRegistry) -> None:
        try:
            for name in names:
                dataset_type = DatasetType(name, registry.universe.group(["visit"]), "JsonDict")
                barrier.wait(timeout=30)
                inserted.append(registry.register_dataset_type(dataset_type))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=register, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for registry in clients:
        registry.close()
    assert errors == []
    assert sum(inserted) == len(names)  # each type inserted exactly once


def _registry_with_run(url, run="r"):
    from butler import DatasetType

    registry = SqlRegistry.create(url, DimensionUniverse.default())
    registry.insert_dimension_records("instrument", [{"name": "Cam", "detector_max": 9,
                                                      "visit_max": 9}])
    registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": d,
                                                    "full_name": f"D{d}"} for d in range(4)])
    registry.register_dataset_type(DatasetType.make("d", ["instrument", "detector"],
                                                    "StructuredDataDict", registry.universe))
    registry.register_run(run)
    return registry


def _refs(registry, run="r"):
    from butler import DatasetRef

    dtype = registry.get_dataset_type("d")
    return [DatasetRef.make(dtype, {"instrument": "Cam", "detector": d}, run) for d in range(4)]


def _dataset_rows(url):
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM dataset")).scalar_one()
    engine.dispose()
    return count


def test_a_run_removed_while_datasets_go_into_it_leaves_no_orphans(postgres_server):
    """The dataset table has no foreign keys (bulk speed): an insert locks its run, and
    remove_run locks it first, so a removal waits for the insert and deletes its rows too."""
    import threading
    import time

    url = postgres_server.url(postgres_server.create_database())
    writer = _registry_with_run(url)
    remover = SqlRegistry.open(url)
    done = threading.Event()
    errors = []

    def remove():
        try:
            remover.remove_run("r")
        except Exception as err:  # reported below
            errors.append(err)
        done.set()

    with writer.transaction():
        writer.insert_datasets(_refs(writer))
        thread = threading.Thread(target=remove)
        thread.start()
        time.sleep(1.0)
        assert not done.is_set()  # waits for the inserting transaction
    thread.join(30)
    assert done.is_set() and not errors, errors
    assert _dataset_rows(url) == 0  # the inserted rows went with their run
    writer.close()
    remover.close()


def test_an_insert_into_a_run_being_removed_is_refused(postgres_server):
    from butler._errors import MissingCollectionError

    url = postgres_server.url(postgres_server.create_database())
    writer = _registry_with_run(url)
    remover = SqlRegistry.open(url)
    refs = _refs(writer)  # dataset type and run read (cached) before the removal
    with remover.transaction():
        remover.remove_run("r")
        import threading

        failure = []
        thread = threading.Thread(target=lambda: failure.append(
            pytest.raises(MissingCollectionError, writer.insert_datasets, refs)))
        thread.start()
        thread.join(1.0)
    thread.join(30)
    assert failure and "r" in str(failure[0].value)
    assert _dataset_rows(url) == 0
    writer.close()
    remover.close()


def test_clients_taking_one_run_lease_at_once(postgres_server):
    """Many clients take the lease of one run at the same moment: exactly one gets it, every
    other is refused with RunLeaseError naming the holder (before: a unique-key violation
    when two found no lease and both inserted one)."""
    import threading

    from butler._errors import RunLeaseError

    url = postgres_server.url(postgres_server.create_database())
    registry = SqlRegistry.create(url, DimensionUniverse.default())
    registry.register_run("r")
    n = 8
    clients = [SqlRegistry.open(url) for _ in range(n)]
    barrier = threading.Barrier(n)
    results = []

    def take(i):
        try:
            barrier.wait(30)
            clients[i].acquire_run_lease("r", f"token-{i}")
            results.append("ok")
        except Exception as err:  # reported below
            results.append(err)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results.count("ok") == 1, results
    refused = [r for r in results if r != "ok"]
    assert all(isinstance(r, RunLeaseError) for r in refused), refused
    for client in clients:
        client.close()
    registry.close()


def test_clients_registering_one_run_at_once(postgres_server):
    """Many clients register the same run at the same moment: all succeed, one made it (before:
    a unique-key violation when two found no row and both inserted one)."""
    import threading

    url = postgres_server.url(postgres_server.create_database())
    registry = SqlRegistry.create(url, DimensionUniverse.default())
    n = 8
    clients = [SqlRegistry.open(url) for _ in range(n)]
    barrier = threading.Barrier(n)
    results = []

    def register(i):
        try:
            barrier.wait(30)
            results.append(clients[i].register_run("u/same"))
        except Exception as err:  # reported below
            results.append(err)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results, key=str) == [False] * (n - 1) + [True], results
    for client in clients:
        client.close()
    registry.close()
