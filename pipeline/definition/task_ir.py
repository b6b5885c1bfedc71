"""The ``tasks`` section: labels, task classes by dotted name, and their config blocks.

An entry is a class name, or ``{class: ..., config: ...}`` where ``config`` is one block or a
list of blocks. A block holds field values by dotted path, ``file:`` (one or several override
files, made absolute against the pipeline file's directory) and ``python:`` (inline overrides,
refused unless the reader allows python). LSST's ``dataId:`` (overrides for some data IDs only)
is refused: a task here has one config for all its quanta. A task imported from another
pipeline may omit ``class``; the merge checks that. No state.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import PipelineDefinitionError
from .parameters_ir import substitute_parameters
from .yaml_reader import _item_line, _key_line, _LineList, _mapping, _plain, _suggest, _where

__all__ = ["ConfigIR", "TaskIR", "read_tasks"]


@dataclass(frozen=True, slots=True)
class ConfigIR:
    """One config block of a task.

    Parameters
    ----------
    fields : `dict` [`str`, `object`]
        Field overrides by dotted path (``connections.exposure: icExp``), in file order.
    files : `tuple` [`str`, ...]
        Override files (``.py`` or ``.yaml``), absolute when read from a file.
    python : `str` or `None`
        Inline python overrides; only present when the reader allowed python.
    where : `str`
        ``file:line`` of the block, for config history and errors.
    field_where : `dict` [`str`, `str`]
        ``file:line`` of each field override (and of ``python``).
    """

    fields: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    python: str | None = None
    where: str = field(default="<unknown>", compare=False)
    field_where: dict[str, str] = field(default_factory=dict, compare=False)

    def formatted(self, parameters: Mapping[str, Any]) -> ConfigIR:
        """Return a copy with ``parameters.name`` values substituted.

        A value that is exactly ``parameters.name`` takes the parameter's value and type; a
        value containing it elsewhere has it replaced by the parameter's text.

        Warns
        -----
        UnknownParameterWarning
            If a value names a parameter that is not defined (the value is left as written).
        """
        new_fields = {}
        for key, value in self.fields.items():
            where = self.field_where.get(key, self.where)
            new_fields[key] = substitute_parameters(value, parameters, where)
        return dataclasses.replace(self, fields=new_fields)

    def to_primitive(self) -> dict[str, Any]:
        """Return the block as it is written in YAML."""
        result: dict[str, Any] = {}
        if len(self.files) == 1:
            result["file"] = self.files[0]
        elif self.files:
            result["file"] = list(self.files)
        if self.python is not None:
            result["python"] = self.python
        result.update(_plain(self.fields))
        return result


@dataclass(frozen=True, slots=True)
class TaskIR:
    """A task entry: a label, a class given by dotted name, and its config blocks."""

    label: str
    klass: str
    config: tuple[ConfigIR, ...] = ()
    where: str = field(default="<unknown>", compare=False)

    def to_primitive(self) -> str | dict[str, Any]:
        """Return the entry as it is written in YAML."""
        if not self.config:
            return self.klass
        return {"class": self.klass, "config": [c.to_primitive() for c in self.config]}


def read_tasks(doc: dict, source: str, base: Path, *, allow_python: bool) -> dict[str, TaskIR]:
    """Read the ``tasks`` mapping of a pipeline document.

    Parameters
    ----------
    doc : `dict`
        The document, as read by the line-recording loader.
    source : `str`
        File name for messages.
    base : `pathlib.Path`
        Directory that relative config file names are resolved against.
    allow_python : `bool`
        Whether inline ``python:`` config blocks are accepted.

    Raises
    ------
    PipelineDefinitionError
        For a malformed entry, an unknown key, or a refused ``python:`` block (file and line).
    """
    tasks = _mapping(doc, "tasks", source)
    result = {}
    for label, entry in tasks.items():
        where = _where(source, _key_line(tasks, label))
        if label == "parameters":
            raise PipelineDefinitionError(
                f"{where}: 'parameters' is reserved (config values refer to parameters.name) "
                "and cannot be a task label"
            )
        if isinstance(entry, str):
            result[label] = TaskIR(label=str(label), klass=entry, where=where)
            continue
        if not isinstance(entry, dict):
            raise PipelineDefinitionError(
                f"{where}: task {label!r} must be a class name or a mapping with 'class'"
            )
        for key in entry:
            if key not in ("class", "config"):
                raise PipelineDefinitionError(
                    f"{_where(source, _key_line(entry, key))}: unknown key {key!r} in task "
                    f"{label!r}{_suggest(key, ('class', 'config'))}; allowed: class, config"
                )
        blocks = entry.get("config") or []
        if isinstance(blocks, dict):
            blocks = _LineList([blocks])
            blocks.item_lines = [_key_line(entry, "config") or 0]
        configs = tuple(
            _config_block(block, label, source, base, _item_line(blocks, i), allow_python)
            for i, block in enumerate(blocks)
        )
        # A missing class is allowed when the label comes from an import; checked on merge.
        result[label] = TaskIR(
            label=str(label), klass=entry.get("class") or "", config=configs, where=where
        )
    return result


def _config_block(
    block: Any, label: str, source: str, base: Path, line: int | None, allow_python: bool
) -> ConfigIR:
    where = _where(source, line)
    if not isinstance(block, dict):
        raise PipelineDefinitionError(f"{where}: config block of task {label!r} must be a mapping")
    files: list[str] = []
    python = None
    fields = {}
    field_where = {}
    for key, value in block.items():
        key_where = _where(source, _key_line(block, key))
        if key == "file":
            names = value if isinstance(value, list) else [value]
            for name in names:
                name = os.path.expandvars(str(name))
                files.append(name if os.path.isabs(name) else str((base / name).resolve()))
        elif key == "python":
            if not allow_python:
                raise PipelineDefinitionError(
                    f"{key_where}: task {label!r} has an inline 'python:' config block; "
                    "python in pipeline files is refused unless explicitly allowed "
                    "(allow_python=True); use 'file: overrides.py' or field values instead"
                )
            python = str(value)
            field_where["python"] = key_where
        elif key == "dataId":
            raise PipelineDefinitionError(
                f"{key_where}: task {label!r} has a 'dataId:' config block (overrides for some "
                "data IDs only); not supported: a task has one config for all its quanta"
            )
        else:
            fields[str(key)] = _plain(value)
            field_where[str(key)] = key_where
    return ConfigIR(
        fields=fields, files=tuple(files), python=python, where=where, field_where=field_where
    )
