"""`Task`: a configurable unit of work with subtasks, metadata, timing and debug switches.

A task tree is built top-down: the top task is constructed with a config; each task creates
its subtasks with `Task.makeSubtask`, which takes the subtask's class and config from a
`ConfigurableField` or `RegistryField` of the parent config. Every task in a tree shares one
``_taskDict`` (full name -> weak reference), so `Task.getTaskDict` and
`Task.getFullMetadata` see the whole tree without any global registry.

Mutable state per task: ``metadata`` (a `TaskMetadata`), the shared ``_taskDict``, and the
``_debug`` mapping (task full name -> switches) shared with the tree.
"""

from __future__ import annotations

import datetime
import functools
import logging
import resource
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from .config import (
    Config,
    ConfigurableField,
    ConfigurableInstance,
    Field,
    RegistryField,
    RegistryInstance,
)
from .task_metadata import TaskMetadata

__all__ = ["DebugInfo", "ResourceConfig", "Task", "logInfo", "timeMethod"]

_log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class ResourceConfig(Config):
    """Resources a task needs; add as ``resources = ConfigField(ResourceConfig, ...)``."""

    minMemoryMB = Field(int, "Minimum memory in MB; None means no constraint", optional=True)
    numberOfCores = Field(int, "Number of cores the task may use", default=1)


class DebugInfo:
    """Debug switches of one task: named stages, `False` unless switched on.

    Any attribute not set reads as `False` (as with ``lsstDebug``), so tasks can test
    ``if self.debugInfo.repair_iter:`` without declaring anything.

    Parameters
    ----------
    stages : iterable of `str`
        Stage names the task knows (documentation and `stages`); all default to `False`.
    values : mapping, optional
        Values for this task, e.g. ``{"psf": True, "frame": 2}``.
    """

    def __init__(self, stages: tuple[str, ...] = (), values: Mapping[str, Any] | None = None):
        object.__setattr__(self, "_values", {name: False for name in stages})
        self._values.update(values or {})

    @property
    def stages(self) -> tuple[str, ...]:
        """Names of every switch that has a value."""
        return tuple(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._values.get(name, False)

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __bool__(self) -> bool:
        return any(bool(v) for v in self._values.values())

    def getDict(self) -> dict[str, Any]:
        """Return the switches as a dict."""
        return dict(self._values)

    def __repr__(self) -> str:
        return f"DebugInfo({self._values!r})"


class Task:
    """Base class of tasks.

    Parameters
    ----------
    config : `Config`, optional
        Configuration; must be an instance of ``ConfigClass``. Defaults to ``ConfigClass()``
        for a top-level task and to ``getattr(parentTask.config, name)`` for a subtask.
    name : `str`, optional
        Brief name; required for a subtask, defaults to ``_DefaultName`` for a top task.
    parentTask : `Task`, optional
        Parent in the task tree; `None` for a top-level task.
    log : `logging.Logger`, optional
        Parent logger of a top-level task (its logger is ``log.getChild(name)``); ignored for
        subtasks, whose logger is a child of the parent's.
    debug : mapping, optional
        Debug switches keyed by task full name, e.g. ``{"characterizeImage": {"psf": True}}``;
        only on the top task, subtasks share it.

    Raises
    ------
    RuntimeError
        If neither ``name`` nor ``_DefaultName`` is available, or a subtask has no name.
    TypeError
        If ``config`` is not an instance of ``ConfigClass``.
    """

    ConfigClass: ClassVar[type[Config]] = Config
    _DefaultName: ClassVar[str | None] = None
    canMultiprocess: ClassVar[bool] = True
    debugStages: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        config: Config | None = None,
        *,
        name: str | None = None,
        parentTask: Task | None = None,
        log: logging.Logger | logging.LoggerAdapter | None = None,
        debug: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.metadata = TaskMetadata()
        if parentTask is not None:
            if name is None:
                raise RuntimeError(f"{type(self).__name__}: a subtask needs a name")
            self._name = name
            self._fullName = f"{parentTask._fullName}.{name}"
            if config is None:
                config = getattr(parentTask.config, name)
                if isinstance(config, ConfigurableInstance):
                    config = config.value
                elif isinstance(config, RegistryInstance):
                    config = config.active
            self._taskDict: dict[str, weakref.ReferenceType[Task]] = parentTask._taskDict
            self._debug: dict[str, Mapping[str, Any]] = parentTask._debug
            self.log = parentTask.log.getChild(name)
        else:
            name = name if name is not None else self._DefaultName
            if name is None:
                raise RuntimeError(
                    f"{type(self).__name__}: pass name= or define _DefaultName on the class"
                )
            self._name = name
            self._fullName = name
            if config is None:
                config = self.ConfigClass()
            self._taskDict = {}
            self._debug = dict(debug or {})
            base = log.logger if isinstance(log, logging.LoggerAdapter) else log
            self.log = base.getChild(name) if base is not None else logging.getLogger(name)
        if not isinstance(config, self.ConfigClass):
            raise TypeError(
                f"task {self._fullName!r}: config is a {type(config).__name__}, "
                f"not a {self.ConfigClass.__name__}"
            )
        self.config = config
        self._parentTask = weakref.ref(parentTask) if parentTask is not None else None
        self.debugInfo = DebugInfo(self.debugStages, self._debug.get(self._fullName))
        self._taskDict[self._fullName] = weakref.ref(self)

    # -- names and the tree -------------------------------------------------------------------

    def getName(self) -> str:
        """Return the brief name of the task (``"sub"``)."""
        return self._name

    def getFullName(self) -> str:
        """Return the hierarchical name, e.g. ``"top.sub.sub2"``."""
        return self._fullName

    def getTaskDict(self) -> dict[str, weakref.ReferenceType[Task]]:
        """Return a shallow copy of full task name -> weak reference, for the whole tree."""
        return dict(self._taskDict)

    def _subtasks(self) -> Iterator[Task]:
        prefix = self._fullName + "."
        for full_name, ref in list(self._taskDict.items()):
            task = ref()
            if task is not None and (full_name == self._fullName or full_name.startswith(prefix)):
                yield task

    def makeSubtask(self, name: str, **keyArgs: Any) -> None:
        """Create subtask ``name`` from ``self.config.<name>`` and set it as ``self.<name>``.

        Parameters
        ----------
        name : `str`
            Brief name of the subtask; a `ConfigurableField` or `RegistryField` of the config.
        **keyArgs
            Extra constructor arguments. ``config`` and ``parentTask`` are provided
            automatically and may not be passed.

        Raises
        ------
        TypeError
            If ``config`` or ``parentTask`` is passed, or ``name`` is not a subtask field.
        """
        forbidden = sorted({"config", "parentTask"} & keyArgs.keys())
        if forbidden:
            raise TypeError(
                f"makeSubtask({name!r}) of task {self._fullName!r}: do not pass "
                f"{' or '.join(forbidden)}; config and parentTask are provided automatically"
            )
        field = type(self.config)._fields.get(name)
        if not isinstance(field, (ConfigurableField, RegistryField)):
            raise TypeError(
                f"makeSubtask({name!r}) of task {self._fullName!r}: "
                f"{type(self.config).__name__}.{name} is not a ConfigurableField or RegistryField"
            )
        slot = getattr(self.config, name)
        subtask = slot.apply(name=name, parentTask=self, **keyArgs)
        setattr(self, name, subtask)

    make_subtask = makeSubtask

    @classmethod
    def makeField(cls, doc: str) -> ConfigurableField:
        """Return a `ConfigurableField` targeting this class, for a parent config.

        Examples
        --------
        ``class OtherTaskConfig(Config): aSubtask = ATaskClass.makeField("brief description")``
        """
        return ConfigurableField(doc=doc, target=cls)

    # -- metadata -----------------------------------------------------------------------------

    def emptyMetadata(self) -> None:
        """Clear the metadata of this task and all its subtasks."""
        for task in self._subtasks():
            task.metadata = TaskMetadata()

    def getFullMetadata(self) -> TaskMetadata:
        """Return the metadata of this task and all subtasks.

        Returns
        -------
        metadata : `TaskMetadata`
            Keys are full task names with ``.`` replaced by ``:`` (``"top:sub:subsub"``), so
            an item reads as ``full["top:sub.itemName"]``.
        """
        full = TaskMetadata()
        for task in self._subtasks():
            full[task._fullName.replace(".", ":")] = task.metadata
        return full

    def getResourceConfig(self) -> ResourceConfig | None:
        """Return ``config.resources`` if it is a `ResourceConfig`, else `None`."""
        resources = self.config._storage.get("resources")
        return resources if isinstance(resources, ResourceConfig) else None

    # -- timing -------------------------------------------------------------------------------

    @contextmanager
    def timer(self, name: str, logLevel: int = logging.DEBUG) -> Iterator[None]:
        """Time a block, recording ``<name>Start*`` and ``<name>End*`` into ``metadata``.

        Parameters
        ----------
        name : `str`
            Prefix of the metadata items (``StartUtc``, ``StartCpuTime``,
            ``StartMaxResidentSetSize`` and the same with ``End``).
        logLevel : `int`
            Level of the log messages that report the times.
        """
        logInfo(self, f"{name}Start", logLevel=logLevel)
        try:
            yield
        finally:
            logInfo(self, f"{name}End", logLevel=logLevel)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._fullName!r}>"


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def logInfo(task: Task, prefix: str, *, logLevel: int = logging.DEBUG) -> None:
    """Record UTC time, CPU time and peak memory under ``prefix`` in ``task.metadata``.

    Parameters
    ----------
    task : `Task`
        Task whose metadata receives ``<prefix>Utc``, ``<prefix>CpuTime`` (s) and
        ``<prefix>MaxResidentSetSize`` (bytes).
    prefix : `str`
        Item prefix, e.g. ``"runStart"``.
    logLevel : `int`, optional
        Level of the log message.
    """
    utc = datetime.datetime.now(datetime.UTC).isoformat()
    cpu = time.process_time()
    rss = _max_rss_bytes()
    task.metadata.add(f"{prefix}Utc", utc)
    task.metadata.add(f"{prefix}CpuTime", cpu)
    task.metadata.add(f"{prefix}MaxResidentSetSize", rss)
    task.log.log(logLevel, "%s: utc=%s cpu=%.6fs maxRss=%d", prefix, utc, cpu, rss)


def timeMethod(func: F) -> F:
    """Decorate a `Task` method to record its start and end times into ``self.metadata``.

    The items are ``<methodName>StartUtc`` ... ``<methodName>EndMaxResidentSetSize``.
    """

    @functools.wraps(func)
    def wrapper(self: Task, *args: Any, **kwargs: Any) -> Any:
        with self.timer(func.__name__):
            return func(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


time_method = timeMethod
