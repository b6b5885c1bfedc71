"""Copying task config fields onto the imaging algorithms' option dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["options_from_config"]


def options_from_config(cls: type[T], config: Any, names: Mapping[str, str], **extra: Any) -> T:
    """Build an options dataclass from config fields.

    Parameters
    ----------
    cls : `type`
        The dataclass (e.g. `imaging.background.BackgroundConfig`).
    config : `pipeline.Config`
        The task config.
    names : mapping of `str` to `str`
        Dataclass field name -> config field name.
    **extra
        Further dataclass fields, given directly.
    """
    values = {field: getattr(config, name) for field, name in names.items()}
    for field, value in values.items():
        if isinstance(value, list):
            values[field] = tuple(value)
    values.update(extra)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"{cls.__name__} has no option(s) {sorted(unknown)}")
    return cls(**values)
