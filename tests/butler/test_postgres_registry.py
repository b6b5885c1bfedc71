"""The registry conformance tests on a real PostgreSQL server (initdb + pg_ctl on 127.0.0.1)."""

from __future__ import annotations

import pytest

from butler.dimensions import DimensionUniverse
from butler.registry import SqlRegistry
from butler.testing.registry_tests import RegistryTests


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
