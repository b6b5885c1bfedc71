"""The ``parameters`` section: named values substituted into config values.

A config value that is exactly ``parameters.name`` takes the parameter's value (and type); a
value that contains ``parameters.name`` elsewhere has it replaced by the parameter's text.
Substitution happens once imports are merged, so the importing file's values win. A reference
to a parameter that is not defined is left as written with an `UnknownParameterWarning` naming
the file and line, as LSST does (its published pipelines hold such references, in tasks whose
field takes any text). No state.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from .yaml_reader import _mapping, _plain, _suggest

__all__ = ["UnknownParameterWarning", "read_parameters", "substitute_parameters"]

_PARAMETER_RE = re.compile(r"parameters\.(\w+)")


class UnknownParameterWarning(UserWarning):
    """A config value refers to ``parameters.name`` but the pipeline defines no such parameter."""


def read_parameters(doc: dict, source: str) -> dict[str, Any]:
    """Return the ``parameters`` mapping of a pipeline document (empty when absent).

    Raises
    ------
    PipelineDefinitionError
        If the section is not a mapping (the message names the file and line).
    """
    return _plain(_mapping(doc, "parameters", source))


def substitute_parameters(value: Any, parameters: Mapping[str, Any], where: str) -> Any:
    """Return ``value`` with ``parameters.name`` references replaced, recursively.

    A reference to an undefined parameter is left as written.

    Warns
    -----
    UnknownParameterWarning
        If a value names a parameter that is not defined (the message says ``where``).
    """
    if isinstance(value, list):
        return [substitute_parameters(v, parameters, where) for v in value]
    if isinstance(value, dict):
        return {k: substitute_parameters(v, parameters, where) for k, v in value.items()}
    if not isinstance(value, str) or "parameters." not in value:
        return value
    for name in _PARAMETER_RE.findall(value):
        if name not in parameters:
            warnings.warn(
                f"{where}: unknown parameter {name!r} in {value!r}, left as written"
                f"{_suggest(name, parameters)}; defined parameters: {sorted(parameters)}",
                UnknownParameterWarning,
                stacklevel=2,
            )
    whole = _PARAMETER_RE.fullmatch(value)
    if whole:
        return parameters.get(whole.group(1), value)
    return _PARAMETER_RE.sub(lambda m: str(parameters.get(m.group(1), m.group(0))), value)
