"""``pipetask`` options LSST users type, and ``pipetask run --help`` in sections.

- ``-t/--task module.Class[:label]`` builds a pipeline from task classes (without ``-p``);
- ``--data-id-table FILE`` (CSV or ECSV; columns are dimension names) restricts the graph to
  the data IDs of its rows, combined with ``-d`` by AND;
- ``-s/--save-pipeline FILE`` writes the pipeline as run (as ``pipetask build -s`` does);
- ``--register-dataset-types`` is accepted (dataset types are always registered);
- `SectionedCommand` prints options under headings (LSST's ``pipetask run --help`` layout)
  followed by examples.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = [
    "RUN_HELP_SECTIONS",
    "SectionedCommand",
    "data_id_table_where",
    "pipeline_yaml_from_tasks",
    "run_extra_options",
]


def pipeline_yaml_from_tasks(tasks: Sequence[str]) -> str:
    """Return pipeline YAML with one task per ``module.Class[:label]`` (label: class name).

    Raises
    ------
    click.BadParameter
        If an item is not a dotted name or two tasks get the same label.
    """
    lines = ["description: tasks given with -t", "tasks:"]
    labels: set[str] = set()
    for item in tasks:
        name, _, label = item.partition(":")
        if "." not in name or not all(p.isidentifier() for p in name.split(".")):
            raise click.BadParameter(
                f"{item!r} is not module.Class[:label]", param_hint="'-t/--task'"
            )
        label = label or name.rsplit(".", 1)[1]
        if label in labels:
            raise click.BadParameter(
                f"label {label!r} given twice; name them: -t {name}:OTHER_LABEL",
                param_hint="'-t/--task'",
            )
        labels.add(label)
        lines += [f"  {label}:", f"    class: {name}"]
    return "\n".join(lines) + "\n"


def _literal(value: str) -> str:
    try:
        int(value)
        return value
    except ValueError:
        pass
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value.replace("'", "") + "'"


def data_id_table_where(path: str, where: str = "") -> str:
    """Return ``where`` restricted to the data IDs in the table at ``path``.

    A single column becomes ``name IN (...)``; several become ``(a = 1 AND b = 2) OR ...``.

    Raises
    ------
    click.BadParameter
        If the file cannot be read, has no rows, or a row misses a value.
    """
    if not os.path.isfile(path):
        raise click.BadParameter(f"{path!r} does not exist", param_hint="'--data-id-table'")
    with open(path, newline="") as stream:
        lines = [line for line in stream if not line.startswith("#")]  # ECSV header
    reader = csv.DictReader(lines, delimiter=" " if path.endswith(".ecsv") else ",")
    columns = [c.strip() for c in (reader.fieldnames or []) if c.strip()]
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if not columns or not rows:
        raise click.BadParameter(
            f"{path}: needs a header of dimension names and at least one row",
            param_hint="'--data-id-table'",
        )
    for number, row in enumerate(rows, start=2):
        missing = [c for c in columns if not row.get(c)]
        if missing:
            raise click.BadParameter(
                f"{path}:{number}: no value for {', '.join(missing)}",
                param_hint="'--data-id-table'",
            )
    if len(columns) == 1:
        values = sorted({row[columns[0]] for row in rows}, key=str)
        table = f"{columns[0]} IN ({', '.join(_literal(v) for v in values)})"
    else:
        terms = sorted(
            {" AND ".join(f"{c} = {_literal(row[c])}" for c in columns) for row in rows}
        )
        table = " OR ".join(f"({t})" for t in terms)
    return f"({where}) AND ({table})" if where else table


def run_extra_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-t``, ``--data-id-table``, ``-s/--save-pipeline``, ``--register-dataset-types``."""
    options = [
        click.option(
            "-t",
            "--task",
            "tasks",
            multiple=True,
            metavar="MODULE.CLASS[:LABEL]",
            help="Run these task classes (a pipeline made of them; instead of -p).",
        ),
        click.option(
            "--data-id-table",
            default=None,
            metavar="FILE",
            help="CSV/ECSV whose columns are dimensions: only these data IDs (AND -d).",
        ),
        click.option(
            "-s",
            "--save-pipeline",
            default=None,
            metavar="FILE",
            help="Write the expanded pipeline (with -c/-C applied) as YAML here.",
        ),
        click.option(
            "--register-dataset-types",
            is_flag=True,
            help="Accepted for LSST compatibility: dataset types are always registered.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: ``pipetask run --help`` headings and the options under each (by their long name).
RUN_HELP_SECTIONS: dict[str, tuple[str, ...]] = {
    "Pipeline": (
        "--pipeline", "--task", "--config", "--config-file", "--instrument", "--save-pipeline",
    ),
    "Data and collections": (
        "--butler-config", "--input", "--output", "--output-run", "--data-query",
        "--data-id-table", "--extend-run", "--resume", "--skip-existing", "--skip-existing-in",
        "--clobber-outputs", "--register-dataset-types",
    ),
    "Quantum graph": (
        "--qgraph", "--save-qgraph", "--qgraph-dot", "--qgraph-mermaid", "--show",
    ),
    "Execution": (
        "--processes", "--cluster", "--cluster-config", "--executor", "--retries",
        "--clustering", "--fail-fast", "--timeout", "--mock", "--mock-failure", "--pdb",
        "--debug", "--no-progress",
    ),
}  # fmt: skip

RUN_EXAMPLES = """Examples:

\b
  # run the default pipeline on two workers into a new run of u/me/run1
  pipetask run -b REPO -p pipelines.yaml -i SimCam/raw/all,refcats -o u/me/run1 -j 2
\b
  # only some data, and one config change
  pipetask run -b REPO -p pipelines.yaml -i SimCam/raw/all -o u/me/run2 \\
      -d "visit = 100 AND detector IN (0..4)" -c characterizeImage:psfIterations=1
\b
  # finish what did not (same output chain, same run)
  pipetask run -b REPO -p pipelines.yaml -o u/me/run1 --resume
\b
  # run a saved graph into its own run
  pipetask qgraph -b REPO -p pipelines.yaml -i SimCam/raw/all -o u/me/g --save-qgraph g.qgraph
  pipetask run -b REPO -g g.qgraph
"""


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists options under `RUN_HELP_SECTIONS` headings."""

    sections: dict[str, tuple[str, ...]] = RUN_HELP_SECTIONS

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the options grouped by section; any option not in a section under 'Other'."""
        records: dict[str, tuple[str, str]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            longs = [o for o in param.opts if o.startswith("--")]
            records[longs[0] if longs else param.opts[0]] = record
        placed: set[str] = set()
        for title, names in self.sections.items():
            rows = [records[n] for n in names if n in records]
            placed.update(n for n in names if n in records)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records.items() if name not in placed]
        if rest:
            with formatter.section("Other"):
                formatter.write_dl(rest)
