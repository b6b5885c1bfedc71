"""The repository configuration file, ``butler.yaml`` at the repository root.

It says where the registry database is (an SQLAlchemy URL; a relative SQLite
path is relative to the repository root), where the datastore keeps files (a
path or fsspec URL, the repository root by default), the file templates and
formatter overrides, and the repository format version.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ._errors import RepositoryNotFoundError, RepositoryVersionError

__all__ = ["CONFIG_FILE_NAME", "REPO_FORMAT_VERSION", "RepoConfig"]

#: Name of the configuration file at the repository root.
CONFIG_FILE_NAME = "butler.yaml"
#: Version of the repository layout this software writes and reads.
REPO_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, slots=True)
class RepoConfig:
    """Parsed ``butler.yaml``.

    Parameters
    ----------
    root : `str`
        Repository root (absolute local path).
    registry_url : `str`
        SQLAlchemy database URL.
    datastore_root : `str`
        Path or fsspec URL of the datastore root.
    templates : `dict` [`str`, `str`]
        File templates: ``default`` and per-dataset-type overrides.
    formatters : `dict` [`str`, `str`]
        Formatter overrides keyed by storage class or dataset type name.
    version : `int`
        Repository format version.
    """

    root: str
    registry_url: str
    datastore_root: str
    templates: dict[str, str] = dataclasses.field(default_factory=dict)
    formatters: dict[str, str] = dataclasses.field(default_factory=dict)
    version: int = REPO_FORMAT_VERSION

    @classmethod
    def default(
        cls, root: str | os.PathLike[str], *, registry_url: str | None = None
    ) -> RepoConfig:
        """Return the configuration of a new repository at ``root``."""
        root = str(Path(root).absolute())
        return cls(
            root=root,
            registry_url=registry_url or f"sqlite:///{Path(root) / 'registry.sqlite3'}",
            datastore_root=root,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML content (paths inside the root are made relative)."""
        url = self.registry_url
        prefix = f"sqlite:///{self.root}/"
        if url.startswith(prefix):
            url = "sqlite:///<root>/" + url[len(prefix) :]
        datastore = "<root>" if self.datastore_root == self.root else self.datastore_root
        return {
            "version": self.version,
            "registry": {"db": url},
            "datastore": {
                "root": datastore,
                "templates": dict(self.templates),
                "formatters": dict(self.formatters),
            },
        }

    def write(self) -> None:
        """Write ``butler.yaml`` atomically."""
        path = Path(self.root) / CONFIG_FILE_NAME
        tmp = path.with_name(f".{CONFIG_FILE_NAME}.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        os.replace(tmp, path)

    @classmethod
    def read(cls, root: str | os.PathLike[str]) -> RepoConfig:
        """Read ``butler.yaml`` from a repository root (or the file itself).

        Raises
        ------
        RepositoryNotFoundError
            If there is no repository there.
        RepositoryVersionError
            If the repository was written by a newer version.
        """
        path = Path(root)
        if path.name == CONFIG_FILE_NAME and path.is_file():
            path = path.parent
        config_path = path / CONFIG_FILE_NAME
        if not config_path.is_file():
            raise RepositoryNotFoundError(
                f"no butler repository at {str(path)!r} (missing {CONFIG_FILE_NAME}); "
                "create one with 'butler create'"
            )
        try:
            data = yaml.safe_load(config_path.read_text())
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
        root_str = str(path.absolute())
        registry = data.get("registry") or {}
        datastore = data.get("datastore") or {}
        url = str(registry.get("db", "sqlite:///<root>/registry.sqlite3")).replace(
            "<root>", root_str
        )
        store = str(datastore.get("root", "<root>")).replace("<root>", root_str)
        return cls(
            root=root_str,
            registry_url=url,
            datastore_root=store,
            templates=dict(datastore.get("templates") or {}),
            formatters=dict(datastore.get("formatters") or {}),
            version=version,
        )
