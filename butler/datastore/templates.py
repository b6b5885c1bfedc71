"""File templates: where in the datastore a dataset's file goes.

Design
------
A `FileTemplate` is a string such as
``"{run}/{datasetType}/{visit:?}/{datasetType}_{dataId:?}_{id}"``. Fields are

``run``
    The RUN collection name; its ``/`` separators become subdirectories.
``datasetType``
    The dataset type name.
``storageClass``
    The dataset type's storage class name.
``id``
    The dataset ID as 32 hexadecimal digits.
``dataId``
    The required data ID values in canonical dimension order, joined by ``_``
    (empty for a dataset with no dimensions).
any dimension name
    The data ID value of that dimension (required values first, then known
    implied ones).

A field written ``{name:?}`` is optional: when it has no value it is dropped
together with the separator (one of ``/ _ - .``) just before it. A required
field without a value is an error naming the template and the field.

Every value is sanitized: characters outside ``[A-Za-z0-9_.-]`` become ``_``.
The result is a relative posix path without extension; it is checked to stay
inside the datastore root (no empty, ``.`` or ``..`` component, not absolute).

Uniqueness: the default template ends every file name with the full dataset
ID. The ID is a UUID5 of (run, dataset type, data ID), so two different
datasets never share a path, whatever their dimensions and however their
values sanitize, while the path stays a pure function of the ref (workers
predict it without I/O). The data ID values are in the name for people.
Implied values (e.g. ``band`` of a visit) are not in the default template
because a ref may or may not carry them, and the path must not depend on that.

There is no mutable state: templates are immutable once parsed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .._errors import InvalidNameError
from ..dataset_ref import DatasetRef

__all__ = ["DEFAULT_TEMPLATE", "FileTemplate", "FileTemplates"]

#: The template used when no override matches a dataset type.
DEFAULT_TEMPLATE = "{run}/{datasetType}/{datasetType}_{dataId:?}_{id}"

_FIELD_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:\?)?\}")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.\-]")
_SEPARATORS = "/_-."
_SPECIAL = frozenset({"run", "datasetType", "storageClass", "id", "dataId"})


def _sanitize(value: Any) -> str:
    return _UNSAFE_RE.sub("_", str(value))


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    optional: bool


class FileTemplate:
    """A parsed file template.

    Parameters
    ----------
    template : `str`
        The template text (see the module docstring for the fields).

    Raises
    ------
    InvalidNameError
        If the template is empty, absolute, has unbalanced braces or no field
        at all (every dataset would get the same path).
    """

    __slots__ = ("template", "_parts")

    def __init__(self, template: str) -> None:
        if not isinstance(template, str) or not template.strip():
            raise InvalidNameError(f"file template must be a non-empty string, got {template!r}")
        if template.startswith("/"):
            raise InvalidNameError(f"file template {template!r} must be relative, not absolute")
        parts: list[str | _Field] = []
        pos = 0
        for match in _FIELD_RE.finditer(template):
            if match.start() > pos:
                parts.append(template[pos : match.start()])
            parts.append(_Field(match.group(1), bool(match.group(2))))
            pos = match.end()
        if pos < len(template):
            parts.append(template[pos:])
        for part in parts:
            if isinstance(part, str) and ("{" in part or "}" in part):
                raise InvalidNameError(
                    f"file template {template!r}: malformed field near {part!r} "
                    "(fields look like {name} or {name:?})"
                )
        if not any(isinstance(p, _Field) for p in parts):
            raise InvalidNameError(f"file template {template!r} has no field")
        self.template = template
        self._parts = tuple(parts)

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the fields, in order of appearance."""
        return tuple(p.name for p in self._parts if isinstance(p, _Field))

    def __repr__(self) -> str:
        return f"FileTemplate({self.template!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileTemplate):
            return self.template == other.template
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.template)

    def _value(self, name: str, ref: DatasetRef) -> str | None:
        if name == "run":
            return "/".join(_sanitize(p) for p in ref.run.split("/"))
        if name == "datasetType":
            return _sanitize(ref.dataset_type.name)
        if name == "storageClass":
            return _sanitize(ref.dataset_type.storage_class)
        if name == "id":
            return ref.id.hex
        if name == "dataId":
            values = ref.data_id.values_tuple
            return "_".join(_sanitize(v) for v in values) if values else None
        full = ref.data_id.full
        if name in full and full[name] is not None:
            return _sanitize(full[name])
        return None

    def format(self, ref: DatasetRef) -> str:
        """Return the relative path (without extension) of a dataset.

        Parameters
        ----------
        ref : `DatasetRef`
            The dataset.

        Returns
        -------
        path : `str`
            Relative posix path, no extension.

        Raises
        ------
        InvalidNameError
            If a required field has no value for this ref, or if the result
            would escape the datastore root.
        """
        out: list[str] = []
        strip_next = False  # an optional field at the very start was dropped
        for part in self._parts:
            if isinstance(part, str):
                if strip_next and part[:1] in _SEPARATORS:
                    part = part[1:]
                strip_next = False
                out.append(part)
                continue
            value = self._value(part.name, ref)
            if value is None:
                if not part.optional:
                    raise InvalidNameError(
                        f"file template {self.template!r}: field {part.name!r} has no value "
                        f"for dataset type {ref.dataset_type.name!r}, data ID {ref.data_id!r}, "
                        f"run {ref.run!r} (write it {{{part.name}:?}} to make it optional)"
                    )
                if out and out[-1] and out[-1][-1] in _SEPARATORS:
                    out[-1] = out[-1][:-1]
                elif not "".join(out):
                    strip_next = True
                continue
            out.append(value)
        path = "".join(out)
        self._check(path, ref)
        return path

    def _check(self, path: str, ref: DatasetRef) -> None:
        components = path.split("/")
        bad = [c for c in components if c in ("", ".", "..")]
        if path.startswith("/") or bad or "\\" in path:
            raise InvalidNameError(
                f"file template {self.template!r} gives path {path!r} for dataset type "
                f"{ref.dataset_type.name!r}, data ID {ref.data_id!r}, run {ref.run!r}, "
                "which would escape the datastore root or has an empty component"
            )


class FileTemplates:
    """The templates of a datastore: a default and per-dataset-type overrides.

    Parameters
    ----------
    default : `str` or `FileTemplate`
        Template used for dataset types without an override.
    overrides : `~collections.abc.Mapping` [`str`, `str` or `FileTemplate`], optional
        Template per dataset type name.
    """

    __slots__ = ("default", "overrides")

    def __init__(
        self,
        default: str | FileTemplate = DEFAULT_TEMPLATE,
        overrides: Mapping[str, str | FileTemplate] | None = None,
    ) -> None:
        self.default = default if isinstance(default, FileTemplate) else FileTemplate(default)
        self.overrides = {
            name: t if isinstance(t, FileTemplate) else FileTemplate(t)
            for name, t in (overrides or {}).items()
        }

    def template_for(self, dataset_type_name: str) -> FileTemplate:
        """Return the template used for a dataset type."""
        return self.overrides.get(dataset_type_name, self.default)

    def format(self, ref: DatasetRef) -> str:
        """Return the relative path (without extension) of ``ref``; see `FileTemplate.format`."""
        return self.template_for(ref.dataset_type.name).format(ref)

    def __repr__(self) -> str:
        return f"FileTemplates(default={self.default.template!r}, overrides={self.overrides!r})"
