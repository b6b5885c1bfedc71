"""`PipelineTask`: a `Task` with connections, run by an executor one quantum at a time.

``run()`` is pure: in-memory objects in, a `Struct` out. ``runQuantum()`` does the I/O through
a `QuantumContext` the executor supplies (reads the inputs named by an
`InputQuantizedConnection`, writes each `Struct` attribute named by an
`OutputQuantizedConnection`). `PipelineTaskConfig` ties a config class to its connections
class and gives it the ``connections`` sub-config that renames dataset types.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from .config import Config, ConfigField, Field
from .connections import (
    InputQuantizedConnection,
    OutputQuantizedConnection,
    PipelineTaskConnections,
)
from .struct import Struct
from .task import Task

__all__ = ["PipelineTask", "PipelineTaskConfig", "QuantumContext"]


@runtime_checkable
class QuantumContext(Protocol):
    """What `PipelineTask.runQuantum` may do with the butler: read inputs, write outputs.

    The executor implements it (backed by the limited butler on a worker).
    """

    @property
    def dataId(self) -> Any:
        """Data ID of the quantum being run."""
        ...

    def get(self, dataset: Any, *, parameters: Mapping[str, Any] | None = None) -> Any:
        """Read datasets.

        Parameters
        ----------
        dataset : `InputQuantizedConnection`, `DatasetRef` or list of `DatasetRef`
            What to read.
        parameters : mapping, optional
            Read parameters of the storage class (e.g. ``bbox``): part of each dataset.

        Returns
        -------
        objects : `dict`, `object` or `list`
            For a quantized connection, connection name -> object (a list of objects for a
            ``multiple`` connection); otherwise the object(s) for the ref(s).
        """
        ...

    def put(self, values: Any, dataset: Any) -> None:
        """Write datasets.

        Parameters
        ----------
        values : `Struct` or `object`
            With an `OutputQuantizedConnection`, a `Struct` whose attribute named after each
            connection holds the object (a list for ``multiple``); otherwise the object.
        dataset : `OutputQuantizedConnection`, `DatasetRef` or list of `DatasetRef`
            Where to write.
        """
        ...


def _connections_config_class(connections: type[PipelineTaskConnections]) -> type[Config]:
    fields: dict[str, Any] = {}
    for name, connection in connections._declared.items():
        doc = f"Dataset type name of connection {name!r}" + (
            f": {connection.doc}" if connection.doc else ""
        )
        fields[name] = Field(str, doc, default=connection.name)
    for template, default in connections.defaultTemplates.items():
        fields[template] = Field(str, f"Template value {{{template}}}", default=default)
    fields["__doc__"] = f"Dataset type names and templates of {connections.__name__}."
    fields["__module__"] = connections.__module__
    return type(f"{connections.__name__}Config", (Config,), fields)


class PipelineTaskConfig(Config):
    """Base config of pipeline tasks; declare with ``pipelineConnections=MyConnections``.

    Examples
    --------
    ``class MyConfig(PipelineTaskConfig, pipelineConnections=MyConnections): ...`` gives
    ``MyConfig.ConnectionsClass`` and a ``connections`` field with one `str` per connection
    and per template.
    """

    ConnectionsClass: ClassVar[type[PipelineTaskConnections] | None] = None

    saveMetadata = Field(bool, "Write the task metadata dataset after each quantum", default=True)
    saveLogOutput = Field(bool, "Write the log records of each quantum", default=True)

    def __init_subclass__(
        cls, *, pipelineConnections: type[PipelineTaskConnections] | None = None, **kwargs: Any
    ):
        if pipelineConnections is not None:
            if not (
                isinstance(pipelineConnections, type)
                and issubclass(pipelineConnections, PipelineTaskConnections)
            ):
                raise TypeError(
                    f"{cls.__name__}: pipelineConnections must be a PipelineTaskConnections "
                    f"subclass, not {pipelineConnections!r}"
                )
            cls.ConnectionsClass = pipelineConnections
            connections_field = ConfigField(
                dtype=_connections_config_class(pipelineConnections),
                doc="Dataset type names of the connections, and template values",
            )
            connections_field.__set_name__(cls, "connections")
            cls.connections = connections_field
        super().__init_subclass__(**kwargs)


class PipelineTask(Task, metaclass=abc.ABCMeta):
    """A `Task` run by an executor on one quantum (one data ID) at a time.

    Parameters
    ----------
    config : `PipelineTaskConfig`, optional
        Configuration; defaults to ``ConfigClass()``.
    initInputs : mapping, optional
        Connection name -> object for each ``InitInput`` (e.g. an input schema).
    **kwargs
        Passed to `Task` (``name``, ``parentTask``, ``log``, ``debug``).
    """

    ConfigClass: ClassVar[type[Config]] = PipelineTaskConfig

    def __init__(
        self,
        *,
        config: Config | None = None,
        initInputs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(config=config, **kwargs)
        self.initInputs = dict(initInputs or {})

    @abc.abstractmethod
    def run(self, **kwargs: Any) -> Struct:
        """Process in-memory inputs; return a `Struct` with one attribute per output.

        Returning `None` from a subclass means "nothing to write".
        """
        raise NotImplementedError

    def runQuantum(
        self,
        butlerQC: QuantumContext,
        inputRefs: InputQuantizedConnection,
        outputRefs: OutputQuantizedConnection,
    ) -> None:
        """Read the inputs, call `run`, write the outputs.

        Parameters
        ----------
        butlerQC : `QuantumContext`
            The executor's butler view for this quantum.
        inputRefs : `InputQuantizedConnection`
            Connection name -> `DatasetRef` (or list) for inputs and prerequisites.
        outputRefs : `OutputQuantizedConnection`
            Connection name -> `DatasetRef` (or list) for outputs.

        Notes
        -----
        Override to add arguments derived from the data ID (``butlerQC.dataId``); keep the
        I/O here and the algorithm in `run`.
        """
        inputs = butlerQC.get(inputRefs)
        outputs = self.run(**inputs)
        if outputs is None:
            self.log.info("run() returned None for %s; nothing written", butlerQC.dataId)
            return
        butlerQC.put(outputs, outputRefs)

    run_quantum = runQuantum

    def getInitOutputDatasets(self) -> dict[str, Any]:
        """Return connection name -> object for each ``InitOutput`` (attributes of the task).

        Raises
        ------
        AttributeError
            If the task has no attribute named after one of its init-output connections.
        """
        from .connections import connections_for

        connections = connections_for(self.config)
        out: dict[str, Any] = {}
        for name in sorted(connections.initOutputs):
            if not hasattr(self, name):
                raise AttributeError(
                    f"task {self.getFullName()!r} has no attribute {name!r} for its InitOutput"
                )
            out[name] = getattr(self, name)
        return out
