"""The ``butler`` command line, with LSST's command names and flags.

Other packages add subcommands through the ``skyquanta.butler_commands``
entry-point group (each entry point is a `click.Command`); that is how
``register-instrument``, ``ingest-raws``, ``ingest-refcat`` and ``simulate``
come from `imaging` without the butler knowing any astronomy.

Errors the user can fix are printed as one clear message, never as a
traceback: bad input (a where-expression or bind value that cannot be used, a
name that breaks the naming rule) exits with status 2, like click's usage
errors; anything else the user can fix (unknown collection, missing file...)
with status 1.
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata
import io
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from ._errors import ButlerError, InvalidNameError
from .cli_commands import add_commands, find_datasets
from .cli_logging import configure_logging, log_options
from .data_coordinate import DataCoordinate
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .interrupts import Interrupted, StopRequest, catch_signals, stops_between_steps

# The Butler, the registry (SQLAlchemy) and rich are imported inside the commands that use
# them, so that ``butler --help`` starts in a fraction of a second.

__all__ = ["main", "print_rows", "butler_errors"]

_COMMAND_ENTRY_POINTS = "skyquanta.butler_commands"


def _is_bad_input(err: BaseException) -> bool:
    """Whether an error means the command line itself is wrong (exit status 2)."""
    if isinstance(err, InvalidNameError):
        return True
    from .expressions import ExpressionSyntaxError, ExpressionTypeError, UnknownNameError

    return isinstance(err, ExpressionSyntaxError | ExpressionTypeError | UnknownNameError)


def butler_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-facing errors into a one-line message and exit status 2 (bad input) or 1.

    A stop signal ends the command with ``128 + signum`` (130 for Ctrl-C, 143 for SIGTERM):
    `~butler.interrupts.Interrupted` from a command that writes (`stops_between_steps`),
    `KeyboardInterrupt` from one that only reads.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Interrupted as err:
            click.echo(
                f"Interrupted by {err.name}: stopped between two steps, nothing half-written "
                "(run the command again to finish what it did not do)",
                err=True,
            )
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted by SIGINT", err=True)
            sys.exit(130)
        except (ButlerError, FileExistsError, FileNotFoundError, ValueError, LookupError) as err:
            if isinstance(err, click.ClickException):
                raise
            message = str(err)
            click.echo(f"Error: {message}", err=True)
            sys.exit(2 if _is_bad_input(err) else 1)

    return wrapper


def print_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, fmt: str, title: str = ""
) -> None:
    """Print rows as a rich table, JSON (list of objects) or CSV."""
    rows = [list(r) for r in rows]
    if fmt == "json":
        click.echo(
            json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=1, default=str)
        )
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")  # not csv's default \r\n
        writer.writerow(columns)
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(width=200).print(table)


_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
_where_option = click.option(
    "--where", default="", help='Data ID expression, e.g. "visit IN (1..10) AND detector = 4".'
)
_collections_option = click.option(
    "--collections",
    multiple=True,
    help="Collections to search, in order (repeatable or comma-separated).",
)


def _split(values: Iterable[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def _bind(values: Iterable[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"--bind takes NAME=VALUE, got {item!r}")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result


_bind_option = click.option(
    "--bind", multiple=True, help="Bind value for --where, NAME=VALUE (JSON or text)."
)


class _ButlerGroup(click.Group):
    """A click group that also lists the commands plug-ins provide."""

    def _plugins(self) -> dict[str, click.Command]:
        commands = {}
        for ep in importlib.metadata.entry_points(group=_COMMAND_ENTRY_POINTS):
            try:
                commands[ep.name] = ep.load()
            except Exception as err:  # a broken plug-in must not break the CLI
                logging.getLogger(__name__).warning("butler command plug-in %s: %s", ep.name, err)
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        return command if command is not None else self._plugins().get(cmd_name)


def _with_log_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(log_options("WARNING")):
        func = option(func)
    return func


@click.group(cls=_ButlerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@_with_log_options
def main(log_levels: tuple[str, ...], long_log: bool, log_file: str | None) -> None:
    """Manage a skyquanta data repository."""
    configure_logging(log_levels, default="WARNING", long_log=long_log, log_file=log_file)


@main.command()
@click.argument("repo")
@click.option(
    "--dimension-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Dimension universe YAML (default: the shipped one).",
)
@click.option(
    "--db",
    "registry_url",
    default=None,
    help="SQLAlchemy URL of the registry (default: SQLite in REPO).",
)
@click.option("--override", is_flag=True, help="Allow overwriting an existing butler.yaml.")
@click.option(
    "--datastore-root",
    default=None,
    help="Where the files go: a folder or fsspec URL (default: REPO itself).",
)
@click.option(
    "--storage-option",
    "storage_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec option of the datastore's filesystem, e.g. endpoint_url=http://host:9000, "
    "profile=NAME, anon=true (repeatable; never credentials: those come from the environment).",
)
@click.option(
    "--checksums",
    is_flag=True,
    help="Record a checksum (xxh3-128) of every file when it is stored and verify it when it "
    "is read; sizes are recorded and checked always.",
)
@butler_errors
@stops_between_steps
def create(
    repo: str,
    dimension_config: str | None,
    registry_url: str | None,
    override: bool,
    datastore_root: str | None,
    storage_options: tuple[str, ...],
    checksums: bool,
) -> None:
    """Create an empty repository at REPO (a folder, or a URL such as s3://bucket/repo)."""
    from .butler import Butler
    from .dimensions import DimensionUniverse
    from .repo_config import redact_url

    universe = DimensionUniverse.from_file(dimension_config) if dimension_config else None
    options = _storage_options(storage_options)
    Butler.create(
        repo,
        universe=universe,
        registry_url=registry_url,
        overwrite=override,
        datastore_root=datastore_root,
        storage_options=options,
        checksums=checksums,
    )
    click.echo(f"Created repository at {repo}{' (with checksums)' if checksums else ''}")
    if registry_url and redact_url(registry_url) != registry_url:
        click.echo(
            "Note: the database password was not stored in butler.yaml; give it to later "
            "commands through PGPASSWORD, ~/.pgpass or the db-auth file",
            err=True,
        )


def _storage_options(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``--storage-option KEY=VALUE`` items (values as YAML scalars: true, 3, text)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(
                f"takes KEY=VALUE, got {item!r}", param_hint="'--storage-option'"
            )
        parsed = yaml.safe_load(value) if value else ""
        options[key] = parsed if isinstance(parsed, (bool, int, float)) else value
    return options


@main.command("register-dataset-type")
@click.argument("repo")
@click.argument("name")
@click.argument("storage_class")
@click.argument("dimensions", nargs=-1)
@butler_errors
@stops_between_steps
def register_dataset_type(
    repo: str, name: str, storage_class: str, dimensions: tuple[str, ...]
) -> None:
    """Register dataset type NAME with STORAGE_CLASS and DIMENSIONS."""
    from .butler import Butler

    butler = Butler(repo)
    if storage_class not in butler.storage_classes:
        raise ButlerError(
            f"unknown storage class {storage_class!r} (known: {', '.join(butler.storage_classes)})"
        )
    dtype = DatasetType.make(name, dimensions, storage_class, butler.universe)
    inserted = butler.registry.register_dataset_type(dtype)
    click.echo(f"{'Registered' if inserted else 'Already registered'}: {dtype.describe()}")


@main.command("query-dataset-types")
@click.argument("repo")
@click.argument("pattern", required=False)
@_format_option
@butler_errors
def query_dataset_types(repo: str, pattern: str | None, fmt: str) -> None:
    """List dataset types (optionally matching a glob PATTERN)."""
    from .butler import Butler

    butler = Butler(repo, writeable=False)
    rows = [
        (d.name, " ".join(d.dimensions.required), d.storage_class)
        for d in butler.registry.query_dataset_types(pattern)
    ]
    print_rows(["name", "dimensions", "storageClass"], rows, fmt=fmt)


@main.command("query-collections")
@click.argument("repo")
@click.argument("pattern", required=False)
@click.option("--chains", type=click.Choice(["table", "flatten"]), default="table")
@_format_option
@butler_errors
def query_collections(repo: str, pattern: str | None, chains: str, fmt: str) -> None:
    """List collections, their types and chain definitions."""
    from .butler import Butler
    from .registry import CollectionType

    butler = Butler(repo, writeable=False)
    rows = []
    for name, ctype in butler.registry.query_collections(
        pattern, flatten_chains=chains == "flatten"
    ):
        definition = ""
        if ctype is CollectionType.CHAINED:
            definition = ", ".join(butler.registry.get_collection_chain(name))
        rows.append((name, ctype.name, definition))
    print_rows(["Name", "Type", "Children"], rows, fmt=fmt)


def _ref_rows(
    refs: Iterable[DatasetRef], *, with_uri: Callable[[DatasetRef], str] | None = None
) -> tuple[list[str], list[list[Any]]]:
    refs = list(refs)
    dims: list[str] = []
    for ref in refs:
        for d in ref.data_id.group.required:
            if d not in dims:
                dims.append(d)
    columns = ["type", "run", "id", *dims] + (["URI"] if with_uri else [])
    rows = []
    for ref in refs:
        full = ref.data_id.required
        row = [ref.dataset_type.name, ref.run, str(ref.id), *(full.get(d, "") for d in dims)]
        if with_uri:
            row.append(with_uri(ref))
        rows.append(row)
    return columns, rows


@main.command("query-datasets")
@click.argument("repo")
@click.argument("dataset_type", nargs=-1)
@_collections_option
@_where_option
@_bind_option
@click.option(
    "--find-first/--no-find-first",
    default=False,
    help="Only the first match in the collections' order.",
)
@click.option("--show-uri", is_flag=True, help="Also print each dataset's file URI.")
@_format_option
@butler_errors
def query_datasets(
    repo: str,
    dataset_type: tuple[str, ...],
    collections: tuple[str, ...],
    where: str,
    bind: tuple[str, ...],
    find_first: bool,
    show_uri: bool,
    fmt: str,
) -> None:
    """List datasets of DATASET_TYPE(s) (all types if none given)."""
    from .butler import Butler
    from .expressions import UnknownNameError
    from .registry import CollectionType

    butler = Butler(repo, writeable=False)
    colls = _split(collections) or [
        n for n, t in butler.registry.query_collections(types=[CollectionType.RUN])
    ]
    names = list(dataset_type) or [d.name for d in butler.registry.query_dataset_types()]
    refs: list[DatasetRef] = []
    for name in names:
        try:
            found = butler.query_datasets(
                name, collections=colls, where=where, bind=_bind(bind), find_first=find_first
            )
        except UnknownNameError:
            if dataset_type:  # asked for by name: the user must hear why it cannot work
                raise
            continue  # listing every type: skip those the expression cannot apply to
        refs.extend(found)
    columns, rows = _ref_rows(refs, with_uri=butler.get_uri if show_uri else None)
    print_rows(columns, rows, fmt=fmt)


@main.command("query-data-ids")
@click.argument("repo")
@click.argument("dimensions", nargs=-1, required=True)
@_collections_option
@click.option(
    "--datasets", multiple=True, help="Only data IDs for which these dataset types exist."
)
@_where_option
@_bind_option
@_format_option
@butler_errors
def query_data_ids(
    repo: str,
    dimensions: tuple[str, ...],
    collections: tuple[str, ...],
    datasets: tuple[str, ...],
    where: str,
    bind: tuple[str, ...],
    fmt: str,
) -> None:
    """List data IDs of DIMENSIONS matching --where."""
    from .butler import Butler

    butler = Butler(repo, writeable=False)
    data_ids = butler.query_data_ids(
        dimensions,
        where=where,
        bind=_bind(bind),
        datasets=_split(datasets),
        collections=_split(collections) or None,
    )
    columns = (
        list(data_ids[0].group.required)
        if data_ids
        else list(butler.universe.group(dimensions).required)
    )
    print_rows(columns, [list(d.values_tuple) for d in data_ids], fmt=fmt)


@main.command("query-dimension-records")
@click.argument("repo")
@click.argument("element")
@_where_option
@_bind_option
@_format_option
@butler_errors
def query_dimension_records(
    repo: str, element: str, where: str, bind: tuple[str, ...], fmt: str
) -> None:
    """List the records of dimension ELEMENT."""
    from .butler import Butler

    butler = Butler(repo, writeable=False)
    records = butler.query_dimension_records(element, where=where, bind=_bind(bind))
    columns = list(records[0]) if records else []
    print_rows(columns, [[r[c] for c in columns] for r in records], fmt=fmt)


@main.command("collection-chain")
@click.argument("repo")
@click.argument("parent")
@click.argument("children", nargs=-1)
@click.option(
    "--mode", type=click.Choice(["redefine", "extend", "prepend", "remove"]), default="redefine"
)
@butler_errors
@stops_between_steps
def collection_chain(repo: str, parent: str, children: tuple[str, ...], mode: str) -> None:
    """Define or change the CHAINED collection PARENT."""
    from .butler import Butler
    from .registry import CollectionType

    butler = Butler(repo)
    registry = butler.registry
    registry.register_collection(parent, CollectionType.CHAINED)
    current = list(registry.get_collection_chain(parent))
    new = _split(children)
    if mode == "extend":
        new = current + [c for c in new if c not in current]
    elif mode == "prepend":
        new = new + [c for c in current if c not in new]
    elif mode == "remove":
        new = [c for c in current if c not in new]
    registry.set_collection_chain(parent, new)
    click.echo(f"[{', '.join(new)}]")


@main.command("remove-runs")
@click.argument("repo")
@click.argument("runs", nargs=-1, required=True)
@click.option("--no-confirm", is_flag=True, help="Do not ask for confirmation.")
@butler_errors
def remove_runs(repo: str, runs: tuple[str, ...], no_confirm: bool) -> None:
    """Remove RUN collections with their datasets and files."""
    from .butler import Butler

    butler = Butler(repo)
    if not no_confirm and sys.stdin.isatty():
        click.confirm(f"Remove runs {list(runs)} and all their datasets?", abort=True)
    with catch_signals() as stop:  # after the question: Ctrl-C there still answers it
        n = butler.remove_runs(runs)
        stop.check()
    click.echo(f"Removed {len(runs)} run(s) and {n} dataset(s).")


@main.command("check")
@click.argument("repo")
@click.option(
    "--fix",
    is_flag=True,
    help="Remove orphans and temporaries (never a registered file). Only while nothing "
    "writes to the repository.",
)
@click.option(
    "--checksums/--no-checksums",
    default=True,
    show_default=True,
    help="Verify recorded checksums (reads every byte); sizes are always compared.",
)
@_format_option
@butler_errors
def check(repo: str, fix: bool, checksums: bool, fmt: str) -> None:
    """Check the registry against the files: missing, wrong size or checksum, orphans, temporaries.

    Read-only unless --fix. Exit status 0 when nothing is wrong (or --fix removed all of
    it), 1 when problems remain.
    """
    from .butler import Butler
    from .check import check_repository

    butler = Butler(repo, writeable=fix)
    result = check_repository(butler, verify_checksums=checksums, fix=fix)
    removed = set(result.removed)
    rows = [
        (p.kind, p.path, p.dataset, p.detail + (" (removed)" if p.path in removed else ""))
        for p in result.problems
    ]
    if rows:
        print_rows(["problem", "path", "dataset", "detail"], rows, fmt=fmt)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts().items() if n)
    summary = (
        f"Checked {result.artifacts} artifact(s) ({result.checksums} checksum(s) verified) "
        f"in {repo}: {counts or 'no problems'}"
    )
    if result.removed:
        summary += f"; removed {len(result.removed)} orphan(s)/temporary(ies)"
    click.echo(summary, err=fmt != "table")
    remaining = result.remaining
    if remaining:
        fixable = sum(p.kind in ("orphan", "temporary") for p in remaining)
        if fixable:
            click.echo(f"{fixable} can be removed with --fix", err=fmt != "table")
        sys.exit(1)


@main.command("retrieve-artifacts")
@click.argument("repo")
@click.argument("destination")
@click.option(
    "--dataset-type",
    "dataset_types",
    multiple=True,
    help="Dataset types to retrieve (default all).",
)
@_collections_option
@_where_option
@click.option("--preserve-path/--no-preserve-path", default=True)
@butler_errors
def retrieve_artifacts(
    repo: str,
    destination: str,
    dataset_types: tuple[str, ...],
    collections: tuple[str, ...],
    where: str,
    preserve_path: bool,
) -> None:
    """Copy dataset files into DESTINATION."""
    from .butler import Butler

    butler = Butler(repo, writeable=False)
    refs = find_datasets(butler, _split(collections), list(dataset_types), where, find_first=False)
    paths = butler.retrieve_artifacts(refs, destination, preserve_path=preserve_path)
    click.echo(f"Retrieved {len(paths)} file(s) into {destination}")


@main.command("ingest-files")
@click.argument("repo")
@click.argument("dataset_type")
@click.argument("run")
@click.argument("table_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--transfer",
    type=click.Choice(["copy", "move", "symlink", "hardlink", "direct"]),
    default="copy",
)
@click.option(
    "--formatter", default=None, help="Dotted formatter class (default: the storage class's)."
)
@click.option(
    "--data-id",
    "fixed",
    multiple=True,
    help="KEY=VALUE applied to every row (e.g. instrument=Sim).",
)
@butler_errors
@stops_between_steps
def ingest_files(
    repo: str,
    dataset_type: str,
    run: str,
    table_file: str,
    transfer: str,
    formatter: str | None,
    fixed: tuple[str, ...],
    stop: StopRequest,
) -> None:
    """Register existing files listed in TABLE_FILE (CSV: a 'file' column plus data ID columns).

    All rows are ingested or none: a bad row, or Ctrl-C/SIGTERM before the last file is
    transferred, aborts the whole batch.
    """
    from .butler import Butler

    butler = Butler(repo, run=run)
    dtype = butler.registry.get_dataset_type(dataset_type)
    common = _bind(fixed)
    items = []
    with open(table_file, newline="") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or "file" not in reader.fieldnames:
            raise ButlerError(f"{table_file}: needs a header row with a 'file' column")
        for line, row in enumerate(reader, start=2):
            path = row.pop("file")
            values: dict[str, Any] = dict(common)
            values.update({k: v for k, v in row.items() if v not in (None, "")})
            try:
                data_id = DataCoordinate.standardize(values, dtype.dimensions)
            except ButlerError as err:
                raise ButlerError(f"{table_file}:{line}: {err}") from err
            items.append((DatasetRef.make(dtype, data_id, run), path))
    refs = butler.ingest(items, transfer=transfer, formatter=formatter, check_stop=stop.check)
    click.echo(f"Ingested {len(refs)} file(s) as {dataset_type} into run {run}")
    if len(refs) < len(items):
        left = " (their files were left where they are)" if transfer == "move" else ""
        click.echo(
            f"{len(items) - len(refs)} file(s) already ingested with the same bytes: skipped{left}"
        )


add_commands(main, butler_errors)  # prune-datasets, export, import, config-dump, ...


if __name__ == "__main__":  # pragma: no cover
    main()
