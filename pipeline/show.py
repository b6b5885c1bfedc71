"""``--show`` items of LSST's ``pipetask`` that describe a pipeline (not a quantum graph).

- ``config=LABEL::PATTERN``: the config fields of task LABEL whose dotted names match the glob
  PATTERN (case-insensitive), one ``LABEL.field: value`` line each;
- ``history=LABEL::FIELD``: every value FIELD of task LABEL took and where it was set;
- ``subsets``: the labeled subsets and their tasks;
- ``pipeline-graph``: each task in dependency order with the dataset types it reads and writes;
- ``task-graph``: each task and the tasks that read its outputs;
- ``inputs``: the dataset types the pipeline reads but no task writes (its overall inputs).

`show_item` prints one of them and returns False for an item it does not know.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import Any

import click

__all__ = ["PIPELINE_SHOW_ITEMS", "show_item"]

#: Items `show_item` knows (``config`` is shared with the plain ``config[=LABEL]`` form).
PIPELINE_SHOW_ITEMS = ("config", "history", "subsets", "pipeline-graph", "task-graph", "inputs")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def _task_config(pipeline: Any, label: str) -> Any:
    for task_def in pipeline.task_defs():
        if task_def.label == label:
            return task_def.config
    raise click.BadParameter(
        f"no task {label!r} (labels: {', '.join(pipeline.labels)})", param_hint="'--show'"
    )


def _split(arg: str, what: str) -> tuple[str, str]:
    label, sep, rest = arg.partition("::")
    if not sep or not label or not rest:
        raise click.BadParameter(f"use {what}=LABEL::{'FIELD' if what == 'history' else 'PATTERN'}",
                                 param_hint="'--show'")
    return label, rest


def show_item(pipeline: Any, item: str, arg: str, echo: Callable[[str], Any] = click.echo) -> bool:
    """Print ``--show item=arg`` for ``pipeline``; return False if ``item`` is not one of ours.

    ``config`` without ``::`` is left to the caller (the whole config), so False is returned.

    Raises
    ------
    click.BadParameter
        For an unknown task label or field, or a malformed argument.
    """
    if item == "config":
        if "::" not in arg:
            return False
        label, pattern = _split(arg, "config")
        flat: dict[str, Any] = {}
        _flatten("", _task_config(pipeline, label).toDict(), flat)
        matched = [k for k in flat if fnmatch.fnmatch(k.lower(), pattern.lower())]
        for key in matched:
            echo(f"{label}.{key}: {flat[key]!r}")
        if not matched:
            echo(f"(no config field of {label!r} matches {pattern!r})")
        return True
    if item == "history":
        label, field = _split(arg, "history")
        try:
            history = _task_config(pipeline, label).history[field]
        except (KeyError, AttributeError) as err:
            raise click.BadParameter(
                f"task {label!r} has no config field {field!r}", param_hint="'--show'"
            ) from err
        for value, where in history:
            echo(f"{label}.{field} = {value!r}  # {where}")
        return True
    if item == "subsets":
        for label, subset in pipeline.ir.subsets.items():
            text = f"{label}: {', '.join(subset.subset)}"
            echo(text + (f"  ({subset.description})" if subset.description else ""))
        return True
    if item in ("pipeline-graph", "task-graph", "inputs"):
        graph = pipeline.graph()
        if item == "inputs":
            for name, node in sorted(graph.overall_inputs.items()):
                echo(f"{name} ({', '.join(sorted(node.dimensions))}) [{node.storage_class}]")
        elif item == "task-graph":
            for label in graph.sorted_labels:
                readers = sorted(
                    {r for e in graph.tasks[label].outputs for r in graph.consumers_of(e.name)}
                )
                echo(f"{label} -> {', '.join(readers) if readers else '(nothing)'}")
        else:
            for label in graph.sorted_labels:
                task = graph.tasks[label]
                echo(f"{label} ({', '.join(sorted(task.dimensions))})")
                for edge in task.inputs:
                    echo(f"  <- {edge.name}")
                for edge in task.outputs:
                    echo(f"  -> {edge.name}")
        return True
    return False
