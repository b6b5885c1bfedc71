"""Moving datasets between repositories: export to a folder, import from it, transfer directly.

Design
------
A *description* is a plain dictionary (written as YAML or JSON, version 1)::

    format: skyquanta-export
    version: 1
    universe: {namespace: skyquanta, version: 1}
    dimensions: {element: [record, ...], ...}        # every record of the source repository
    regions: {element: [{data_id: {...}, region: {...}}, ...], ...}
    dataset_types: [{name, dimensions, storage_class}, ...]
    runs: [name, ...]
    datasets: [{id, run, dataset_type, data_id, path, formatter}, ...]

``path`` is relative to the export folder (`export_datasets`), or a URI of the source
datastore (`transfer_datasets`). Dimension records are all exported (they are small and this
keeps every implied record, such as a visit's physical filter, consistent); loading syncs them,
so records the destination already has must agree. Datasets keep their IDs, runs and data IDs.

`load_description` registers records, regions, dataset types and runs in one transaction,
then ingests the files through `Butler.ingest` (all or nothing per formatter; a dataset already
stored with the same bytes is skipped), so an import can be repeated.

State: none at module level.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ._errors import ButlerError, DataIdValueError
from .data_coordinate import DataCoordinate
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .registry.regions import Region

__all__ = [
    "EXPORT_FILE_NAMES",
    "ExportFormatError",
    "describe_datasets",
    "export_datasets",
    "import_datasets",
    "load_description",
    "read_description",
    "transfer_datasets",
]

FORMAT = "skyquanta-export"
VERSION = 1
#: Names `import_datasets` looks for in a folder, in order.
EXPORT_FILE_NAMES = ("export.yaml", "export.json")


class ExportFormatError(ButlerError, ValueError):
    """An export file is unreadable, of another format or version, or inconsistent."""


def _plain(value: Any) -> Any:
    """Return ``value`` as a plain YAML/JSON scalar (SQL rows hold str and number subclasses)."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _regions(butler: Any, element: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = butler.universe[element]
    keys = [*spec.requires, element] if spec.is_dimension else list(spec.requires)
    out = []
    for record in records:
        data_id = {k: record[k if k != element else _key_name(butler, element)] for k in keys}
        region = butler.registry.get_region(element, data_id)
        if region is not None:
            out.append({"data_id": data_id, "region": region.to_dict()})
    return out


def _key_name(butler: Any, element: str) -> str:
    return butler.universe.dimension(element).key.name


def describe_datasets(
    butler: Any, refs: Iterable[DatasetRef], path_of: Callable[[DatasetRef, Any], str]
) -> dict[str, Any]:
    """Return the description (see the module docstring) of ``refs``.

    Parameters
    ----------
    butler : `Butler`
        The source.
    refs : iterable of `DatasetRef`
        Datasets to describe (each must have a stored file).
    path_of : callable
        ``(ref, stored_file_info) -> path`` written for each dataset.
    """
    refs = list(refs)
    infos = butler.registry.get_stored_info(refs)
    universe = butler.universe
    dimensions: dict[str, list[dict[str, Any]]] = {}
    regions: dict[str, list[dict[str, Any]]] = {}
    for element in universe.element_names:
        if element == universe.skypix.name:
            continue
        records = [
            {str(k): _plain(v) for k, v in r.items()}
            for r in butler.registry.query_dimension_records(element)
        ]
        if records:
            dimensions[element] = records
            if universe[element].spatial:
                found = _regions(butler, element, records)
                if found:
                    regions[element] = found
    datasets = []
    for ref in refs:
        info = infos.get(ref.id)
        if info is None:
            raise ButlerError(f"dataset {ref} has no stored file to export")
        datasets.append(
            {
                "id": str(ref.id),
                "run": ref.run,
                "dataset_type": ref.dataset_type.name,
                "data_id": {str(k): _plain(v) for k, v in ref.data_id.required.items()},
                "path": path_of(ref, info),
                "formatter": info.formatter,
            }
        )
    types = {ref.dataset_type.name: ref.dataset_type.to_dict() for ref in refs}
    return {
        "format": FORMAT,
        "version": VERSION,
        "universe": {"namespace": universe.namespace, "version": universe.version},
        "dimensions": dimensions,
        "regions": regions,
        "dataset_types": sorted(types.values(), key=lambda t: t["name"]),
        "runs": sorted({ref.run for ref in refs}),
        "datasets": datasets,
    }


def export_datasets(
    butler: Any, refs: Iterable[DatasetRef], directory: str | os.PathLike[str], *, fmt: str = "yaml"
) -> Path:
    """Copy the files of ``refs`` into ``directory`` and write ``export.yaml`` (or ``.json``).

    Returns
    -------
    path : `pathlib.Path`
        The export file. Files keep their datastore paths under ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    refs = list(refs)
    copied = butler.retrieve_artifacts(refs, directory, preserve_path=True)
    where = {
        ref.id: os.path.relpath(path, directory) for ref, path in zip(refs, copied, strict=True)
    }
    description = describe_datasets(butler, refs, lambda ref, info: where[ref.id])
    target = directory / ("export.json" if fmt == "json" else "export.yaml")
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w") as stream:
        if fmt == "json":
            json.dump(description, stream, indent=1)
        else:
            yaml.safe_dump(description, stream, sort_keys=False)
    os.replace(tmp, target)
    return target


def read_description(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """Read an export file (or the ``export.yaml``/``export.json`` of a folder).

    Returns
    -------
    description, folder : `dict`, `pathlib.Path`
        The description and the folder its relative paths start from.

    Raises
    ------
    FileNotFoundError
        If there is no export file.
    ExportFormatError
        If it is not a skyquanta export of a known version.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in EXPORT_FILE_NAMES if (path / n).exists()]
        if not found:
            raise FileNotFoundError(f"{path}: no {' or '.join(EXPORT_FILE_NAMES)} in this folder")
        path = found[0]
    if not path.exists():
        raise FileNotFoundError(f"export file {path} does not exist")
    try:
        with open(path) as stream:
            data = json.load(stream) if path.suffix == ".json" else yaml.safe_load(stream)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ExportFormatError(f"{path}: not valid YAML/JSON ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExportFormatError(f"{path}: not a skyquanta export (no 'format: {FORMAT}')")
    if data.get("version") != VERSION:
        raise ExportFormatError(
            f"{path}: export version {data.get('version')!r}, this version reads {VERSION}"
        )
    return data, path.parent


def _sync_records(butler: Any, description: Mapping[str, Any]) -> None:
    registry = butler.registry
    universe = butler.universe
    for element in universe.element_names:
        for record in description.get("dimensions", {}).get(element, []):
            registry.sync_dimension_record(element, record)
    for element, items in description.get("regions", {}).items():
        for item in items:
            try:
                existing = registry.get_region(element, item["data_id"])
            except DataIdValueError:
                existing = None
            if existing is None:
                registry.set_region(element, item["data_id"], Region.from_dict(item["region"]))


def load_description(
    butler: Any,
    description: Mapping[str, Any],
    resolve: Callable[[str], str],
    *,
    transfer: str = "copy",
    check_stop: Callable[[], None] | None = None,
) -> list[DatasetRef]:
    """Register what ``description`` holds in ``butler`` and ingest its files.

    Parameters
    ----------
    butler : `Butler`
        The destination (writeable).
    description : `dict`
        See the module docstring.
    resolve : callable
        Maps a dataset's ``path`` to the file to ingest.
    transfer : `str`
        ``copy``, ``move``, ``symlink``, ``hardlink`` or ``direct``.
    check_stop : callable, optional
        Called between files (`Butler.ingest`); what it raises stops the import: the
        records, types and runs stay, the datasets of the unfinished formatter group are not
        ingested, and running the import again finishes it.

    Returns
    -------
    refs : `list` [`DatasetRef`]
        Datasets ingested now (already-stored identical ones are not returned).
    """
    universe = butler.universe
    ours = {"namespace": universe.namespace, "version": universe.version}
    if description.get("universe", ours) != ours:
        raise ExportFormatError(
            f"the export's dimension universe {description['universe']} is not this "
            f"repository's {ours}"
        )
    registry = butler.registry
    types = {
        t["name"]: DatasetType.from_dict(t, universe) for t in description.get("dataset_types", [])
    }
    with registry.transaction():
        _sync_records(butler, description)
        for dataset_type in types.values():
            registry.register_dataset_type(dataset_type)
        for run in description.get("runs", []):
            registry.register_run(run)
    by_formatter: dict[str, list[tuple[DatasetRef, str]]] = {}
    for item in description.get("datasets", []):
        dataset_type = types.get(item["dataset_type"])
        if dataset_type is None:
            raise ExportFormatError(f"dataset {item['id']}: type {item['dataset_type']!r} unknown")
        data_id = DataCoordinate.standardize(item["data_id"], dataset_type.dimensions)
        ref = DatasetRef(dataset_type, data_id, item["run"], uuid.UUID(item["id"]))
        by_formatter.setdefault(item["formatter"], []).append((ref, resolve(item["path"])))
    done: list[DatasetRef] = []
    for formatter, items in by_formatter.items():
        done.extend(
            butler.ingest(items, transfer=transfer, formatter=formatter, check_stop=check_stop)
        )
    return done


def import_datasets(
    butler: Any,
    path: str | os.PathLike[str],
    *,
    transfer: str = "copy",
    check_stop: Callable[[], None] | None = None,
) -> list[DatasetRef]:
    """Import an export folder (or file) made by `export_datasets` into ``butler``.

    ``check_stop`` is `load_description`'s.
    """
    description, folder = read_description(path)

    def resolve(relative: str) -> str:
        return relative if "://" in relative or os.path.isabs(relative) else str(folder / relative)

    return load_description(
        butler, description, resolve, transfer=transfer, check_stop=check_stop
    )


def transfer_datasets(
    source: Any,
    destination: Any,
    refs: Iterable[DatasetRef],
    *,
    transfer: str = "copy",
    check_stop: Callable[[], None] | None = None,
) -> list[DatasetRef]:
    """Copy datasets (with their records) from ``source`` into ``destination`` directly.

    ``check_stop`` is `load_description`'s.
    """
    description = describe_datasets(
        source, refs, lambda ref, info: source.datastore.uri(info)
    )
    return load_description(
        destination, description, lambda uri: uri, transfer=transfer, check_stop=check_stop
    )
