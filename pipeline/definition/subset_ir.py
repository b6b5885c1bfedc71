"""The ``subsets`` section: named groups of task labels.

Each entry is a list of task labels or ``{subset: [...], description: ...}``. Once imports are
merged, `check_subsets` makes sure every subset names known tasks and no subset label is also
a task label. No state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import PipelineDefinitionError
from .yaml_reader import _key_line, _mapping, _suggest, _where

__all__ = ["SubsetIR", "check_subsets", "read_subsets"]


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


def read_subsets(doc: dict, source: str) -> dict[str, SubsetIR]:
    """Read the ``subsets`` mapping of a pipeline document.

    Raises
    ------
    PipelineDefinitionError
        If an entry is malformed (file and line named).
    """
    subsets = _mapping(doc, "subsets", source)
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


def check_subsets(subsets: Mapping[str, SubsetIR], tasks: Mapping[str, Any]) -> None:
    """Check that subsets name known tasks and do not reuse a task label.

    Raises
    ------
    PipelineDefinitionError
        Naming the subset's file and line.
    """
    for subset in subsets.values():
        if subset.label in tasks:
            raise PipelineDefinitionError(
                f"{subset.where}: subset label {subset.label!r} is also a task label"
            )
        for label in subset.subset:
            if label not in tasks:
                raise PipelineDefinitionError(
                    f"{subset.where}: subset {subset.label!r} names unknown task {label!r}"
                    f"{_suggest(label, tasks)}; known tasks: {sorted(tasks)}"
                )
