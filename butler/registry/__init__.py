"""The SQL registry: dimension records, dataset types, collections and datasets."""

from .collection_type import CollectionType
from .regions import Region
from .sql_registry import SqlRegistry

__all__ = ["CollectionType", "Region", "SqlRegistry"]
