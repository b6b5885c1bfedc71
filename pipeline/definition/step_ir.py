"""The ``steps`` section: the ordered subsets a production run submits one after another.

Design
------
LSST's schema::

    steps:
      - label: step1            # a labeled subset
        dimensions: visit, detector
      - label: step2
        dimensions: [tract, patch, skymap]

Each step names a labeled subset and the dimensions its workflow is split over (recorded and
shown; campaign tools use them). Steps are checked in three places, each error naming the step
or task label and the ``file:line`` of its definition:

- while reading each file (`read_steps`): entry shape, a step declared twice;
- once imports are merged (`merge_steps`, `check_step_labels`): the same step imported with two
  definitions, a step whose label is not a labeled subset;
- on the whole pipeline a command uses (`check_step_partition`): every task in exactly one step;
- when the task graph is known (`check_step_order`): no task reads a dataset type written by a
  task of a later step.

A pipeline without steps is not checked. No state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import PipelineDefinitionError
from .yaml_reader import _item_line, _key_line, _sequence, _suggest, _where

if TYPE_CHECKING:
    from .pipeline_graph import PipelineGraph

__all__ = [
    "InvalidStepsError",
    "StepIR",
    "check_step_labels",
    "check_step_order",
    "check_step_partition",
    "merge_steps",
    "read_steps",
]

_STEP_KEYS = ("label", "dimensions")


class InvalidStepsError(PipelineDefinitionError):
    """A pipeline's ``steps`` are malformed, do not partition its tasks, or are out of order."""


@dataclass(frozen=True, slots=True)
class StepIR:
    """A step: a labeled subset and the dimensions its processing is split over."""

    label: str
    dimensions: tuple[str, ...]
    where: str = field(default="<unknown>", compare=False)

    def to_primitive(self) -> dict[str, Any]:
        """Return the entry as it is written in YAML."""
        return {"label": self.label, "dimensions": list(self.dimensions)}


def read_steps(doc: dict, source: str) -> tuple[StepIR, ...]:
    """Read the ``steps`` list of a pipeline document.

    Raises
    ------
    InvalidStepsError
        For a malformed entry or a step declared twice (file and line named).
    """
    entries = _sequence(doc, "steps", source)
    steps: dict[str, StepIR] = {}
    for i, entry in enumerate(entries):
        where = _where(source, _item_line(entries, i))
        if not isinstance(entry, dict) or "label" not in entry or "dimensions" not in entry:
            raise InvalidStepsError(
                f"{where}: a step must be a mapping with 'label' and 'dimensions'"
            )
        for key in entry:
            if key not in _STEP_KEYS:
                raise InvalidStepsError(
                    f"{_where(source, _key_line(entry, key))}: unknown step key {key!r}"
                    f"{_suggest(key, _STEP_KEYS)}; allowed: {', '.join(_STEP_KEYS)}"
                )
        label = str(entry["label"])
        step = StepIR(label, _dimension_names(entry["dimensions"], where), where)
        if label in steps:
            raise InvalidStepsError(
                f"{where}: step {label!r} is declared twice (first at {steps[label].where})"
            )
        steps[label] = step
    return tuple(steps.values())


def _dimension_names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    elif isinstance(value, list) and all(isinstance(name, str) for name in value):
        names = [name.strip() for name in value]
    else:
        raise InvalidStepsError(
            f"{where}: step dimensions must be a list of names or 'a, b, c', not {value!r}"
        )
    return tuple(name for name in names if name)


def merge_steps(groups: Iterable[Iterable[StepIR]]) -> tuple[StepIR, ...]:
    """Merge steps of imports (in import order) and then of the importing file.

    A step already known keeps its place; declaring it again with other dimensions is an error.

    Raises
    ------
    InvalidStepsError
        Naming both definitions.
    """
    merged: dict[str, StepIR] = {}
    for steps in groups:
        for step in steps:
            known = merged.setdefault(step.label, step)
            if known.dimensions != step.dimensions:
                raise InvalidStepsError(
                    f"{step.where}: step {step.label!r} has dimensions {list(step.dimensions)} "
                    f"but {known.where} defines it with {list(known.dimensions)}"
                )
    return tuple(merged.values())


def check_step_labels(steps: Sequence[StepIR], subsets: Mapping[str, Any]) -> None:
    """Check that every step names a labeled subset.

    Raises
    ------
    InvalidStepsError
        Naming the step's label and line, and the known subsets.
    """
    for step in steps:
        if step.label not in subsets:
            raise InvalidStepsError(
                f"{step.where}: step {step.label!r} is not a labeled subset"
                f"{_suggest(step.label, subsets)}; subsets: {sorted(subsets)}"
            )


def check_step_partition(
    steps: Sequence[StepIR], subsets: Mapping[str, Any], tasks: Mapping[str, Any]
) -> None:
    """Check that the steps together hold every task, each exactly once.

    Parameters
    ----------
    steps : `~collections.abc.Sequence` [`StepIR`]
        The pipeline's steps (nothing is checked when empty).
    subsets : `~collections.abc.Mapping`
        Labeled subsets by label; each has ``subset`` (task labels).
    tasks : `~collections.abc.Mapping`
        Tasks by label; each has ``where``.

    Raises
    ------
    InvalidStepsError
        For a task in two steps (naming both steps and their lines) or in none (naming the
        task's line and the steps' lines).
    """
    if not steps:
        return
    check_step_labels(steps, subsets)
    step_of: dict[str, StepIR] = {}
    for step in steps:
        for label in subsets[step.label].subset:
            first = step_of.setdefault(label, step)
            if first is not step:
                raise InvalidStepsError(
                    f"{step.where}: task {label!r} is in step {first.label!r} ({first.where}) "
                    f"and again in step {step.label!r}; a task belongs to exactly one step"
                )
    for label, task in tasks.items():
        if label not in step_of:
            named = ", ".join(f"{s.label!r} ({s.where})" for s in steps)
            raise InvalidStepsError(
                f"{task.where}: task {label!r} is in no step; every task must be in exactly one "
                f"of the steps {named}"
            )


def check_step_order(
    steps: Sequence[StepIR], subsets: Mapping[str, Any], graph: PipelineGraph
) -> None:
    """Check that no task reads what a task of a later step writes.

    Raises
    ------
    InvalidStepsError
        Naming the earlier step (label and line), the reading task, the dataset type, and the
        writing task's step (label and line).
    """
    position = {
        label: (index, step)
        for index, step in enumerate(steps)
        for label in subsets[step.label].subset
    }
    for index, step in enumerate(steps):
        for label in subsets[step.label].subset:
            if label not in graph.tasks:
                continue
            for edge in graph.tasks[label].inputs:
                producer = graph.producer_of(edge.name)
                if producer is None or producer not in position:
                    continue
                later_index, later = position[producer]
                if later_index > index:
                    raise InvalidStepsError(
                        f"{step.where}: step {step.label!r} is out of order: its task {label!r} "
                        f"reads {edge.name!r}, written by task {producer!r} of the later step "
                        f"{later.label!r} ({later.where}); list {later.label!r} before "
                        f"{step.label!r}"
                    )
