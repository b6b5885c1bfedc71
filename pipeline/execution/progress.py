"""What an execution shows and returns: the live progress table and the run summary.

Design
------
`Progress` keeps counts per task label up to date on every status change of the scheduling
loop, so the live display (a rich ``Live``, refreshed from its own thread) never walks the
nodes. `RunSummary` is what `~pipeline.execution.run.execute_graph` returns: final counts per label,
failures, blocked quanta and the exit code.

State: only inside instances; nothing at module level. The public names are re-exported by
`pipeline.execution.run`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..graph.quantum_graph import QuantumGraph
from .executors.base import ExecutionResult

__all__ = ["EXIT_FAILED", "EXIT_NOT_STARTED", "EXIT_OK", "Progress", "RunSummary"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_STARTED = 2

_COLUMNS = ("expected", "skipped", "succeeded", "no_work", "failed", "blocked")


@dataclasses.dataclass
class RunSummary:
    """What an execution did, per task label.

    Parameters
    ----------
    counts : `dict` [`str`, `dict` [`str`, `int`]]
        Label -> column -> count; columns are ``expected``, ``skipped`` (complete before),
        ``succeeded``, ``no_work``, ``failed`` and ``blocked``.
    failures : `list` [`dict`]
        One per failed quantum: ``label``, ``data_id``, ``error_type``, ``message``,
        ``attempts``.
    blocked : `list` [`dict`]
        One per blocked quantum: ``label``, ``data_id``, ``blocked_by`` (a data ID).
    error : `str`
        Why the run could not start ("" if it did).
    execution_id, wall_time, dashboard_link
        Identity of the call, its duration (s) and the dask dashboard, if any.
    """

    counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    blocked: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str = ""
    execution_id: str = ""
    wall_time: float = 0.0
    dashboard_link: str | None = None
    result: ExecutionResult | None = None

    @property
    def exit_code(self) -> int:
        """0 all done, 1 some quanta failed or were blocked, 2 the run could not start."""
        if self.error:
            return EXIT_NOT_STARTED
        if any(c["failed"] or c["blocked"] for c in self.counts.values()):
            return EXIT_FAILED
        return EXIT_OK

    def total(self, column: str) -> int:
        """Sum of one column over every task label."""
        return sum(c[column] for c in self.counts.values())

    def table(self) -> Any:
        """Return a `rich.table.Table` of the counts per task label."""
        from rich.table import Table

        table = Table(title=f"execution {self.execution_id[:8]} ({self.wall_time:.1f} s)")
        table.add_column("task")
        for column in _COLUMNS:
            table.add_column(column, justify="right")
        for label, counts in self.counts.items():
            table.add_row(label, *(str(counts[c]) for c in _COLUMNS))
        table.add_row("[b]total", *(f"[b]{self.total(c)}" for c in _COLUMNS))
        return table


class Progress:
    """Counts per task label for the live display, kept up to date on every status change.

    State: the column of each node, the counts per label and column, and a rich Live (which
    renders the counts 4 times a second from its own thread, never walking the nodes).
    """

    _COLUMN_OF: Mapping[str, str] = {
        "skipped": "done",
        "succeeded": "done",
        "no_work": "done",
        "running": "running",
        "retry": "running",
        "failed": "failed",
        "blocked": "blocked",
    }

    def __init__(
        self,
        qgraph: QuantumGraph,
        enabled: bool,
        dashboard: str | None,
        label_of: Callable[[int], str],
    ) -> None:
        self.dashboard = dashboard
        self.label_of = label_of
        self.column: dict[int, str] = {}
        self.total = {label: qgraph.count(label) for label in qgraph.tasks}
        self.counts = {
            label: dict.fromkeys(("done", "running", "failed", "blocked"), 0)
            for label in self.total
        }
        self.live = None
        if enabled:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                get_renderable=self.render, console=Console(stderr=True), refresh_per_second=4
            )

    def set(self, node: int, status: str) -> None:
        """Record a node's new status (``on_status`` of the scheduling loop)."""
        column = self._COLUMN_OF.get(status)
        old = self.column.get(node)
        if column == old:
            return
        counts = self.counts[self.label_of(node)]
        if old is not None:
            counts[old] -= 1
            del self.column[node]
        if column is not None:
            counts[column] += 1
            self.column[node] = column

    def render(self) -> Any:
        """Return the live table: quanta per task label and state."""
        from rich.table import Table

        counts = {label: dict(row) for label, row in self.counts.items()}
        title = "quanta" + (f"  (dashboard: {self.dashboard})" if self.dashboard else "")
        table = Table(title=title)
        for column in ("task", "done", "running", "failed", "blocked", "total"):
            table.add_column(column, justify="left" if column == "task" else "right")
        for label, row in counts.items():
            table.add_row(label, *(str(row[k]) for k in row), str(self.total[label]))
        return table

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()
