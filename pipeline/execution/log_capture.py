"""Capture the log records of one quantum, to be stored as its ``<label>_log`` dataset.

Design
------
`capture_logs` is a context manager that attaches a `logging.Handler` to the root logger for
the duration of one quantum and lowers the level of the task loggers so that their INFO
records are seen. The handler keeps only records emitted by the thread that opened the
context, so several quanta running in threads of one worker process do not mix their logs.
Everything is restored on exit; the only state is the handler's list of records.
`lowered_levels` does the level part alone, so that an executor running many quanta in a
row changes the levels once (changing a level clears every logger's cache).

`ButlerLogRecords` is the stored value: a list of plain-dict records with ``to_dict`` and
``from_dict`` for the JSON formatter.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["ButlerLogRecords", "capture_logs", "lowered_levels"]

_FIELDS = ("name", "levelname", "levelno", "created", "filename", "lineno", "funcName")


class ButlerLogRecords:
    """The log records of one quantum.

    Parameters
    ----------
    records : iterable of `dict`, optional
        Records as plain dicts (``name``, ``levelname``, ``levelno``, ``message``,
        ``created``, ``filename``, ``lineno``, ``funcName``, ``exc_text``).
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] = ()) -> None:
        self.records: list[dict[str, Any]] = [dict(r) for r in records]

    @staticmethod
    def record_to_dict(record: logging.LogRecord) -> dict[str, Any]:
        """Convert a `logging.LogRecord` into the stored plain dict."""
        out = {name: getattr(record, name) for name in _FIELDS}
        out["message"] = record.getMessage()
        exc_text = record.exc_text
        if exc_text is None and record.exc_info:
            exc_text = logging.Formatter().formatException(record.exc_info)
        out["exc_text"] = exc_text
        return out

    def append(self, record: logging.LogRecord | Mapping[str, Any]) -> None:
        """Add a record (a `logging.LogRecord` or an already-converted dict)."""
        if isinstance(record, logging.LogRecord):
            self.records.append(self.record_to_dict(record))
        else:
            self.records.append(dict(record))

    def messages(self) -> list[str]:
        """Return the message text of every record."""
        return [r["message"] for r in self.records]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible form."""
        return {"records": self.records}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ButlerLogRecords:
        """Rebuild from `to_dict` output."""
        return cls(data.get("records", ()))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"ButlerLogRecords({len(self.records)} records)"


class _ThreadHandler(logging.Handler):
    def __init__(self, target: ButlerLogRecords, level: int) -> None:
        super().__init__(level)
        self.target = target
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.target.append(record)


@contextlib.contextmanager
def lowered_levels(logger_names: Iterable[str], level: int = logging.INFO) -> Iterator[None]:
    """Lower the level of some loggers to ``level`` for the duration of the block.

    A logger whose effective level already lets ``level`` through is left alone; only the
    loggers changed are restored (`logging.Logger.setLevel` clears the cache of every
    logger, which costs more than a trivial quantum's own logging).

    Parameters
    ----------
    logger_names : iterable of `str`
        The loggers (the task loggers).
    level : `int`
        Level they must let through.
    """
    saved = []
    for name in logger_names:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > level:
            saved.append((logger, logger.level))
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in saved:
            logger.setLevel(old)


@contextlib.contextmanager
def capture_logs(
    logger_names: Iterable[str] = (), *, level: int = logging.INFO
) -> Iterator[ButlerLogRecords]:
    """Collect the log records emitted by this thread while the block runs.

    Parameters
    ----------
    logger_names : iterable of `str`
        Loggers whose level is lowered to ``level`` for the duration (the task loggers; see
        `lowered_levels`, which a caller capturing many blocks in a row can enter once);
        records of other loggers are captured if their own level lets them through.
    level : `int`
        Lowest level captured.

    Yields
    ------
    records : `ButlerLogRecords`
        Filled as records arrive.
    """
    records = ButlerLogRecords()
    handler = _ThreadHandler(records, level)
    root = logging.getLogger()
    with lowered_levels(logger_names, level):
        root.addHandler(handler)
        try:
            yield records
        finally:
            root.removeHandler(handler)
