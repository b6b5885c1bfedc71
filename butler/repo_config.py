"""The repository configuration file, ``butler.yaml`` at the repository root.

It says where the registry database is (an SQLAlchemy URL; ``<root>`` in it
stands for the repository root, percent-quoted, so a root with ``?``, ``%`` or
``#`` in its name stays a path), where the datastore keeps files (a
path or fsspec URL, the repository root by default) and with which fsspec
storage options (``endpoint_url``, ``profile``, ``anon``...), the file
templates and formatter overrides, and the repository format version.

The root itself may be a local folder or an fsspec URL (``s3://bucket/repo``);
``butler.yaml`` is then read with the environment's default credentials and
written with one put. A short name (``-b dp1``) is looked up in the repository
index, a YAML mapping of names to roots named by ``$SKYQUANTA_REPOSITORY_INDEX``.

No secrets are ever written: the registry URL is stored without its password
(the database driver takes it from ``PGPASSWORD``, ``~/.pgpass`` or the
``db-auth`` file, see `butler.registry`), and storage options that look like
credentials (``key``, ``secret``, ``token``, ``password``...) are refused;
object-store credentials come from the environment or a profile.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from ._errors import ButlerError, RepositoryNotFoundError, RepositoryVersionError

__all__ = [
    "CONFIG_FILE_NAME",
    "REPO_FORMAT_VERSION",
    "REPOSITORY_INDEX_ENV",
    "RepoConfig",
    "RepoConfigError",
    "check_storage_options",
    "redact_url",
    "resolve_repository",
]

#: Name of the configuration file at the repository root.
CONFIG_FILE_NAME = "butler.yaml"
#: Version of the repository layout this software writes and reads.
REPO_FORMAT_VERSION = 1
#: Environment variable naming the repository index file (short name -> root URI).
REPOSITORY_INDEX_ENV = "SKYQUANTA_REPOSITORY_INDEX"

_SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential", "session")
_PUBLIC_OPTIONS = frozenset({"endpoint_url", "profile", "anon", "region_name", "requester_pays"})


class RepoConfigError(ButlerError, ValueError):
    """A repository configuration value is invalid (e.g. a credential would be stored)."""


def is_url(root: str) -> bool:
    """Whether ``root`` is an fsspec URL other than a local ``file://`` path."""
    return "://" in root and not root.startswith("file://")


def redact_url(url: str) -> str:
    """Return a database URL without its password (for ``butler.yaml`` and messages)."""
    if "://" not in url or "@" not in url.split("://", 1)[1].split("/", 1)[0]:
        return url
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except Exception:  # not an SQLAlchemy URL: leave it to the registry to complain
        return url
    if parsed.password is None:
        return url
    bare = sa.engine.URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    return bare.render_as_string(hide_password=False)


def check_storage_options(options: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Return ``options`` as a dict, refusing any that looks like a credential.

    Raises
    ------
    RepoConfigError
        Naming the option and where it came from.
    """
    for name in options:
        lowered = str(name).lower()
        if lowered not in _PUBLIC_OPTIONS and any(w in lowered for w in _SECRET_WORDS):
            raise RepoConfigError(
                f"{where}: storage option {name!r} looks like a credential and is never "
                "stored in the repository; use the environment (AWS_ACCESS_KEY_ID, ...) "
                "or a profile (storage option 'profile')"
            )
    return dict(options)


def resolve_repository(repo: str | os.PathLike[str]) -> str:
    """Return the root of ``repo``: itself, or its entry in the repository index.

    A name that is neither an existing path nor a URL is looked up in the YAML file
    named by ``$SKYQUANTA_REPOSITORY_INDEX`` (``{dp1: s3://bucket/dp1, ...}``).

    Raises
    ------
    RepositoryNotFoundError
        If the index is unreadable or does not name a repository given by name.
    """
    text = os.fspath(repo)
    if is_url(text) or os.path.exists(text) or os.sep in text or "/" in text:
        return text
    index = os.environ.get(REPOSITORY_INDEX_ENV)
    if not index:
        return text
    try:
        entries = _read_text(index)
        data = yaml.safe_load(entries) or {}
    except (OSError, yaml.YAMLError) as err:
        raise RepositoryNotFoundError(
            f"repository index {index!r} (${REPOSITORY_INDEX_ENV}) cannot be read: {err}"
        ) from err
    if not isinstance(data, Mapping):
        raise RepositoryNotFoundError(f"repository index {index!r}: expected a mapping")
    if text not in data:
        return text
    return str(data[text])


def _fs(root: str) -> tuple[Any, str]:
    import fsspec.core

    return fsspec.core.url_to_fs(root)


def _read_text(location: str) -> str:
    if not is_url(location):
        return Path(location.removeprefix("file://")).read_text()
    fs, path = _fs(location)
    return fs.cat_file(path).decode()


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if is_url(root) else str(Path(root) / name)


@dataclasses.dataclass(frozen=True, slots=True)
class RepoConfig:
    """Parsed ``butler.yaml``.

    Parameters
    ----------
    root : `str`
        Repository root (absolute local path or fsspec URL).
    registry_url : `str`
        SQLAlchemy database URL (never with a password).
    datastore_root : `str`
        Path or fsspec URL of the datastore root.
    templates : `dict` [`str`, `str`]
        File templates: ``default`` and per-dataset-type overrides.
    formatters : `dict` [`str`, `str`]
        Formatter overrides keyed by storage class or dataset type name.
    version : `int`
        Repository format version.
    storage_options : `dict` [`str`, `object`]
        fsspec options of the datastore root's filesystem (no credentials).
    checksums : `bool`
        Whether a checksum of every artifact is recorded when it is stored
        (``datastore: checksums: true``; ``butler create --checksums``).
    """

    root: str
    registry_url: str = dataclasses.field(repr=False)  # may hold a password while creating
    datastore_root: str
    templates: dict[str, str] = dataclasses.field(default_factory=dict)
    formatters: dict[str, str] = dataclasses.field(default_factory=dict)
    version: int = REPO_FORMAT_VERSION
    storage_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    checksums: bool = False

    @property
    def is_remote(self) -> bool:
        """Whether the repository root is on an object store (an fsspec URL)."""
        return is_url(self.root)

    @classmethod
    def default(
        cls,
        root: str | os.PathLike[str],
        *,
        registry_url: str | None = None,
        datastore_root: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        checksums: bool = False,
    ) -> RepoConfig:
        """Return the configuration of a new repository at ``root``.

        Raises
        ------
        RepoConfigError
            If the root is a URL and no registry URL is given (SQLite needs a local file),
            or a storage option looks like a credential.
        """
        text = os.fspath(root)
        root = text.rstrip("/") if is_url(text) else str(Path(text).absolute())
        if registry_url is None and is_url(root):
            raise RepoConfigError(
                f"a repository on {root!r} needs a registry server: pass --db "
                "postgresql+psycopg://USER@HOST:PORT/DATABASE (SQLite needs a local file)"
            )
        return cls(
            root=root,
            registry_url=registry_url or f"sqlite:///{_url_path(root)}/registry.sqlite3",
            datastore_root=datastore_root or root,
            storage_options=check_storage_options(
                storage_options or {}, where="butler create"
            ),
            checksums=checksums,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML content (paths inside the root made relative, no secrets)."""
        url = redact_url(self.registry_url)
        prefix = f"sqlite:///{_url_path(self.root)}/"
        if url.startswith(prefix):
            url = "sqlite:///<root>/" + url[len(prefix) :]
        datastore = "<root>" if self.datastore_root == self.root else self.datastore_root
        content: dict[str, Any] = {
            "version": self.version,
            "registry": {"db": url},
            "datastore": {
                "root": datastore,
                "templates": dict(self.templates),
                "formatters": dict(self.formatters),
            },
        }
        if self.checksums:
            content["datastore"]["checksums"] = True
        if self.storage_options:
            content["datastore"]["storage_options"] = check_storage_options(
                self.storage_options, where=_join(self.root, CONFIG_FILE_NAME)
            )
        return content

    def write(self) -> None:
        """Write ``butler.yaml`` atomically (a rename locally, one put on an object store)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if self.is_remote:
            fs, path = _fs(_join(self.root, CONFIG_FILE_NAME))
            fs.pipe_file(path, text.encode())
            return
        path = Path(self.root) / CONFIG_FILE_NAME
        tmp = path.with_name(f".{CONFIG_FILE_NAME}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    @classmethod
    def exists(cls, root: str | os.PathLike[str]) -> bool:
        """Whether a ``butler.yaml`` is at ``root``."""
        text = os.fspath(root)
        if is_url(text):
            fs, path = _fs(_join(text, CONFIG_FILE_NAME))
            return bool(fs.exists(path))
        return (Path(text) / CONFIG_FILE_NAME).is_file()

    @classmethod
    def read(cls, root: str | os.PathLike[str]) -> RepoConfig:
        """Read ``butler.yaml`` from a repository root, URL, index name or the file itself.

        Raises
        ------
        RepositoryNotFoundError
            If there is no repository there.
        RepositoryVersionError
            If the repository was written by a newer version.
        """
        text = resolve_repository(root)
        if is_url(text):
            root_str = text.rstrip("/").removesuffix(f"/{CONFIG_FILE_NAME}")
            config_path = _join(root_str, CONFIG_FILE_NAME)
            try:
                content = _read_text(config_path)
            except FileNotFoundError:
                content = None
        else:
            path = Path(text)
            if path.name == CONFIG_FILE_NAME and path.is_file():
                path = path.parent
            root_str = str(path.absolute())
            config_path = str(path / CONFIG_FILE_NAME)
            content = Path(config_path).read_text() if Path(config_path).is_file() else None
        if content is None:
            hint = ""
            if "/" not in text and os.sep not in text and not os.environ.get(REPOSITORY_INDEX_ENV):
                hint = f" (a short name needs ${REPOSITORY_INDEX_ENV})"
            raise RepositoryNotFoundError(
                f"no butler repository at {text!r} (missing {CONFIG_FILE_NAME}); "
                f"create one with 'butler create'{hint}"
            )
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as err:
            raise RepositoryNotFoundError(f"{config_path}: not valid YAML: {err}") from err
        if not isinstance(data, Mapping):
            raise RepositoryNotFoundError(f"{config_path}: expected a mapping")
        version = int(data.get("version", 0))
        if version > REPO_FORMAT_VERSION:
            raise RepositoryVersionError(
                f"{config_path}: repository format version {version} is newer than this "
                f"software supports ({REPO_FORMAT_VERSION}); upgrade skyquanta"
            )
        registry = data.get("registry") or {}
        datastore = data.get("datastore") or {}
        url = str(registry.get("db", "sqlite:///<root>/registry.sqlite3")).replace(
            "<root>", _url_path(root_str)
        )
        store = str(datastore.get("root", "<root>")).replace("<root>", root_str)
        options = datastore.get("storage_options") or {}
        if not isinstance(options, Mapping):
            raise RepositoryNotFoundError(
                f"{config_path}: datastore.storage_options must be a mapping"
            )
        return cls(
            root=root_str,
            registry_url=url,
            datastore_root=store,
            templates=dict(datastore.get("templates") or {}),
            formatters=dict(datastore.get("formatters") or {}),
            version=version,
            storage_options=check_storage_options(options, where=config_path),
            checksums=bool(datastore.get("checksums", False)),
        )


def _url_path(path: str) -> str:
    """Quote a local path for the database part of an SQLAlchemy URL (``?`` -> ``%3F``...)."""
    return quote(path, safe="/")
