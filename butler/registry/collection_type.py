"""The kinds of collection a registry knows."""

from __future__ import annotations

import enum

__all__ = ["CollectionType"]


class CollectionType(enum.IntEnum):
    """Kind of a collection.

    ``RUN`` collections own datasets (each dataset belongs to exactly one
    run); ``CHAINED`` collections are ordered lists of other collections,
    searched in order; ``TAGGED`` collections hold references to datasets of
    any runs (at most one per dataset type and data ID), added and removed by
    ``associate``/``disassociate``. The integer values are stored in the
    database and must never change.
    """

    RUN = 1
    CHAINED = 2
    TAGGED = 3
