"""Logging options shared by the ``butler`` and ``pipetask`` commands (LSST's spellings).

``--log-level`` takes ``LEVEL`` (the root logger) or ``COMPONENT=LEVEL`` (a logger, e.g.
``pipeline=DEBUG`` or ``butler.registry=VERBOSE``), and may be given several times. Levels are
Python's plus LSST's ``VERBOSE`` (15, between INFO and DEBUG) and ``TRACE`` (5), in any case.
``--long-log`` adds the time and the logger name to every line; ``--log-file FILE`` also
writes every record (at the levels set) to FILE.

A bad value is a `click.BadParameter` (exit status 2) naming the flag, the value and the
accepted levels, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import click

__all__ = [
    "LEVELS",
    "LONG_FORMAT",
    "SHORT_FORMAT",
    "configure_logging",
    "log_options",
    "parse_log_levels",
]

#: Level names accepted by ``--log-level``, most to least severe.
LEVELS: dict[str, int] = {
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "VERBOSE": 15,
    "DEBUG": logging.DEBUG,
    "TRACE": 5,
}

SHORT_FORMAT = "%(levelname)s %(name)s: %(message)s"
LONG_FORMAT = (
    "%(levelname)s %(asctime)s %(name)s (%(process)d) %(filename)s:%(lineno)d - %(message)s"
)


def parse_log_levels(values: Iterable[str], default: str) -> dict[str, int]:
    """Return ``{logger name ("" for the root): level}`` from ``--log-level`` values.

    Raises
    ------
    click.BadParameter
        If a level name is unknown or a component is empty.
    """
    levels = {"": LEVELS[default]}
    for value in values:
        component, sep, name = value.rpartition("=")
        component = component.strip()
        if sep and not component:
            raise click.BadParameter(
                f"{value!r}: COMPONENT=LEVEL needs a component, e.g. pipeline=DEBUG",
                param_hint="'--log-level'",
            )
        level = LEVELS.get(name.strip().upper())
        if level is None:
            raise click.BadParameter(
                f"unknown level {name.strip()!r} in {value!r}; use one of "
                f"{', '.join(LEVELS)}, alone or as COMPONENT=LEVEL (e.g. pipeline=DEBUG)",
                param_hint="'--log-level'",
            )
        levels[component] = level
    return levels


def configure_logging(
    values: Iterable[str],
    *,
    default: str = "WARNING",
    long_log: bool = False,
    log_file: str | None = None,
) -> dict[str, int]:
    """Set the root and component levels, the line format and an optional log file.

    Parameters
    ----------
    values : iterable of `str`
        ``--log-level`` values (``LEVEL`` or ``COMPONENT=LEVEL``).
    default : `str`
        Root level when no plain ``LEVEL`` is given.
    long_log : `bool`
        Use `LONG_FORMAT` (time, logger, process, file and line).
    log_file : `str`, optional
        Also write records to this file (appended).

    Returns
    -------
    levels : `dict` [`str`, `int`]
        The levels set, ``""`` for the root logger.

    Raises
    ------
    click.BadParameter
        For an unknown level or an unwritable ``--log-file``.
    """
    levels = parse_log_levels(values, default)
    for name, level in LEVELS.items():
        if logging.getLevelName(level) != name:
            logging.addLevelName(level, name)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        try:
            handlers.append(logging.FileHandler(log_file))
        except OSError as err:
            raise click.BadParameter(
                f"cannot write {log_file!r}: {err.strerror}", param_hint="'--log-file'"
            ) from err
    logging.basicConfig(
        level=levels[""],
        format=LONG_FORMAT if long_log else SHORT_FORMAT,
        handlers=handlers,
        force=True,
    )
    for component, level in levels.items():
        if component:
            logging.getLogger(component).setLevel(level)
    return levels


def log_options(default: str) -> list:
    """Return the click options ``--log-level``, ``--long-log`` and ``--log-file``."""
    return [
        click.option(
            "--log-level",
            "log_levels",
            multiple=True,
            metavar="[COMPONENT=]LEVEL",
            help=f"Logging level ({', '.join(LEVELS)}; default {default}), or COMPONENT=LEVEL "
            "for one logger (e.g. pipeline=DEBUG). Repeatable.",
        ),
        click.option(
            "--long-log", is_flag=True, help="Log lines with time, logger, process and source line."
        ),
        click.option(
            "--log-file",
            default=None,
            metavar="FILE",
            help="Also write log records to FILE (appended).",
        ),
    ]
