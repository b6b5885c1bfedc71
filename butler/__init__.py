"""skyquanta's data butler: datasets, data IDs, collections and storage.

The butler knows no pipelines and no astronomy. Start with `Butler`.
"""

from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from .butler import Butler
from .data_coordinate import DataCoordinate
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .dimensions import DimensionGroup, DimensionUniverse
from .limited import LimitedButler, LimitedButlerSpec
from .registry import CollectionType, Region, SqlRegistry
from .storage_class import StorageClass, StorageClassRegistry

__all__ = [
    "Butler",
    "CollectionType",
    "DataCoordinate",
    "DatasetRef",
    "DatasetType",
    "DimensionGroup",
    "DimensionUniverse",
    "LimitedButler",
    "LimitedButlerSpec",
    "Region",
    "SqlRegistry",
    "StorageClass",
    "StorageClassRegistry",
    *_errors_all,
]
