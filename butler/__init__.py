"""skyquanta's data butler: datasets, data IDs, collections and storage.

The butler knows no pipelines and no astronomy. Start with `Butler`.

The public names are imported when first used (`butler._lazy_names`), so that importing
one light module of the package (``butler.cli`` for ``butler --help``, the worker side of an
execution) does not import the registry, SQLAlchemy or numpy; ``from butler import Butler``
works as before. The exceptions of `butler._errors` are imported at once (they are cheap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from ._lazy_names import lazy_names

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .butler import Butler as Butler
    from .data_coordinate import DataCoordinate as DataCoordinate
    from .dataset_ref import DatasetRef as DatasetRef
    from .dataset_type import DatasetType as DatasetType
    from .dimensions import DimensionGroup as DimensionGroup
    from .dimensions import DimensionUniverse as DimensionUniverse
    from .limited import LimitedButler as LimitedButler
    from .limited import LimitedButlerSpec as LimitedButlerSpec
    from .registry import CollectionType as CollectionType
    from .registry import Region as Region
    from .registry import SqlRegistry as SqlRegistry
    from .storage_class import StorageClass as StorageClass
    from .storage_class import StorageClassRegistry as StorageClassRegistry

#: Public name -> the module (relative to this package) that defines it.
_LAZY = {
    "Butler": ".butler",
    "CollectionType": ".registry",
    "DataCoordinate": ".data_coordinate",
    "DatasetRef": ".dataset_ref",
    "DatasetType": ".dataset_type",
    "DimensionGroup": ".dimensions",
    "DimensionUniverse": ".dimensions",
    "LimitedButler": ".limited",
    "LimitedButlerSpec": ".limited",
    "Region": ".registry",
    "SqlRegistry": ".registry",
    "StorageClass": ".storage_class",
    "StorageClassRegistry": ".storage_class",
}

__all__ = [*sorted(_LAZY), *_errors_all]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
