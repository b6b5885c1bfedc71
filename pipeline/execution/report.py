"""What happened to the quanta of a run: `make_report`.

Design
------
The report is computed from the repository alone, with the graph given or else the one the
run keeps (the ``quantum_graph`` dataset every execution stores, so the expected quanta are
known even after a crash that left no ``run_status``): a quantum whose
``<label>_metadata`` is registered is done (its ``quantum.status`` says succeeded or no_work);
one with only a registered ``<label>_log`` failed, and the last error record of that log gives
its exception; with the graph, a quantum that is neither and depends (transitively) on a
failed one is blocked, anything else was not run. Without the graph, the expected and blocked
counts come from the ``run_status`` dataset written by `~pipeline.execution.run.execute_graph`.
Failures are grouped by their error text (exception type and message), each with its data IDs.
No state besides the returned `Report`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import yaml

__all__ = ["Report", "make_report"]

_COLUMNS = ("expected", "succeeded", "no_work", "failed", "blocked", "not_run")


@dataclasses.dataclass
class Report:
    """Per task label: counts and distinct errors.

    Parameters
    ----------
    run : `str`
        The run (or collection) reported on.
    tasks : `dict` [`str`, `dict` [`str`, `int`]]
        Label -> column -> count (``expected``, ``succeeded``, ``no_work``, ``failed``,
        ``blocked``, ``not_run``).
    errors : `dict` [`str`, `list` [`dict`]]
        Label -> distinct errors, each ``{"error": str, "data_ids": [dict, ...]}``.
    """

    run: str
    tasks: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    errors: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a YAML/JSON-compatible form."""
        return {"run": self.run, "tasks": self.tasks, "errors": self.errors}

    def to_yaml(self) -> str:
        """Return the report as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        """Return the report as JSON."""
        return json.dumps(self.to_dict(), indent=1)

    def table(self) -> Any:
        """Return a `rich.table.Table` of the counts, one row per task label."""
        from rich.table import Table

        table = Table(title=f"run {self.run}")
        table.add_column("task")
        for column in _COLUMNS:
            table.add_column(column, justify="right")
        for label, counts in self.tasks.items():
            table.add_row(label, *(str(counts.get(c, 0)) for c in _COLUMNS))
        return table


def _error_of(log: Any) -> str:
    for record in reversed(list(log)):
        if record.get("levelno", 0) >= 40:
            exc = (record.get("exc_text") or "").strip()
            return exc.splitlines()[-1] if exc else record.get("message", "")
    return "unknown error (no error record in the log)"


def _label_types(butler: Any, run: str) -> dict[str, tuple[Any, Any]]:
    types = {d.name: d for d in butler.registry.query_dataset_types()}
    out = {}
    for name, dtype in types.items():
        if name.endswith("_metadata"):
            label = name[: -len("_metadata")]
            out[label] = (dtype, types.get(f"{label}_log"))
    return out


def make_report(butler: Any, output_run_or_collection: str, qgraph: Any = None) -> Report:
    """Report what happened to each quantum of a run.

    Parameters
    ----------
    butler : `~butler.butler.Butler`
        The repository.
    output_run_or_collection : `str`
        The output run (or a collection searching it).
    qgraph : `~pipeline.graph.quantum_graph.QuantumGraph`, optional
        The graph that was run: gives the expected quanta and the blocked ones exactly.

    Returns
    -------
    report : `Report`
    """
    run = output_run_or_collection
    registry = butler.registry
    report = Report(run)
    status_file: dict[str, Any] = {}
    try:
        ref = registry.find_dataset(
            registry.get_dataset_type("run_status"), {}, collections=[run]
        )
        if ref is not None:
            status_file = butler.get(ref)
    except Exception:  # noqa: S110 - no status dataset: the report uses the datasets alone
        status_file = {}
    if qgraph is None:
        qgraph = _saved_graph(butler, run)
    labels = list(qgraph.tasks) if qgraph is not None else list(_label_types(butler, run))
    types = _label_types(butler, run)
    failed_ids: dict[str, dict[tuple, str]] = {}
    done_ids: dict[str, set[tuple]] = {}
    for label in labels:
        counts = dict.fromkeys(_COLUMNS, 0)
        meta_type, log_type = types.get(label, (None, None))
        done: set[tuple] = set()
        if meta_type is not None:
            for ref in registry.query_datasets(meta_type, collections=[run]):
                metadata = butler.get(ref)
                status = metadata.get("quantum", {}).get("status", "succeeded")
                counts["no_work" if status == "no_work" else "succeeded"] += 1
                done.add(tuple(sorted(ref.data_id.required.items())))
        failed: dict[tuple, str] = {}
        if log_type is not None:
            for ref in registry.query_datasets(log_type, collections=[run]):
                key = tuple(sorted(ref.data_id.required.items()))
                if key not in done:
                    failed[key] = _error_of(butler.get(ref))
        counts["failed"] = len(failed)
        done_ids[label], failed_ids[label] = done, failed
        grouped: dict[str, list[dict[str, Any]]] = {}
        for key, error in sorted(failed.items()):
            grouped.setdefault(error, []).append(dict(key))
        report.errors[label] = [{"error": e, "data_ids": ids} for e, ids in grouped.items()]
        if qgraph is not None:  # a later --extend-run may have added quanta: the larger
            counts["expected"] = max(
                qgraph.count(label),
                status_file.get("counts", {}).get(label, {}).get("expected", 0),
            )
        else:
            counts["expected"] = status_file.get("counts", {}).get(label, {}).get(
                "expected", counts["succeeded"] + counts["no_work"] + counts["failed"]
            )
        report.tasks[label] = counts
    if qgraph is not None:
        _blocked_from_graph(qgraph, report, done_ids, failed_ids)
    else:
        for label, counts in report.tasks.items():
            blocked = status_file.get("blocked", [])
            counts["blocked"] = sum(1 for b in blocked if b["label"] == label)
            rest = counts["expected"] - counts["succeeded"] - counts["no_work"] - counts["failed"]
            counts["not_run"] = max(0, rest - counts["blocked"])
    return report


def _saved_graph(butler: Any, run: str) -> Any:
    """Return the graph the run keeps (``quantum_graph``), or `None` (older runs)."""
    try:
        dtype = butler.registry.get_dataset_type("quantum_graph")
        ref = butler.registry.find_dataset(dtype, {}, collections=[run])
        return None if ref is None else butler.get(ref)
    except Exception:  # no graph kept: the report uses the datasets and run_status
        return None


def _blocked_from_graph(
    qgraph: Any, report: Report, done: dict[str, set[tuple]], failed: dict[str, dict[tuple, str]]
) -> None:
    bad: set[int] = set()
    for node in qgraph.node_ids():
        label = qgraph.task_label_of(node)
        key = tuple(sorted(qgraph.data_id(node).required.items()))
        if key in failed[label]:
            bad.add(node)
        elif key in done[label]:
            continue
        elif any(p in bad for p in qgraph.predecessors(node)):
            bad.add(node)
            report.tasks[label]["blocked"] += 1
        else:
            report.tasks[label]["not_run"] += 1
