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
Override helpers at the end of the module (`applyOverrides`, `loadYamlOverrides`,
`loadPythonOverrides`) turn ``-c field=value`` strings, YAML files and (only when the user
names one explicitly) Python config files into assignments recorded under their source.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import difflib
import importlib
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, ClassVar

import yaml

from ._errors import (
    DuplicateRegistrationError,
    FieldValidationError,
    FrozenConfigError,
    UnknownConfigFieldError,
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

_log = logging.getLogger(__name__)

_THIS_FILE = os.path.normcase(os.path.abspath(__file__))
_SCALAR_TYPES = (bool, int, float, str, complex)


def _caller_location() -> str:
    """Return ``file:line`` of the first frame outside this module and `pipeline.config_*`."""
    frame = sys._getframe(1)
    while frame is not None:
        fname = frame.f_code.co_filename
        if os.path.normcase(os.path.abspath(fname)) != _THIS_FILE and "contextlib" not in fname:
            return f"{os.path.basename(fname)}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _qualified_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _import_qualified(name: str) -> Any:
    module_name, _, attr = name.rpartition(".")
    while module_name:
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
            continue
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    raise ImportError(f"cannot import {name!r}")


# --------------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------------


class Field:
    """A typed scalar config field.

    Parameters
    ----------
    dtype : `type`
        Value type: `int`, `float`, `bool`, `str`, `complex` (or any other class).
    doc : `str`
        Help text.
    default : `object`, optional
        Default value; `None` means unset.
    optional : `bool`, optional
        If `False` (default), `Config.validate` rejects `None`.
    check : callable, optional
        ``check(value) -> bool`` run by `Config.validate` on non-`None` values.
    """

    def __init__(
        self,
        dtype: type,
        doc: str,
        default: Any = None,
        optional: bool = False,
        check: Callable[[Any], bool] | None = None,
    ):
        if not isinstance(dtype, type):
            raise TypeError(f"Field dtype must be a type, not {dtype!r}")
        self.dtype = dtype
        self.doc = doc
        self.default = default
        self.optional = optional
        self.check = check
        self.name = "<unbound>"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Config | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance._storage[self.name]

    def __set__(self, instance: Config, value: Any) -> None:
        self._set(instance, value, where=None)

    # -- protocol used by Config ------------------------------------------------------------

    def _error(self, instance: Config, message: str) -> FieldValidationError:
        return FieldValidationError(f"{instance._fieldLabel(self.name)}: {message}")

    def _initialize(self, instance: Config) -> None:
        value = None if self.default is None else self._coerce(instance, self.default)
        instance._storage[self.name] = value
        instance._history[self.name] = [(self._historyValue(value), "default")]

    def _set(self, instance: Config, value: Any, where: str | None) -> None:
        instance._checkMutable(self.name)
        value = self._coerce(instance, value)
        instance._storage[self.name] = value
        label = where or instance._currentWhere()
        instance._history.setdefault(self.name, []).append((self._historyValue(value), label))

    def _coerce(self, instance: Config, value: Any) -> Any:
        if value is None:
            return None
        return self._coerceScalar(instance, self.dtype, value)

    def _coerceScalar(self, instance: Config, dtype: type, value: Any, what: str = "value ") -> Any:
        if dtype is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if dtype in (int, float) and isinstance(value, bool):
            pass
        elif isinstance(value, dtype):
            return value
        elif dtype is complex and isinstance(value, (int, float)) and not isinstance(value, bool):
            return complex(value)
        elif type(value).__module__ == "numpy" and dtype in (int, float, bool):
            # numpy scalars: accept a lossless conversion.
            converted = dtype(value)
            if converted == value:
                return converted
        raise self._error(
            instance,
            f"{what}{value!r} ({type(value).__name__}) is not a valid {dtype.__name__}",
        )

    def _historyValue(self, value: Any) -> Any:
        return value

    def _validate(self, instance: Config) -> None:
        value = instance._storage[self.name]
        if value is None:
            if not self.optional:
                raise self._error(instance, "required field is not set (None)")
            return
        self._validateValue(instance, value)
        if self.check is not None and not self.check(value):
            raise self._error(instance, f"value {value!r} fails the check {self.check!r}")

    def _validateValue(self, instance: Config, value: Any) -> None:
        pass

    def _freeze(self, instance: Config) -> None:
        pass

    def _toPrimitive(self, value: Any) -> Any:
        return value

    def _fromPrimitive(self, instance: Config, data: Any, where: str) -> None:
        self._set(instance, data, where)

    def _compare(self, instance: Config, other: Config, path: str) -> list[str]:
        mine, theirs = instance._storage[self.name], other._storage[self.name]
        if self._toPrimitive(mine) != self._toPrimitive(theirs):
            return [f"{path}: {mine!r} != {theirs!r}"]
        return []

    def _parseString(self, instance: Config, text: str) -> Any:
        """Parse an override string (``-c field=value``) into a value of this field's type."""
        return _parse_scalar(text, self.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dtype.__name__}, name={self.name!r})"


_NONE_WORDS = {"none", "null", "~", ""}
_TRUE_WORDS = {"true", "yes", "on", "1", "y", "t"}
_FALSE_WORDS = {"false", "no", "off", "0", "n", "f"}


def _parse_scalar(text: Any, dtype: type) -> Any:
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped.lower() in _NONE_WORDS and dtype is not str:
        return None
    if dtype is str:
        if stripped in ("None", "null"):
            return None
        if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
            return stripped[1:-1]
        return text
    if dtype is bool:
        if stripped.lower() in _TRUE_WORDS:
            return True
        if stripped.lower() in _FALSE_WORDS:
            return False
        return text
    for parse in (int, float, complex):
        if dtype is parse:
            try:
                return parse(stripped)
            except ValueError:
                return text
    try:
        return yaml.safe_load(stripped)
    except yaml.YAMLError:
        return text


class RangeField(Field):
    """A numeric field whose value must lie in a range.

    Parameters
    ----------
    dtype : `type`
        `int` or `float`.
    doc : `str`
        Help text.
    default : `int` or `float`, optional
        Default value.
    optional : `bool`, optional
        Whether `None` is allowed.
    min, max : `int` or `float`, optional
        Bounds; `None` means unbounded.
    inclusiveMin : `bool`, optional
        Whether ``min`` itself is allowed (default `True`).
    inclusiveMax : `bool`, optional
        Whether ``max`` itself is allowed (default `False`).
    check : callable, optional
        Extra ``check(value) -> bool``.
    """

    def __init__(
        self,
        dtype: type,
        doc: str,
        default: Any = None,
        optional: bool = False,
        min: float | None = None,  # noqa: A002  (pex_config's published keyword)
        max: float | None = None,  # noqa: A002
        inclusiveMin: bool = True,
        inclusiveMax: bool = False,
        check: Callable[[Any], bool] | None = None,
    ):
        if dtype not in (int, float):
            raise TypeError(f"RangeField dtype must be int or float, not {dtype!r}")
        if min is not None and max is not None and min > max:
            raise ValueError(f"RangeField min={min} > max={max}")
        super().__init__(dtype, doc, default=default, optional=optional, check=check)
        self.min, self.max = min, max
        self.inclusiveMin, self.inclusiveMax = inclusiveMin, inclusiveMax

    def _validateValue(self, instance: Config, value: Any) -> None:
        low_ok = self.min is None or (value >= self.min if self.inclusiveMin else value > self.min)
        high_ok = self.max is None or (value <= self.max if self.inclusiveMax else value < self.max)
        if not (low_ok and high_ok):
            lo = "(-inf" if self.min is None else f"{'[' if self.inclusiveMin else '('}{self.min}"
            hi = "inf)" if self.max is None else f"{self.max}{']' if self.inclusiveMax else ')'}"
            raise self._error(instance, f"value {value!r} is outside the range {lo}, {hi}")


class ChoiceField(Field):
    """A field whose value must be one of an allowed set.

    Parameters
    ----------
    dtype : `type`
        Value type.
    doc : `str`
        Help text.
    allowed : `dict`
        Allowed value -> description of that choice.
    default : `object`, optional
        Default value.
    optional : `bool`, optional
        Whether `None` is allowed.
    """

    def __init__(
        self,
        dtype: type,
        doc: str,
        allowed: Mapping[Any, str],
        default: Any = None,
        optional: bool = False,
    ):
        if not allowed:
            raise ValueError("ChoiceField needs at least one allowed value")
        super().__init__(dtype, doc, default=default, optional=optional)
        self.allowed = dict(allowed)

    def _validateValue(self, instance: Config, value: Any) -> None:
        if value not in self.allowed:
            raise self._error(
                instance,
                f"value {value!r} is not one of the allowed values {sorted(self.allowed, key=str)}"
                + (_suggest(value, map(str, self.allowed)) if isinstance(value, str) else ""),
            )


class ConfigList(list):
    """A list held by a `ListField`: checks item types and refuses changes once frozen."""

    def __init__(self, owner: Config, field: ListField, items: Iterable[Any]):
        self._owner, self._field = owner, field
        super().__init__(field._coerceItem(owner, item) for item in items)

    def _mutate(self, items: Iterable[Any] = ()) -> list[Any]:
        self._owner._checkMutable(self._field.name)
        return [self._field._coerceItem(self._owner, item) for item in items]

    def append(self, item: Any) -> None:  # noqa: D102
        super().append(*self._mutate([item]))

    def extend(self, items: Iterable[Any]) -> None:  # noqa: D102
        super().extend(self._mutate(items))

    def insert(self, index: int, item: Any) -> None:  # noqa: D102
        super().insert(index, *self._mutate([item]))

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            super().__setitem__(index, self._mutate(value))
        else:
            super().__setitem__(index, *self._mutate([value]))

    def __delitem__(self, index: Any) -> None:
        self._mutate()
        super().__delitem__(index)

    def __iadd__(self, items: Iterable[Any]) -> ConfigList:  # type: ignore[override]
        self.extend(items)
        return self

    def __imul__(self, n: int) -> ConfigList:  # type: ignore[override]
        self._mutate()
        return super().__imul__(n)  # type: ignore[return-value]

    def pop(self, index: int = -1) -> Any:  # noqa: D102
        self._mutate()
        return super().pop(index)

    def remove(self, item: Any) -> None:  # noqa: D102
        self._mutate()
        super().remove(item)

    def clear(self) -> None:  # noqa: D102
        self._mutate()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        self._mutate()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:  # noqa: D102
        self._mutate()
        super().reverse()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild_list, (self._owner, self._field.name, list(self)))

    def __deepcopy__(self, memo: dict) -> ConfigList:
        new = ConfigList.__new__(ConfigList)
        new._owner = _copy.deepcopy(self._owner, memo)
        new._field = self._field
        list.extend(new, _copy.deepcopy(list(self), memo))
        return new


class ListField(Field):
    """A list of values of one type.

    Parameters
    ----------
    dtype : `type`
        Type of each item.
    doc : `str`
        Help text.
    default : iterable, optional
        Default items.
    optional : `bool`, optional
        Whether `None` is allowed.
    minLength, maxLength, length : `int`, optional
        Length limits checked by `Config.validate`.
    itemCheck : callable, optional
        ``itemCheck(item) -> bool`` for each item.
    listCheck : callable, optional
        ``listCheck(list) -> bool`` for the whole list.
    """

    def __init__(
        self,
        dtype: type,
        doc: str,
        default: Iterable[Any] | None = None,
        optional: bool = False,
        minLength: int | None = None,
        maxLength: int | None = None,
        length: int | None = None,
        itemCheck: Callable[[Any], bool] | None = None,
        listCheck: Callable[[Any], bool] | None = None,
    ):
        super().__init__(dtype, doc, default=default, optional=optional, check=listCheck)
        self.minLength, self.maxLength, self.length = minLength, maxLength, length
        self.itemCheck = itemCheck

    def _coerceItem(self, instance: Config, item: Any) -> Any:
        return self._coerceScalar(instance, self.dtype, item, what="item ")

    def _coerce(self, instance: Config, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise self._error(instance, f"value {value!r} is not a list of {self.dtype.__name__}")
        return ConfigList(instance, self, value)

    def _historyValue(self, value: Any) -> Any:
        return None if value is None else list(value)

    def _validateValue(self, instance: Config, value: Any) -> None:
        n = len(value)
        if self.length is not None and n != self.length:
            raise self._error(instance, f"list {list(value)!r} has length {n}, not {self.length}")
        if self.minLength is not None and n < self.minLength:
            raise self._error(instance, f"list {list(value)!r} is shorter than {self.minLength}")
        if self.maxLength is not None and n > self.maxLength:
            raise self._error(instance, f"list {list(value)!r} is longer than {self.maxLength}")
        for item in value:
            if self.itemCheck is not None and not self.itemCheck(item):
                raise self._error(instance, f"item {item!r} fails the check {self.itemCheck!r}")

    def _toPrimitive(self, value: Any) -> Any:
        return None if value is None else list(value)

    def _parseString(self, instance: Config, text: str) -> Any:
        parsed = yaml.safe_load(text) if isinstance(text, str) else text
        if isinstance(parsed, str):
            parsed = [p for p in re.split(r"\s*,\s*", parsed.strip("[]() ")) if p]
        if isinstance(parsed, list):
            return [_parse_scalar(p, self.dtype) if isinstance(p, str) else p for p in parsed]
        return parsed


class ConfigDict(dict):
    """A dict held by a `DictField`: checks key and item types, refuses changes once frozen."""

    def __init__(self, owner: Config, field: DictField, items: Mapping[Any, Any]):
        self._owner, self._field = owner, field
        super().__init__(field._coercePair(owner, k, v) for k, v in items.items())

    def __setitem__(self, key: Any, value: Any) -> None:
        self._owner._checkMutable(self._field.name)
        super().__setitem__(*self._field._coercePair(self._owner, key, value))

    def __delitem__(self, key: Any) -> None:
        self._owner._checkMutable(self._field.name)
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:  # noqa: D102
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, *default: Any) -> Any:  # noqa: D102
        self._owner._checkMutable(self._field.name)
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:  # noqa: D102
        self._owner._checkMutable(self._field.name)
        return super().popitem()

    def clear(self) -> None:  # noqa: D102
        self._owner._checkMutable(self._field.name)
        super().clear()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild_dict, (self._owner, self._field.name, dict(self)))

    def __deepcopy__(self, memo: dict) -> ConfigDict:
        new = ConfigDict.__new__(ConfigDict)
        new._owner = _copy.deepcopy(self._owner, memo)
        new._field = self._field
        dict.update(new, _copy.deepcopy(dict(self), memo))
        return new


class DictField(Field):
    """A mapping from keys of one type to items of another.

    Parameters
    ----------
    keytype : `type`
        Type of the keys (`str`, `int`, ...).
    itemtype : `type`
        Type of the values.
    doc : `str`
        Help text.
    default : `dict`, optional
        Default mapping.
    optional : `bool`, optional
        Whether `None` is allowed.
    itemCheck : callable, optional
        ``itemCheck(item) -> bool`` for each value.
    dictCheck : callable, optional
        ``dictCheck(dict) -> bool`` for the whole mapping.
    """

    def __init__(
        self,
        keytype: type,
        itemtype: type,
        doc: str,
        default: Mapping[Any, Any] | None = None,
        optional: bool = False,
        itemCheck: Callable[[Any], bool] | None = None,
        dictCheck: Callable[[Any], bool] | None = None,
    ):
        super().__init__(itemtype, doc, default=default, optional=optional, check=dictCheck)
        self.keytype, self.itemtype = keytype, itemtype
        self.itemCheck = itemCheck

    def _coercePair(self, instance: Config, key: Any, value: Any) -> tuple[Any, Any]:
        key = self._coerceScalar(instance, self.keytype, key, what="key ")
        if value is not None:
            value = self._coerceScalar(instance, self.itemtype, value, what=f"item {key!r}: value ")
        return key, value

    def _coerce(self, instance: Config, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._error(instance, f"value {value!r} is not a mapping")
        return ConfigDict(instance, self, value)

    def _historyValue(self, value: Any) -> Any:
        return None if value is None else dict(value)

    def _validateValue(self, instance: Config, value: Any) -> None:
        if self.itemCheck is not None:
            for key, item in value.items():
                if not self.itemCheck(item):
                    raise self._error(instance, f"item {key!r}: {item!r} fails the check")

    def _toPrimitive(self, value: Any) -> Any:
        return None if value is None else dict(value)

    def _parseString(self, instance: Config, text: str) -> Any:
        return yaml.safe_load(text) if isinstance(text, str) else text

    def __repr__(self) -> str:
        return f"DictField({self.keytype.__name__}, {self.itemtype.__name__}, name={self.name!r})"


class ConfigField(Field):
    """A nested config: ``detection = ConfigField(dtype=DetectionConfig, doc=...)``.

    Assigning a config of the same class or a mapping updates the nested config's values.

    Parameters
    ----------
    dtype : `type` [`Config`]
        Class of the nested config.
    doc : `str`
        Help text.
    default : `Config`, optional
        Values to start from instead of ``dtype()``.
    """

    def __init__(self, dtype: type[Config], doc: str, default: Config | None = None):
        if not (isinstance(dtype, type) and issubclass(dtype, Config)):
            raise TypeError(f"ConfigField dtype must be a Config subclass, not {dtype!r}")
        super().__init__(dtype, doc, default=None, optional=False)
        self.defaultConfig = default

    def _initialize(self, instance: Config) -> None:
        sub = self.dtype()
        if self.defaultConfig is not None:
            sub._applyDict(self.defaultConfig.toDict(), "default")
        sub._attach(instance, self.name)
        instance._storage[self.name] = sub
        instance._history[self.name] = []

    def _set(self, instance: Config, value: Any, where: str | None) -> None:
        instance._checkMutable(self.name)
        sub = instance._storage[self.name]
        if isinstance(value, Config):
            if not isinstance(value, self.dtype):
                raise self._error(
                    instance, f"{type(value).__name__} is not a {self.dtype.__name__}"
                )
            value = value.toDict()
        if not isinstance(value, Mapping):
            raise self._error(instance, f"value {value!r} is not a {self.dtype.__name__}")
        sub._applyDict(value, where or instance._currentWhere())

    def _validate(self, instance: Config) -> None:
        instance._storage[self.name].validate()

    def _freeze(self, instance: Config) -> None:
        instance._storage[self.name].freeze()

    def _toPrimitive(self, value: Any) -> Any:
        return value.toDict()

    def _fromPrimitive(self, instance: Config, data: Any, where: str) -> None:
        instance._storage[self.name]._applyDict(data, where)

    def _compare(self, instance: Config, other: Config, path: str) -> list[str]:
        return instance._storage[self.name]._compareTo(other._storage[self.name], path)

    def _parseString(self, instance: Config, text: str) -> Any:
        return yaml.safe_load(text) if isinstance(text, str) else text


class ConfigurableInstance:
    """The value of a `ConfigurableField`: a target (task class) and its config.

    Attribute reads and writes that are not ``target``, ``ConfigClass``, ``value``,
    ``retarget`` or ``apply`` go to the config, so ``config.measurePsf.starSelector`` works.
    """

    def __init__(self, owner: Config, field: ConfigurableField, target: Any, ConfigClass: type):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_field", field)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_ConfigClass", ConfigClass)
        value = ConfigClass()
        value._attach(owner, field.name)
        object.__setattr__(self, "_value", value)

    @property
    def target(self) -> Any:
        """The class (usually a `Task`) constructed by `apply`."""
        return self._target

    @property
    def ConfigClass(self) -> type:
        """The config class of the target."""
        return self._ConfigClass

    @property
    def value(self) -> Config:
        """The target's config."""
        return self._value

    def retarget(self, target: Any, ConfigClass: type | None = None) -> None:
        """Construct a different class, optionally with a different config class.

        Parameters
        ----------
        target : `type`
            New class; called as ``target(*args, config=..., **kwargs)`` by `apply`.
        ConfigClass : `type` [`Config`], optional
            Config class; defaults to ``target.ConfigClass``. If it differs from the current
            config class, the config is reset to that class's defaults.

        Raises
        ------
        FrozenConfigError
            If the owning config is frozen.
        TypeError
            If no config class can be found.
        """
        self._owner._checkMutable(self._field.name)
        config_class = _config_class_of(
            target, ConfigClass, self._owner._fieldLabel(self._field.name)
        )
        if config_class is not self._ConfigClass:
            value = config_class()
            value._attach(self._owner, self._field.name)
            object.__setattr__(self, "_value", value)
            object.__setattr__(self, "_ConfigClass", config_class)
        object.__setattr__(self, "_target", target)
        self._owner._history.setdefault(self._field.name, []).append(
            (f"retarget {_qualified_name(target)}", self._owner._currentWhere())
        )

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        """Construct the target: ``target(*args, config=self.value, **kwargs)``."""
        return self._target(*args, config=self._value, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._value, name)

    def __reduce__(self) -> Any:
        return (_rebuild_configurable, (self._owner, self._field.name, self._target,
                                        self._ConfigClass, self._value))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("target", "ConfigClass"):
            raise AttributeError(f"use retarget() to change {name} of {self._field.name!r}")
        setattr(self._value, name, value)

    def __deepcopy__(self, memo: dict) -> ConfigurableInstance:
        new = ConfigurableInstance.__new__(ConfigurableInstance)
        memo[id(self)] = new
        for attr in ("_owner", "_value"):
            object.__setattr__(new, attr, _copy.deepcopy(getattr(self, attr), memo))
        for attr in ("_field", "_target", "_ConfigClass"):
            object.__setattr__(new, attr, getattr(self, attr))
        return new

    def __repr__(self) -> str:
        return f"ConfigurableInstance({_qualified_name(self._target)}, value={self._value!r})"


def _config_class_of(target: Any, ConfigClass: type | None, label: str) -> type:
    config_class = getattr(target, "ConfigClass", None) if ConfigClass is None else ConfigClass
    if not (isinstance(config_class, type) and issubclass(config_class, Config)):
        raise TypeError(f"{label}: target {target!r} has no ConfigClass; pass ConfigClass=")
    return config_class


class ConfigurableField(Field):
    """A subtask slot: a target class and its config, retargetable.

    Parameters
    ----------
    doc : `str`
        Help text.
    target : `type`
        Class to construct (usually a `Task` subclass).
    ConfigClass : `type` [`Config`], optional
        Config class; defaults to ``target.ConfigClass``.
    """

    def __init__(self, doc: str, target: Any, ConfigClass: type | None = None):
        self.ConfigClass = _config_class_of(target, ConfigClass, f"ConfigurableField({doc!r})")
        super().__init__(self.ConfigClass, doc)
        self.target = target

    def _initialize(self, instance: Config) -> None:
        instance._storage[self.name] = ConfigurableInstance(
            instance, self, self.target, self.ConfigClass
        )
        instance._history[self.name] = []

    def _set(self, instance: Config, value: Any, where: str | None) -> None:
        instance._checkMutable(self.name)
        current: ConfigurableInstance = instance._storage[self.name]
        if isinstance(value, ConfigurableInstance):
            current.retarget(value.target, value.ConfigClass)
            value = value.value
        if isinstance(value, Config):
            if not isinstance(value, current.ConfigClass):
                raise self._error(
                    instance, f"{type(value).__name__} is not a {current.ConfigClass.__name__}"
                )
            value = value.toDict()
        if not isinstance(value, Mapping):
            raise self._error(instance, f"value {value!r} is not a {current.ConfigClass.__name__}")
        self._fromPrimitive(instance, value, where or instance._currentWhere())

    def _validate(self, instance: Config) -> None:
        instance._storage[self.name].value.validate()

    def _freeze(self, instance: Config) -> None:
        instance._storage[self.name].value.freeze()

    def _toPrimitive(self, value: Any) -> Any:
        data = value.value.toDict()
        if value.target is not self.target or value.ConfigClass is not self.ConfigClass:
            data = {
                "__target__": _qualified_name(value.target),
                "__ConfigClass__": _qualified_name(value.ConfigClass),
                **data,
            }
        return data

    def _fromPrimitive(self, instance: Config, data: Any, where: str) -> None:
        data = dict(data)
        current: ConfigurableInstance = instance._storage[self.name]
        target_name = data.pop("__target__", None)
        config_name = data.pop("__ConfigClass__", None)
        if target_name is not None:
            target = _import_qualified(target_name)
            config_class = _import_qualified(config_name) if config_name else None
            with instance._labelled(where):
                current.retarget(target, config_class)
        current.value._applyDict(data, where)

    def _compare(self, instance: Config, other: Config, path: str) -> list[str]:
        mine, theirs = instance._storage[self.name], other._storage[self.name]
        if mine.target is not theirs.target:
            return [f"{path}.target: {mine.target!r} != {theirs.target!r}"]
        return mine.value._compareTo(theirs.value, path)

    def _parseString(self, instance: Config, text: str) -> Any:
        return yaml.safe_load(text) if isinstance(text, str) else text


class RegistryEntry:
    """One named implementation in a `Registry`: a target and its config class."""

    __slots__ = ("name", "target", "ConfigClass")

    def __init__(self, name: str, target: Any, ConfigClass: type):
        self.name, self.target, self.ConfigClass = name, target, ConfigClass

    def __repr__(self) -> str:
        return f"RegistryEntry({self.name!r}, {_qualified_name(self.target)})"


class Registry(Mapping[str, RegistryEntry]):
    """Named implementations of one kind of subtask; see `makeRegistry`.

    Parameters
    ----------
    doc : `str`
        What the registered implementations do.
    configBaseType : `type` [`Config`], optional
        Every registered config class must derive from it.
    """

    def __init__(self, doc: str = "", configBaseType: type = None):  # type: ignore[assignment]
        self.doc = doc
        self.configBaseType = configBaseType if configBaseType is not None else Config
        self._entries: dict[str, RegistryEntry] = {}

    def register(self, name: str, target: Any = None, ConfigClass: type | None = None) -> Any:
        """Register ``target`` under ``name``; usable as a decorator when ``target`` is omitted.

        Parameters
        ----------
        name : `str`
            Name users choose it by (``config.field.name = name``).
        target : `type`, optional
            Class to construct.
        ConfigClass : `type` [`Config`], optional
            Its config class; defaults to ``target.ConfigClass``.

        Raises
        ------
        DuplicateRegistrationError
            If ``name`` is already registered.
        TypeError
            If the config class does not derive from ``configBaseType``.
        """
        if target is None:
            def decorator(cls: Any) -> Any:
                self.register(name, cls, ConfigClass)
                return cls
            return decorator
        if name in self._entries:
            raise DuplicateRegistrationError(
                f"{name!r} is already registered (to {self._entries[name].target!r})"
            )
        config_class = _config_class_of(target, ConfigClass, f"registry entry {name!r}")
        if not issubclass(config_class, self.configBaseType):
            raise TypeError(
                f"registry entry {name!r}: {config_class.__name__} does not derive from "
                f"{self.configBaseType.__name__}"
            )
        self._entries[name] = RegistryEntry(name, target, config_class)
        return target

    def __getitem__(self, name: str) -> RegistryEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"{name!r} is not registered; registered: {sorted(self._entries)}"
                + _suggest(name, self._entries)
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def makeField(self, doc: str, default: str | None = None, optional: bool = False) -> Any:
        """Return a `RegistryField` choosing among this registry's entries."""
        return RegistryField(doc, self, default=default, optional=optional)


def makeRegistry(doc: str, configBaseType: type | None = None) -> Registry:
    """Create a `Registry` of named subtask implementations.

    Parameters
    ----------
    doc : `str`
        What the registered implementations do.
    configBaseType : `type` [`Config`], optional
        Base class every registered config class must derive from.

    Returns
    -------
    registry : `Registry`
        Register with ``registry.register(name, target, ConfigClass=None)``.
    """
    return Registry(doc, configBaseType)


class RegistryInstance:
    """The value of a `RegistryField`: one config per registered name and the chosen ``name``.

    ``instance["psfex"]`` (or ``instance.psfex``) is the config of that implementation;
    ``active`` is the config of the chosen one; other attributes go to ``active``.
    """

    def __init__(self, owner: Config, field: RegistryField):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_field", field)
        object.__setattr__(self, "_configs", {})
        object.__setattr__(self, "_name", None)

    @property
    def registry(self) -> Registry:
        """The registry this field chooses from."""
        return self._field.registry

    @property
    def name(self) -> str | None:
        """Name of the chosen implementation; `None` if none is chosen."""
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._setName(value, None)

    def _setName(self, value: str | None, where: str | None) -> None:
        owner, field = self._owner, self._field
        owner._checkMutable(field.name)
        if value is not None and value not in field.registry:
            raise field._error(
                owner,
                f"{value!r} is not registered; registered: {sorted(field.registry)}"
                + _suggest(str(value), field.registry),
            )
        object.__setattr__(self, "_name", value)
        owner._history.setdefault(field.name, []).append((value, where or owner._currentWhere()))

    @property
    def active(self) -> Config:
        """Config of the chosen implementation."""
        if self._name is None:
            raise AttributeError(f"{self._owner._fieldLabel(self._field.name)}: no name chosen")
        return self[self._name]

    @property
    def target(self) -> Any:
        """Class of the chosen implementation."""
        return self._field.registry[self.active and self._name].target

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        """Construct the chosen implementation with its config."""
        return self.target(*args, config=self.active, **kwargs)

    def __getitem__(self, name: str) -> Config:
        if name not in self._configs:
            entry = self._field.registry[name]
            config = entry.ConfigClass()
            config._attach(self._owner, f"{self._field.name}['{name}']")
            if self._owner._frozen:
                config.freeze()
            self._configs[name] = config
        return self._configs[name]

    def __setitem__(self, name: str, value: Config | Mapping[str, Any]) -> None:
        self._owner._checkMutable(self._field.name)
        config = self[name]
        data = value.toDict() if isinstance(value, Config) else value
        config._applyDict(data, self._owner._currentWhere())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._field.registry:
            return self[name]
        return getattr(self.active, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "name":
            self._setName(value, None)
        elif name in self._field.registry:
            self[name] = value
        else:
            setattr(self.active, name, value)

    def __deepcopy__(self, memo: dict) -> RegistryInstance:
        new = RegistryInstance.__new__(RegistryInstance)
        memo[id(self)] = new
        object.__setattr__(new, "_owner", _copy.deepcopy(self._owner, memo))
        object.__setattr__(new, "_field", self._field)
        object.__setattr__(new, "_configs", _copy.deepcopy(self._configs, memo))
        object.__setattr__(new, "_name", self._name)
        return new

    def __reduce__(self) -> Any:
        return (_rebuild_registry, (self._owner, self._field.name, self._configs, self._name))

    def __repr__(self) -> str:
        return f"RegistryInstance(name={self._name!r}, registered={sorted(self._field.registry)})"


class RegistryField(Field):
    """Choose one of several named implementations of a subtask.

    Parameters
    ----------
    doc : `str`
        Help text.
    registry : `Registry`
        The named implementations (see `makeRegistry`).
    default : `str`, optional
        Name chosen by default.
    optional : `bool`, optional
        Whether no choice (`None`) passes validation.
    """

    def __init__(self, doc: str, registry: Registry, default: str | None = None,
                 optional: bool = False):
        super().__init__(str, doc, default=default, optional=optional)
        self.registry = registry

    def _initialize(self, instance: Config) -> None:
        value = RegistryInstance(instance, self)
        instance._storage[self.name] = value
        instance._history[self.name] = []
        if self.default is not None:
            value._setName(self.default, "default")

    def _set(self, instance: Config, value: Any, where: str | None) -> None:
        current: RegistryInstance = instance._storage[self.name]
        if isinstance(value, RegistryInstance):
            value = {"name": value.name, **{k: c.toDict() for k, c in value._configs.items()}}
        if isinstance(value, str) or value is None:
            current._setName(value, where)
        elif isinstance(value, Mapping):
            self._fromPrimitive(instance, value, where or instance._currentWhere())
        else:
            raise self._error(instance, f"value {value!r} is not a registered name or mapping")

    def _validate(self, instance: Config) -> None:
        current: RegistryInstance = instance._storage[self.name]
        if current.name is None:
            if not self.optional:
                raise self._error(instance, "no implementation chosen (name is None)")
            return
        current.active.validate()

    def _freeze(self, instance: Config) -> None:
        for config in instance._storage[self.name]._configs.values():
            config.freeze()

    def _toPrimitive(self, value: Any) -> Any:
        return {"name": value.name, **{k: c.toDict() for k, c in value._configs.items()}}

    def _fromPrimitive(self, instance: Config, data: Any, where: str) -> None:
        current: RegistryInstance = instance._storage[self.name]
        data = dict(data)
        if "name" in data:
            current._setName(data.pop("name"), where)
        for key, sub in data.items():
            if key not in self.registry:
                raise UnknownConfigFieldError(
                    f"{instance._fieldLabel(self.name)} has no registered {key!r}; "
                    f"registered: {sorted(self.registry)}" + _suggest(key, self.registry)
                )
            current[key]._applyDict(sub, where)

    def _compare(self, instance: Config, other: Config, path: str) -> list[str]:
        mine, theirs = instance._storage[self.name], other._storage[self.name]
        if mine.name != theirs.name:
            return [f"{path}.name: {mine.name!r} != {theirs.name!r}"]
        if mine.name is None:
            return []
        return mine.active._compareTo(theirs.active, f"{path}['{mine.name}']")


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------

_PATH_BRACKET = re.compile(r"\[\s*['\"]?([^'\"\]]+)['\"]?\s*\]")


def _split_path(path: str) -> list[str]:
    """Split ``"a.b['c'].d"`` into ``["a", "b", "c", "d"]``."""
    return [part for part in _PATH_BRACKET.sub(r".\1", path).split(".") if part]


class Config:
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

    def loadFromYaml(self, source: str | os.PathLike | IO[str], *,
                     where: str | None = None) -> None:
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


def _rebuild_list(owner: Config, name: str, items: list) -> ConfigList:
    new = ConfigList.__new__(ConfigList)
    new._owner, new._field = owner, type(owner)._fields[name]
    list.extend(new, items)
    return new


def _rebuild_dict(owner: Config, name: str, items: dict) -> ConfigDict:
    new = ConfigDict.__new__(ConfigDict)
    new._owner, new._field = owner, type(owner)._fields[name]
    dict.update(new, items)
    return new


def _rebuild_configurable(owner: Config, name: str, target: Any, ConfigClass: type,
                          value: Config) -> ConfigurableInstance:
    new = ConfigurableInstance.__new__(ConfigurableInstance)
    for attr, val in (("_owner", owner), ("_field", type(owner)._fields[name]),
                      ("_target", target), ("_ConfigClass", ConfigClass), ("_value", value)):
        object.__setattr__(new, attr, val)
    return new


def _rebuild_registry(owner: Config, name: str, configs: dict, chosen: str | None
                      ) -> RegistryInstance:
    new = RegistryInstance.__new__(RegistryInstance)
    for attr, val in (("_owner", owner), ("_field", type(owner)._fields[name]),
                      ("_configs", configs), ("_name", chosen)):
        object.__setattr__(new, attr, val)
    return new


# --------------------------------------------------------------------------------------------
# Overrides: -c strings, YAML files, explicit Python files
# --------------------------------------------------------------------------------------------


def parseOverrideString(text: str) -> tuple[str | None, str, str]:
    """Split a command-line override ``"label:field.path=value"`` into its parts.

    Parameters
    ----------
    text : `str`
        ``label:field=value`` or ``field=value``.

    Returns
    -------
    label, path, value : `str` or `None`, `str`, `str`
        Task label (`None` if absent), dotted field path, and the unparsed value string.

    Raises
    ------
    ValueError
        If there is no ``=``.
    """
    head, sep, value = text.partition("=")
    if not sep or not head.strip():
        raise ValueError(f"config override {text!r} is not of the form [label:]field=value")
    label, colon, path = head.partition(":")
    if not colon:
        return None, head.strip(), value
    return label.strip(), path.strip(), value


def _field_at(config: Config, path: str) -> tuple[Any, str, Field | None]:
    node, name = config._resolvePath(path)
    if isinstance(node, ConfigurableInstance):
        node = node.value
    if isinstance(node, RegistryInstance):
        if name == "name":
            return node, name, None
        node = node.active
    if not isinstance(node, Config):
        raise UnknownConfigFieldError(f"{config._rootName()}: {path!r} is not a config field")
    if name not in node._fields:
        raise node._unknown(name)
    return node, name, node._fields[name]


def applyOverrides(
    config: Config,
    overrides: Iterable[tuple[str, Any]] | Mapping[str, Any],
    *,
    where: str = "-c",
) -> None:
    """Apply ``(field.path, value)`` overrides, parsing string values into each field's type.

    Parameters
    ----------
    config : `Config`
        Config to modify.
    overrides : iterable of ``(str, object)`` or mapping
        Dotted field paths and values; strings are parsed (``true``/``no``, ``3``, ``1e-3``,
        ``[1, 2]``, ``None``, ``{a: 1}``) according to the field's type.
    where : `str`, optional
        History label (default ``"-c"``).

    Raises
    ------
    UnknownConfigFieldError
        If a path names no field (with the near-miss suggestion).
    FieldValidationError
        If a value cannot be parsed into the field's type.
    """
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for path, value in items:
        node, name, field = _field_at(config, path)
        if field is not None and isinstance(value, str):
            value = field._parseString(node, value)
        with config._labelled(where):
            setattr(node, name, value)


def _yaml_key_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            out[key] = key_node.start_mark.line + 1
            _yaml_key_lines(value_node, f"{key}.", out)


def _flatten_overrides(config: Config, data: Mapping[str, Any], progress: list[str],
                       prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        path = f"{prefix}{key}"
        progress[0] = path
        if isinstance(value, Mapping):
            node, name = config._resolvePath(path)
            target = getattr(node, name)
            if isinstance(target, (Config, ConfigurableInstance, RegistryInstance)):
                yield from _flatten_overrides(config, value, progress, f"{path}.")
                continue
        yield path, value


def loadYamlOverrides(config: Config, path: str | os.PathLike, *,
                      where: str | None = None) -> None:
    """Apply a YAML mapping of field paths (dotted keys or nested mappings) to ``config``.

    Parameters
    ----------
    config : `Config`
        Config to modify.
    path : path-like
        YAML file, e.g. ``{psfIterations: 3, measurePsf.starSelector: {fluxMin: 5000}}``.
    where : `str`, optional
        History label; default the file name.

    Raises
    ------
    UnknownConfigFieldError, FieldValidationError
        Naming the file and line of the offending key.
    """
    filename = os.fspath(path)
    with open(filename) as stream:
        text = stream.read()
    root = yaml.compose(text)
    if root is None:
        return
    lines: dict[str, int] = {}
    _yaml_key_lines(root, "", lines)
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise FieldValidationError(f"{filename}: config overrides must be a YAML mapping",
                                   filename=filename)
    label = where or os.path.basename(filename)
    progress = [""]
    try:
        for key, value in _flatten_overrides(config, _walk_guard(data, lines, filename), progress):
            applyOverrides(config, [(key, value)], where=label)
    except (UnknownConfigFieldError, FieldValidationError) as err:
        line = _best_line(lines, progress[0])
        raise err.located(filename, line) from err


def _walk_guard(data: Mapping[str, Any], lines: dict[str, int], filename: str
                ) -> Mapping[str, Any]:
    # Keys of a YAML mapping are strings here; anything else is a malformed override file.
    for key in data:
        if not isinstance(key, str):
            raise FieldValidationError(f"config override key {key!r} is not a string",
                                       filename=filename, line=lines.get(str(key)))
    return data


def _best_line(lines: dict[str, int], key: str) -> int | None:
    while key:
        if key in lines:
            return lines[key]
        key = key.rpartition(".")[0]
    return None


def loadPythonOverrides(config: Config, path: str | os.PathLike, *,
                        where: str | None = None) -> None:
    """Execute a user's Python config file whose body assigns ``config.field = value``.

    Only call this for a ``.py`` file the user named explicitly: the file runs as Python code.
    The names ``config`` and ``root`` are bound to ``config``.

    Parameters
    ----------
    config : `Config`
        Config to modify.
    path : path-like
        A ``.py`` file.
    where : `str`, optional
        History label; default the file name.

    Raises
    ------
    ValueError
        If ``path`` does not end in ``.py``.
    UnknownConfigFieldError, FieldValidationError
        Naming the file and line of the offending assignment.
    """
    filename = os.fspath(path)
    if not filename.endswith(".py"):
        raise ValueError(f"{filename!r} is not a .py file; refusing to execute it")
    with open(filename) as stream:
        code = compile(stream.read(), filename, "exec")
    namespace = {"config": config, "root": config, "__file__": filename,
                 "__name__": "__skyquanta_config__"}
    try:
        with config._labelled(where or os.path.basename(filename)):
            exec(code, namespace)  # noqa: S102  (the user asked for this file to run)
    except (UnknownConfigFieldError, FieldValidationError) as err:
        line = None
        tb = err.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        raise err.located(filename, line) from err


apply_overrides = applyOverrides
load_yaml_overrides = loadYamlOverrides
load_python_overrides = loadPythonOverrides
parse_override_string = parseOverrideString
