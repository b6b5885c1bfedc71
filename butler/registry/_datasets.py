"""Dataset registration, lookup, queries and removal for `SqlRegistry`.

Design
------
`DatasetsMixin` holds the dataset half of `SqlRegistry`'s API, over the one
wide ``dataset`` table (see `_schema`), composed of two halves:

- `_dataset_writes`: registration (bulk ``executemany`` inserts, conflict
  diagnosis on integrity errors), stored-file updates and removal;
- `_dataset_reads`: lookups by ID or data ID, stored-file reads and the
  dataset and data ID queries, with their fast paths.

No state beyond the registry's own (see `sql_registry`).
"""

from __future__ import annotations

from ._dataset_reads import DatasetReadsMixin
from ._dataset_writes import DatasetWritesMixin

__all__ = ["DatasetsMixin"]


class DatasetsMixin(DatasetWritesMixin, DatasetReadsMixin):
    """Dataset methods of `SqlRegistry` (see there for the attributes used)."""
