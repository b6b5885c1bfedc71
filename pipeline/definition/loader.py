"""Import a class by its dotted name, with an error that says what was looked for and where.

The pipeline framework never imports task classes directly: the YAML names them, and
`import_by_name` finds them. ``a.b.C.Inner`` works too: the longest importable module prefix is
imported and the rest is looked up as attributes. Nothing is cached here (Python's own
``sys.modules`` already is).
"""

from __future__ import annotations

import importlib
from typing import Any

from .._errors import PipelineDefinitionError

__all__ = ["import_by_name"]


def _did_you_mean(owner: Any, owner_name: str, attr: str) -> str:
    """Return "; did you mean 'owner.close_name'?" for a mistyped name, or ""."""
    import difflib
    import pkgutil

    names = {n for n in dir(owner) if not n.startswith("_")}
    if hasattr(owner, "__path__"):  # a package: its submodules too, imported or not
        names.update(m.name for m in pkgutil.iter_modules(owner.__path__))
    close = difflib.get_close_matches(attr, sorted(names), n=1, cutoff=0.7)
    return f"; did you mean {owner_name + '.' + close[0]!r}?" if close else ""


def _did_you_mean_module(name: str) -> str:
    """Return "; did you mean 'close_name'?" for a mistyped top-level module, or ""."""
    import difflib
    import pkgutil
    import sys

    names = {m.name for m in pkgutil.iter_modules()} | {m.split(".")[0] for m in sys.modules}
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


def import_by_name(name: str, *, where: str | None = None) -> Any:
    """Return the object named by a dotted path such as ``package.module.Class``.

    Parameters
    ----------
    name : `str`
        Fully qualified name.
    where : `str`, optional
        ``file:line`` (and task label) of the reference, for the error message.

    Returns
    -------
    obj : `object`
        The named object.

    Raises
    ------
    PipelineDefinitionError
        If no module prefix of ``name`` can be imported, or the remaining attributes are missing.
        An error raised while importing an existing module is chained as the cause.
    """
    prefix = f"{where}: " if where else ""
    parts = name.split(".")
    if not name or not all(p.isidentifier() for p in parts):
        raise PipelineDefinitionError(f"{prefix}{name!r} is not a dotted Python name")
    if len(parts) < 2:
        raise PipelineDefinitionError(
            f"{prefix}{name!r} is not a fully qualified name (expected 'package.module.Class')"
        )
    first_error: ImportError | None = None
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            # Keep going only if the missing module is the one we asked for (or a parent).
            if err.name is None or not module_name.startswith(err.name):
                raise PipelineDefinitionError(
                    f"{prefix}cannot import {name!r}: importing {module_name!r} failed: {err}"
                ) from err
            first_error = first_error or err
            continue
        except Exception as err:
            raise PipelineDefinitionError(
                f"{prefix}cannot import {name!r}: importing {module_name!r} raised "
                f"{type(err).__name__}: {err}"
            ) from err
        obj: Any = module
        for index, attr in enumerate(parts[split:], start=split):
            try:
                obj = getattr(obj, attr)
            except AttributeError as err:
                owner = ".".join(parts[:index])
                raise PipelineDefinitionError(
                    f"{prefix}cannot import {name!r}: {owner!r} has no attribute or module "
                    f"{attr!r}{_did_you_mean(obj, owner, attr)}"
                ) from err
        return obj
    raise PipelineDefinitionError(
        f"{prefix}cannot import {name!r}: no module named {parts[0]!r}"
        f"{_did_you_mean_module(parts[0])}"
    ) from first_error
