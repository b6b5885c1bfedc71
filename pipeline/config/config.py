"""Typed, validated, freezable task configuration (in the spirit of ``lsst.pex.config``).

Design
------
A `Config` subclass declares its fields as class attributes (`Field`, `RangeField`,
`ChoiceField`, `ListField`, `DictField`, `ConfigField`, `ConfigurableField`, `RegistryField`).
Each field is a descriptor; values live in the instance's ``_storage`` dict.

Mutable state of one config instance:

- ``_storage``: field name -> value (nested configs, `ConfigurableInstance`,
  `RegistryInstance`, `ConfigList`, `ConfigDict` or a plain value);
- ``_history``: field name -> list of ``(value, where)``; ``where`` is a label such as
  ``"default"``, ``"setDefaults"``, ``"-c"``, a file name, or the ``file:line`` that assigned it;
- ``_frozen``: after `Config.freeze` every assignment raises `FrozenConfigError`;
- ``_parent`` / ``_nameInParent``: where a nested config hangs, so messages can name the full
  dotted path (``CharacterizeImageConfig.measurePsf.starSelector.fluxMin``);
- ``_where``: on the root config only, the label that current assignments are recorded under.

Types are checked at assignment (int is promoted to float, bool is never an int); ranges,
choices, ``check`` callables and missing required values are checked by `Config.validate`.
Override helpers (`applyOverrides`, `loadYamlOverrides`, `loadPythonOverrides`) turn
``-c field=value`` strings, YAML files and (only when the user names one explicitly) Python
config files into assignments recorded under their source.

Layout: this module holds `Config`; the package `pipeline.config` re-exports every public
name. `ConfigBase`, `Field` and shared helpers are in `pipeline.config.field`, the value
fields in `pipeline.config.value_fields`, the subtask fields and registries in
`pipeline.config.configurable_fields`, the overrides in `pipeline.config.overrides`. Those
modules know configs only as `ConfigBase`, so none of them imports this one.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import io
import os
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any, ClassVar

import yaml

# The exception classes were always importable from here; "X as X" marks the re-export.
from .._errors import DuplicateRegistrationError as DuplicateRegistrationError
from .._errors import FieldValidationError as FieldValidationError
from .._errors import FrozenConfigError, UnknownConfigFieldError
from .configurable_fields import (
    ConfigurableField,
    ConfigurableInstance,
    Registry,
    RegistryField,
    RegistryInstance,
    makeRegistry,
)
from .field import ConfigBase, Field, _caller_location, _qualified_name, _suggest
from .overrides import (
    applyOverrides,
    loadPythonOverrides,
    loadYamlOverrides,
    parseOverrideString,
)
from .value_fields import (
    ChoiceField,
    ConfigDict,
    ConfigField,
    ConfigList,
    DictField,
    ListField,
    RangeField,
)

__all__ = [
    "ChoiceField",
    "Config",
    "ConfigDict",
    "ConfigField",
    "ConfigList",
    "ConfigurableField",
    "ConfigurableInstance",
    "DictField",
    "Field",
    "ListField",
    "RangeField",
    "applyOverrides",
    "loadPythonOverrides",
    "loadYamlOverrides",
    "parseOverrideString",
    "Registry",
    "RegistryField",
    "RegistryInstance",
    "makeRegistry",
]


_PATH_BRACKET = re.compile(r"\[\s*['\"]?([^'\"\]]+)['\"]?\s*\]")


def _split_path(path: str) -> list[str]:
    """Split ``"a.b['c'].d"`` into ``["a", "b", "c", "d"]``."""
    return [part for part in _PATH_BRACKET.sub(r".\1", path).split(".") if part]


class Config(ConfigBase):
    """Base class of task configs; declare fields as class attributes.

    Parameters
    ----------
    **kwargs
        Field values to set after the defaults and `setDefaults`.

    Examples
    --------
    >>> class DetectionConfig(Config):
    ...     thresholdValue = RangeField(float, "Detection threshold", default=5.0, min=0.0)
    >>> config = DetectionConfig(thresholdValue=4)
    >>> config.thresholdValue
    4.0
    """

    _fields: ClassVar[dict[str, Field]] = {}

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        fields: dict[str, Field] = {}
        for base in reversed(cls.__mro__):
            for name, value in vars(base).items():
                if isinstance(value, Field):
                    fields[name] = value
                elif name in fields and base is not object:
                    del fields[name]  # a subclass hid the field with a plain attribute
        for name in fields:
            if name.startswith("_") or name in _RESERVED:
                raise TypeError(f"{cls.__name__}: field name {name!r} is reserved")
        cls._fields = fields

    def __init__(self, **kwargs: Any):
        object.__setattr__(self, "_storage", {})
        object.__setattr__(self, "_history", {})
        object.__setattr__(self, "_frozen", False)
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_nameInParent", "")
        object.__setattr__(self, "_where", None)
        for field in self._fields.values():
            field._initialize(self)
        with self._labelled(f"{type(self).__name__}.setDefaults"):
            self.setDefaults()
        for name, value in kwargs.items():
            setattr(self, name, value)

    # -- hooks --------------------------------------------------------------------------------

    def setDefaults(self) -> None:
        """Override to change defaults (including subtask configs); call ``super()`` first."""

    def validate(self) -> None:
        """Check every field (recursively): required values, ranges, choices, checks.

        Raises
        ------
        FieldValidationError
            Naming the config class, field path and value of the first failure.
        """
        for field in self._fields.values():
            field._validate(self)

    # -- attribute access ---------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        field = self._fields.get(name)
        if field is None:
            raise self._unknown(name)
        field._set(self, value, None)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: an unknown field.
        if name.startswith("_"):
            raise AttributeError(name)
        raise self._unknown(name)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"config fields cannot be deleted ({self._fieldLabel(name)})")

    def _unknown(self, name: str) -> UnknownConfigFieldError:
        where = self._pathPrefix().rstrip(".")
        owner = f"{self._rootName()}{'.' + where if where else ''}"
        return UnknownConfigFieldError(
            f"{owner} has no field {name!r}" + _suggest(name, self._fields)
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def keys(self) -> list[str]:
        """Return the field names."""
        return list(self._fields)

    def items(self) -> list[tuple[str, Any]]:
        """Return ``(name, value)`` for every field."""
        return [(name, getattr(self, name)) for name in self._fields]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    # -- paths, labels, history ---------------------------------------------------------------

    def _attach(self, parent: Config, name: str) -> None:
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_nameInParent", name)

    def _root(self) -> Config:
        node = self
        while node._parent is not None:
            node = node._parent
        return node

    def _rootName(self) -> str:
        return type(self._root()).__name__

    def _pathPrefix(self) -> str:
        parts = []
        node = self
        while node._parent is not None:
            parts.append(node._nameInParent)
            node = node._parent
        return "".join(f"{p}." for p in reversed(parts))

    def _fieldLabel(self, name: str) -> str:
        return f"{self._rootName()}.{self._pathPrefix()}{name}"

    def _currentWhere(self) -> str:
        label = self._root()._where
        return label if label is not None else _caller_location()

    @contextlib.contextmanager
    def _labelled(self, where: str | None) -> Iterator[None]:
        """Record assignments made inside the block under ``where`` (no-op if `None`)."""
        root = self._root()
        previous = root._where
        if where is not None:
            object.__setattr__(root, "_where", where)
        try:
            yield
        finally:
            object.__setattr__(root, "_where", previous)

    @property
    def history(self) -> _History:
        """Who set what: ``config.history["a.b.c"]`` is a list of ``(value, where)``."""
        return _History(self)

    def _checkMutable(self, name: str) -> None:
        if self._frozen:
            raise FrozenConfigError(f"{self._fieldLabel(name)}: config is frozen")

    def freeze(self) -> None:
        """Refuse all later changes (recursively) with `FrozenConfigError`."""
        object.__setattr__(self, "_frozen", True)
        for field in self._fields.values():
            field._freeze(self)

    @property
    def frozen(self) -> bool:
        """Whether `freeze` has been called."""
        return self._frozen

    # -- dotted paths ---------------------------------------------------------------------------

    def _resolvePath(self, path: str) -> tuple[Any, str]:
        parts = _split_path(path)
        if not parts:
            raise ValueError(f"empty config field path {path!r}")
        node: Any = self
        for part in parts[:-1]:
            node = getattr(node, part)
            if not isinstance(node, (Config, ConfigurableInstance, RegistryInstance)):
                raise UnknownConfigFieldError(
                    f"{self._rootName()}: {part!r} in {path!r} is not a nested config"
                )
        return node, parts[-1]

    def getByPath(self, path: str) -> Any:
        """Return the value at a dotted path such as ``"measurePsf.starSelector.fluxMin"``.

        Raises
        ------
        UnknownConfigFieldError
            If a path component is not a field; the message suggests the near miss.
        """
        node, name = self._resolvePath(path)
        return getattr(node, name)

    def setByPath(self, path: str, value: Any, *, where: str | None = None) -> None:
        """Set the value at a dotted path, recording ``where`` in the history.

        Parameters
        ----------
        path : `str`
            Dotted field path; registry entries as ``field['name']`` or ``field.name``.
        value : `object`
            New value (already of the field's type; see `applyOverrides` for strings).
        where : `str`, optional
            History label; default the caller's ``file:line``.
        """
        node, name = self._resolvePath(path)
        with self._labelled(where):
            setattr(node, name, value)

    get_by_path = getByPath
    set_by_path = setByPath

    # -- dict / YAML --------------------------------------------------------------------------

    def toDict(self) -> dict[str, Any]:
        """Return the values as plain, YAML-serializable nested dicts and lists."""
        return {n: f._toPrimitive(self._storage[n]) for n, f in self._fields.items()}

    to_dict = toDict

    def _applyDict(self, data: Mapping[str, Any], where: str) -> None:
        for name, value in data.items():
            field = self._fields.get(name)
            if field is None:
                raise self._unknown(name)
            with self._labelled(where):
                field._fromPrimitive(self, value, where)

    def update(self, *, where: str | None = None, **kwargs: Any) -> None:
        """Set several fields (nested ones from dicts), recording ``where``."""
        self._applyDict(kwargs, where or self._currentWhere())

    @classmethod
    def fromDict(cls, data: Mapping[str, Any], *, where: str = "fromDict") -> Config:
        """Build a config from `toDict` output (unlisted fields keep their defaults)."""
        config = cls()
        config._applyDict(data, where)
        return config

    from_dict = fromDict

    def saveToYaml(self, destination: str | os.PathLike | IO[str]) -> None:
        """Write the config as YAML to a path or text stream (atomically for paths)."""
        text = f"# {_qualified_name(type(self))}\n" + yaml.safe_dump(
            self.toDict(), sort_keys=False, default_flow_style=False
        )
        if isinstance(destination, (str, os.PathLike)):
            tmp = f"{os.fspath(destination)}.tmp-{os.getpid()}"
            with open(tmp, "w") as stream:
                stream.write(text)
            os.replace(tmp, destination)
        else:
            destination.write(text)

    def loadFromYaml(
        self, source: str | os.PathLike | IO[str], *, where: str | None = None
    ) -> None:
        """Apply values saved by `saveToYaml` to this config.

        Parameters
        ----------
        source : path or text stream
            YAML mapping as written by `saveToYaml`.
        where : `str`, optional
            History label; default the file name.
        """
        if isinstance(source, (str, os.PathLike)):
            with open(source) as stream:
                data = yaml.safe_load(stream)
            where = where or os.path.basename(os.fspath(source))
        else:
            data = yaml.safe_load(source)
            where = where or "yaml stream"
        self._applyDict(data or {}, where)

    def toYamlString(self) -> str:
        """Return the YAML text `saveToYaml` would write."""
        stream = io.StringIO()
        self.saveToYaml(stream)
        return stream.getvalue()

    # -- comparison and copy ------------------------------------------------------------------

    def _compareTo(self, other: Config, prefix: str) -> list[str]:
        if type(self) is not type(other):
            return [f"{prefix or '<config>'}: {type(self).__name__} != {type(other).__name__}"]
        diffs: list[str] = []
        for name, field in self._fields.items():
            diffs.extend(field._compare(self, other, f"{prefix}.{name}" if prefix else name))
        return diffs

    def compare(self, other: Config) -> list[str]:
        """Return ``"path: mine != theirs"`` for each differing field (empty if equal)."""
        return self._compareTo(other, "")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return type(self) is type(other) and not self.compare(other)

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Config:
        """Return an unfrozen, detached deep copy (history included)."""
        new = _copy.deepcopy(self)
        object.__setattr__(new, "_parent", None)
        object.__setattr__(new, "_nameInParent", "")
        _unfreeze(new)
        return new

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.toDict().items())
        return f"{type(self).__name__}({items})"


def _unfreeze(config: Config) -> None:
    object.__setattr__(config, "_frozen", False)
    for name, value in config._storage.items():
        if isinstance(value, Config):
            _unfreeze(value)
        elif isinstance(value, ConfigurableInstance):
            _unfreeze(value.value)
        elif isinstance(value, RegistryInstance):
            for sub in value._configs.values():
                _unfreeze(sub)


_RESERVED = frozenset(n for n in vars(Config) if not n.startswith("__")) | {"connections_"}


class _History(Mapping[str, list]):
    """Read-only view of a config's assignment history, keyed by dotted field path."""

    def __init__(self, config: Config):
        self._config = config

    def __getitem__(self, path: str) -> list[tuple[Any, str]]:
        node, name = self._config._resolvePath(path)
        if isinstance(node, ConfigurableInstance):
            node = node.value
        elif isinstance(node, RegistryInstance):
            if name == "name":
                node, name = node._owner, node._field.name
            else:
                node = node[name] if name in node._field.registry else node.active
        if not isinstance(node, Config) or name not in node._fields:
            raise KeyError(f"no config field {path!r}")
        return list(node._history.get(name, []))

    def __iter__(self) -> Iterator[str]:
        return iter(self._config._fields)

    def __len__(self) -> int:
        return len(self._config._fields)


apply_overrides = applyOverrides
load_yaml_overrides = loadYamlOverrides
load_python_overrides = loadPythonOverrides
parse_override_string = parseOverrideString
