"""Config overrides: ``-c field=value`` strings, YAML files and explicit Python files.

`applyOverrides` parses each string value into its field's type (`Field._parseString`) and
records the assignment under its source (``"-c"``, a file name); `loadYamlOverrides` and
`loadPythonOverrides` report a bad key with the file and line it came from. Python files run
as code, so they are loaded only when the user names one explicitly. No module state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from .._errors import FieldValidationError, UnknownConfigFieldError
from .configurable_fields import ConfigurableInstance, RegistryInstance
from .field import ConfigBase, Field

__all__ = [
    "applyOverrides",
    "loadPythonOverrides",
    "loadYamlOverrides",
    "parseOverrideString",
]


def parseOverrideString(text: str) -> tuple[str | None, str, str]:
    """Split a command-line override ``"label:field.path=value"`` into its parts.

    Parameters
    ----------
    text : `str`
        ``label:field=value`` or ``field=value``.

    Returns
    -------
    label, path, value : `str` or `None`, `str`, `str`
        Task label (`None` if absent), dotted field path, and the unparsed value string.

    Raises
    ------
    ValueError
        If there is no ``=``.
    """
    head, sep, value = text.partition("=")
    if not sep or not head.strip():
        raise ValueError(f"config override {text!r} is not of the form [label:]field=value")
    label, colon, path = head.partition(":")
    if not colon:
        return None, head.strip(), value
    return label.strip(), path.strip(), value


def _field_at(config: ConfigBase, path: str) -> tuple[Any, str, Field | None]:

    node, name = config._resolvePath(path)
    if isinstance(node, ConfigurableInstance):
        node = node.value
    if isinstance(node, RegistryInstance):
        if name == "name":
            return node, name, None
        node = node.active
    if not isinstance(node, ConfigBase):
        raise UnknownConfigFieldError(f"{config._rootName()}: {path!r} is not a config field")
    if name not in node._fields:
        raise node._unknown(name)
    return node, name, node._fields[name]


def applyOverrides(
    config: ConfigBase,
    overrides: Iterable[tuple[str, Any]] | Mapping[str, Any],
    *,
    where: str = "-c",
) -> None:
    """Apply ``(field.path, value)`` overrides, parsing string values into each field's type.

    Parameters
    ----------
    config : `Config`
        Config to modify.
    overrides : iterable of ``(str, object)`` or mapping
        Dotted field paths and values; strings are parsed (``true``/``no``, ``3``, ``1e-3``,
        ``[1, 2]``, ``None``, ``{a: 1}``) according to the field's type.
    where : `str`, optional
        History label (default ``"-c"``).

    Raises
    ------
    UnknownConfigFieldError
        If a path names no field (with the near-miss suggestion).
    FieldValidationError
        If a value cannot be parsed into the field's type.
    """
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for path, value in items:
        node, name, field = _field_at(config, path)
        if field is not None and isinstance(value, str):
            value = field._parseString(node, value)
        with config._labelled(where):
            setattr(node, name, value)


def _yaml_key_lines(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            out[key] = key_node.start_mark.line + 1
            _yaml_key_lines(value_node, f"{key}.", out)


def _flatten_overrides(
    config: ConfigBase, data: Mapping[str, Any], progress: list[str], prefix: str = ""
) -> Iterator[tuple[str, Any]]:

    for key, value in data.items():
        path = f"{prefix}{key}"
        progress[0] = path
        if isinstance(value, Mapping):
            node, name = config._resolvePath(path)
            target = getattr(node, name)
            if isinstance(target, (ConfigBase, ConfigurableInstance, RegistryInstance)):
                yield from _flatten_overrides(config, value, progress, f"{path}.")
                continue
        yield path, value


def loadYamlOverrides(
    config: ConfigBase, path: str | os.PathLike, *, where: str | None = None
) -> None:
    """Apply a YAML mapping of field paths (dotted keys or nested mappings) to ``config``.

    Parameters
    ----------
    config : `Config`
        Config to modify.
    path : path-like
        YAML file, e.g. ``{psfIterations: 3, measurePsf.starSelector: {fluxMin: 5000}}``.
    where : `str`, optional
        History label; default the file name.

    Raises
    ------
    UnknownConfigFieldError, FieldValidationError
        Naming the file and line of the offending key.
    """
    filename = os.fspath(path)
    with open(filename) as stream:
        text = stream.read()
    root = yaml.compose(text)
    if root is None:
        return
    lines: dict[str, int] = {}
    _yaml_key_lines(root, "", lines)
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise FieldValidationError(
            f"{filename}: config overrides must be a YAML mapping", filename=filename
        )
    label = where or os.path.basename(filename)
    progress = [""]
    try:
        for key, value in _flatten_overrides(config, _walk_guard(data, lines, filename), progress):
            applyOverrides(config, [(key, value)], where=label)
    except (UnknownConfigFieldError, FieldValidationError) as err:
        line = _best_line(lines, progress[0])
        raise err.located(filename, line) from err


def _walk_guard(data: Mapping[str, Any], lines: dict[str, int], filename: str) -> Mapping[str, Any]:
    # Keys of a YAML mapping are strings here; anything else is a malformed override file.
    for key in data:
        if not isinstance(key, str):
            raise FieldValidationError(
                f"config override key {key!r} is not a string",
                filename=filename,
                line=lines.get(str(key)),
            )
    return data


def _best_line(lines: dict[str, int], key: str) -> int | None:
    while key:
        if key in lines:
            return lines[key]
        key = key.rpartition(".")[0]
    return None


def loadPythonOverrides(
    config: ConfigBase, path: str | os.PathLike, *, where: str | None = None
) -> None:
    """Execute a user's Python config file whose body assigns ``config.field = value``.

    Only call this for a ``.py`` file the user named explicitly: the file runs as Python code.
    The names ``config`` and ``root`` are bound to ``config``.

    Parameters
    ----------
    config : `Config`
        Config to modify.
    path : path-like
        A ``.py`` file.
    where : `str`, optional
        History label; default the file name.

    Raises
    ------
    ValueError
        If ``path`` does not end in ``.py``.
    UnknownConfigFieldError, FieldValidationError
        Naming the file and line of the offending assignment.
    """
    filename = os.fspath(path)
    if not filename.endswith(".py"):
        raise ValueError(f"{filename!r} is not a .py file; refusing to execute it")
    with open(filename) as stream:
        code = compile(stream.read(), filename, "exec")
    namespace = {
        "config": config,
        "root": config,
        "__file__": filename,
        "__name__": "__skyquanta_config__",
    }
    try:
        with config._labelled(where or os.path.basename(filename)):
            exec(code, namespace)  # noqa: S102  (the user asked for this file to run)
    except (UnknownConfigFieldError, FieldValidationError) as err:
        line = None
        tb = err.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        raise err.located(filename, line) from err


apply_overrides = applyOverrides
load_yaml_overrides = loadYamlOverrides
load_python_overrides = loadPythonOverrides
parse_override_string = parseOverrideString
