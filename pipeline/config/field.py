"""`ConfigBase`, the `Field` base class and the helpers every config module shares.

`Field` is the descriptor protocol `Config` drives (``_initialize``, ``_set``, ``_validate``,
``_freeze``, ``_toPrimitive``, ``_fromPrimitive``, ``_compare``, ``_parseString``); the field
kinds built on it live in `pipeline.config.value_fields` and
`pipeline.config.configurable_fields`. Fields know the config that owns them only as a
`ConfigBase`, the base class of `Config`, so this module imports no other config module and
all of them can import it (no import circle).

`_caller_location` finds the user's ``file:line`` for the history by skipping frames from
every module of the config package (`_CONFIG_FILES`); a new config module must be listed there.
No mutable module state.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from .._errors import FieldValidationError

_HERE = os.path.dirname(os.path.abspath(__file__))
_CONFIG_FILES = frozenset(
    os.path.normcase(os.path.join(_HERE, name))
    for name in (
        "config.py",
        "overrides.py",
        "field.py",
        "value_fields.py",
        "configurable_fields.py",
    )
)


def _caller_location() -> str:
    """Return ``file:line`` of the first frame outside the config modules (`_CONFIG_FILES`)."""
    frame = sys._getframe(1)
    while frame is not None:
        fname = frame.f_code.co_filename
        if (
            os.path.normcase(os.path.abspath(fname)) not in _CONFIG_FILES
            and "contextlib" not in fname
        ):
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


class ConfigBase:
    """The base class of `Config`: what the field modules know of the config that owns them.

    A field calls back into its owner through a small protocol that `Config` implements:
    ``_storage`` and ``_history`` (per-field values and their history), ``_checkMutable``,
    ``_currentWhere``, ``_resolvePath``, ``_applyDict``, ``_rootName`` and ``toDict``.
    Field modules test ``isinstance(value, ConfigBase)`` instead of importing `Config`,
    which imports them.
    """

    __slots__ = ()


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

    def __get__(self, instance: ConfigBase | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance._storage[self.name]

    def __set__(self, instance: ConfigBase, value: Any) -> None:
        self._set(instance, value, where=None)

    # -- protocol used by Config ------------------------------------------------------------

    def _error(self, instance: ConfigBase, message: str) -> FieldValidationError:
        return FieldValidationError(f"{instance._fieldLabel(self.name)}: {message}")

    def _initialize(self, instance: ConfigBase) -> None:
        value = None if self.default is None else self._coerce(instance, self.default)
        instance._storage[self.name] = value
        instance._history[self.name] = [(self._historyValue(value), "default")]

    def _set(self, instance: ConfigBase, value: Any, where: str | None) -> None:
        instance._checkMutable(self.name)
        value = self._coerce(instance, value)
        instance._storage[self.name] = value
        label = where or instance._currentWhere()
        instance._history.setdefault(self.name, []).append((self._historyValue(value), label))

    def _coerce(self, instance: ConfigBase, value: Any) -> Any:
        if value is None:
            return None
        return self._coerceScalar(instance, self.dtype, value)

    def _coerceScalar(
        self, instance: ConfigBase, dtype: type, value: Any, what: str = "value "
    ) -> Any:
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

    def _validate(self, instance: ConfigBase) -> None:
        value = instance._storage[self.name]
        if value is None:
            if not self.optional:
                raise self._error(instance, "required field is not set (None)")
            return
        self._validateValue(instance, value)
        if self.check is not None and not self.check(value):
            raise self._error(instance, f"value {value!r} fails the check {self.check!r}")

    def _validateValue(self, instance: ConfigBase, value: Any) -> None:
        pass

    def _freeze(self, instance: ConfigBase) -> None:
        pass

    def _toPrimitive(self, value: Any) -> Any:
        return value

    def _fromPrimitive(self, instance: ConfigBase, data: Any, where: str) -> None:
        self._set(instance, data, where)

    def _compare(self, instance: ConfigBase, other: ConfigBase, path: str) -> list[str]:
        mine, theirs = instance._storage[self.name], other._storage[self.name]
        if self._toPrimitive(mine) != self._toPrimitive(theirs):
            return [f"{path}: {mine!r} != {theirs!r}"]
        return []

    def _parseString(self, instance: ConfigBase, text: str) -> Any:
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
