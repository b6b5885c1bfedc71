"""The ``imports`` section: other pipeline files this one is built on.

Design
------
``imports`` is a list of entries or, as LSST also accepts, a single entry. An entry is a
location or a mapping::

    imports:
      location: $DRP_PIPE_DIR/pipelines/_ingredients/DRP.yaml   # $NAME from the environment
      exclude: [fgcmBuildFromIsolatedStars, step7]               # or include; labels or subsets
      labeledSubsetModifyMode: EDIT      # DROP (default): drop subsets naming a dropped task;
                                         # EDIT: keep them without the dropped tasks
      rename: {isr: isrForCalib}         # after include/exclude, in tasks and subsets
      importContracts: false             # default true
      importSteps: false                 # default true
      instrument: lsst.obs.subaru.HyperSuprimeCam   # replaces the imported one; None drops it

An ``include`` label the imported pipeline does not have is an error; an ``exclude`` label it
does not have is ignored with an `ExcludedUnknownLabelWarning` (LSST ignores it silently; its
published pipelines exclude labels that a newer ingredient file renamed or dropped).

Locations are expanded (`pipeline.definition.locations`) and made absolute against the
importing file's directory. Reading and merging the imported files is
`pipeline.definition.pipeline_ir`'s job; this module reads and checks the entries. No state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import PipelineDefinitionError
from .locations import expand_location
from .yaml_reader import _item_line, _key_line, _suggest, _where

__all__ = ["ExcludedUnknownLabelWarning", "ImportIR", "SubsetModifyMode", "read_imports"]

_IMPORT_KEYS = (
    "location",
    "include",
    "exclude",
    "rename",
    "importContracts",
    "importSteps",
    "labeledSubsetModifyMode",
    "instrument",
)


class ExcludedUnknownLabelWarning(UserWarning):
    """An import excludes a label the imported pipeline does not have (ignored, as in LSST)."""


class SubsetModifyMode(enum.Enum):
    """What an import does with a labeled subset that names a task it leaves out."""

    DROP = "DROP"
    """Drop the subset (and a step of that label); subsets already empty are dropped too."""

    EDIT = "EDIT"
    """Keep the subset without the left-out tasks (it may become empty)."""


@dataclass(frozen=True, slots=True)
class ImportIR:
    """An ``imports`` entry: another pipeline file, possibly restricted.

    Parameters
    ----------
    location : `str`
        Absolute file name, variables expanded.
    include, exclude : `tuple` [`str`, ...]
        Task or subset labels to keep, or to leave out (``include`` is `None` when not given).
    rename : `dict` [`str`, `str`]
        Imported task labels to rename, old to new.
    importContracts, importSteps : `bool`
        Whether the imported file's contracts and steps come along.
    labeledSubsetModifyMode : `SubsetModifyMode`
        What happens to subsets naming a left-out task.
    instrument : `str` or `None`
        The instrument that replaces the imported one, when ``sets_instrument``.
    sets_instrument : `bool`
        Whether the entry has an ``instrument`` key (``None`` then drops the imported one).
    where : `str`
        ``file:line`` of the entry.
    """

    location: str
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    rename: dict[str, str] = field(default_factory=dict)
    importContracts: bool = True
    importSteps: bool = True
    labeledSubsetModifyMode: SubsetModifyMode = SubsetModifyMode.DROP
    instrument: str | None = None
    sets_instrument: bool = False
    where: str = field(default="<unknown>", compare=False)


def read_imports(doc: dict, source: str, base: Path) -> tuple[ImportIR, ...]:
    """Read the ``imports`` of a pipeline document: a list of entries or a single one.

    Raises
    ------
    PipelineDefinitionError
        For a malformed entry, an unknown key, a bad value or an unset variable in a location
        (file and line named).
    """
    value = doc.get("imports")
    if value is None:
        return ()
    if isinstance(value, list):
        lines = [_item_line(value, i) for i in range(len(value))]
        entries = list(value)
    else:  # LSST also takes one entry, a mapping or a location, instead of a list
        lines = [_key_line(doc, "imports")]
        entries = [value]
    return tuple(
        _read_entry(entry, source, _where(source, line), base)
        for entry, line in zip(entries, lines, strict=True)
    )


def _read_entry(entry: Any, source: str, where: str, base: Path) -> ImportIR:
    if isinstance(entry, str):
        entry = {"location": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
        raise PipelineDefinitionError(
            f"{where}: an import must be a location or a mapping with 'location'"
        )

    def key_where(key: str) -> str:
        return _where(source, _key_line(entry, key))

    for key in entry:
        if key == "parameters":
            raise PipelineDefinitionError(
                f"{key_where(key)}: an import has no 'parameters'; set them in this file's "
                "top-level 'parameters', which override the imported file's"
            )
        if key not in _IMPORT_KEYS:
            raise PipelineDefinitionError(
                f"{key_where(key)}: unknown import key {key!r}"
                f"{_suggest(key, _IMPORT_KEYS)}; allowed: {', '.join(_IMPORT_KEYS)}"
            )
    if "include" in entry and "exclude" in entry:
        raise PipelineDefinitionError(
            f"{where}: an import may have 'include' or 'exclude', not both"
        )
    include = _labels(entry, "include", key_where)
    mode_text = entry.get("labeledSubsetModifyMode", "DROP")
    try:
        mode = SubsetModifyMode(mode_text)
    except ValueError:
        raise PipelineDefinitionError(
            f"{key_where('labeledSubsetModifyMode')}: labeledSubsetModifyMode must be DROP or "
            f"EDIT, not {mode_text!r}"
        ) from None
    instrument = entry.get("instrument")
    if instrument is not None and not isinstance(instrument, str):
        raise PipelineDefinitionError(
            f"{key_where('instrument')}: an import's 'instrument' must be a class name or None"
        )
    return ImportIR(
        location=expand_location(entry["location"], key_where("location"), base=base),
        include=include,
        exclude=_labels(entry, "exclude", key_where) or (),
        rename=_rename(entry, key_where),
        importContracts=_flag(entry, "importContracts", key_where),
        importSteps=_flag(entry, "importSteps", key_where),
        labeledSubsetModifyMode=mode,
        instrument=None if instrument == "None" else instrument,
        sets_instrument="instrument" in entry,
        where=where,
    )


def _labels(entry: dict, key: str, key_where: Any) -> tuple[str, ...] | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(label, str) for label in value):
        return tuple(value)
    raise PipelineDefinitionError(
        f"{key_where(key)}: {key!r} must be a label or a list of task or subset labels"
    )


def _flag(entry: dict, key: str, key_where: Any) -> bool:
    value = entry.get(key, True)
    if not isinstance(value, bool):
        raise PipelineDefinitionError(f"{key_where(key)}: {key!r} must be true or false")
    return value


def _rename(entry: dict, key_where: Any) -> dict[str, str]:
    value = entry.get("rename") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise PipelineDefinitionError(
            f"{key_where('rename')}: 'rename' must map imported task labels to new labels"
        )
    new_labels = list(value.values())
    if len(set(new_labels)) != len(new_labels) or set(new_labels) & set(value):
        raise PipelineDefinitionError(
            f"{key_where('rename')}: 'rename' must give distinct new labels that are not "
            f"themselves renamed: {dict(value)}"
        )
    return dict(value)
