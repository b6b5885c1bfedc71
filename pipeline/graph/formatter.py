"""A quantum graph as a dataset: every run keeps the graph it was executed with.

`QuantumGraphFormatter` stores a `~pipeline.graph.quantum_graph.QuantumGraph` in its own
``.qgraph`` encoding (`QuantumGraph.save` / `QuantumGraph.load`); on a filesystem other than
the local one it goes through a local temporary file. Registered as the ``QuantumGraph``
storage class by `pipeline.storage_classes`. No state.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any, ClassVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from butler.datastore.formatter import Formatter

from .quantum_graph import QuantumGraph

__all__ = ["QuantumGraphFormatter"]


class QuantumGraphFormatter(Formatter):
    """A quantum graph in a ``.qgraph`` file."""

    extension: ClassVar[str] = ".qgraph"

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Save the graph at ``path``."""
        if isinstance(fs, LocalFileSystem):
            obj.save(path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "graph.qgraph")
            obj.save(local)
            fs.put_file(local, path)

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Load the graph at ``path``."""
        self.check_parameters(parameters)
        if isinstance(fs, LocalFileSystem):
            return QuantumGraph.load(path)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "graph.qgraph")
            fs.get_file(path, local)
            return QuantumGraph.load(local)
