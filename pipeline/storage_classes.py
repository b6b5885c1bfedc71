"""Storage classes of the pipeline framework, registered through the entry point.

``register(registry)`` is the ``skyquanta.storage_classes`` entry point of this package. It
adds ``TaskMetadata`` (JSON), ``ButlerLogRecords`` (JSON), ``Config`` (YAML, via
`ConfigFormatter`, which records the config class so that any subclass round-trips) and
``Packages`` (a dict of package versions, YAML), ``MockDataset`` (the placeholder dict of
``pipetask run --mock``, JSON) and ``QuantumGraph`` (the graph a run was
executed with, `pipeline.graph.formatter`). No state.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, ClassVar

import fsspec

from butler.datastore.formatter import Formatter
from butler.storage_class import StorageClass, StorageClassRegistry, import_object

__all__ = ["STORAGE_CLASSES", "ConfigFormatter", "register"]

_JSON = "butler.datastore.formatters.JsonFormatter"
_YAML = "butler.datastore.formatters.YamlFormatter"


class ConfigFormatter(Formatter):
    """A `~pipeline.config.Config` as YAML whose first line names the config class."""

    extension: ClassVar[str] = ".yaml"

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write ``obj.toYamlString()`` (a ``# module.Class`` line, then the fields)."""
        with fs.open(path, "w", encoding="utf-8") as stream:
            stream.write(obj.toYamlString())

    def read(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Rebuild the config: import the class named on the first line, apply the values."""
        self.check_parameters(parameters)
        with fs.open(path, "r", encoding="utf-8") as stream:
            text = stream.read()
        return config_from_yaml(text)


def config_from_yaml(text: str, class_name: str | None = None) -> Any:
    """Build a config from `Config.toYamlString` text.

    Parameters
    ----------
    text : `str`
        The YAML text; its first line ``# module.Class`` names the class.
    class_name : `str`, optional
        Dotted config class name, if the text has no header line.

    Returns
    -------
    config : `~pipeline.config.Config`
        The config (not frozen).

    Raises
    ------
    ValueError
        If no class name is given or found.
    """
    first = text.split("\n", 1)[0]
    if class_name is None:
        if not first.startswith("# "):
            raise ValueError("config YAML has no '# module.Class' header line")
        class_name = first[2:].strip()
    config = import_object(class_name)()
    config.loadFromYaml(io.StringIO(text), where="butler")
    return config


STORAGE_CLASSES = (
    StorageClass("TaskMetadata", "pipeline.task_metadata.TaskMetadata", _JSON),
    StorageClass("ButlerLogRecords", "pipeline.execution.log_capture.ButlerLogRecords", _JSON),
    StorageClass("Config", "pipeline.config.Config", "pipeline.storage_classes.ConfigFormatter"),
    StorageClass("Packages", "builtins.dict", _YAML),
    # the placeholders that `pipeline.definition.mock` tasks write
    StorageClass("MockDataset", "builtins.dict", _JSON),
    StorageClass(
        "QuantumGraph",
        "pipeline.graph.quantum_graph.QuantumGraph",
        "pipeline.graph.formatter.QuantumGraphFormatter",
    ),
)


def register(registry: StorageClassRegistry) -> None:
    """Add the pipeline storage classes to ``registry`` (the entry point)."""
    for storage_class in STORAGE_CLASSES:
        registry.register(storage_class)
