"""The ``imports`` section: other pipeline files this one is built on.

An entry is a file name or ``{location, include | exclude, importContracts}``. Relative
locations are resolved against the importing file's directory. Reading and merging the imported
files is `pipeline.definition.pipeline_ir`'s job; this module only reads the entries. No state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import PipelineDefinitionError
from .yaml_reader import _item_line, _key_line, _sequence, _suggest, _where

__all__ = ["ImportIR", "read_imports"]

_IMPORT_KEYS = ("location", "include", "exclude", "importContracts")


@dataclass(frozen=True, slots=True)
class ImportIR:
    """An ``imports`` entry: another pipeline file, possibly restricted."""

    location: str
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    importContracts: bool = True
    where: str = field(default="<unknown>", compare=False)


def read_imports(doc: dict, source: str, base: Path) -> tuple[ImportIR, ...]:
    """Read the ``imports`` list of a pipeline document.

    Raises
    ------
    PipelineDefinitionError
        For a malformed entry or an unknown key (file and line named).
    """
    result = []
    entries = _sequence(doc, "imports", source)
    for i, entry in enumerate(entries):
        where = _where(source, _item_line(entries, i))
        if isinstance(entry, str):
            entry = {"location": entry}
        if not isinstance(entry, dict) or "location" not in entry:
            raise PipelineDefinitionError(
                f"{where}: an import must be a file name or a mapping with 'location'"
            )
        for key in entry:
            if key not in _IMPORT_KEYS:
                raise PipelineDefinitionError(
                    f"{_where(source, _key_line(entry, key))}: unknown import key {key!r}"
                    f"{_suggest(key, _IMPORT_KEYS)}; allowed: {', '.join(_IMPORT_KEYS)}"
                )
        if "include" in entry and "exclude" in entry:
            raise PipelineDefinitionError(
                f"{where}: an import may have 'include' or 'exclude', not both"
            )
        location = os.path.expandvars(str(entry["location"]))
        if not os.path.isabs(location):
            location = str((base / location).resolve())
        include = entry.get("include")
        result.append(
            ImportIR(
                location=location,
                include=tuple(include) if include is not None else None,
                exclude=tuple(entry.get("exclude") or ()),
                importContracts=bool(entry.get("importContracts", True)),
                where=where,
            )
        )
    return tuple(result)
