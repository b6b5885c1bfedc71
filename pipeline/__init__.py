"""skyquanta's task and pipeline framework: tasks, configs, pipelines and quantum graphs.

It knows no astronomy; it imports only `butler`. Task classes are loaded by
dotted name from pipeline YAML, never imported here.

The public names are imported when first used (`butler._lazy_names`): ``pipetask --help``
and the worker side of an execution import only what they use, and ``from pipeline import
Config`` works as before. The exceptions of `pipeline._errors` are imported at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from butler._lazy_names import lazy_names

from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .config import ChoiceField as ChoiceField
    from .config import Config as Config
    from .config import ConfigField as ConfigField
    from .config import ConfigurableField as ConfigurableField
    from .config import DictField as DictField
    from .config import Field as Field
    from .config import ListField as ListField
    from .config import RangeField as RangeField
    from .config import RegistryField as RegistryField
    from .config import makeRegistry as makeRegistry
    from .connections import InitInput as InitInput
    from .connections import InitOutput as InitOutput
    from .connections import Input as Input
    from .connections import InputQuantizedConnection as InputQuantizedConnection
    from .connections import Output as Output
    from .connections import OutputQuantizedConnection as OutputQuantizedConnection
    from .connections import PipelineTaskConnections as PipelineTaskConnections
    from .connections import PrerequisiteInput as PrerequisiteInput
    from .connections import connections_for as connections_for
    from .definition.pipeline import Pipeline as Pipeline
    from .definition.pipeline import TaskDef as TaskDef
    from .graph.quantum_graph import Quantum as Quantum
    from .graph.quantum_graph import QuantumGraph as QuantumGraph
    from .pipeline_task import PipelineTask as PipelineTask
    from .pipeline_task import PipelineTaskConfig as PipelineTaskConfig
    from .pipeline_task import QuantumContext as QuantumContext
    from .struct import Struct as Struct
    from .task import ResourceConfig as ResourceConfig
    from .task import Task as Task
    from .task import timeMethod as timeMethod
    from .task_metadata import TaskMetadata as TaskMetadata

#: Public name -> the module (relative to this package) that defines it.
_LAZY = {
    "ChoiceField": ".config",
    "Config": ".config",
    "ConfigField": ".config",
    "ConfigurableField": ".config",
    "DictField": ".config",
    "Field": ".config",
    "InitInput": ".connections",
    "InitOutput": ".connections",
    "Input": ".connections",
    "InputQuantizedConnection": ".connections",
    "ListField": ".config",
    "Output": ".connections",
    "OutputQuantizedConnection": ".connections",
    "Pipeline": ".definition.pipeline",
    "PipelineTask": ".pipeline_task",
    "PipelineTaskConfig": ".pipeline_task",
    "PipelineTaskConnections": ".connections",
    "PrerequisiteInput": ".connections",
    "Quantum": ".graph.quantum_graph",
    "QuantumContext": ".pipeline_task",
    "QuantumGraph": ".graph.quantum_graph",
    "RangeField": ".config",
    "RegistryField": ".config",
    "ResourceConfig": ".task",
    "Struct": ".struct",
    "Task": ".task",
    "TaskDef": ".definition.pipeline",
    "TaskMetadata": ".task_metadata",
    "connections_for": ".connections",
    "makeRegistry": ".config",
    "timeMethod": ".task",
}

__all__ = [*sorted(_LAZY), *_errors_all]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
