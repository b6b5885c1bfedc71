"""Public names of a package imported on first use (PEP 562), for `butler` and `pipeline`.

A package's ``__init__`` that re-exports names from heavy modules (the registry imports
SQLAlchemy and numpy) would make every import of any of its modules pay for them: ``butler
--help``, ``pipetask --help`` and the worker side of an execution use few of them. With
`lazy_names` the ``__init__`` holds a table of name -> defining module instead, and the
module is imported when the name is first looked up; after that the name is an ordinary
attribute. State: none here (the table belongs to the package).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, modules: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the module ``__getattr__`` and ``__dir__`` of a package with lazy public names.

    Parameters
    ----------
    package : `str`
        The package's ``__name__``.
    modules : mapping of `str` to `str`
        Public name -> the module defining it, relative to the package (``".butler"``).

    Returns
    -------
    getattr, dir : callable
        To assign to the package's ``__getattr__`` and ``__dir__``.
    """

    def getattr_(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(modules))

    return getattr_, dir_
