"""skyquanta's task and pipeline framework: tasks, configs, pipelines and quantum graphs.

It knows no astronomy; it imports only `butler`. Task classes are loaded by
dotted name from pipeline YAML, never imported here.
"""

from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from .config import (
    ChoiceField,
    Config,
    ConfigField,
    ConfigurableField,
    DictField,
    Field,
    ListField,
    RangeField,
    RegistryField,
    makeRegistry,
)
from .connections import (
    InitInput,
    InitOutput,
    Input,
    InputQuantizedConnection,
    Output,
    OutputQuantizedConnection,
    PipelineTaskConnections,
    PrerequisiteInput,
    connections_for,
)
from .definition.pipeline import Pipeline, TaskDef
from .graph.quantum_graph import Quantum, QuantumGraph
from .pipeline_task import PipelineTask, PipelineTaskConfig, QuantumContext
from .struct import Struct
from .task import ResourceConfig, Task, timeMethod
from .task_metadata import TaskMetadata

__all__ = [
    "ChoiceField",
    "Config",
    "ConfigField",
    "ConfigurableField",
    "DictField",
    "Field",
    "InitInput",
    "InitOutput",
    "Input",
    "InputQuantizedConnection",
    "ListField",
    "Output",
    "OutputQuantizedConnection",
    "Pipeline",
    "PipelineTask",
    "PipelineTaskConfig",
    "PipelineTaskConnections",
    "PrerequisiteInput",
    "Quantum",
    "QuantumContext",
    "QuantumGraph",
    "RangeField",
    "RegistryField",
    "ResourceConfig",
    "Struct",
    "Task",
    "TaskDef",
    "TaskMetadata",
    "connections_for",
    "makeRegistry",
    "timeMethod",
    *_errors_all,
]
