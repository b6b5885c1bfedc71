"""Session-wide fixtures: a real PostgreSQL server and a real S3 server (moto), started on
first use and stopped at the end of the session (see `butler.testing.servers`)."""

from __future__ import annotations

import pytest

from butler.testing.servers import PostgresServer, S3Server, environment, server_unavailable


@pytest.fixture(scope="session")
def postgres_server():
    """A running `PostgresServer` (skips, saying why, only if one cannot run here)."""
    reason = server_unavailable("postgres")
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """SQLAlchemy URL (with password) of a new, empty database on the session's server."""
    return postgres_server.url(postgres_server.create_database())


@pytest.fixture(scope="session")
def s3_server():
    """A running `S3Server`; this process's environment points boto/s3fs at it."""
    reason = server_unavailable("s3")
    if reason:
        pytest.skip(reason)
    server = S3Server()
    server.start()
    try:
        with environment(server.env):
            yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """Name of a new, empty bucket on the session's S3 server."""
    return s3_server.new_bucket()


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``soak`` unless the ``-m`` expression names them (``pytest -m soak``):
    they take minutes, longer than the suite's budget on a quiet 2-core machine."""
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="soak test: run it with `pytest -m soak`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
