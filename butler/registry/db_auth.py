"""Database credentials from a ``db-auth`` file readable only by its owner (as daf_butler's).

Design
------
The file is YAML: a list of entries, each with ``url`` (a pattern), ``username`` and
``password``::

    - url: postgresql://db.example.org:5432/survey
      username: alice
      password: s3cret
    - url: postgresql://*.example.org
      username: alice
      password: other

It is ``$SKYQUANTA_DB_AUTH``, else ``~/.skyquanta/db-auth.yaml`` (the format of LSST's
``~/.lsst/db-auth.yaml``, so that file can be named by the variable). A file that others may
read or write (any group/other bit of its mode) is refused, as libpq refuses such a
``~/.pgpass``. `credentials` returns the first entry whose pattern matches the registry URL:
the same database kind (the driver part, ``+psycopg``, ignored), the host as a shell-style
pattern (``*.example.org``), and the port, database and user name when the pattern gives them.
The pattern's database is a shell-style pattern too.

Precedence (`apply_db_auth`): a password in the URL itself, then ``PGPASSWORD``, then this
file, then libpq's ``~/.pgpass``. Nothing read here is ever written back or logged.

State: none (the file is read at each call: once per engine).
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
import yaml

from .._errors import RegistryConnectionError

__all__ = ["DB_AUTH_ENV", "apply_db_auth", "credentials", "db_auth_path"]

#: Environment variable naming the db-auth file.
DB_AUTH_ENV = "SKYQUANTA_DB_AUTH"


def db_auth_path() -> Path:
    """Return the db-auth file's path (``$SKYQUANTA_DB_AUTH`` or the default)."""
    named = os.environ.get(DB_AUTH_ENV)
    return Path(named).expanduser() if named else Path.home() / ".skyquanta" / "db-auth.yaml"


def _entries(path: Path) -> list[dict[str, Any]]:
    """Read and check the file; [] if it does not exist."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RegistryConnectionError(
            f"db-auth file {path}: others may read it (mode {stat.S_IMODE(mode):o}); "
            f"it must be readable by its owner only: chmod 600 {path}"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RegistryConnectionError(f"db-auth file {path}: cannot read it: {first}") from err
    if data is None:
        return []
    if not isinstance(data, list):
        raise RegistryConnectionError(
            f"db-auth file {path}: must be a list of entries with url, username, password; "
            f"got a {type(data).__name__}"
        )
    for number, entry in enumerate(data, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise RegistryConnectionError(f"db-auth file {path}: entry {number} has no 'url'")
        if not isinstance(entry.get("password"), str):
            raise RegistryConnectionError(
                f"db-auth file {path}: entry {number} ({entry['url']}) has no 'password'"
            )
    return data


def _matches(pattern: str, url: sa.URL) -> bool:
    """Whether a db-auth ``url`` pattern matches the registry ``url``."""
    parts = urlsplit(pattern)
    if parts.scheme.split("+")[0] != url.get_backend_name():
        return False
    try:
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or "*"
    if not fnmatch.fnmatchcase((url.host or "localhost").lower(), host.lower()):
        return False
    if port is not None and port != (url.port or 5432):
        return False
    user = unquote(parts.username) if parts.username else None
    if user is not None and url.username is not None and user != url.username:
        return False
    database = unquote(parts.path.lstrip("/"))
    return not database or fnmatch.fnmatchcase(url.database or "", database)


def credentials(url: str | sa.URL, path: Path | None = None) -> tuple[str | None, str] | None:
    """Return (username, password) of the first db-auth entry matching ``url``, if any.

    Raises
    ------
    RegistryConnectionError
        If the file may be read by others, or is not a list of entries with url and password.
    """
    url = sa.make_url(url)
    for entry in _entries(path if path is not None else db_auth_path()):
        if _matches(entry["url"], url):
            username = entry.get("username")
            return (str(username) if username is not None else None), entry["password"]
    return None


def apply_db_auth(url: sa.URL) -> sa.URL:
    """Return ``url`` with the db-auth file's credentials (when they apply, see above).

    A URL with a password, or ``PGPASSWORD`` set, is returned as it is (libpq then uses
    that); so is one no entry matches (libpq may find it in ``~/.pgpass``).
    """
    if url.password is not None or os.environ.get("PGPASSWORD"):
        return url
    found = credentials(url)
    if found is None:
        return url
    username, password = found
    return url.set(username=url.username or username, password=password)
