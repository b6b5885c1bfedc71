"""The db-auth file (`butler.registry.db_auth`): registry credentials from a YAML file that only
its owner may read, matched by URL pattern; checked against a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from butler import Butler
from butler._errors import RegistryConnectionError
from butler.registry.db_auth import DB_AUTH_ENV, credentials

BUTLER = str(Path(sys.executable).parent / "butler")


def _write(path: Path, entries, mode=0o600) -> Path:
    path.write_text(yaml.safe_dump(entries))
    path.chmod(mode)
    return path


@pytest.fixture
def no_libpq_secrets(monkeypatch, tmp_path):
    """No PGPASSWORD and no ~/.pgpass: only the db-auth file can supply the password."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def test_patterns_pick_the_first_matching_entry(tmp_path):
    auth = _write(tmp_path / "auth.yaml", [
        {"url": "postgresql://db.example.org:5433/survey", "username": "a", "password": "1"},
        {"url": "postgresql://bob@*.example.org/surv*", "username": "bob", "password": "2"},
        {"url": "postgresql://*.example.org", "username": "c", "password": "3"},
        {"url": "sqlite://", "password": "never"},
    ])
    url = "postgresql+psycopg://{user}db.example.org{port}/{db}"
    assert credentials(url.format(user="", port=":5433", db="survey"), auth) == ("a", "1")
    assert credentials(url.format(user="", port="", db="survey"), auth) == ("bob", "2")
    assert credentials(url.format(user="bob@", port="", db="surveys"), auth) == ("bob", "2")
    assert credentials(url.format(user="eve@", port="", db="survey"), auth) == ("c", "3")
    assert credentials(url.format(user="", port="", db="other"), auth) == ("c", "3")
    assert credentials("postgresql://elsewhere.org/survey", auth) is None
    assert credentials("postgresql://db.example.org/x", tmp_path / "missing.yaml") is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"url": "postgresql://x"}, "must be a list"),
        ([{"username": "a", "password": "b"}], "entry 1 has no 'url'"),
        ([{"url": "postgresql://x", "username": "a"}], "(postgresql://x) has no 'password'"),
    ],
)
def test_malformed_files_are_one_line(tmp_path, content, expected):
    auth = _write(tmp_path / "auth.yaml", content)
    with pytest.raises(RegistryConnectionError) as excinfo:
        credentials("postgresql://x/db", auth)
    assert expected in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_a_file_others_may_read_is_refused(tmp_path):
    auth = _write(tmp_path / "auth.yaml", [{"url": "postgresql://x", "password": "p"}], 0o644)
    with pytest.raises(RegistryConnectionError, match=r"mode 644.*chmod 600"):
        credentials("postgresql://x/db", auth)


def test_repository_on_postgres_with_db_auth(postgres_server, tmp_path, monkeypatch,
                                             no_libpq_secrets):
    database = postgres_server.create_database()
    url = postgres_server.url(database, password=False)
    pattern = f"postgresql://127.0.0.*:{postgres_server.port}/{database}"
    auth = _write(tmp_path / "db-auth.yaml", [
        {"url": f"postgresql://127.0.0.1:{postgres_server.port}/other", "username": "x",
         "password": "not-this-one"},
        {"url": pattern, "username": postgres_server.user, "password": postgres_server.password},
    ])
    monkeypatch.setenv(DB_AUTH_ENV, str(auth))
    repo = tmp_path / "repo"
    Butler.create(repo, registry_url=url)
    assert postgres_server.password not in (repo / "butler.yaml").read_text()
    assert Butler(repo).registry.query_collections() == []
    # another process (the command line) finds the password the same way
    env = dict(os.environ)
    listed = subprocess.run([BUTLER, "query-collections", str(repo)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    # a file others may read is refused in one line, by the command line too
    auth.chmod(0o640)
    refused = subprocess.run([BUTLER, "query-collections", str(repo)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "chmod 600" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stderr.strip().count("\n") == 0
    assert postgres_server.password not in refused.stdout + refused.stderr
    # PGPASSWORD comes first: a wrong one is not overridden by the file
    auth.chmod(0o600)
    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    with pytest.raises(RegistryConnectionError, match="password authentication failed"):
        Butler(repo)


def test_no_matching_entry_fails_to_authenticate_in_one_line(postgres_server, tmp_path,
                                                             monkeypatch, no_libpq_secrets):
    url = postgres_server.url(postgres_server.create_database(), password=False)
    auth = _write(tmp_path / "db-auth.yaml", [
        {"url": "postgresql://db.example.org", "username": "x", "password": "y"},
    ])
    monkeypatch.setenv(DB_AUTH_ENV, str(auth))
    with pytest.raises(RegistryConnectionError) as excinfo:
        Butler.create(tmp_path / "repo", registry_url=url)
    assert "\n" not in str(excinfo.value) and "cannot connect to the registry" in str(excinfo.value)
    assert not (tmp_path / "repo").exists()
