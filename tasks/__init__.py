"""skyquanta's PipelineTasks: configs, subtasks and wiring around `imaging` algorithms."""

from .characterize_image import (
    CharacterizeImageConfig,
    CharacterizeImageConnections,
    CharacterizeImageTask,
)
from .detection import SourceDetectionConfig, SourceDetectionTask
from .install_psf import InstallGaussianPsfConfig, InstallGaussianPsfTask
from .measure_psf import MeasurePsfConfig, MeasurePsfTask
from .process_bright_stars import (
    LoadReferenceObjectsConfig,
    ProcessBrightStarsConfig,
    ProcessBrightStarsConnections,
    ProcessBrightStarsTask,
)
from .repair import RepairConfig, RepairTask
from .single_frame_measurement import SingleFrameMeasurementConfig, SingleFrameMeasurementTask
from .subtract_background import SubtractBackgroundConfig, SubtractBackgroundTask

__all__ = [
    "CharacterizeImageConfig",
    "CharacterizeImageConnections",
    "CharacterizeImageTask",
    "InstallGaussianPsfConfig",
    "InstallGaussianPsfTask",
    "LoadReferenceObjectsConfig",
    "MeasurePsfConfig",
    "MeasurePsfTask",
    "ProcessBrightStarsConfig",
    "ProcessBrightStarsConnections",
    "ProcessBrightStarsTask",
    "RepairConfig",
    "RepairTask",
    "SingleFrameMeasurementConfig",
    "SingleFrameMeasurementTask",
    "SourceDetectionConfig",
    "SourceDetectionTask",
    "SubtractBackgroundConfig",
    "SubtractBackgroundTask",
]
