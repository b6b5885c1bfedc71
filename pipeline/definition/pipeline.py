"""`Pipeline`: a pipeline definition plus user overrides, turned into configured tasks.

Design
------
A `Pipeline` wraps a `PipelineIR` (the YAML, imports merged) and a list of user overrides given
on the command line (``-c label:field=value``, ``-C label:file``). Its only mutable state is that
list; `task_defs` builds everything afresh on each call:

1. import each task class by its dotted name (`import_by_name`); it must be a `PipelineTask`;
2. ``ConfigClass()`` (which runs ``setDefaults``);
3. the pipeline's config blocks in file order (files, inline python if allowed, field values),
   each recorded in the config history under ``file.yaml:line``;
4. the user overrides, in the order they were added, recorded under ``-c`` or the file name;
5. ``validate()`` and ``freeze()``; then the contracts are checked across all configs;
6. the connections are resolved from the frozen config.

`graph` joins the tasks by dataset type and checks the steps' order. Reading the pipeline
(`from_file`, `ir`) imports no task class: `pipetask build --show pipeline` works on a pipeline
whose classes are not installed.

`write_to` saves the pipeline with the user overrides folded in as extra config blocks, so
``pipetask -s saved.yaml`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config as config_module
from .._errors import LocatedError, PipelineDefinitionError
from .contracts import check_contract
from .loader import import_by_name
from .pipeline_graph import PipelineGraph
from .pipeline_ir import ConfigIR, PipelineIR
from .step_ir import check_step_order

__all__ = ["Pipeline", "TaskDef"]


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A configured task of a pipeline.

    Parameters
    ----------
    label : `str`
        The task's label in the pipeline.
    task_class : `type`
        The `PipelineTask` subclass.
    config : `PipelineTaskConfig`
        Its config, validated and frozen.
    connections : `object`
        The connections resolved from ``config``.
    """

    label: str
    task_class: type
    config: Any
    connections: Any

    @property
    def task_name(self) -> str:
        """Fully qualified name of the task class."""
        return f"{self.task_class.__module__}.{self.task_class.__qualname__}"


@dataclass(frozen=True, slots=True)
class _UserOverride:
    label: str
    path: str | None  # field path for -c; None for -C
    value: str  # value text for -c; file name for -C
    where: str


class Pipeline:
    """A pipeline definition and the user's config overrides.

    Parameters
    ----------
    ir : `PipelineIR`
        The parsed pipeline.
    allow_python : `bool`, optional
        Whether inline ``python:`` config blocks may run (they were refused when the IR was read
        unless allowed there too).
    """

    def __init__(self, ir: PipelineIR, *, allow_python: bool = False):
        self._ir = ir
        self._allow_python = allow_python
        self._overrides: list[_UserOverride] = []

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, allow_python: bool = False) -> Pipeline:
        """Read a pipeline file or selector (``file.yaml#label1,subsetA``).

        Raises
        ------
        PipelineDefinitionError
            For malformed YAML or unknown selector labels (message names file and line).
        """
        return cls(PipelineIR.from_file(path, allow_python=allow_python), allow_python=allow_python)

    @classmethod
    def from_string(cls, text: str, *, allow_python: bool = False) -> Pipeline:
        """Read a pipeline from YAML text."""
        return cls(
            PipelineIR.from_string(text, allow_python=allow_python), allow_python=allow_python
        )

    @classmethod
    def from_ir(cls, ir: PipelineIR, *, allow_python: bool = False) -> Pipeline:
        """Wrap an already parsed pipeline."""
        return cls(ir, allow_python=allow_python)

    # -- inspection ---------------------------------------------------------------------------

    @property
    def ir(self) -> PipelineIR:
        """The pipeline definition, without the user overrides."""
        return self._ir

    @property
    def labels(self) -> list[str]:
        """Task labels in definition order."""
        return list(self._ir.tasks)

    @property
    def description(self) -> str:
        """The pipeline's description."""
        return self._ir.description

    @property
    def instrument(self) -> str | None:
        """Dotted name of the pipeline's instrument, if any."""
        return self._ir.instrument

    def subset(self, labels: Iterable[str]) -> Pipeline:
        """Return a pipeline with only ``labels`` (tasks or subsets), keeping user overrides."""
        new = Pipeline(self._ir.subset(labels), allow_python=self._allow_python)
        new._overrides = [o for o in self._overrides if o.label in new._ir.tasks]
        return new

    # -- user overrides -----------------------------------------------------------------------

    def _check_label(self, label: str, what: str) -> None:
        if label not in self._ir.tasks:
            close = difflib.get_close_matches(label, self.labels, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PipelineDefinitionError(
                f"{what}: unknown task label {label!r}{hint}; pipeline labels: {self.labels}"
            )

    def add_config_override(self, label: str, path: str, value: str) -> None:
        """Add ``-c label:path=value``; applied after the pipeline's own config blocks.

        Parameters
        ----------
        label : `str`
            Task label.
        path : `str`
            Dotted config field path.
        value : `str`
            Value text, parsed according to the field's type.

        Raises
        ------
        PipelineDefinitionError
            If ``label`` is not in the pipeline (the message lists the labels).
        """
        self._check_label(label, f"-c {label}:{path}={value}")
        self._overrides.append(_UserOverride(label, path, value, "-c"))

    def add_config_file(self, label: str, path: str | os.PathLike[str]) -> None:
        """Add ``-C label:file.py`` or ``-C label:file.yaml``; applied in order with ``-c``.

        Raises
        ------
        PipelineDefinitionError
            If ``label`` is not in the pipeline.
        FileNotFoundError
            If the file does not exist.
        """
        self._check_label(label, f"-C {label}:{path}")
        resolved = Path(path).resolve()
        if not resolved.is_file():
            raise FileNotFoundError(f"-C {label}:{path}: config file not found: {resolved}")
        self._overrides.append(_UserOverride(label, None, str(resolved), str(resolved)))

    # -- building -----------------------------------------------------------------------------

    def task_defs(self) -> list[TaskDef]:
        """Import, configure, validate and freeze every task, then check the contracts.

        Returns
        -------
        task_defs : `list` [`TaskDef`]
            In pipeline order.

        Raises
        ------
        PipelineDefinitionError
            If a class cannot be imported or is not a `PipelineTask`.
        UnknownConfigFieldError, FieldValidationError
            If an override names an unknown field or has the wrong type.
        ContractError
            If a contract fails after all overrides.
        """
        configs = {}
        classes = {}
        for label, task_ir in self._ir.tasks.items():
            task_class = _task_class(task_ir.klass, f"{task_ir.where}: task {label!r}")
            config = task_class.ConfigClass()
            for block in task_ir.config:
                self._apply_block(config, block)
            for override in self._overrides:
                if override.label == label:
                    _apply_user_override(config, override)
            config.validate()
            config.freeze()
            configs[label] = config
            classes[label] = task_class
        for contract in self._ir.contracts:
            check_contract(contract.contract, configs, msg=contract.msg, where=contract.where)
        from ..connections import connections_for

        return [
            TaskDef(label, classes[label], configs[label], connections_for(configs[label]))
            for label in configs
        ]

    def _apply_block(self, config: Any, block: ConfigIR) -> None:
        for file_name in block.files:
            _apply_file(config, file_name)
        if block.python is not None:
            if not self._allow_python:
                raise PipelineDefinitionError(
                    f"{block.field_where.get('python', block.where)}: inline 'python:' config "
                    "block refused: python in pipeline files runs only when explicitly allowed "
                    "(allow_python=True)"
                )
            _run_python(config, block.python, block.where)
        for path, value in block.fields.items():
            _set_field(config, path, value, block.field_where.get(path, block.where))

    def graph(
        self, *, existing_dataset_types: Mapping[str, tuple[Iterable[str], str]] | None = None
    ) -> PipelineGraph:
        """Return the checked graph of tasks and dataset types (see `PipelineGraph`).

        The pipeline's steps, if any, are checked to be in dependency order.

        Raises
        ------
        PipelineGraphError
            If the tasks do not fit together.
        InvalidStepsError
            If a task reads a dataset type written by a task of a later step.
        """
        graph = PipelineGraph.from_task_defs(
            self.task_defs(), existing_dataset_types=existing_dataset_types
        )
        check_step_order(self._ir.steps, self._ir.subsets, graph)
        return graph

    def to_dot(self) -> str:
        """Return the task/dataset-type graph in Graphviz format."""
        return self.graph().to_dot()

    def to_mermaid(self) -> str:
        """Return the task/dataset-type graph as a Mermaid flowchart."""
        return self.graph().to_mermaid()

    # -- saving -------------------------------------------------------------------------------

    def to_ir(self) -> PipelineIR:
        """Return the definition with the user overrides folded in as extra config blocks.

        ``-c`` values are stored with their parsed types, read back from a config they were
        applied to, so the saved file needs no command-line parsing.
        """
        tasks = dict(self._ir.tasks)
        for override in self._overrides:
            task_ir = tasks[override.label]
            if override.path is None:
                block = ConfigIR(files=(override.value,), where=override.where)
            else:
                task_class = _task_class(task_ir.klass, f"{task_ir.where}: task {task_ir.label!r}")
                probe = task_class.ConfigClass()
                _apply_user_override(probe, override)
                value = _primitive(probe.getByPath(override.path))
                block = ConfigIR(fields={override.path: value}, where="-c")
            tasks[override.label] = dataclasses.replace(task_ir, config=task_ir.config + (block,))
        return dataclasses.replace(self._ir, tasks=tasks)

    def write_to(self, path: str | os.PathLike[str]) -> None:
        """Save the pipeline, user overrides included, as YAML (``pipetask -s saved.yaml``)."""
        self.to_ir().write_to(path)

    def __repr__(self) -> str:
        return f"Pipeline({self._ir.source!r}, labels={self.labels})"


# ------------------------------------------------------------------------------------------------
# Applying overrides (adapters over pipeline.config)
# ------------------------------------------------------------------------------------------------


def _task_class(name: str, where: str) -> type:
    from ..pipeline_task import PipelineTask

    task_class = import_by_name(name, where=where)
    if not (isinstance(task_class, type) and issubclass(task_class, PipelineTask)):
        raise PipelineDefinitionError(f"{where}: {name!r} is not a PipelineTask subclass")
    return task_class


def _split_where(where: str) -> tuple[str, int | None]:
    file_name, _, line = where.rpartition(":")
    return (file_name, int(line)) if file_name and line.isdigit() else (where, None)


def _set_field(config: Any, path: str, value: Any, where: str) -> None:
    """Set one YAML field override; a mapping value for a nested config sets it field by field.

    Errors are re-raised naming the pipeline file and line of the key.
    """
    try:
        if isinstance(value, Mapping):
            target = config.getByPath(path)
            nested = (
                config_module.Config,
                config_module.ConfigurableInstance,
                config_module.RegistryInstance,
            )
            if isinstance(target, nested):
                for key, item in value.items():
                    _set_field(config, f"{path}.{key}", item, where)
                return
        config_module.applyOverrides(config, [(path, value)], where=where)
    except LocatedError as err:
        if err.filename is not None:
            raise
        raise err.located(*_split_where(where)) from err


def _run_python(config: Any, text: str, where: str) -> None:
    """Run an inline ``python:`` block (only reached when the user allowed python)."""
    code = compile(text, where, "exec")
    exec(code, {"config": config, "root": config, "__name__": "__skyquanta_config__"})  # noqa: S102


def _apply_file(config: Any, file_name: str) -> None:
    if file_name.endswith(".py"):
        config_module.loadPythonOverrides(config, file_name)
    elif file_name.endswith((".yaml", ".yml")):
        config_module.loadYamlOverrides(config, file_name)
    else:
        raise PipelineDefinitionError(
            f"{file_name}: config override files must end in .py, .yaml or .yml"
        )


def _apply_user_override(config: Any, override: _UserOverride) -> None:
    if override.path is None:
        _apply_file(config, override.value)
    else:
        config_module.applyOverrides(config, [(override.path, override.value)], where="-c")


def _primitive(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _primitive(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_primitive(v) for v in value]
    if hasattr(value, "toDict"):
        return value.toDict()
    return value
