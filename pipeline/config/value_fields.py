"""Value fields of a `Config`: ranges, choices, lists, dicts and nested configs.

`RangeField` and `ChoiceField` add checks to a scalar `Field`; `ListField` and `DictField`
hold their values in `ConfigList` and `ConfigDict`, which check item types and refuse changes
once the owning config is frozen; `ConfigField` nests one `Config` in another. The containers
keep a reference to their owning config (``_owner``) and field; that is their only state.
"""

from __future__ import annotations

import copy as _copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from .field import ConfigBase, Field, _parse_scalar, _suggest


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

    def _validateValue(self, instance: ConfigBase, value: Any) -> None:
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

    def _validateValue(self, instance: ConfigBase, value: Any) -> None:
        if value not in self.allowed:
            raise self._error(
                instance,
                f"value {value!r} is not one of the allowed values {sorted(self.allowed, key=str)}"
                + (_suggest(value, map(str, self.allowed)) if isinstance(value, str) else ""),
            )


class ConfigList(list):
    """A list held by a `ListField`: checks item types and refuses changes once frozen."""

    def __init__(self, owner: ConfigBase, field: ListField, items: Iterable[Any]):
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

    def _coerceItem(self, instance: ConfigBase, item: Any) -> Any:
        return self._coerceScalar(instance, self.dtype, item, what="item ")

    def _coerce(self, instance: ConfigBase, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise self._error(instance, f"value {value!r} is not a list of {self.dtype.__name__}")
        return ConfigList(instance, self, value)

    def _historyValue(self, value: Any) -> Any:
        return None if value is None else list(value)

    def _validateValue(self, instance: ConfigBase, value: Any) -> None:
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

    def _parseString(self, instance: ConfigBase, text: str) -> Any:
        parsed = yaml.safe_load(text) if isinstance(text, str) else text
        if isinstance(parsed, str):
            parsed = [p for p in re.split(r"\s*,\s*", parsed.strip("[]() ")) if p]
        if isinstance(parsed, list):
            return [_parse_scalar(p, self.dtype) if isinstance(p, str) else p for p in parsed]
        return parsed


class ConfigDict(dict):
    """A dict held by a `DictField`: checks key and item types, refuses changes once frozen."""

    def __init__(self, owner: ConfigBase, field: DictField, items: Mapping[Any, Any]):
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

    def _coercePair(self, instance: ConfigBase, key: Any, value: Any) -> tuple[Any, Any]:
        key = self._coerceScalar(instance, self.keytype, key, what="key ")
        if value is not None:
            value = self._coerceScalar(instance, self.itemtype, value, what=f"item {key!r}: value ")
        return key, value

    def _coerce(self, instance: ConfigBase, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._error(instance, f"value {value!r} is not a mapping")
        return ConfigDict(instance, self, value)

    def _historyValue(self, value: Any) -> Any:
        return None if value is None else dict(value)

    def _validateValue(self, instance: ConfigBase, value: Any) -> None:
        if self.itemCheck is not None:
            for key, item in value.items():
                if not self.itemCheck(item):
                    raise self._error(instance, f"item {key!r}: {item!r} fails the check")

    def _toPrimitive(self, value: Any) -> Any:
        return None if value is None else dict(value)

    def _parseString(self, instance: ConfigBase, text: str) -> Any:
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

    def __init__(self, dtype: type[ConfigBase], doc: str, default: ConfigBase | None = None):

        if not (isinstance(dtype, type) and issubclass(dtype, ConfigBase)):
            raise TypeError(f"ConfigField dtype must be a Config subclass, not {dtype!r}")
        super().__init__(dtype, doc, default=None, optional=False)
        self.defaultConfig = default

    def _initialize(self, instance: ConfigBase) -> None:
        sub = self.dtype()
        if self.defaultConfig is not None:
            sub._applyDict(self.defaultConfig.toDict(), "default")
        sub._attach(instance, self.name)
        instance._storage[self.name] = sub
        instance._history[self.name] = []

    def _set(self, instance: ConfigBase, value: Any, where: str | None) -> None:

        instance._checkMutable(self.name)
        sub = instance._storage[self.name]
        if isinstance(value, ConfigBase):
            if not isinstance(value, self.dtype):
                raise self._error(
                    instance, f"{type(value).__name__} is not a {self.dtype.__name__}"
                )
            value = value.toDict()
        if not isinstance(value, Mapping):
            raise self._error(instance, f"value {value!r} is not a {self.dtype.__name__}")
        sub._applyDict(value, where or instance._currentWhere())

    def _validate(self, instance: ConfigBase) -> None:
        instance._storage[self.name].validate()

    def _freeze(self, instance: ConfigBase) -> None:
        instance._storage[self.name].freeze()

    def _toPrimitive(self, value: Any) -> Any:
        return value.toDict()

    def _fromPrimitive(self, instance: ConfigBase, data: Any, where: str) -> None:
        instance._storage[self.name]._applyDict(data, where)

    def _compare(self, instance: ConfigBase, other: ConfigBase, path: str) -> list[str]:
        return instance._storage[self.name]._compareTo(other._storage[self.name], path)

    def _parseString(self, instance: ConfigBase, text: str) -> Any:
        return yaml.safe_load(text) if isinstance(text, str) else text


def _rebuild_list(owner: ConfigBase, name: str, items: list) -> ConfigList:
    new = ConfigList.__new__(ConfigList)
    new._owner, new._field = owner, type(owner)._fields[name]
    list.extend(new, items)
    return new


def _rebuild_dict(owner: ConfigBase, name: str, items: dict) -> ConfigDict:
    new = ConfigDict.__new__(ConfigDict)
    new._owner, new._field = owner, type(owner)._fields[name]
    dict.update(new, items)
    return new
