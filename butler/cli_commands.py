"""``butler`` commands LSST users reach for, with LSST's names and main flags.

- ``prune-datasets``: remove datasets (records, then files) found in collections;
- ``remove-collections``: remove CHAINED and TAGGED collections (RUNs: ``remove-runs``);
- ``remove-dataset-type``: remove dataset types no dataset uses;
- ``associate`` / ``disassociate``: add datasets found in collections to a TAGGED collection
  (created if missing), or take them out of it (the datasets stay in their runs);
- ``export`` / ``import``: datasets with their dimension records and files, through a folder
  holding ``export.yaml`` (or ``.json``) and the files (`butler.transfer`);
- ``transfer-datasets``: the same, directly from one repository into another;
- ``config-dump`` / ``config-validate``: the repository configuration, and checks of it.

`add_commands` attaches them to the ``butler`` group. Errors go through
`butler.cli.butler_errors`: one line, exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click
import yaml

from ._errors import ButlerError
from .dataset_ref import DatasetRef
from .interrupts import StopRequest, catch_signals, stops_between_steps

if TYPE_CHECKING:
    from .butler import Butler

# The Butler and the registry (SQLAlchemy) are imported inside the commands (``butler --help``).

__all__ = ["add_commands", "find_datasets"]

_TRANSFERS = ["copy", "move", "symlink", "hardlink", "direct"]


def _split(values: Iterable[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def find_datasets(
    butler: Butler,
    collections: list[str],
    dataset_types: list[str],
    where: str,
    *,
    find_first: bool,
) -> list[DatasetRef]:
    """Return datasets of ``dataset_types`` (all if none) in ``collections`` (all RUNs if none)."""
    from .registry import CollectionType

    registry = butler.registry
    collections = collections or [
        n for n, _ in registry.query_collections(types=[CollectionType.RUN])
    ]
    names = dataset_types or [d.name for d in registry.query_dataset_types()]
    refs: list[DatasetRef] = []
    for name in names:
        refs.extend(
            butler.query_datasets(name, collections=collections, where=where, find_first=find_first)
        )
    return refs


def _confirm(no_confirm: bool, question: str) -> None:
    if not no_confirm and sys.stdin.isatty():
        click.confirm(question, abort=True)


_collections_option = click.option(
    "--collections", multiple=True, help="Collections to search (repeatable or comma-separated)."
)
_datasets_option = click.option(
    "--datasets", "dataset_types", multiple=True, help="Dataset types (default: all)."
)
_where_option = click.option("--where", default="", help="Data ID expression (--where language).")


@click.command("prune-datasets")
@click.argument("repo")
@click.argument("collections", nargs=-1)
@_datasets_option
@_where_option
@click.option(
    "--find-all",
    is_flag=True,
    help="Every matching dataset in the collections, not only the first in search order.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--no-confirm", is_flag=True, help="Do not ask for confirmation.")
def prune_datasets(
    repo: str,
    collections: tuple[str, ...],
    dataset_types: tuple[str, ...],
    where: str,
    find_all: bool,
    dry_run: bool,
    no_confirm: bool,
) -> None:
    """Remove datasets found in COLLECTIONS (records first, then their files)."""
    if not collections:
        raise click.UsageError("name the collections to prune from: prune-datasets REPO COLL...")
    from .butler import Butler

    butler = Butler(repo, writeable=not dry_run)
    refs = find_datasets(
        butler, _split(collections), _split(dataset_types), where, find_first=not find_all
    )
    if dry_run or not refs:
        for ref in refs:
            click.echo(f"{ref.dataset_type.name} {ref.data_id} in {ref.run}")
        click.echo(f"{'Would remove' if dry_run else 'Removed'} {len(refs)} dataset(s).")
        return
    _confirm(no_confirm, f"Remove {len(refs)} dataset(s) and their files?")
    with catch_signals() as stop:  # after the question: Ctrl-C there still answers it
        infos = butler.registry.remove_datasets(refs)
        for info in infos:  # records went first: every file goes, then the command stops
            butler.datastore.remove(info)
        stop.check()
    click.echo(f"Removed {len(refs)} dataset(s).")


@click.command("remove-collections")
@click.argument("repo")
@click.argument("collections", nargs=-1, required=True)
@click.option("--no-confirm", is_flag=True, help="Do not ask for confirmation.")
def remove_collections(repo: str, collections: tuple[str, ...], no_confirm: bool) -> None:
    """Remove CHAINED or TAGGED collections (children and datasets stay; RUNs: remove-runs)."""
    from .butler import Butler

    butler = Butler(repo)
    names = _split(collections)
    _confirm(no_confirm, f"Remove collections {names}?")
    with catch_signals() as stop, butler.registry.transaction():
        for name in names:
            butler.registry.remove_collection(name)
    stop.check()
    click.echo(f"Removed {len(names)} collection(s).")


@click.command("remove-dataset-type")
@click.argument("repo")
@click.argument("dataset_types", nargs=-1, required=True)
@stops_between_steps
def remove_dataset_type(repo: str, dataset_types: tuple[str, ...]) -> None:
    """Remove dataset types that no dataset uses."""
    from .butler import Butler

    butler = Butler(repo)
    for name in _split(dataset_types):
        butler.registry.remove_dataset_type(name)
    click.echo(f"Removed {len(_split(dataset_types))} dataset type(s).")


_dataset_type_option = click.option(
    "-t",
    "--dataset-type",
    "dataset_type_options",
    multiple=True,
    help="Dataset types (repeatable or comma-separated; default: all).",
)


def _tagged_refs(
    butler: Butler,
    collections: tuple[str, ...],
    dataset_types: tuple[str, ...],
    where: str,
    *,
    find_first: bool,
) -> list[DatasetRef]:
    if not collections:
        raise click.UsageError("name the collections to search: --collections COLL[,COLL...]")
    return find_datasets(
        butler, _split(collections), _split(dataset_types), where, find_first=find_first
    )


@click.command("associate")
@click.argument("repo")
@click.argument("collection")
@click.argument("dataset_types", nargs=-1)
@_dataset_type_option
@_collections_option
@_where_option
@click.option(
    "--find-first",
    is_flag=True,
    help="Only the first dataset of each data ID in the order of --collections.",
)
@stops_between_steps
def associate(
    repo: str,
    collection: str,
    dataset_types: tuple[str, ...],
    dataset_type_options: tuple[str, ...],
    collections: tuple[str, ...],
    where: str,
    find_first: bool,
) -> None:
    """Add the datasets found in --collections to the TAGGED COLLECTION (made if missing).

    A tagged collection holds one dataset per dataset type and data ID; it can be searched
    like a run, and put into chains. Example: butler associate REPO best calexp
    --collections u/me/run2,u/me/run1 --find-first --where "visit = 11"
    """
    from .butler import Butler
    from .registry import CollectionType

    butler = Butler(repo)
    refs = _tagged_refs(
        butler, collections, dataset_types + dataset_type_options, where, find_first=find_first
    )
    keys = [(ref.dataset_type.name, ref.data_id) for ref in refs]
    if len(set(keys)) != len(keys):
        raise click.UsageError(
            "some data IDs have a dataset in more than one of --collections: pass --find-first "
            "to take the first one in search order"
        )
    with butler.registry.transaction():
        butler.registry.register_collection(collection, CollectionType.TAGGED)
        added = butler.registry.associate(collection, refs)
    click.echo(
        f"Associated {added} dataset(s) with {collection} ({len(refs) - added} already there)."
    )


@click.command("disassociate")
@click.argument("repo")
@click.argument("collection")
@click.argument("dataset_types", nargs=-1)
@_dataset_type_option
@_collections_option
@_where_option
@stops_between_steps
def disassociate(
    repo: str,
    collection: str,
    dataset_types: tuple[str, ...],
    dataset_type_options: tuple[str, ...],
    collections: tuple[str, ...],
    where: str,
) -> None:
    """Remove the datasets found in --collections from the TAGGED COLLECTION.

    The datasets stay in their runs. --collections may be COLLECTION itself.
    """
    from .butler import Butler

    butler = Butler(repo)
    refs = _tagged_refs(
        butler, collections, dataset_types + dataset_type_options, where, find_first=False
    )
    removed = butler.registry.disassociate(collection, refs)
    click.echo(f"Disassociated {removed} dataset(s) from {collection}.")


@click.command("export")
@click.argument("repo")
@click.argument("directory")
@_collections_option
@_datasets_option
@_where_option
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
def export_command(
    repo: str,
    directory: str,
    collections: tuple[str, ...],
    dataset_types: tuple[str, ...],
    where: str,
    fmt: str,
) -> None:
    """Export datasets, their dimension records and files into DIRECTORY (for import)."""
    from .butler import Butler
    from .transfer import export_datasets

    butler = Butler(repo, writeable=False)
    refs = find_datasets(
        butler, _split(collections), _split(dataset_types), where, find_first=False
    )
    path = export_datasets(butler, refs, directory, fmt=fmt)
    click.echo(f"Exported {len(refs)} dataset(s) to {path}")


@click.command("import")
@click.argument("repo")
@click.argument("directory")
@click.option("--export-file", default=None, help="The export file (default: DIRECTORY/export.*).")
@click.option("--transfer", type=click.Choice(_TRANSFERS), default="copy", show_default=True)
@stops_between_steps
def import_command(
    repo: str, directory: str, export_file: str | None, transfer: str, stop: StopRequest
) -> None:
    """Import datasets exported into DIRECTORY by 'butler export'."""
    from .butler import Butler
    from .transfer import import_datasets, load_description, read_description

    butler = Butler(repo)
    if export_file is None:
        refs = import_datasets(butler, directory, transfer=transfer, check_stop=stop.check)
    else:
        import os

        description, _ = read_description(export_file)
        refs = load_description(
            butler,
            description,
            lambda p: p if os.path.isabs(p) or "://" in p else os.path.join(directory, p),
            transfer=transfer,
            check_stop=stop.check,
        )
    click.echo(f"Imported {len(refs)} dataset(s) into {repo}")


@click.command("transfer-datasets")
@click.argument("source")
@click.argument("dest")
@_collections_option
@_datasets_option
@_where_option
@click.option("--find-all/--find-first", default=True, help="All matches (default) or first.")
@click.option("--transfer", type=click.Choice(["copy", "direct"]), default="copy")
@stops_between_steps
def transfer_datasets_command(
    source: str,
    dest: str,
    collections: tuple[str, ...],
    dataset_types: tuple[str, ...],
    where: str,
    find_all: bool,
    transfer: str,
    stop: StopRequest,
) -> None:
    """Copy datasets (and their dimension records) from repository SOURCE into DEST."""
    from .butler import Butler
    from .transfer import transfer_datasets

    source_butler = Butler(source, writeable=False)
    refs = find_datasets(
        source_butler, _split(collections), _split(dataset_types), where, find_first=not find_all
    )
    done = transfer_datasets(
        source_butler, Butler(dest), refs, transfer=transfer, check_stop=stop.check
    )
    click.echo(f"Transferred {len(done)} dataset(s) from {source} to {dest}")


@click.command("config-dump")
@click.argument("repo")
@click.option("--subset", default=None, help="Only this top-level key (e.g. templates).")
@click.option("--file", "out_file", default=None, help="Write here instead of standard output.")
def config_dump(repo: str, subset: str | None, out_file: str | None) -> None:
    """Print the repository configuration (butler.yaml with defaults, no secrets)."""
    from .repo_config import RepoConfig

    content = RepoConfig.read(repo).to_dict()
    if subset is not None:
        if subset not in content:
            raise ButlerError(f"--subset {subset!r}: the configuration's keys are {list(content)}")
        content = {subset: content[subset]}
    text = yaml.safe_dump(content, sort_keys=False)
    if out_file:
        with open(out_file, "w") as stream:
            stream.write(text)
    else:
        click.echo(text, nl=False)


def _config_problems(butler: Butler) -> list[str]:
    from .datastore.formatter import Formatter
    from .storage_class import import_object

    problems = []
    storage_classes = butler.storage_classes
    for dataset_type in butler.registry.query_dataset_types():
        if dataset_type.storage_class not in storage_classes:
            problems.append(
                f"dataset type {dataset_type.name!r}: unknown storage class "
                f"{dataset_type.storage_class!r} (is the package that defines it installed?)"
            )
    names = {key: value for key, value in butler.config.formatters.items()}
    names.update({f"storage class {n}": storage_classes[n].formatter for n in storage_classes})
    for where, dotted in names.items():
        try:
            cls = import_object(dotted)
        except ImportError as err:
            problems.append(f"formatter for {where}: cannot import {dotted!r} ({err})")
            continue
        if not (isinstance(cls, type) and issubclass(cls, Formatter)):
            problems.append(f"formatter for {where}: {dotted!r} is not a Formatter")
    return problems


@click.command("config-validate")
@click.argument("repo")
def config_validate(repo: str) -> None:
    """Check the repository configuration: registry, storage classes, formatters."""
    from .butler import Butler

    butler = Butler(repo, writeable=False)
    problems = _config_problems(butler)
    for problem in problems:
        click.echo(f"Problem: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo("No problems found.")


_COMMANDS = (
    prune_datasets,
    remove_collections,
    remove_dataset_type,
    associate,
    disassociate,
    export_command,
    import_command,
    transfer_datasets_command,
    config_dump,
    config_validate,
)


def add_commands(group: click.Group, wrap: Callable[[Any], Any]) -> None:
    """Attach these commands to the ``butler`` group, their callbacks wrapped by ``wrap``.

    ``wrap`` is `butler.cli.butler_errors` (errors as one line, exit 1), passed in so that
    this module does not import the group's module.
    """
    for command in _COMMANDS:
        command.callback = wrap(command.callback)
        group.add_command(command)
