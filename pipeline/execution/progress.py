"""What an execution shows and returns: the live progress table and the run summary.

On a terminal the table is redrawn in place; otherwise `~.progress_lines.ProgressLines`
prints one line every few seconds. "running" counts the quanta the workers report running
(`quantum_event`, from the executor's ``watch_quanta``); the other submitted ones are
"queued". With an executor that cannot report, it is an estimate: at most ``parallelism``
submitted quanta.

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

_COLUMNS = ("expected", "skipped", "succeeded", "no_work", "failed", "blocked", "unregistered")


@dataclasses.dataclass
class RunSummary:
    """What an execution did, per task label.

    Parameters
    ----------
    counts : `dict` [`str`, `dict` [`str`, `int`]]
        Label -> column -> count; columns are ``expected``, ``skipped`` (complete before),
        ``succeeded``, ``no_work``, ``failed``, ``blocked`` and ``unregistered`` (finished,
        but their outputs could not be registered: ``--resume`` adopts them).
    failures : `list` [`dict`]
        One per failed quantum: ``label``, ``data_id``, ``error_type``, ``message``,
        ``attempts``.
    blocked : `list` [`dict`]
        One per blocked quantum: ``label``, ``data_id``, ``blocked_by`` (a data ID).
    error : `str`
        Why the run could not start ("" if it did).
    unregistered : `list` [`dict`]
        One per unregistered quantum: ``label``, ``data_id``, ``reason``.
    interrupted : `str`
        Why the execution stopped early ("" if it did not): a signal or a lost scheduler.
    signal : `int`
        The number of the signal that stopped it (0: none).
    resume_command : `str`
        The command that resumes the run (shown when something is left to do).
    execution_id, wall_time, dashboard_link
        Identity of the call, its duration (s) and the dask dashboard, if any.
    """

    counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    blocked: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str = ""
    unregistered: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    interrupted: str = ""
    signal: int = 0
    resume_command: str = ""
    execution_id: str = ""
    wall_time: float = 0.0
    dashboard_link: str | None = None
    result: ExecutionResult | None = None

    @property
    def exit_code(self) -> int:
        """Return the exit code: 0 all done, 1 not all done, 2 could not start.

        Not all done: some quanta failed, were blocked or are unregistered, or the
        execution stopped early (a lost scheduler; a signal gives 128 + its number).
        """
        if self.signal:
            return 128 + self.signal
        if self.error:
            return EXIT_NOT_STARTED
        if self.interrupted or any(
            c["failed"] or c["blocked"] or c["unregistered"] for c in self.counts.values()
        ):
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
        *,
        parallelism: int = 0,
    ) -> None:
        import importlib.util

        # dask's dashboard answers "Dask needs bokeh" without it: no link then
        self.dashboard = dashboard if importlib.util.find_spec("bokeh") is not None else None
        self.label_of = label_of
        self.parallelism = parallelism
        self.column: dict[int, str] = {}
        #: submitted, unfinished nodes in submission order
        self.in_flight: dict[int, None] = {}
        #: whether workers report quanta starting and ending (`quantum_event`)
        self.reported = False
        #: submitted nodes a worker reported started (and not yet ended)
        self.started: set[int] = set()
        self.total = {label: qgraph.count(label) for label in qgraph.tasks}
        self.counts = {
            label: dict.fromkeys(("done", "running", "failed", "blocked"), 0)
            for label in self.total
        }
        self.live = None
        self.lines = None
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.live import Live

                self.live = Live(
                    get_renderable=self.render, console=console, refresh_per_second=4
                )
            else:  # a log file: one line every few seconds instead of a redrawn table
                from .progress_lines import ProgressLines, progress_interval

                self.lines = ProgressLines(self, progress_interval())

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
            self.in_flight.pop(node, None)
            self.started.discard(node)
        if column is not None:
            counts[column] += 1
            self.column[node] = column
            if column == "running":
                self.in_flight[node] = None

    def quantum_event(self, node: int, event: str) -> None:
        """Record that a worker started (``"start"``) or ended (``"end"``) a quantum.

        Called from the executor's thread. A start reported after the node's outcome (events
        and results travel separately) is ignored.
        """
        if event == "start":
            if node in self.in_flight:
                self.started.add(node)
        else:
            self.started.discard(node)

    def snapshot(self) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
        """Return per-label and total counts: done, running, queued, failed, blocked, total.

        "running" is the submitted, unfinished quanta a worker reported started; without
        reports, an estimate: the first ``parallelism`` of them in submission order (all
        when ``parallelism`` is 0). The rest of the submitted ones are "queued".
        """
        import itertools

        in_flight = list(self.in_flight)  # a copy: the scheduling loop keeps changing it
        if self.reported:
            started = set(self.started)
            running_nodes = [node for node in in_flight if node in started]
        else:
            running_nodes = list(itertools.islice(in_flight, self.parallelism or len(in_flight)))
        running_by_label: dict[str, int] = {}
        for node in running_nodes:
            label = self.label_of(node)
            running_by_label[label] = running_by_label.get(label, 0) + 1
        rows = {}
        for label, counts in list(self.counts.items()):
            running = running_by_label.get(label, 0)
            rows[label] = {
                "done": counts["done"],
                "running": running,
                "queued": max(0, counts["running"] - running),
                "failed": counts["failed"],
                "blocked": counts["blocked"],
                "total": self.total[label],
            }
        keys = ("done", "running", "queued", "failed", "blocked", "total")
        totals = {k: sum(row[k] for row in rows.values()) for k in keys}
        return rows, totals

    def render(self) -> Any:
        """Return the live table: quanta per task label and state."""
        from rich.table import Table

        rows, _ = self.snapshot()
        title = "quanta" + (f"  (dashboard: {self.dashboard})" if self.dashboard else "")
        table = Table(title=title)
        columns = ("done", "running", "queued", "failed", "blocked", "total")
        table.add_column("task", justify="left")
        for column in columns:
            table.add_column(column, justify="right")
        for label, row in rows.items():
            table.add_row(label, *(str(row[k]) for k in columns))
        return table

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.start()
        if self.lines is not None:
            self.lines.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()
        if self.lines is not None:
            self.lines.stop()
