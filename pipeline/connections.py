"""Connections: the datasets a `PipelineTask` reads and writes, declared on a class.

A connections class lists its connections as class attributes and its quantum dimensions and
name templates as class keywords::

    class CharacterizeImageConnections(
        PipelineTaskConnections, dimensions=("instrument", "visit", "detector")
    ):
        exposure = Input("postISRCCD", "Exposure", ("instrument", "exposure", "detector"))
        characterized = Output("icExp", "ExposureF", ("instrument", "visit", "detector"))

Dataset type names may contain ``{template}`` fields filled from ``defaultTemplates``. The config
class built with ``pipelineConnections=`` (see `pipeline.pipeline_task.PipelineTaskConfig`) gets
a ``connections`` sub-config with one `str` field per connection (its dataset type name) and
one per template, so ``config.connections.exposure = "icExp"`` renames a dataset type.

`connections_for` returns an instance whose connection attributes hold the final names. Its
``__init__(self, *, config)`` may drop connections, LSST style: ``self.inputs.remove("skyCorr")``.
Per instance, the mutable state is the five name sets (``inputs``, ``prerequisiteInputs``,
``outputs``, ``initInputs``, ``initOutputs``) and ``dimensions``.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from ._errors import PipelineDefinitionError

__all__ = [
    "BaseConnection",
    "DimensionedConnection",
    "InitInput",
    "InitOutput",
    "Input",
    "InputQuantizedConnection",
    "Output",
    "OutputQuantizedConnection",
    "PipelineTaskConnections",
    "PrerequisiteInput",
    "QuantizedConnection",
    "connections_for",
]


def _as_dimensions(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True, slots=True)
class BaseConnection:
    """A dataset a task reads or writes.

    Parameters
    ----------
    name : `str`
        Dataset type name, possibly with ``{template}`` fields.
    storageClass : `str`
        Storage class name (how the butler reads and writes it).
    doc : `str`, optional
        What it is.
    multiple : `bool`, optional
        Whether the task takes a list of datasets of this type for one quantum.
    """

    name: str
    storageClass: str
    _: KW_ONLY
    doc: str = ""
    multiple: bool = False


@dataclass(frozen=True, slots=True)
class DimensionedConnection(BaseConnection):
    """A connection whose datasets have data IDs with these dimensions.

    Parameters
    ----------
    dimensions : iterable of `str`, optional
        Dimensions of the dataset type (``("instrument", "visit", "detector")``).
    isCalibration : `bool`, optional
        Whether it is found in a calibration collection by validity range.
    """

    dimensions: tuple[str, ...] = ()
    isCalibration: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimensions", _as_dimensions(self.dimensions))


@dataclass(frozen=True, slots=True)
class Input(DimensionedConnection):
    """A regular input, found by joining its data ID with the quantum's.

    Parameters
    ----------
    deferLoad : `bool`, optional
        Pass a handle that loads on demand instead of the object.
    minimum : `int`, optional
        Fewest datasets a quantum needs; fewer raises `NoWorkFound` when building the graph.
    """

    deferLoad: bool = field(default=False, kw_only=True)
    minimum: int = field(default=1, kw_only=True)


@dataclass(frozen=True, slots=True)
class PrerequisiteInput(Input):
    """An input that must already exist, found by lookup, not by data-ID join.

    Parameters
    ----------
    lookupFunction : callable, optional
        ``lookupFunction(datasetType, registry, quantumDataId, collections) -> refs``, e.g.
        reference-catalog shards overlapping the quantum's region; `None` for the default
        lookup by data ID.
    """

    lookupFunction: Callable[..., Any] | None = field(default=None, kw_only=True, compare=False)


@dataclass(frozen=True, slots=True)
class Output(DimensionedConnection):
    """A dataset the task writes for each quantum."""


@dataclass(frozen=True, slots=True)
class InitInput(BaseConnection):
    """A dataset (no data ID) read once when the task is constructed, e.g. an input schema."""


@dataclass(frozen=True, slots=True)
class InitOutput(BaseConnection):
    """A dataset (no data ID) written once per run, e.g. the ``icSrc_schema`` catalog."""


_KIND_SETS: tuple[tuple[type, str], ...] = (
    (PrerequisiteInput, "prerequisiteInputs"),
    (Input, "inputs"),
    (Output, "outputs"),
    (InitInput, "initInputs"),
    (InitOutput, "initOutputs"),
)


def _set_name_for(connection: BaseConnection) -> str:
    for kind, set_name in _KIND_SETS:
        if isinstance(connection, kind):
            return set_name
    raise TypeError(f"unknown connection kind {type(connection).__name__}")


def _template_fields(text: str) -> set[str]:
    return {fname for _, fname, _, _ in string.Formatter().parse(text) if fname}


class PipelineTaskConnections:
    """Base class declaring a task's connections; see the module docstring.

    Parameters
    ----------
    config : `PipelineTaskConfig`, optional
        Config whose ``connections`` sub-config renames dataset types and fills templates;
        `None` uses the declared names and ``defaultTemplates``.

    Raises
    ------
    PipelineDefinitionError
        If a dataset type name uses a template with no value.
    """

    dimensions: ClassVar[tuple[str, ...]] = ()
    defaultTemplates: ClassVar[dict[str, str]] = {}
    _declared: ClassVar[dict[str, BaseConnection]] = {}

    def __init_subclass__(
        cls,
        *,
        dimensions: Iterable[str] | None = None,
        defaultTemplates: Mapping[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init_subclass__(**kwargs)
        declared: dict[str, BaseConnection] = {}
        for base in reversed(cls.__mro__[1:]):
            declared.update(getattr(base, "_declared", {}))
        for name, value in list(vars(cls).items()):
            if isinstance(value, BaseConnection):
                declared[name] = value
                delattr(cls, name)  # instances resolve names through __getattr__
        cls._declared = declared
        if dimensions is not None:
            cls.dimensions = _as_dimensions(dimensions)
        cls.defaultTemplates = {**cls.defaultTemplates, **(defaultTemplates or {})}
        clash = set(cls.defaultTemplates) & set(declared)
        if clash:
            raise TypeError(f"{cls.__name__}: template names {sorted(clash)} are connection names")
        for name, connection in declared.items():
            missing = _template_fields(connection.name) - set(cls.defaultTemplates)
            if missing:
                raise TypeError(
                    f"{cls.__name__}.{name}: dataset type name {connection.name!r} uses "
                    f"templates {sorted(missing)} with no entry in defaultTemplates"
                )

    def __init__(self, *, config: Any = None):
        object.__setattr__(self, "config", config)
        sets: dict[str, set[str]] = {set_name: set() for _, set_name in _KIND_SETS}
        for name, connection in self._declared.items():
            sets[_set_name_for(connection)].add(name)
        for set_name, names in sets.items():
            object.__setattr__(self, set_name, names)
        object.__setattr__(self, "dimensions", set(type(self).dimensions))
        overrides = config.connections if config is not None and "connections" in config else None
        templates = dict(self.defaultTemplates)
        if overrides is not None:
            templates.update({t: getattr(overrides, t) for t in templates})
        resolved: dict[str, BaseConnection] = {}
        for name, connection in self._declared.items():
            raw = getattr(overrides, name) if overrides is not None else connection.name
            try:
                final = raw.format(**templates)
            except (KeyError, IndexError, ValueError) as err:
                raise PipelineDefinitionError(
                    f"{type(self).__name__}.{name}: cannot fill dataset type name {raw!r} "
                    f"from templates {templates}: {err!r}"
                ) from err
            resolved[name] = dataclasses.replace(connection, name=final)
        object.__setattr__(self, "_resolved", resolved)
        object.__setattr__(self, "templates", templates)

    # -- access -------------------------------------------------------------------------------

    def _active(self) -> set[str]:
        return (self.inputs | self.prerequisiteInputs | self.outputs | self.initInputs
                | self.initOutputs)

    def __getattr__(self, name: str) -> BaseConnection:
        if name.startswith("_"):
            raise AttributeError(name)
        resolved = self.__dict__.get("_resolved", {})
        if name in resolved and name in self._active():
            return resolved[name]
        state = "was removed from" if name in resolved else "is not a connection of"
        raise AttributeError(f"{name!r} {state} {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        if name not in self._resolved:
            raise AttributeError(f"{name!r} is not a connection of {type(self).__name__}")
        for _, set_name in _KIND_SETS:
            getattr(self, set_name).discard(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, BaseConnection):
            raise AttributeError(
                f"{type(self).__name__}: connections are declared on the class, not set on "
                f"instances ({name!r})"
            )
        object.__setattr__(self, name, value)

    @property
    def allConnections(self) -> dict[str, BaseConnection]:
        """Connection name -> resolved connection, for every connection still present."""
        active = self._active()
        return {name: conn for name, conn in self._resolved.items() if name in active}

    def __iter__(self) -> Iterator[str]:
        return iter(self.allConnections)

    def connectionsOf(self, set_name: str) -> dict[str, BaseConnection]:
        """Return name -> resolved connection for one set (``"inputs"``, ``"outputs"``, ...)."""
        return {name: self._resolved[name] for name in sorted(getattr(self, set_name))}

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v.name!r}" for k, v in self.allConnections.items())
        return f"<{type(self).__name__} {items}>"


def connections_for(config: Any) -> PipelineTaskConnections:
    """Return the resolved connections of a `PipelineTaskConfig`.

    Parameters
    ----------
    config : `PipelineTaskConfig`
        A config whose class was declared with ``pipelineConnections=``.

    Returns
    -------
    connections : `PipelineTaskConnections`
        Instance with final dataset type names, after its ``__init__`` removed any
        connections the config switches off.

    Raises
    ------
    PipelineDefinitionError
        If the config class has no connections class, or a template cannot be filled.
    """
    connections_class = getattr(type(config), "ConnectionsClass", None)
    if connections_class is None:
        raise PipelineDefinitionError(
            f"{type(config).__name__} was not declared with pipelineConnections="
        )
    return connections_class(config=config)


class QuantizedConnection:
    """Connection name -> `DatasetRef` (or list of refs for ``multiple``) for one quantum.

    Iterating yields ``(name, ref_or_refs)`` pairs; `keys` gives the names.

    Parameters
    ----------
    **refs
        Connection names and their refs.
    """

    def __init__(self, **refs: Any):
        object.__setattr__(self, "_refs", dict(refs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._refs[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no connection {name!r}; has {sorted(self._refs)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._refs[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._refs[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no connection {name!r}") from None

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._refs.items()))

    def keys(self) -> list[str]:
        """Return the connection names."""
        return list(self._refs)

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __len__(self) -> int:
        return len(self._refs)

    def __reduce__(self) -> Any:
        return (_rebuild_quantized, (type(self), self._refs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(sorted(self._refs))})"


def _rebuild_quantized(cls: type, refs: dict[str, Any]) -> QuantizedConnection:
    return cls(**refs)


class InputQuantizedConnection(QuantizedConnection):
    """The input (and prerequisite input) refs of one quantum, by connection name."""


class OutputQuantizedConnection(QuantizedConnection):
    """The output refs of one quantum, by connection name."""
