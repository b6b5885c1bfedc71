"""Where a dataset's bytes are: the record the registry keeps for each dataset."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

__all__ = ["StoredFileInfo"]


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFileInfo:
    """The stored artifact of one dataset.

    Parameters
    ----------
    dataset_id : `uuid.UUID`
        ID of the dataset stored.
    path : `str`
        Location relative to the datastore root (posix separators), or an
        absolute path/URL for files ingested with ``transfer="direct"``.
    formatter : `str`
        Dotted name of the formatter class that reads it.
    storage_class : `str`
        Storage class it was written with.
    file_size : `int`
        Size in bytes (total over files for a directory artifact); -1 if unknown.
        Checked before every read.
    checksum : `str` or `None`
        Digest of the bytes (``xxh3_128:<hex>``, see `~butler.datastore.integrity`)
        in a repository created with checksums; `None` if not recorded.
    """

    dataset_id: uuid.UUID
    path: str
    formatter: str
    storage_class: str
    file_size: int = -1
    checksum: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible form."""
        return {
            "dataset_id": str(self.dataset_id),
            "path": self.path,
            "formatter": self.formatter,
            "storage_class": self.storage_class,
            "file_size": self.file_size,
            "checksum": self.checksum,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredFileInfo:
        """Rebuild from `to_dict` output."""
        return cls(
            uuid.UUID(data["dataset_id"]),
            data["path"],
            data["formatter"],
            data["storage_class"],
            int(data.get("file_size", -1)),
            data.get("checksum"),
        )
