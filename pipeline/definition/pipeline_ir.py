"""The pipeline YAML, read into frozen dataclasses: one per YAML section.

Design
------
A pipeline file follows LSST's schema::

    description: ...
    instrument: some.Instrument
    parameters: {name: value}
    imports:
      - location: $PIPELINES/base.yaml
        exclude: [labelA]
        importContracts: false
    tasks:
      isr: some.module.IsrTask
      calibrate:
        class: some.module.CalibrateTask
        config:
          - file: overrides.py
          - doAstrometry: false
            connections.exposure: icExp
    subsets:
      step1: [isr, calibrate]
    contracts:
      - contract: "calibrate.doAstrometry == False"
        msg: "..."

The YAML is read with `_LineLoader` (in `pipeline.definition.yaml_reader`), a SafeLoader whose
mappings and sequences remember the line of each key and item, so that every error can say
``file.yaml:12: unknown key 'taks'``. Imports are resolved while reading: `PipelineIR` holds the
flattened pipeline (imported tasks, subsets, contracts and parameters merged in), and
`PipelineIR.imports` keeps what was imported, for information. `PipelineIR.to_yaml` therefore
writes a self-contained pipeline with no imports. Config file paths are made absolute while
reading, so a saved pipeline works from anywhere.

There is no mutable state: every object here is a frozen value; `subset` and `merged_with` return
new ones.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._errors import PipelineDefinitionError
from .contracts import contract_labels
from .yaml_reader import (
    _item_line,
    _key_line,
    _LineDict,
    _LineList,
    _load_yaml,
    _plain,
    _suggest,
    _where,
)

__all__ = [
    "ConfigIR",
    "ContractIR",
    "ImportIR",
    "PipelineIR",
    "SubsetIR",
    "TaskIR",
    "split_selector",
]

_TOP_LEVEL_KEYS = (
    "description",
    "instrument",
    "parameters",
    "imports",
    "tasks",
    "subsets",
    "contracts",
)
_PARAMETER_RE = re.compile(r"parameters\.(\w+)")


# --------------------------------------------------------------------------------------------
# One dataclass per section
# --------------------------------------------------------------------------------------------


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
        ``file:line`` of each field override.
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

        Raises
        ------
        PipelineDefinitionError
            If a value names a parameter that is not defined.
        """
        new_fields = {}
        for key, value in self.fields.items():
            new_fields[key] = _substitute(value, parameters, self.field_where.get(key, self.where))
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


def _substitute(value: Any, parameters: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, list):
        return [_substitute(v, parameters, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, parameters, where) for k, v in value.items()}
    if not isinstance(value, str) or "parameters." not in value:
        return value
    for name in _PARAMETER_RE.findall(value):
        if name not in parameters:
            raise PipelineDefinitionError(
                f"{where}: unknown parameter {name!r} in {value!r}; "
                f"defined parameters: {sorted(parameters)}{_suggest(name, parameters)}"
            )
    whole = _PARAMETER_RE.fullmatch(value)
    if whole:
        return parameters[whole.group(1)]
    return _PARAMETER_RE.sub(lambda m: str(parameters[m.group(1)]), value)


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


@dataclass(frozen=True, slots=True)
class ImportIR:
    """An ``imports`` entry: another pipeline file, possibly restricted."""

    location: str
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    importContracts: bool = True
    where: str = field(default="<unknown>", compare=False)


@dataclass(frozen=True, slots=True)
class SubsetIR:
    """A labeled subset: a named group of task labels."""

    label: str
    subset: tuple[str, ...]
    description: str | None = None
    where: str = field(default="<unknown>", compare=False)

    def to_primitive(self) -> list[str] | dict[str, Any]:
        """Return the entry as it is written in YAML."""
        if self.description is None:
            return list(self.subset)
        return {"subset": list(self.subset), "description": self.description}


@dataclass(frozen=True, slots=True)
class ContractIR:
    """A contract: a boolean expression over task configs, and a message for when it fails."""

    contract: str
    msg: str | None = None
    where: str = field(default="<unknown>", compare=False)

    def to_primitive(self) -> str | dict[str, Any]:
        """Return the entry as it is written in YAML."""
        if self.msg is None:
            return self.contract
        return {"contract": self.contract, "msg": self.msg}


@dataclass(frozen=True, slots=True)
class PipelineIR:
    """A whole pipeline, with its imports resolved.

    Parameters
    ----------
    description : `str`
        Free text.
    instrument : `str` or `None`
        Dotted name of the instrument class; the framework only records it.
    parameters : `dict` [`str`, `object`]
        Values substituted for ``parameters.name`` in config values.
    tasks : `dict` [`str`, `TaskIR`]
        Tasks by label, in definition order (imported tasks first).
    subsets : `dict` [`str`, `SubsetIR`]
        Labeled subsets by label.
    contracts : `tuple` [`ContractIR`, ...]
        Contracts to check once configs are final.
    imports : `tuple` [`ImportIR`, ...]
        What this pipeline imported (already merged into the above).
    source : `str`
        File name, or ``<string>``, used in messages.
    """

    description: str = ""
    instrument: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskIR] = field(default_factory=dict)
    subsets: dict[str, SubsetIR] = field(default_factory=dict)
    contracts: tuple[ContractIR, ...] = ()
    imports: tuple[ImportIR, ...] = field(default=(), compare=False)
    source: str = field(default="<string>", compare=False)

    # -- reading ------------------------------------------------------------------------------

    @classmethod
    def from_string(
        cls, text: str, *, source: str = "<string>", allow_python: bool = False
    ) -> PipelineIR:
        """Read a pipeline from YAML text.

        Parameters
        ----------
        text : `str`
            The YAML document.
        source : `str`, optional
            Name used in messages; relative import locations are resolved against the current
            directory when this is not a file.
        allow_python : `bool`, optional
            Whether inline ``python:`` config blocks are accepted.

        Raises
        ------
        PipelineDefinitionError
            For any syntax or schema error; the message names the file and line.
        """
        return _format(_Reader(allow_python=allow_python).read_text(text, source, stack=()))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, allow_python: bool = False) -> PipelineIR:
        """Read a pipeline file, or a selector ``file.yaml#label1,subsetA``.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            The file, optionally followed by ``#`` and comma-separated labels or subsets.
        allow_python : `bool`, optional
            Whether inline ``python:`` config blocks are accepted.

        Raises
        ------
        PipelineDefinitionError
            For any syntax or schema error, or an unknown label in the selector.
        FileNotFoundError
            If the file does not exist.
        """
        file_name, labels = split_selector(str(path))
        ir = _format(_Reader(allow_python=allow_python).read_file(file_name, stack=()))
        if labels is not None:
            ir = ir.subset(labels)
        return ir

    # -- transforming -------------------------------------------------------------------------

    def expand_labels(self, labels: Iterable[str]) -> list[str]:
        """Expand subset labels to task labels, keeping pipeline order.

        Raises
        ------
        PipelineDefinitionError
            If a label is neither a task nor a subset; the message lists the known labels.
        """
        wanted: set[str] = set()
        for label in labels:
            if label in self.tasks:
                wanted.add(label)
            elif label in self.subsets:
                wanted.update(self.subsets[label].subset)
            else:
                known = sorted(self.tasks) + sorted(self.subsets)
                raise PipelineDefinitionError(
                    f"{self.source}: unknown task or subset label {label!r}"
                    f"{_suggest(label, known)}; known tasks: {sorted(self.tasks)}, "
                    f"known subsets: {sorted(self.subsets)}"
                )
        return [label for label in self.tasks if label in wanted]

    def subset(self, labels: Iterable[str]) -> PipelineIR:
        """Return the pipeline restricted to ``labels`` (tasks or subsets).

        Subsets that refer to a dropped task are dropped, and so are contracts that name one.
        """
        keep = set(self.expand_labels(labels))
        return self._restricted(keep)

    def _restricted(self, keep: set[str], *, contracts: bool = True) -> PipelineIR:
        tasks = {k: v for k, v in self.tasks.items() if k in keep}
        subsets = {k: v for k, v in self.subsets.items() if set(v.subset) <= keep}
        kept_contracts = tuple(
            c
            for c in (self.contracts if contracts else ())
            if contract_labels(c.contract, where=c.where) & set(self.tasks) <= keep
        )
        return dataclasses.replace(self, tasks=tasks, subsets=subsets, contracts=kept_contracts)

    # -- writing ------------------------------------------------------------------------------

    def to_primitive(self) -> dict[str, Any]:
        """Return the pipeline as plain YAML-ready containers."""
        result: dict[str, Any] = {}
        if self.description:
            result["description"] = self.description
        if self.instrument is not None:
            result["instrument"] = self.instrument
        if self.parameters:
            result["parameters"] = _plain(self.parameters)
        result["tasks"] = {label: t.to_primitive() for label, t in self.tasks.items()}
        if self.subsets:
            result["subsets"] = {label: s.to_primitive() for label, s in self.subsets.items()}
        if self.contracts:
            result["contracts"] = [c.to_primitive() for c in self.contracts]
        return result

    def to_yaml(self) -> str:
        """Return the pipeline as YAML text that `from_string` reads back to an equal object."""
        return yaml.safe_dump(self.to_primitive(), sort_keys=False, default_flow_style=False)

    def write_to(self, path: str | os.PathLike[str]) -> None:
        """Write the pipeline to ``path`` atomically (temporary name, then rename)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        tmp.write_text(self.to_yaml())
        os.replace(tmp, target)


def split_selector(selector: str) -> tuple[str, list[str] | None]:
    """Split ``file.yaml#a,b`` into the file name and the labels (`None` when no ``#``)."""
    if "#" not in selector:
        return selector, None
    file_name, _, rest = selector.partition("#")
    labels = [label.strip() for label in rest.split(",") if label.strip()]
    if not labels:
        raise PipelineDefinitionError(f"{selector!r}: empty label list after '#'")
    return file_name, labels


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reader:
    """Reads one file and, recursively, what it imports."""

    allow_python: bool

    def read_file(self, file_name: str, *, stack: tuple[str, ...]) -> PipelineIR:
        path = Path(os.path.expandvars(file_name)).expanduser().resolve()
        if str(path) in stack:
            chain = " -> ".join([*stack, str(path)])
            raise PipelineDefinitionError(f"{path}: import cycle: {chain}")
        try:
            text = path.read_text()
        except FileNotFoundError as err:
            raise FileNotFoundError(f"pipeline file not found: {path}") from err
        return self.read_text(text, str(path), stack=(*stack, str(path)), base=path.parent)

    def read_text(
        self, text: str, source: str, *, stack: tuple[str, ...], base: Path | None = None
    ) -> PipelineIR:
        base = base if base is not None else Path.cwd()
        doc = _load_yaml(text, source)
        if not isinstance(doc, dict):
            raise PipelineDefinitionError(
                f"{_where(source, getattr(doc, 'line', 1))}: a pipeline must be a YAML mapping"
            )
        for key in doc:
            if key not in _TOP_LEVEL_KEYS:
                raise PipelineDefinitionError(
                    f"{_where(source, _key_line(doc, key))}: unknown key {key!r}"
                    f"{_suggest(key, _TOP_LEVEL_KEYS)}; allowed: {', '.join(_TOP_LEVEL_KEYS)}"
                )
        description = doc.get("description") or ""
        instrument = doc.get("instrument")
        parameters = self._mapping(doc, "parameters", source)
        imports = self._imports(doc, source, base)
        tasks = self._tasks(doc, source, base)
        subsets = self._subsets(doc, source)
        contracts = self._contracts(doc, source)
        own = PipelineIR(
            description=str(description),
            instrument=instrument,
            parameters=_plain(parameters),
            tasks=tasks,
            subsets=subsets,
            contracts=contracts,
            imports=imports,
            source=source,
        )
        merged = self._merge_imports(own, imports, stack)
        _check_subsets(merged)
        return merged

    # -- sections -----------------------------------------------------------------------------

    @staticmethod
    def _mapping(doc: dict, key: str, source: str) -> dict:
        value = doc.get(key)
        if value is None:
            return _LineDict()
        if not isinstance(value, dict):
            raise PipelineDefinitionError(
                f"{_where(source, _key_line(doc, key))}: {key!r} must be a mapping, "
                f"not {type(value).__name__}"
            )
        return value

    @staticmethod
    def _sequence(doc: dict, key: str, source: str) -> list:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise PipelineDefinitionError(
                f"{_where(source, _key_line(doc, key))}: {key!r} must be a list, "
                f"not {type(value).__name__}"
            )
        return value

    def _imports(self, doc: dict, source: str, base: Path) -> tuple[ImportIR, ...]:
        result = []
        entries = self._sequence(doc, "imports", source)
        for i, entry in enumerate(entries):
            where = _where(source, _item_line(entries, i))
            if isinstance(entry, str):
                entry = {"location": entry}
            if not isinstance(entry, dict) or "location" not in entry:
                raise PipelineDefinitionError(
                    f"{where}: an import must be a file name or a mapping with 'location'"
                )
            allowed = ("location", "include", "exclude", "importContracts")
            for key in entry:
                if key not in allowed:
                    raise PipelineDefinitionError(
                        f"{_where(source, _key_line(entry, key))}: unknown import key {key!r}"
                        f"{_suggest(key, allowed)}; allowed: {', '.join(allowed)}"
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

    def _tasks(self, doc: dict, source: str, base: Path) -> dict[str, TaskIR]:
        tasks = self._mapping(doc, "tasks", source)
        result = {}
        for label, entry in tasks.items():
            where = _where(source, _key_line(tasks, label))
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
                self._config_block(block, label, source, base, _item_line(blocks, i))
                for i, block in enumerate(blocks)
            )
            # A missing class is allowed when the label comes from an import; checked on merge.
            result[label] = TaskIR(
                label=str(label), klass=entry.get("class") or "", config=configs, where=where
            )
        return result

    def _config_block(
        self, block: Any, label: str, source: str, base: Path, line: int | None
    ) -> ConfigIR:
        where = _where(source, line)
        if not isinstance(block, dict):
            raise PipelineDefinitionError(
                f"{where}: config block of task {label!r} must be a mapping"
            )
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
                if not self.allow_python:
                    raise PipelineDefinitionError(
                        f"{key_where}: task {label!r} has an inline 'python:' config block; "
                        "python in pipeline files is refused unless explicitly allowed "
                        "(allow_python=True); use 'file: overrides.py' or field values instead"
                    )
                python = str(value)
            else:
                fields[str(key)] = _plain(value)
                field_where[str(key)] = key_where
        return ConfigIR(
            fields=fields, files=tuple(files), python=python, where=where, field_where=field_where
        )

    def _subsets(self, doc: dict, source: str) -> dict[str, SubsetIR]:
        subsets = self._mapping(doc, "subsets", source)
        result = {}
        for label, entry in subsets.items():
            where = _where(source, _key_line(subsets, label))
            description = None
            if isinstance(entry, dict):
                unknown = set(entry) - {"subset", "description"}
                if unknown or "subset" not in entry:
                    raise PipelineDefinitionError(
                        f"{where}: subset {label!r} must be a list or a mapping with 'subset' "
                        f"and optional 'description'"
                    )
                description = entry.get("description")
                entry = entry["subset"]
            if not isinstance(entry, list) or not all(isinstance(x, str) for x in entry):
                raise PipelineDefinitionError(f"{where}: subset {label!r} must list task labels")
            result[str(label)] = SubsetIR(
                label=str(label), subset=tuple(entry), description=description, where=where
            )
        return result

    def _contracts(self, doc: dict, source: str) -> tuple[ContractIR, ...]:
        entries = self._sequence(doc, "contracts", source)
        result = []
        for i, entry in enumerate(entries):
            where = _where(source, _item_line(entries, i))
            if isinstance(entry, str):
                result.append(ContractIR(contract=entry, where=where))
            elif (
                isinstance(entry, dict)
                and "contract" in entry
                and set(entry)
                <= {
                    "contract",
                    "msg",
                }
            ):
                msg = entry.get("msg")
                result.append(
                    ContractIR(
                        contract=str(entry["contract"]),
                        msg=None if msg is None else str(msg),
                        where=where,
                    )
                )
            else:
                raise PipelineDefinitionError(
                    f"{where}: a contract must be a string or a mapping with 'contract' and "
                    "optional 'msg'"
                )
        return tuple(result)

    # -- imports ------------------------------------------------------------------------------

    def _merge_imports(
        self, own: PipelineIR, imports: Sequence[ImportIR], stack: tuple[str, ...]
    ) -> PipelineIR:
        tasks: dict[str, TaskIR] = {}
        subsets: dict[str, SubsetIR] = {}
        contracts: list[ContractIR] = []
        parameters: dict[str, Any] = {}
        instrument: str | None = None
        origin: dict[str, str] = {}
        for imp in imports:
            other = self.read_file(imp.location, stack=stack or (own.source,))
            if imp.include is not None:
                other = other._restricted(
                    set(other.expand_labels(imp.include)), contracts=imp.importContracts
                )
            else:
                for label in imp.exclude:
                    other.expand_labels([label])  # unknown label -> error
                dropped = set(other.expand_labels(imp.exclude)) if imp.exclude else set()
                other = other._restricted(set(other.tasks) - dropped, contracts=imp.importContracts)
            for label, task in other.tasks.items():
                if label in tasks:
                    raise PipelineDefinitionError(
                        f"{imp.where}: task label {label!r} is defined by two imports: "
                        f"{origin[label]} and {imp.location}"
                    )
                tasks[label] = task
                origin[label] = imp.location
            subsets.update(other.subsets)
            contracts.extend(other.contracts)
            parameters.update(other.parameters)
            if other.instrument is not None:
                if instrument is not None and instrument != other.instrument:
                    raise PipelineDefinitionError(
                        f"{imp.where}: imports declare different instruments: "
                        f"{instrument!r} and {other.instrument!r}"
                    )
                instrument = other.instrument
        for label, task in own.tasks.items():
            if label in tasks and (not task.klass or task.klass == tasks[label].klass):
                # Same task: this file's config blocks come after the imported ones.
                tasks[label] = dataclasses.replace(
                    tasks[label], config=tasks[label].config + task.config
                )
            elif not task.klass:
                raise PipelineDefinitionError(
                    f"{task.where}: task {label!r} has no 'class' (only a task imported from "
                    "another pipeline may omit it)"
                )
            else:
                tasks[label] = task
        subsets.update(own.subsets)
        contracts.extend(own.contracts)
        parameters.update(own.parameters)
        return dataclasses.replace(
            own,
            tasks=tasks,
            subsets=subsets,
            contracts=tuple(contracts),
            parameters=parameters,
            instrument=own.instrument if own.instrument is not None else instrument,
        )


def _format(ir: PipelineIR) -> PipelineIR:
    """Substitute parameters, once imports are merged (so the importer's values win)."""
    params = ir.parameters
    return dataclasses.replace(
        ir,
        tasks={
            label: dataclasses.replace(t, config=tuple(c.formatted(params) for c in t.config))
            for label, t in ir.tasks.items()
        },
    )


def _check_subsets(ir: PipelineIR) -> None:
    for subset in ir.subsets.values():
        if subset.label in ir.tasks:
            raise PipelineDefinitionError(
                f"{subset.where}: subset label {subset.label!r} is also a task label"
            )
        for label in subset.subset:
            if label not in ir.tasks:
                raise PipelineDefinitionError(
                    f"{subset.where}: subset {subset.label!r} names unknown task {label!r}"
                    f"{_suggest(label, ir.tasks)}; known tasks: {sorted(ir.tasks)}"
                )
