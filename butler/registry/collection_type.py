"""The kinds of collection a registry knows."""

from __future__ import annotations

import enum

__all__ = ["CollectionType"]


class CollectionType(enum.IntEnum):
    """Kind of a collection.

    ``RUN`` collections own datasets (each dataset belongs to exactly one
    run); ``CHAINED`` collections are ordered lists of other collections,
    searched in order. The integer values are stored in the database and must
    never change.
    """

    RUN = 1
    CHAINED = 2
