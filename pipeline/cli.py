"""The ``pipetask`` command line: build, qgraph, run, report (LSST's names and flags).

Collections follow LSST's convention (`pipeline.run_collections`): ``-o OUTPUT``
names a CHAINED collection whose first child is the RUN the outputs go to; a new
run (``OUTPUT/<timestamp>`` unless ``--output-run`` names it) is prepended, older
runs and the inputs stay behind it; ``--extend-run`` (or ``--resume``) reuses the
chain's current run; ``-g`` runs a saved graph into its own run. A run that could
not start leaves the collections as they were.

Exit codes: 0 success (including "nothing to do"), 1 some quanta failed or
were blocked, 2 the run could not start (bad pipeline, bad query, ...).
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from butler._errors import ButlerError
from butler.cli_logging import configure_logging, log_options

from ._errors import PipelineError
from .run_options import (
    RUN_EXAMPLES,
    SectionedCommand,
    data_id_table_where,
    pipeline_yaml_from_tasks,
    run_extra_options,
)
from .show import show_item

if TYPE_CHECKING:
    from butler import Butler

    from .definition.pipeline import Pipeline
    from .graph.quantum_graph import QuantumGraph
    from .run_collections import RunCollections

# The modules behind the commands (registry, SQLAlchemy, numpy, dask) are imported inside the
# commands that use them, so that ``pipetask --help`` starts in a fraction of a second.

__all__ = ["main"]

_LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT_START = 2


def _user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print user-facing errors as one message and exit 2 (could not start)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except (PipelineError, ButlerError, FileNotFoundError, FileExistsError) as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(EXIT_CANNOT_START)

    return wrapper


def _split(values: Iterable[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def _pipeline_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "-p",
            "--pipeline",
            "pipeline_path",
            help="Pipeline YAML, optionally file.yaml#label,subset.",
        ),
        click.option(
            "-c",
            "--config",
            "config_overrides",
            multiple=True,
            help="Config override label:field=value.",
        ),
        click.option(
            "-C",
            "--config-file",
            "config_files",
            multiple=True,
            help="Config file label:file.py|.yaml.",
        ),
        click.option("--instrument", default=None, help="Instrument (recorded in the pipeline)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _with_log_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(log_options("INFO")):
        func = option(func)
    return func


def _load_pipeline(
    pipeline_path: str | None,
    config_overrides: Iterable[str],
    config_files: Iterable[str],
    *,
    tasks: Sequence[str] = (),
) -> Pipeline:
    if tasks and pipeline_path:
        raise click.UsageError("give -p PIPELINE or -t TASK, not both")
    if not pipeline_path and not tasks:
        raise click.UsageError("a pipeline is needed: -p PIPELINE.yaml (or -t module.Class)")
    from .config import parseOverrideString
    from .definition.pipeline import Pipeline
    from .definition.pipeline_ir import PipelineIR

    # Inline ``python:`` blocks are read as text (``--show pipeline`` prints them) and refused,
    # naming their file and line, only when a command configures the tasks. The reader's
    # warnings (they name the pipeline file and line) are shown as one line each.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ir = (
                PipelineIR.from_string(pipeline_yaml_from_tasks(tasks), allow_python=True)
                if tasks
                else PipelineIR.from_file(pipeline_path, allow_python=True)
            )
        finally:
            for warning in caught:
                click.echo(f"Warning: {warning.message}", err=True)
    pipeline = Pipeline.from_ir(ir)
    for text in config_overrides:
        try:
            label, path, value = parseOverrideString(text)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="'-c/--config'") from err
        if label is None:
            raise click.BadParameter(
                f"{text!r} names no task: use -c LABEL:{text} "
                f"(labels: {', '.join(pipeline.labels)})",
                param_hint="'-c/--config'",
            )
        pipeline.add_config_override(label, path, value)
    for text in config_files:
        label, sep, path = text.partition(":")
        if not sep:
            raise click.BadParameter(f"-C takes label:file, got {text!r}")
        pipeline.add_config_file(label, path)
    return pipeline


# --show items that read the pipeline definition only: no task class is imported for them
_DEFINITION_ONLY_SHOW = ("pipeline", "steps")


def _show(pipeline: Pipeline, show: Iterable[str]) -> None:
    for what in show:
        item, _, arg = what.partition("=")
        if show_item(pipeline, item, arg):  # config=L::P, history, subsets, graphs, inputs
            continue
        if item == "pipeline":
            click.echo(pipeline.to_ir().to_yaml())
        elif item == "steps":
            ir = pipeline.ir
            for step in ir.steps:
                tasks = ", ".join(ir.expand_labels([step.label]))
                click.echo(f"{step.label} [{', '.join(step.dimensions)}]: {tasks}")
        elif item in ("config", "dump-config"):
            for task_def in pipeline.task_defs():
                if arg and task_def.label != arg.split(":")[0]:
                    continue
                click.echo(f"### Configuration for task `{task_def.label}'")
                click.echo(task_def.config.toYamlString())
        elif item == "tasks":
            for task_def in pipeline.task_defs():
                click.echo(f"{task_def.label}: {task_def.task_name}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_with_log_options
def main(log_levels: tuple[str, ...], long_log: bool, log_file: str | None) -> None:
    """Build and run pipelines of tasks over a data repository."""
    levels = configure_logging(log_levels, default="INFO", long_log=long_log, log_file=log_file)
    quiet = "warning" if levels[""] >= logging.INFO else "debug"
    click.get_current_context().meta[_DASK_LOGGING] = {
        "distributed": quiet,
        "distributed.client": "warning",
        "bokeh": "error",
        "tornado": "critical",
        "tornado.application": "error",
    }


#: Key of the dask logging levels in the click context's ``meta``: set by `main` and applied
#: (importing dask) only by a command that runs dask (`_configure_dask`).
_DASK_LOGGING = "pipetask.dask_logging"


def _configure_dask() -> None:
    """Apply `main`'s logging levels to dask (before distributed is imported: it reads them)."""
    import dask.config

    levels = click.get_current_context().meta.get(_DASK_LOGGING)
    if levels:
        dask.config.set({"logging": levels})


@main.command()
@_pipeline_options
@click.option(
    "--show",
    multiple=True,
    help="pipeline | steps | config[=LABEL[::PATTERN]] | history=LABEL::FIELD | dump-config | "
    "tasks | subsets | pipeline-graph | task-graph | inputs",
)
@click.option("-s", "--save-pipeline", default=None, help="Write the expanded pipeline YAML here.")
@click.option("--pipeline-dot", default=None, help="Write a GraphViz DOT file of the pipeline.")
@click.option("--pipeline-mermaid", default=None, help="Write a Mermaid file of the pipeline.")
@_user_errors
def build(
    pipeline_path: str | None,
    config_overrides: tuple[str, ...],
    config_files: tuple[str, ...],
    instrument: str | None,
    show: tuple[str, ...],
    save_pipeline: str | None,
    pipeline_dot: str | None,
    pipeline_mermaid: str | None,
) -> None:
    """Load and check a pipeline; show or save it.

    ``--show pipeline`` and ``--show steps`` alone read the definition without importing any
    task class; anything else also checks the task graph (classes, connections, step order).
    """
    pipeline = _load_pipeline(pipeline_path, config_overrides, config_files)
    definition_only = bool(show) and all(
        what.partition("=")[0] in _DEFINITION_ONLY_SHOW for what in show
    )
    if not (definition_only and not (save_pipeline or pipeline_dot or pipeline_mermaid)):
        pipeline.graph()  # imports the task classes, checks the task graph and the step order
    _show(pipeline, show)
    if save_pipeline:
        pipeline.write_to(save_pipeline)
    if pipeline_dot:
        with open(pipeline_dot, "w") as stream:
            stream.write(pipeline.to_dot())
    if pipeline_mermaid:
        with open(pipeline_mermaid, "w") as stream:
            stream.write(pipeline.to_mermaid())


def _graph_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-b", "--butler-config", "repo", required=True, help="Repository root."),
        click.option(
            "-i",
            "--input",
            "inputs",
            multiple=True,
            help="Input collections (comma-separated or repeated).",
        ),
        click.option("-o", "--output", default=None, help="Output CHAINED collection."),
        click.option("--output-run", default=None, help="Output RUN (default OUTPUT/<timestamp>)."),
        click.option(
            "-d",
            "--data-query",
            "where",
            default="",
            help="Data ID expression (the --where language).",
        ),
        click.option(
            "-g", "--qgraph", "qgraph_file", default=None, help="Load this saved quantum graph."
        ),
        click.option("--save-qgraph", default=None, help="Save the quantum graph here."),
        click.option("--qgraph-dot", default=None, help="Write a DOT file of the quantum graph."),
        click.option(
            "--qgraph-mermaid", default=None, help="Write a Mermaid file of the quantum graph."
        ),
        click.option(
            "--skip-existing-in",
            multiple=True,
            help="Skip quanta whose metadata exists in these collections.",
        ),
        click.option(
            "--skip-existing", is_flag=True, help="Skip quanta already done in the output run."
        ),
        click.option("--extend-run", is_flag=True, help="Add to the output chain's current run."),
        click.option(
            "--clobber-outputs",
            is_flag=True,
            help="Replace outputs of unfinished quanta and changed configs.",
        ),
        click.option(
            "--show",
            multiple=True,
            help="graph | workflow | uri, and the pipeline items of 'pipetask build --show' "
            "(config=LABEL::PATTERN, history=LABEL::FIELD, subsets, pipeline-graph, ...)",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _make_graph(
    butler: Butler,
    pipeline: Pipeline | None,
    *,
    inputs: list[str],
    output_run: str,
    where: str,
    qgraph_file: str | None,
    skip_existing_in: list[str],
) -> QuantumGraph:
    from .graph.builder import build_quantum_graph, collect_existing_types
    from .graph.quantum_graph import QuantumGraph

    if qgraph_file:
        return QuantumGraph.load(qgraph_file)
    if pipeline is None:
        raise click.UsageError("need -p PIPELINE or -g QGRAPH")
    if not inputs:
        raise click.UsageError("input collections are needed: -i COLLECTION[,...]")
    task_defs = pipeline.task_defs()
    names = {c.name for td in task_defs for c in _connections(td)}
    existing = collect_existing_types(butler, names)
    graph = pipeline.graph(existing_dataset_types=existing)
    return build_quantum_graph(
        butler,
        graph,
        input_collections=inputs,
        output_run=output_run,
        where=where,
        skip_existing_in=skip_existing_in,
        metadata={"command": " ".join(sys.argv)},
    )


def _resolve_and_build(
    butler: Butler,
    pipeline: Pipeline | None,
    *,
    inputs: Iterable[str],
    output: str | None,
    output_run: str | None,
    extend_run: bool,
    skip_existing_in: Iterable[str],
    skip_existing: bool,
    where: str,
    qgraph_file: str | None,
    check_configs: bool,
) -> tuple[QuantumGraph, RunCollections]:
    """Resolve the collections of a run and build (or load) its quantum graph.

    With ``qgraph_file`` the saved graph decides the run and the inputs (see
    `pipeline.run_collections`).

    Raises
    ------
    ConfigMismatchError
        If ``check_configs`` and the output run was made with different task configs.
    NothingToDoError
        If every quantum already finished.
    EmptyGraphError
        If nothing is selected.
    """
    from .execution.config_check import (
        ConfigMismatchError,
        check_run_configs,
        format_differences,
    )
    from .graph.quantum_graph import QuantumGraph
    from .run_collections import resolve_run_collections

    graph = QuantumGraph.load(qgraph_file) if qgraph_file else None
    collections = resolve_run_collections(
        butler.registry,
        inputs=_split(inputs),
        output=output,
        output_run=output_run,
        extend_run=extend_run,
        graph=graph,
    )
    if graph is not None:
        return graph, collections
    run = collections.run
    skip_in = _split(skip_existing_in) + ([run] if skip_existing else [])
    if pipeline is not None:
        configs = {td.label: td.config for td in pipeline.task_defs()}
        differences = check_run_configs(butler, run, configs)
        if differences and check_configs:
            raise ConfigMismatchError(format_differences(run, differences))
        if differences:  # clobbered: what the old configs made runs again, so keep it all
            skip_in = _split(skip_existing_in)
    graph = _make_graph(
        butler,
        pipeline,
        inputs=list(collections.inputs),
        output_run=run,
        where=where,
        qgraph_file=None,
        skip_existing_in=skip_in,
    )
    return graph, collections


def _connections(task_def: Any) -> list[Any]:
    conns = task_def.connections
    names = [
        *conns.inputs,
        *conns.prerequisiteInputs,
        *conns.outputs,
        *conns.initInputs,
        *conns.initOutputs,
    ]
    return [getattr(conns, n) for n in names]


_GRAPH_SHOW = ("graph", "workflow", "uri")


def _show_graph(butler: Butler, qgraph: QuantumGraph, show: Iterable[str]) -> None:
    for item in show:
        if item == "graph":
            for label in qgraph.tasks:
                click.echo(f"{label}: {qgraph.count(label)} quanta")
                for quantum in qgraph.iter_quanta(label):
                    ins = ", ".join(f"{k}={len(v)}" for k, v in quantum.inputs.items())
                    click.echo(f"  node {quantum.node_id} {quantum.data_id} inputs: {ins}")
        elif item == "workflow":
            for node in qgraph.node_ids():
                for pred in qgraph.predecessors(node):
                    click.echo(f"{pred} -> {node}")
        elif item == "uri":
            store = butler.datastore
            for quantum in qgraph.iter_quanta():
                for ref in quantum.all_outputs():
                    click.echo(
                        f"{ref.dataset_type.name} {ref.data_id}: {store.uri(store.predict(ref))}"
                    )


def _write_graph_files(
    qgraph: QuantumGraph, save: str | None, dot: str | None, mermaid: str | None
) -> None:
    if save:
        qgraph.save(save)
        click.echo(f"Saved quantum graph ({len(qgraph)} quanta) to {save}")
    if dot or mermaid:
        lines_dot = ["digraph qgraph {"]
        lines_mm = ["flowchart TD"]
        for node in qgraph.node_ids():
            label = f"{qgraph.task_label_of(node)} {dict(qgraph.data_id(node).required)}"
            lines_dot.append(f'  n{node} [label="{label}"];')
            lines_mm.append(f'  n{node}["{label}"]')
            for pred in qgraph.predecessors(node):
                lines_dot.append(f"  n{pred} -> n{node};")
                lines_mm.append(f"  n{pred} --> n{node}")
        lines_dot.append("}")
        if dot:
            with open(dot, "w") as stream:
                stream.write("\n".join(lines_dot) + "\n")
        if mermaid:
            with open(mermaid, "w") as stream:
                stream.write("\n".join(lines_mm) + "\n")


def _mock_options(func: Any) -> Any:
    """Add ``--mock`` and ``--mock-failure`` (LSST's names) to a command."""
    func = click.option(
        "--mock-failure",
        "mock_failures",
        multiple=True,
        callback=lambda ctx, param, value: _parse_mock_failures(value),
        metavar="LABEL:WHERE:EXCEPTION",
        help="With --mock: quanta of LABEL whose data ID matches WHERE raise EXCEPTION "
        "(default ValueError). Repeatable.",
    )(func)
    return click.option(
        "--mock",
        is_flag=True,
        help="Mock tasks that read the inputs and write placeholders (_mock_ dataset types "
        "and labels): tests the pipeline's wiring without its science.",
    )(func)


def _mocked(pipeline: Pipeline | None, mock: bool, failures: tuple[Any, ...]) -> Pipeline | None:
    """Return the mock of ``pipeline`` with ``--mock``, else ``pipeline``."""
    if failures and not mock:
        raise click.UsageError("--mock-failure needs --mock")
    if pipeline is None or not mock:
        return pipeline
    from .definition.mock import mock_pipeline

    return mock_pipeline(pipeline, failures)


@main.command()
@_pipeline_options
@run_extra_options
@_graph_options
@_mock_options
@_user_errors
def qgraph(
    pipeline_path: str | None,
    config_overrides: tuple[str, ...],
    config_files: tuple[str, ...],
    instrument: str | None,
    tasks: tuple[str, ...],
    data_id_table: str | None,
    save_pipeline: str | None,
    register_dataset_types: bool,
    repo: str,
    inputs: tuple[str, ...],
    output: str | None,
    output_run: str | None,
    where: str,
    qgraph_file: str | None,
    save_qgraph: str | None,
    qgraph_dot: str | None,
    qgraph_mermaid: str | None,
    skip_existing_in: tuple[str, ...],
    skip_existing: bool,
    extend_run: bool,
    clobber_outputs: bool,
    show: tuple[str, ...],
    mock: bool,
    mock_failures: tuple[Any, ...],
) -> None:
    """Build a quantum graph (and save or show it)."""
    from butler import Butler

    from .graph.builder import NothingToDoError

    butler = Butler(repo, writeable=False)
    pipeline, where = _pipeline_and_where(
        pipeline_path, config_overrides, config_files, tasks, data_id_table, save_pipeline, where
    )
    pipeline = _mocked(pipeline, mock, mock_failures)
    try:
        graph, collections = _resolve_and_build(
            butler,
            pipeline,
            inputs=inputs,
            output=output,
            output_run=output_run,
            extend_run=extend_run,
            skip_existing_in=skip_existing_in,
            skip_existing=skip_existing,
            where=where,
            qgraph_file=qgraph_file,
            check_configs=False,
        )
    except NothingToDoError as err:
        click.echo(f"Nothing to do: {err}")
        sys.exit(EXIT_OK)
    counts = ", ".join(f"{label}: {graph.count(label)}" for label in graph.tasks)
    click.echo(
        f"Quantum graph with {len(graph)} quanta ({counts}) for run {collections.run}"
    )
    if pipeline is not None:
        _show(pipeline, [item for item in show if item.partition("=")[0] not in _GRAPH_SHOW])
    _show_graph(butler, graph, show)
    _write_graph_files(graph, save_qgraph, qgraph_dot, qgraph_mermaid)


@main.command(cls=SectionedCommand, epilog=RUN_EXAMPLES)
@_pipeline_options
@run_extra_options
@_graph_options
@click.option(
    "-j",
    "--processes",
    "jobs",
    type=int,
    default=1,
    show_default=True,
    help="Processes: 1 runs the quanta in this one, N > 1 on a local dask cluster of N workers.",
)
@click.option(
    "--cluster",
    "cluster_address",
    default=None,
    callback=lambda ctx, param, value: _check_cluster_address(value),
    help="Address of a running dask scheduler (tcp://host:8786) or its scheduler file.",
)
@click.option(
    "--cluster-config",
    default=None,
    callback=lambda ctx, param, value: _check_cluster_config(value),
    help="Cluster spec YAML, or a shipped one by name (local, slurm, kubernetes; see cluster/).",
)
@click.option(
    "--executor",
    type=click.Choice(["auto", "dask", "pool", "sync"]),
    default="auto",
    show_default=True,
    help="auto: in this process for -j 1 (as LSST's pipetask); -j N on this machine: a pool of "
    "N processes; dask with --cluster/--cluster-config. dask -j N: a local dask cluster "
    "(its dashboard).",
)
@click.option(
    "--retries", type=int, default=0, show_default=True, help="Retries of quanta that raise."
)
@click.option(
    "--clustering",
    type=click.Choice(["off", "chains", "per-task"]),
    default="chains",
    show_default=True,
)
@click.option("--resume", is_flag=True, help="Same as --extend-run --skip-existing.")
@click.option(
    "--fail-fast",
    is_flag=True,
    help="Stop at the first failed quantum (what finished is kept; exit code 1).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds one quantum may run; a longer one fails (task and data ID named), "
    "the others go on, exit code 1.",
)
@click.option(
    "--cluster-start-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    envvar="SKYQUANTA_CLUSTER_START_TIMEOUT",
    show_envvar=True,
    help="Seconds the local processes of -j N may take to start (default 60); "
    "longer: one line, exit code 2.",
)
@_mock_options
@click.option("--pdb", is_flag=True, help="Post-mortem debugger on failure (sync executor).")
@click.option("--debug", is_flag=True, help="Switch on every task's debug stages (pictures).")
@click.option(
    "--no-progress",
    is_flag=True,
    help="No live progress (table or lines); the summary and failures are still printed.",
)
@click.option(
    "--registry-timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds a registration waits for a registry another process keeps busy.",
)
@_user_errors
def run(
    pipeline_path: str | None,
    config_overrides: tuple[str, ...],
    config_files: tuple[str, ...],
    instrument: str | None,
    tasks: tuple[str, ...],
    data_id_table: str | None,
    save_pipeline: str | None,
    register_dataset_types: bool,
    repo: str,
    inputs: tuple[str, ...],
    output: str | None,
    output_run: str | None,
    where: str,
    qgraph_file: str | None,
    save_qgraph: str | None,
    qgraph_dot: str | None,
    qgraph_mermaid: str | None,
    skip_existing_in: tuple[str, ...],
    skip_existing: bool,
    extend_run: bool,
    clobber_outputs: bool,
    show: tuple[str, ...],
    jobs: int,
    cluster_address: str | None,
    cluster_config: str | None,
    executor: str,
    retries: int,
    clustering: str,
    resume: bool,
    fail_fast: bool,
    timeout: float | None,
    cluster_start_timeout: float | None,
    mock: bool,
    mock_failures: tuple[Any, ...],
    pdb: bool,
    debug: bool,
    no_progress: bool,
    registry_timeout: float,
) -> None:
    """Build (or load) a quantum graph and execute it."""
    from .execution.local_workers import start_worker_server

    # before the imports below: a local cluster's worker server imports on another core
    start_worker_server(executor, jobs, cluster_address, cluster_config, pdb)

    from butler import Butler

    from .execution.run import close_started, execute_graph, executor_kind, start_executor
    from .graph.builder import NothingToDoError

    if jobs < 1 and executor != "sync" and not (cluster_address or cluster_config):
        click.echo(f"Error: -j/--processes must be at least 1, got {jobs}", err=True)
        sys.exit(EXIT_CANNOT_START)
    if executor == "pool" and (cluster_address or cluster_config):
        message = "--executor pool runs on this machine: it takes no --cluster/--cluster-config"
        click.echo(f"Error: {message}", err=True)
        sys.exit(EXIT_CANNOT_START)

    if resume:
        extend_run = skip_existing = True
    if qgraph_file:
        _refuse_with_graph(
            {
                "-p/--pipeline": pipeline_path,
                "-t/--task": tasks,
                "--data-id-table": data_id_table,
                "-c/--config": config_overrides,
                "-C/--config-file": config_files,
                "-i/--input": inputs,
                "-d/--data-query": where,
                "--skip-existing-in": skip_existing_in,
                "--debug": debug,
                "--mock": mock,
            }
        )
    started = None
    kind = executor_kind(executor, jobs, cluster_address, cluster_config, pdb)
    if kind == "dask":
        _configure_dask()
    if kind in ("dask", "pool") and not (cluster_address or cluster_config):
        # (those may set signal handlers: started in the main thread, by execute_graph)
        # a local cluster starts (processes, imports) while the butler opens and the graph is
        # built; it is closed however the command ends (graph errors, nothing to do, sys.exit)
        started = start_executor(
            executor, jobs, cluster_address, cluster_config, pdb, cluster_start_timeout
        )
        click.get_current_context().call_on_close(functools.partial(close_started, started))
    butler = Butler(repo)
    pipeline, where = _pipeline_and_where(
        pipeline_path, config_overrides, config_files, tasks, data_id_table, save_pipeline, where
    )
    if pipeline is not None and debug:
        # tasks with debug pictures declare a ``debugStages`` list field; "all" switches on each
        for label in pipeline.labels:
            if _has_field(pipeline, label, "debugStages"):
                pipeline.add_config_override(label, "debugStages", "[all]")
    pipeline = _mocked(pipeline, mock, mock_failures)
    try:
        graph, collections = _resolve_and_build(
            butler,
            pipeline,
            inputs=inputs,
            output=output,
            output_run=output_run,
            extend_run=extend_run,
            skip_existing_in=skip_existing_in,
            skip_existing=skip_existing,
            where=where,
            qgraph_file=qgraph_file,
            check_configs=not clobber_outputs,
        )
    except NothingToDoError as err:
        click.echo(f"Nothing to do: {err}")
        sys.exit(EXIT_OK)
    if pipeline is not None:
        _show(pipeline, [item for item in show if item.partition("=")[0] not in _GRAPH_SHOW])
    _show_graph(butler, graph, show)
    _write_graph_files(graph, save_qgraph, qgraph_dot, qgraph_mermaid)
    collections.apply(butler.registry)
    summary = execute_graph(
        butler,
        graph,
        executor=started or executor,
        jobs=jobs,
        cluster_address=cluster_address,
        cluster_config=cluster_config,
        retries=retries,
        clustering=clustering,
        skip_existing=skip_existing or extend_run,
        clobber_outputs=clobber_outputs,
        extend_run=extend_run,
        progress=not no_progress,
        pdb=pdb,
        registry_timeout=registry_timeout,
        resume_command=_resume_command(graph.output_run),
        fail_fast=fail_fast,
        timeout=timeout or 0.0,
        start_timeout_seconds=cluster_start_timeout,
    )
    if summary.exit_code == EXIT_CANNOT_START:  # leave the repository as it was
        try:
            collections.undo(butler)
        except Exception as err:  # e.g. the registry's disk is full: say so, no traceback
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            click.echo(f"Warning: could not take back the run and chain: {first}", err=True)
    sys.exit(summary.exit_code)


def _parse_mock_failures(values: tuple[str, ...]) -> tuple[Any, ...]:
    """Parse each ``--mock-failure LABEL:WHERE:EXCEPTION`` (a bad one is a usage error)."""
    from .definition.mock import MockFailure

    try:
        return tuple(MockFailure.parse(value) for value in values)
    except Exception as err:
        raise click.BadParameter(str(err).splitlines()[0], param_hint="--mock-failure") from err


def _pipeline_and_where(
    pipeline_path: str | None,
    config_overrides: Iterable[str],
    config_files: Iterable[str],
    tasks: Sequence[str],
    data_id_table: str | None,
    save_pipeline: str | None,
    where: str,
) -> tuple[Pipeline | None, str]:
    """Load the pipeline (-p or -t), save it (-s), and add --data-id-table to the where."""
    pipeline = None
    if pipeline_path or tasks:
        pipeline = _load_pipeline(pipeline_path, config_overrides, config_files, tasks=tasks)
        if save_pipeline:
            pipeline.write_to(save_pipeline)
    if data_id_table:
        where = data_id_table_where(data_id_table, where)
    return pipeline, where


def _refuse_with_graph(given: dict[str, Any]) -> None:
    """Refuse options that build a graph when ``-g`` gives one (LSST's rule)."""
    used = [flag for flag, value in given.items() if value]
    if used:
        raise click.UsageError(
            f"-g/--qgraph runs a saved graph as it is: drop {', '.join(used)} (they only apply "
            "when building a graph)"
        )


def _check_cluster_config(value: str | None) -> str | None:
    """Refuse a ``--cluster-config`` that is neither a file nor a shipped spec's name."""
    import os

    from cluster import SPEC_DIR

    if value is None or os.path.isfile(value) or (SPEC_DIR / f"{value}.yaml").is_file():
        return value
    shipped = ", ".join(sorted(p.stem for p in SPEC_DIR.glob("*.yaml")))
    raise click.BadParameter(
        f"{value!r}: no such file, nor a shipped cluster spec ({shipped})",
        param_hint="'--cluster-config'",
    )


def _check_cluster_address(value: str | None) -> str | None:
    """Refuse a ``--cluster`` value that is neither an address nor an existing scheduler file."""
    import os

    if value is None or "://" in value or os.path.isfile(value):
        return value
    raise click.BadParameter(
        f"{value!r} is neither a scheduler address (e.g. tcp://host:8786) nor an existing "
        "scheduler file; for a cluster spec YAML use --cluster-config",
        param_hint="'--cluster'",
    )


def _resume_command(run_name: str) -> str:
    """Return this command line changed to resume ``run_name`` (``--output-run RUN --resume``)."""
    import shlex

    args, words = sys.argv[1:], []
    skip_value = {"--output-run"}
    flags = {"--resume", "--extend-run", "--skip-existing"}
    i = 0
    while i < len(args):
        word = args[i]
        if word in skip_value:
            i += 2
            continue
        if word in flags or word.startswith("--output-run="):
            i += 1
            continue
        words.append(word)
        i += 1
    return shlex.join(["pipetask", *words, "--output-run", run_name, "--resume"])


def _has_field(pipeline: Pipeline, label: str, field: str) -> bool:
    for task_def in pipeline.task_defs():
        if task_def.label == label:
            try:
                task_def.config.getByPath(field)
                return True
            except (AttributeError, KeyError):
                return False
    return False


@main.command()
@click.option("-b", "--butler-config", "repo", default=None, help="Repository root.")
@click.argument("args", nargs=-1, metavar="[REPO] OUTPUT")
@click.option(
    "--full-output-filename",
    default=None,
    help="Write the full report as YAML or JSON (by extension).",
)
@click.option(
    "--html",
    "html_file",
    default=None,
    metavar="FILE",
    help="Write a self-contained HTML page: counts, time/memory plots, failures, pictures.",
)
@_user_errors
def report(
    repo: str | None,
    args: tuple[str, ...],
    full_output_filename: str | None,
    html_file: str | None,
) -> None:
    """Summarize what a run did: pipetask report REPO OUTPUT (or -b REPO OUTPUT).

    REPO is the repository root; OUTPUT the output collection (CHAINED) or RUN of the run.
    """
    from butler import Butler

    from .execution.report import make_report

    args_list = list(args)
    if repo is None:
        if len(args_list) != 2:
            raise click.UsageError("usage: pipetask report REPO OUTPUT")
        repo = args_list.pop(0)
    if len(args_list) != 1:
        raise click.UsageError("usage: pipetask report -b REPO OUTPUT")
    butler = Butler(repo, writeable=False)
    result = make_report(butler, args_list[0])
    from rich.console import Console

    Console(width=200).print(result.table())
    for label, errors in result.errors.items():
        for error in errors:
            ids = ", ".join(str(d) for d in error["data_ids"][:10])
            more = f" (+{len(error['data_ids']) - 10} more)" if len(error["data_ids"]) > 10 else ""
            click.echo(f"{label}: {len(error['data_ids'])} failed with: {error['error']}")
            click.echo(f"    data IDs: {ids}{more}")
    if full_output_filename:
        text = result.to_json() if full_output_filename.endswith(".json") else result.to_yaml()
        with open(full_output_filename, "w") as stream:
            stream.write(text)
    if html_file:
        from .execution.report_html import write_html_report

        click.echo(f"Wrote {write_html_report(butler, args_list[0], result, html_file)}")


if __name__ == "__main__":  # pragma: no cover
    main()
