"""The pipeline YAML, read into frozen dataclasses, with its imports merged.

Design
------
A pipeline file follows LSST's schema::

    description: ...
    instrument: some.Instrument
    parameters: {name: value}
    imports:
      - location: $PIPELINES_DIR/base.yaml
        exclude: [labelA]
        labeledSubsetModifyMode: EDIT
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
    steps:
      - label: step1
        dimensions: visit, detector
    contracts:
      - contract: "calibrate.doAstrometry == False"
        msg: "..."

Each section has its module, holding its dataclass and its reader: ``task_ir`` (tasks and
config blocks), ``subset_ir``, ``step_ir``, ``contract_ir``, ``import_ir`` and ``parameters_ir``.
This module composes them: it reads a file's sections, reads and merges what it imports, and
checks what needs the merged whole (subsets naming known tasks, steps naming subsets). The
pipeline a caller gets (`from_file`, `from_string`, `subset`) is also checked to be partitioned
by its steps, if it has any.

Merging an import, in order: read the file (recursively, its own imports merged), replace its
instrument if the entry says so, forget its steps if ``importSteps: false``, keep the
``include``d or drop the ``exclude``d tasks (subsets that name a dropped task are dropped, or
edited with ``labeledSubsetModifyMode: EDIT``; contracts that name one are dropped; steps go
with their subsets), apply ``rename``. Task labels and subset labels must then be unique across
imports. This file's tasks extend imported ones of the same label and class (its config blocks
come after) or replace them; its subsets replace imported ones of the same label.

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
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._errors import PipelineDefinitionError
from .contract_ir import ContractIR, read_contracts
from .contracts import contract_labels
from .import_ir import ExcludedUnknownLabelWarning, ImportIR, SubsetModifyMode, read_imports
from .locations import expand_location
from .parameters_ir import read_parameters
from .step_ir import (
    InvalidStepsError,
    StepIR,
    check_step_labels,
    check_step_partition,
    merge_steps,
    read_steps,
)
from .subset_ir import SubsetIR, check_subsets, read_subsets
from .task_ir import ConfigIR, TaskIR, read_tasks
from .yaml_reader import _key_line, _load_yaml, _plain, _suggest, _where

__all__ = [
    "ConfigIR",
    "ContractIR",
    "ImportIR",
    "PipelineIR",
    "StepIR",
    "SubsetIR",
    "SubsetModifyMode",
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
    "steps",
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
    steps : `tuple` [`StepIR`, ...]
        The subsets a production run submits in order, with their dimensions.
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
    steps: tuple[StepIR, ...] = ()
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
        ir = _format(_Reader(allow_python=allow_python).read_text(text, source, stack=()))
        ir.check_steps()
        return ir

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, allow_python: bool = False) -> PipelineIR:
        """Read a pipeline file, or a selector ``file.yaml#label1,subsetA``.

        Parameters
        ----------
        path : `str` or `os.PathLike`
            The file, optionally followed by ``#`` and comma-separated task, subset or step
            labels. ``$NAME`` in the file name is taken from the environment.
        allow_python : `bool`, optional
            Whether inline ``python:`` config blocks are accepted.

        Raises
        ------
        PipelineDefinitionError
            For any syntax or schema error, an unset variable, or an unknown label in the
            selector.
        FileNotFoundError
            If the file does not exist.
        """
        file_name, labels = split_selector(str(path))
        file_name = expand_location(file_name, f"pipeline {str(path)!r}")
        ir = _format(_Reader(allow_python=allow_python).read_file(file_name, stack=()))
        if labels is not None:
            return ir.subset(labels)
        ir.check_steps()
        return ir

    def check_steps(self) -> None:
        """Check that the steps, if any, hold every task exactly once.

        Raises
        ------
        InvalidStepsError
            Naming the task or step label and the file line of its definition.
        """
        check_step_partition(self.steps, self.subsets, self.tasks)

    # -- transforming -------------------------------------------------------------------------

    def expand_labels(self, labels: Iterable[str], *, where: str | None = None) -> list[str]:
        """Expand subset labels to task labels, keeping pipeline order.

        Parameters
        ----------
        labels : `~collections.abc.Iterable` [`str`]
            Task or subset labels.
        where : `str`, optional
            What names the labels (an import's ``file:line``), for messages; the pipeline's
            file by default.

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
                    f"{where or self.source}: unknown task or subset label {label!r}"
                    f"{_suggest(label, known)} in {self.source}; known tasks: "
                    f"{sorted(self.tasks)}, known subsets: {sorted(self.subsets)}"
                )
        return [label for label in self.tasks if label in wanted]

    def subset(self, labels: Iterable[str]) -> PipelineIR:
        """Return the pipeline restricted to ``labels`` (tasks, subsets or steps).

        Subsets that refer to a dropped task are dropped, and so are contracts that name one
        and steps whose subset is dropped.

        Raises
        ------
        PipelineDefinitionError
            For an unknown label, or if the remaining steps do not hold every remaining task
            exactly once.
        """
        labels = list(labels)
        result = self._restricted(set(self.expand_labels(labels)))
        try:
            result.check_steps()
        except InvalidStepsError as err:
            cut = [s.label for s in self.steps if s not in result.steps]
            raise InvalidStepsError(
                f"{err} (after selecting {labels}: the steps {cut} lost tasks to the selection "
                "and were dropped; select whole steps)"
            ) from None
        return result

    def _restricted(
        self,
        keep: set[str],
        *,
        contracts: bool = True,
        mode: SubsetModifyMode = SubsetModifyMode.DROP,
    ) -> PipelineIR:
        tasks = {k: v for k, v in self.tasks.items() if k in keep}
        subsets = {}
        for label, subset in self.subsets.items():
            if set(subset.subset) <= keep:
                # DROP also drops subsets an earlier EDIT emptied (LSST's rule).
                if subset.subset or mode is SubsetModifyMode.EDIT:
                    subsets[label] = subset
            elif mode is SubsetModifyMode.EDIT:
                kept = tuple(t for t in subset.subset if t in keep)
                subsets[label] = dataclasses.replace(subset, subset=kept)
        kept_contracts = tuple(
            c
            for c in (self.contracts if contracts else ())
            if contract_labels(c.contract, where=c.where) & set(self.tasks) <= keep
        )
        steps = tuple(s for s in self.steps if s.label in subsets)
        return dataclasses.replace(
            self, tasks=tasks, subsets=subsets, contracts=kept_contracts, steps=steps
        )

    def _renamed(self, rename: dict[str, str], where: str) -> PipelineIR:
        if not rename:
            return self
        for old, new in rename.items():
            if old not in self.tasks:
                raise PipelineDefinitionError(
                    f"{where}: rename of {old!r}: no such task in {self.source}"
                    f"{_suggest(old, self.tasks)}; tasks: {sorted(self.tasks)}"
                )
            if new in self.tasks or new in self.subsets:
                raise PipelineDefinitionError(
                    f"{where}: rename of {old!r} to {new!r}: {new!r} is already a label in "
                    f"{self.source}"
                )
        for contract in self.contracts:
            named = contract_labels(contract.contract, where=contract.where) & set(rename)
            if named:
                raise PipelineDefinitionError(
                    f"{where}: rename of {sorted(named)} refused: the contract at "
                    f"{contract.where} names {'it' if len(named) == 1 else 'them'}; import "
                    "with 'importContracts: false' and restate the contract"
                )
        tasks = {
            rename.get(label, label): dataclasses.replace(task, label=rename.get(label, label))
            for label, task in self.tasks.items()
        }
        subsets = {
            label: dataclasses.replace(s, subset=tuple(rename.get(t, t) for t in s.subset))
            for label, s in self.subsets.items()
        }
        return dataclasses.replace(self, tasks=tasks, subsets=subsets)

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
        if self.steps:
            result["steps"] = [s.to_primitive() for s in self.steps]
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
        path = Path(file_name).expanduser().resolve()
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
        _check_top_level(doc, source)
        own = PipelineIR(
            description=str(doc.get("description") or ""),
            instrument=doc.get("instrument"),
            parameters=read_parameters(doc, source),
            tasks=read_tasks(doc, source, base, allow_python=self.allow_python),
            subsets=read_subsets(doc, source),
            contracts=read_contracts(doc, source),
            steps=read_steps(doc, source),
            imports=read_imports(doc, source, base),
            source=source,
        )
        merged = self._merge_imports(own, stack)
        check_subsets(merged.subsets, merged.tasks)
        check_step_labels(merged.steps, merged.subsets)
        return merged

    # -- imports ------------------------------------------------------------------------------

    def _imported(self, imp: ImportIR, stack: tuple[str, ...]) -> PipelineIR:
        """Read one import and apply its entry: instrument, steps, include/exclude, rename."""
        other = self.read_file(imp.location, stack=stack)
        if imp.sets_instrument:
            other = dataclasses.replace(other, instrument=imp.instrument)
        if not imp.importSteps:
            other = dataclasses.replace(other, steps=())
        if imp.include is not None:
            keep = set(other.expand_labels(imp.include, where=imp.where))
        else:
            unknown = [x for x in imp.exclude if x not in other.tasks and x not in other.subsets]
            if unknown:
                warnings.warn(
                    f"{imp.where}: excluded labels {unknown} are not in {imp.location}; ignored",
                    ExcludedUnknownLabelWarning,
                    stacklevel=2,
                )
            excluded = [x for x in imp.exclude if x not in unknown]
            keep = set(other.tasks) - set(other.expand_labels(excluded, where=imp.where))
        other = other._restricted(
            keep, contracts=imp.importContracts, mode=imp.labeledSubsetModifyMode
        )
        return other._renamed(imp.rename, imp.where)

    def _merge_imports(self, own: PipelineIR, stack: tuple[str, ...]) -> PipelineIR:
        tasks: dict[str, TaskIR] = {}
        subsets: dict[str, SubsetIR] = {}
        contracts: list[ContractIR] = []
        parameters: dict[str, Any] = {}
        step_groups: list[tuple[StepIR, ...]] = []
        instrument: str | None = None
        for imp in own.imports:
            other = self._imported(imp, stack or (own.source,))
            _add_unique("task", tasks, other.tasks, imp.where)
            _add_unique("subset", subsets, other.subsets, imp.where)
            contracts.extend(other.contracts)
            parameters.update(other.parameters)
            step_groups.append(other.steps)
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
            steps=merge_steps([*step_groups, own.steps]),
            instrument=own.instrument if own.instrument is not None else instrument,
        )


def _add_unique(what: str, into: dict[str, Any], items: dict[str, Any], where: str) -> None:
    """Add imported tasks or subsets, refusing a label that an earlier import defined."""
    for label, item in items.items():
        if label in into:
            raise PipelineDefinitionError(
                f"{where}: {what} label {label!r} is defined by two imports: "
                f"{into[label].where} and {item.where}"
            )
        into[label] = item


def _check_top_level(doc: dict, source: str) -> None:
    for key in doc:
        if key == "inherits":
            raise PipelineDefinitionError(
                f"{_where(source, _key_line(doc, key))}: 'inherits' is not supported (LSST "
                "retired it too); use 'imports'"
            )
        if key not in _TOP_LEVEL_KEYS:
            raise PipelineDefinitionError(
                f"{_where(source, _key_line(doc, key))}: unknown key {key!r}"
                f"{_suggest(key, _TOP_LEVEL_KEYS)}; allowed: {', '.join(_TOP_LEVEL_KEYS)}"
            )
    instrument = doc.get("instrument")
    if instrument is not None and not isinstance(instrument, str):
        raise PipelineDefinitionError(
            f"{_where(source, _key_line(doc, 'instrument'))}: 'instrument' must be one class "
            f"name, not {type(instrument).__name__}"
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
