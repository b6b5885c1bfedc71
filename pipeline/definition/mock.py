"""Mock pipelines: run a pipeline's graph with tasks that only read inputs and write placeholders.

``pipetask run --mock`` tests the wiring of a pipeline (connections, dimensions, data IDs,
prerequisite lookups, init-inputs, what a failure blocks) without running its science, as
LSST's ``pipe_base`` mocks do.

Design
------
`mock_pipeline` turns each task of a `Pipeline` into a `MockPipelineTask` whose connections are
those of the configured original (kind, dimensions, multiplicity, lookup function and all),
written into its config as JSON (`MockConfig.connectionsJson`; `MockConnections` rebuilds them,
so a worker needs nothing but the config). Nothing it makes can be taken for a real output:

- every dataset type the pipeline writes is renamed ``_mock_<name>`` with the storage class
  ``MockDataset`` (a JSON dict); its readers read the mock;
- every task label is renamed ``_mock_<label>``, so its metadata, log and config datasets are
  ``_mock_<label>_metadata`` and so on: a mock run in an output chain never counts as a real
  quantum done (``--skip-existing-in``) and never hides a real output;
- overall inputs (raws, calibrations, reference catalogs) keep their names: the mock reads them.

A `MockPipelineTask` quantum reads every input, then writes for each output a placeholder
recording what it mocks (task class, dataset type, data ID) and the dataset IDs it read. With a
`MockFailure` (``--mock-failure LABEL:WHERE:EXCEPTION``) a quantum whose data ID matches
``WHERE`` (the ``--where`` language, evaluated on the data ID) raises ``EXCEPTION`` instead.

No state: the functions are pure, the classes are built from their config.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import yaml

from .._errors import PipelineDefinitionError
from ..config import Field, ListField
from ..connections import (
    InitInput,
    InitOutput,
    Input,
    Output,
    PipelineTaskConnections,
    PrerequisiteInput,
)
from ..pipeline_task import PipelineTask, PipelineTaskConfig
from ..struct import Struct
from .loader import import_by_name
from .pipeline import Pipeline

__all__ = [
    "MOCK_PREFIX",
    "MOCK_STORAGE_CLASS",
    "MockConfig",
    "MockConnections",
    "MockFailure",
    "MockPipelineTask",
    "mock_pipeline",
]

#: Prefix of the mocked labels and of the dataset types a mock pipeline writes.
MOCK_PREFIX = "_mock_"
#: Storage class of the placeholders (a JSON dict; see `pipeline.storage_classes`).
MOCK_STORAGE_CLASS = "MockDataset"

_KINDS: dict[str, type] = {
    "inputs": Input,
    "prerequisiteInputs": PrerequisiteInput,
    "outputs": Output,
    "initInputs": InitInput,
    "initOutputs": InitOutput,
}


class MockConnections(PipelineTaskConnections):
    """Connections read from `MockConfig.connectionsJson` instead of class attributes."""

    def __init__(self, *, config: Any = None):
        super().__init__(config=config)
        if config is None:
            return
        resolved = {}
        for entry in json.loads(config.connectionsJson or "[]"):
            entry = dict(entry)
            kind = entry.pop("kind")
            attribute = entry.pop("attribute")
            lookup = entry.pop("lookupFunction", None)
            if lookup:
                entry["lookupFunction"] = import_by_name(lookup, where="mock connections")
            if "dimensions" in entry:
                entry["dimensions"] = tuple(entry["dimensions"])
            resolved[attribute] = _KINDS[kind](**entry)
            getattr(self, kind).add(attribute)
        object.__setattr__(self, "_resolved", resolved)
        object.__setattr__(self, "dimensions", set(config.quantumDimensions))


class MockConfig(PipelineTaskConfig, pipelineConnections=MockConnections):
    """What a `MockPipelineTask` stands in for, and when it fails."""

    originalTask = Field(str, "dotted name of the task class this mocks", default="")
    quantumDimensions = ListField(str, "the original task's quantum dimensions", default=[])
    connectionsJson = Field(str, "the original task's connections, renamed, as JSON", default="")
    fail = Field(bool, "whether quanta matching failCondition raise failException", default=False)
    failCondition = Field(str, "--where expression on the data ID ('': every quantum)", default="")
    failException = Field(str, "dotted name of the exception raised", default="ValueError")


class MockPipelineTask(PipelineTask):
    """Read every input; write a placeholder for every output (or fail, when told to)."""

    ConfigClass = MockConfig
    _DefaultName = "mock"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        connections = MockConnections(config=self.config)
        for name in connections.initOutputs:
            setattr(self, name, self._placeholder(getattr(connections, name).name, None, []))

    def _placeholder(self, dataset_type: str, data_id: Any, inputs: list[Any]) -> dict[str, Any]:
        return {
            "mock": True,
            "task": self.config.originalTask,
            "label": self.getName(),
            "dataset_type": dataset_type,
            "mocks": dataset_type.removeprefix(MOCK_PREFIX),
            "data_id": None if data_id is None else {k: v for k, v in dict(data_id).items()},
            "inputs": inputs,
        }

    def run(self, **kwargs: Any) -> Struct:
        """Not used: `runQuantum` does the work."""
        raise NotImplementedError("MockPipelineTask runs through runQuantum")

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        """Read the inputs, then write placeholders (or raise the configured failure)."""
        data_id = butlerQC.dataId
        if self.config.fail and _matches(self.config.failCondition, data_id):
            exception = _exception_class(self.config.failException)
            raise exception(
                f"mock failure of {self.getName()} {dict(data_id.required)} "
                f"(--mock-failure: {self.config.failCondition or 'every quantum'})"
            )
        read = []
        for _, refs in inputRefs:
            for ref in refs if isinstance(refs, (list, tuple)) else [refs]:
                butlerQC.get(ref)
                read.append({"dataset_type": ref.dataset_type.name, "id": str(ref.id)})
        for _, refs in outputRefs:
            for ref in refs if isinstance(refs, (list, tuple)) else [refs]:
                placeholder = self._placeholder(ref.dataset_type.name, data_id.required, read)
                butlerQC.put(placeholder, ref)


def _exception_class(name: str) -> type[BaseException]:
    """Return the exception class named ``name`` (a builtin's bare name, or a dotted name)."""
    import builtins

    found = getattr(builtins, name, None) if "." not in name else None
    if found is None:
        found = import_by_name(name, where="--mock-failure")
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise PipelineDefinitionError(f"--mock-failure: {name!r} is not an exception class")
    return found


def _matches(condition: str, data_id: Any) -> bool:
    from butler.expressions import evaluate_where

    values = {**dict(getattr(data_id, "implied", {}) or {}), **dict(data_id.required)}
    return evaluate_where(condition, values)


@dataclasses.dataclass(frozen=True)
class MockFailure:
    """``--mock-failure LABEL:WHERE:EXCEPTION``: quanta of LABEL matching WHERE raise.

    Parameters
    ----------
    label : `str`
        The original task label.
    where : `str`
        A ``--where`` expression on the quantum's data ID ("" matches every quantum).
    exception : `str`
        Dotted name of the exception class ("" for ``builtins.ValueError``).
    """

    label: str
    where: str = ""
    exception: str = ""

    @classmethod
    def parse(cls, text: str) -> MockFailure:
        """Parse ``LABEL:WHERE:EXCEPTION`` (WHERE and EXCEPTION may be empty).

        Raises
        ------
        ValueError
            If the text has no label, or WHERE does not parse.
        """
        from butler.expressions import parse_where

        label, _, rest = text.partition(":")
        where, _, exception = rest.rpartition(":") if rest.count(":") else (rest, "", "")
        if not label.strip():
            raise ValueError(f"--mock-failure {text!r}: expected LABEL:WHERE:EXCEPTION")
        parse_where(where)  # a syntax error is reported now, not by every quantum
        if exception.strip():
            _exception_class(exception.strip())
        return cls(label.strip(), where.strip(), exception.strip())


def _connection_entry(kind: str, attribute: str, connection: Any, rename: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": kind, "attribute": attribute}
    for field in dataclasses.fields(connection):
        entry[field.name] = getattr(connection, field.name)
    entry["name"], entry["storageClass"] = rename(connection.name, connection.storageClass)
    if "dimensions" in entry:
        entry["dimensions"] = list(entry["dimensions"])
    lookup = entry.pop("lookupFunction", None)
    if lookup is not None:
        name = f"{lookup.__module__}.{lookup.__qualname__}"
        if "<" in name:  # a lambda or a nested function cannot be imported by a worker
            raise PipelineDefinitionError(
                f"cannot mock connection {attribute!r}: its lookupFunction {name} is not "
                "importable by name"
            )
        entry["lookupFunction"] = name
    return entry


def mock_pipeline(pipeline: Pipeline, failures: Iterable[MockFailure] = ()) -> Pipeline:
    """Return the mock of a configured pipeline (see the module notes).

    Parameters
    ----------
    pipeline : `Pipeline`
        The pipeline, with its user overrides (they decide its connections).
    failures : iterable of `MockFailure`
        Quanta to fail; at most one per label.

    Raises
    ------
    PipelineDefinitionError
        If a failure names an unknown label or a label twice, or a connection cannot be mocked.
    """
    defs = pipeline.task_defs()
    labels = [d.label for d in defs]
    by_label: dict[str, MockFailure] = {}
    for failure in failures:
        label = failure.label.removeprefix(MOCK_PREFIX)
        if label not in labels:
            raise PipelineDefinitionError(
                f"--mock-failure: no task labelled {failure.label!r} (labels: {', '.join(labels)})"
            )
        if label in by_label:
            raise PipelineDefinitionError(f"--mock-failure: task {label!r} is given twice")
        by_label[label] = failure
    written = {
        getattr(d.connections, name).name
        for d in defs
        for kind in ("outputs", "initOutputs")
        for name in getattr(d.connections, kind)
    }

    def rename(name: str, storage_class: str) -> tuple[str, str]:
        if name in written:
            return MOCK_PREFIX + name, MOCK_STORAGE_CLASS
        return name, storage_class

    tasks: dict[str, Any] = {}
    for task_def in defs:
        entries = [
            _connection_entry(kind, name, getattr(task_def.connections, name), rename)
            for kind in _KINDS
            for name in sorted(getattr(task_def.connections, kind))
        ]
        failure = by_label.get(task_def.label)
        config: dict[str, Any] = {
            "originalTask": task_def.task_name,
            "quantumDimensions": sorted(task_def.connections.dimensions),
            "connectionsJson": json.dumps(entries, sort_keys=True),
        }
        if failure is not None:
            config["fail"] = True
            config["failCondition"] = failure.where
            if failure.exception:
                config["failException"] = failure.exception
        tasks[MOCK_PREFIX + task_def.label] = {
            "class": f"{MockPipelineTask.__module__}.{MockPipelineTask.__qualname__}",
            "config": [config],
        }
    document: dict[str, Any] = {
        "description": f"mock of: {pipeline.description}".strip(),
        "tasks": tasks,
    }
    if pipeline.instrument:
        document["instrument"] = pipeline.instrument
    return Pipeline.from_string(yaml.safe_dump(document, sort_keys=False))

