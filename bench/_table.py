"""Printing benchmark results as one table per benchmark, with ratios against peers."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["peak_rss_mb", "print_table", "timed", "best_of"]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextmanager
def timed(result: dict[str, float], key: str):
    """Store the wall time of the block in ``result[key]`` (seconds)."""
    start = time.perf_counter()
    yield
    result[key] = time.perf_counter() - start


def best_of(n: int, func: Callable[[], Any]) -> float:
    """Best wall time of ``n`` calls (seconds)."""
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, notes: str = ""
) -> None:
    """Print a rich table (and a plain-text fallback-friendly title line)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column not in (columns[0],) else "left")
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console = Console(width=160)
    console.print(table)
    if notes:
        console.print(notes)
