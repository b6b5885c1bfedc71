"""Where a pipeline file names another file: ``$NAME`` expansion and relative paths.

LSST's pipelines import each other through package locations such as
``$DRP_PIPE_DIR/pipelines/HSC/DRP-RC2.yaml``. `expand_location` replaces ``$NAME`` and
``${NAME}`` from the environment and refuses an unset variable by name, with the file and line
that use it (left unexpanded, it would read as a relative path and fail as "file not found"
somewhere unrelated). A relative result is resolved against the directory of the file that
names it. No state.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._errors import PipelineDefinitionError

__all__ = ["expand_location"]

_VARIABLE_RE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand_location(text: str, where: str, *, base: Path | None = None) -> str:
    """Return ``text`` with environment variables expanded, made absolute against ``base``.

    Parameters
    ----------
    text : `str`
        A file location as written (``$X_DIR/pipelines/a.yaml``, ``../b.yaml``, ``~/c.yaml``).
    where : `str`
        ``file:line`` (or ``-p``) that names the location, for messages.
    base : `pathlib.Path`, optional
        Directory a relative location is resolved against; `None` leaves it relative.

    Raises
    ------
    PipelineDefinitionError
        If a variable is not set; the message names the variable, ``where`` and ``text``.
    """

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        value = os.environ.get(name)
        if value is None:
            raise PipelineDefinitionError(
                f"{where}: environment variable ${name} is not set (in location {text!r})"
            )
        return value

    expanded = os.path.expanduser(_VARIABLE_RE.sub(value_of, text))
    if base is not None and not os.path.isabs(expanded):
        expanded = str((base / expanded).resolve())
    return expanded
