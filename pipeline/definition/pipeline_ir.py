"""The pipeline YAML, read into frozen dataclasses, with its imports merged.

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

Each section has its module, holding its dataclass and its reader: ``task_ir`` (tasks and
config blocks), ``subset_ir``, ``contract_ir``, ``import_ir`` and ``parameters_ir``. This module
composes them: it reads a file's sections, reads and merges what it imports, and checks what
needs the merged whole (subsets naming known tasks).

The YAML is read with `_LineLoader` (in `pipeline.definition.yaml_reader`), a SafeLoader whose
mappings and sequences remember the line of each key and item, so that every error can say
``file.yaml:12: unknown key 'taks'``. Imports are resolved while reading: `PipelineIR` holds the
flattened pipeline (imported tasks, subsets, contracts and parameters merged in), and
`PipelineIR.imports` keeps what was imported, for information. `PipelineIR.to_yaml` therefore
writes a self-contained pipeline with no imports. Config file paths are made absolute while
reading, so a saved pipeline works from anywhere.

There is no mutable state: every object here is a frozen value; `subset` returns a new one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._errors import PipelineDefinitionError
from .contract_ir import ContractIR, read_contracts
from .contracts import contract_labels
from .import_ir import ImportIR, read_imports
from .parameters_ir import read_parameters
from .subset_ir import SubsetIR, check_subsets, read_subsets
from .task_ir import ConfigIR, TaskIR, read_tasks
from .yaml_reader import _key_line, _load_yaml, _plain, _suggest, _where

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
        parameters = read_parameters(doc, source)
        imports = read_imports(doc, source, base)
        tasks = read_tasks(doc, source, base, allow_python=self.allow_python)
        subsets = read_subsets(doc, source)
        contracts = read_contracts(doc, source)
        own = PipelineIR(
            description=str(description),
            instrument=instrument,
            parameters=parameters,
            tasks=tasks,
            subsets=subsets,
            contracts=contracts,
            imports=imports,
            source=source,
        )
        merged = self._merge_imports(own, imports, stack)
        check_subsets(merged.subsets, merged.tasks)
        return merged

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
