"""Reading pipeline YAML with line numbers: the loader and the low-level helpers.

`_LineLoader` is a SafeLoader whose mappings (`_LineDict`) and sequences (`_LineList`) remember
the line of each key and item, so that every error in `pipeline.definition.pipeline_ir` can say
``file.yaml:12: unknown key 'taks'`` (`_where`, `_key_line`, `_item_line`). `_load_yaml` turns
YAML errors into `PipelineDefinitionError`; `_plain` strips the line-recording containers;
`_mapping` and `_sequence` fetch a section checking its YAML type. No mutable state.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import yaml

from .._errors import PipelineDefinitionError


class _LineDict(dict):
    """A dict that remembers its own line and the line of each key (1-based)."""

    line: int | None = None
    key_lines: dict[Any, int]


class _LineList(list):
    """A list that remembers its own line and the line of each item (1-based)."""

    line: int | None = None
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings and sequences record line numbers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _LineDict:
        result = _LineDict(super().construct_mapping(node, deep=True))
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            result.key_lines.setdefault(key, key_node.start_mark.line + 1)
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> _LineList:
        result = _LineList(super().construct_sequence(node, deep=True))
        result.line = node.start_mark.line + 1
        result.item_lines = [item.start_mark.line + 1 for item in node.value]
        return result


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)
_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence
)


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line is not None else source


def _key_line(mapping: Any, key: Any) -> int | None:
    lines = getattr(mapping, "key_lines", None)
    if lines and key in lines:
        return lines[key]
    return getattr(mapping, "line", None)


def _item_line(sequence: Any, index: int) -> int | None:
    lines = getattr(sequence, "item_lines", None)
    if lines and index < len(lines):
        return lines[index]
    return getattr(sequence, "line", None)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _plain(value: Any) -> Any:
    """Return ``value`` with the line-recording containers turned into plain ones."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "invalid YAML"
        raise PipelineDefinitionError(
            f"{_where(source, line)}: YAML syntax error: {problem}"
        ) from err
    except yaml.YAMLError as err:
        raise PipelineDefinitionError(f"{source}: YAML error: {err}") from err


def _mapping(doc: dict, key: str, source: str) -> dict:
    """Return ``doc[key]`` (a mapping; empty when absent), or raise naming file and line."""
    value = doc.get(key)
    if value is None:
        return _LineDict()
    if not isinstance(value, dict):
        raise PipelineDefinitionError(
            f"{_where(source, _key_line(doc, key))}: {key!r} must be a mapping, "
            f"not {type(value).__name__}"
        )
    return value


def _sequence(doc: dict, key: str, source: str) -> list:
    """Return ``doc[key]`` (a list; empty when absent), or raise naming file and line."""
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PipelineDefinitionError(
            f"{_where(source, _key_line(doc, key))}: {key!r} must be a list, "
            f"not {type(value).__name__}"
        )
    return value
