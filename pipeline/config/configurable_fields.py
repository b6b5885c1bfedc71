"""Subtask fields of a `Config`: one retargetable target, or a choice from a `Registry`.

A `ConfigurableField` holds a `ConfigurableInstance` (a target class and its config;
`ConfigurableInstance.retarget` swaps both). A `RegistryField` holds a `RegistryInstance`:
one config per name registered in its `Registry` (made lazily) and the chosen ``name``.
State: each instance keeps its owning config and field; a `Registry` keeps its entries.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from .._errors import DuplicateRegistrationError, UnknownConfigFieldError
from .field import ConfigBase, Field, _import_qualified, _qualified_name, _suggest


class ConfigurableInstance:
    """The value of a `ConfigurableField`: a target (task class) and its config.

    Attribute reads and writes that are not ``target``, ``ConfigClass``, ``value``,
    ``retarget`` or ``apply`` go to the config, so ``config.measurePsf.starSelector`` works.
    """

    def __init__(self, owner: ConfigBase, field: ConfigurableField, target: Any, ConfigClass: type):
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
    def value(self) -> ConfigBase:
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
        return (
            _rebuild_configurable,
            (self._owner, self._field.name, self._target, self._ConfigClass, self._value),
        )

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
    if not (isinstance(config_class, type) and issubclass(config_class, ConfigBase)):
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

    def _initialize(self, instance: ConfigBase) -> None:
        instance._storage[self.name] = ConfigurableInstance(
            instance, self, self.target, self.ConfigClass
        )
        instance._history[self.name] = []

    def _set(self, instance: ConfigBase, value: Any, where: str | None) -> None:

        instance._checkMutable(self.name)
        current: ConfigurableInstance = instance._storage[self.name]
        if isinstance(value, ConfigurableInstance):
            current.retarget(value.target, value.ConfigClass)
            value = value.value
        if isinstance(value, ConfigBase):
            if not isinstance(value, current.ConfigClass):
                raise self._error(
                    instance, f"{type(value).__name__} is not a {current.ConfigClass.__name__}"
                )
            value = value.toDict()
        if not isinstance(value, Mapping):
            raise self._error(instance, f"value {value!r} is not a {current.ConfigClass.__name__}")
        self._fromPrimitive(instance, value, where or instance._currentWhere())

    def _validate(self, instance: ConfigBase) -> None:
        instance._storage[self.name].value.validate()

    def _freeze(self, instance: ConfigBase) -> None:
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

    def _fromPrimitive(self, instance: ConfigBase, data: Any, where: str) -> None:
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

    def _compare(self, instance: ConfigBase, other: ConfigBase, path: str) -> list[str]:
        mine, theirs = instance._storage[self.name], other._storage[self.name]
        if mine.target is not theirs.target:
            return [f"{path}.target: {mine.target!r} != {theirs.target!r}"]
        return mine.value._compareTo(theirs.value, path)

    def _parseString(self, instance: ConfigBase, text: str) -> Any:
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
        self.configBaseType = configBaseType if configBaseType is not None else ConfigBase
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

    def __init__(self, owner: ConfigBase, field: RegistryField):
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
    def active(self) -> ConfigBase:
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

    def __getitem__(self, name: str) -> ConfigBase:
        if name not in self._configs:
            entry = self._field.registry[name]
            config = entry.ConfigClass()
            config._attach(self._owner, f"{self._field.name}['{name}']")
            if self._owner._frozen:
                config.freeze()
            self._configs[name] = config
        return self._configs[name]

    def __setitem__(self, name: str, value: ConfigBase | Mapping[str, Any]) -> None:

        self._owner._checkMutable(self._field.name)
        config = self[name]
        data = value.toDict() if isinstance(value, ConfigBase) else value
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

    def __init__(
        self, doc: str, registry: Registry, default: str | None = None, optional: bool = False
    ):
        super().__init__(str, doc, default=default, optional=optional)
        self.registry = registry

    def _initialize(self, instance: ConfigBase) -> None:
        value = RegistryInstance(instance, self)
        instance._storage[self.name] = value
        instance._history[self.name] = []
        if self.default is not None:
            value._setName(self.default, "default")

    def _set(self, instance: ConfigBase, value: Any, where: str | None) -> None:
        current: RegistryInstance = instance._storage[self.name]
        if isinstance(value, RegistryInstance):
            value = {"name": value.name, **{k: c.toDict() for k, c in value._configs.items()}}
        if isinstance(value, str) or value is None:
            current._setName(value, where)
        elif isinstance(value, Mapping):
            self._fromPrimitive(instance, value, where or instance._currentWhere())
        else:
            raise self._error(instance, f"value {value!r} is not a registered name or mapping")

    def _validate(self, instance: ConfigBase) -> None:
        current: RegistryInstance = instance._storage[self.name]
        if current.name is None:
            if not self.optional:
                raise self._error(instance, "no implementation chosen (name is None)")
            return
        current.active.validate()

    def _freeze(self, instance: ConfigBase) -> None:
        for config in instance._storage[self.name]._configs.values():
            config.freeze()

    def _toPrimitive(self, value: Any) -> Any:
        return {"name": value.name, **{k: c.toDict() for k, c in value._configs.items()}}

    def _fromPrimitive(self, instance: ConfigBase, data: Any, where: str) -> None:
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

    def _compare(self, instance: ConfigBase, other: ConfigBase, path: str) -> list[str]:
        mine, theirs = instance._storage[self.name], other._storage[self.name]
        if mine.name != theirs.name:
            return [f"{path}.name: {mine.name!r} != {theirs.name!r}"]
        if mine.name is None:
            return []
        return mine.active._compareTo(theirs.active, f"{path}['{mine.name}']")


def _rebuild_configurable(
    owner: ConfigBase, name: str, target: Any, ConfigClass: type, value: ConfigBase
) -> ConfigurableInstance:
    new = ConfigurableInstance.__new__(ConfigurableInstance)
    for attr, val in (
        ("_owner", owner),
        ("_field", type(owner)._fields[name]),
        ("_target", target),
        ("_ConfigClass", ConfigClass),
        ("_value", value),
    ):
        object.__setattr__(new, attr, val)
    return new


def _rebuild_registry(
    owner: ConfigBase, name: str, configs: dict, chosen: str | None
) -> RegistryInstance:
    new = RegistryInstance.__new__(RegistryInstance)
    for attr, val in (
        ("_owner", owner),
        ("_field", type(owner)._fields[name]),
        ("_configs", configs),
        ("_name", chosen),
    ):
        object.__setattr__(new, attr, val)
    return new
