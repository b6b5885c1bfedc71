"""The full Butler: registry and datastore together.

Only the client side of a pipeline run uses this class; workers use the
`~butler.limited.LimitedButler`, which reads and writes known refs and never
touches the registry.

Ordering rules that keep the repository consistent whatever fails:

- ``put`` writes the file first (atomically, under its final name, which it
  never takes from another file: two processes putting the same dataset
  cannot overwrite each other) and then registers it in one transaction; if
  registration fails the file is removed. The registry therefore never points
  at a missing or partial file.
- ``remove_runs`` deletes the registry records in one transaction first and
  the files afterwards; a crash in between leaves only unregistered files,
  which `Butler.find_orphans` lists and a later removal cleans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import (
    DatasetNotFoundError,
    DuplicateDatasetError,
    MissingCollectionError,
    RegistryUnreadableError,
    RunLeaseError,
)
from .data_coordinate import DataCoordinate
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .datastore.file_datastore import FileDatastore
from .datastore.stored_file_info import StoredFileInfo
from .datastore.templates import FileTemplates
from .dimensions import DimensionUniverse
from .limited import LimitedButler, LimitedButlerSpec
from .registry import CollectionType, SqlRegistry
from .repo_config import RepoConfig
from .storage_class import StorageClassRegistry

__all__ = ["Butler"]


def _open_registry(config: RepoConfig, *, writeable: bool) -> SqlRegistry:
    """Open the repository's registry; a database that cannot be read is one clear error."""
    import sqlalchemy.exc

    try:
        return SqlRegistry.open(config.registry_url, writeable=writeable)
    except sqlalchemy.exc.DatabaseError as err:
        url = sqlalchemy.engine.make_url(config.registry_url)
        where = url.database if url.get_backend_name() == "sqlite" else url.render_as_string()
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        raise RegistryUnreadableError(
            f"registry {where}: cannot be read ({reason}); restore it from a backup, or "
            "create a new repository and ingest the data again"
        ) from err


_LOG = logging.getLogger(__name__)


class Butler:
    """Read, write and query datasets in a repository.

    Parameters
    ----------
    repo : `str` or `os.PathLike`
        Repository root (the folder holding ``butler.yaml``).
    collections : `str` or sequence of `str`, optional
        Default collections to search in `get` and the queries.
    run : `str`, optional
        Default RUN collection for `put`; registered if new.
    writeable : `bool`
        Whether writes are allowed.

    Raises
    ------
    RepositoryNotFoundError
        If ``repo`` is not a repository.
    RepositoryVersionError
        If the repository was written by a newer version.
    """

    def __init__(
        self,
        repo: str | os.PathLike[str],
        *,
        collections: str | Sequence[str] | None = None,
        run: str | None = None,
        writeable: bool = True,
    ) -> None:
        self.config = RepoConfig.read(repo)
        self.storage_classes = StorageClassRegistry()
        self.registry = _open_registry(self.config, writeable=writeable)
        self.datastore = FileDatastore(
            self.config.datastore_root,
            storage_classes=self.storage_classes,
            templates=_templates(self.config),
            formatter_overrides=self.config.formatters,
            storage_options=self.config.storage_options,
            checksums=self.config.checksums,
        )
        self.run = run
        if run is not None:
            self.registry.register_run(run)
        if collections is None:
            collections = [run] if run is not None else []
        self.collections: list[str] = (
            [collections] if isinstance(collections, str) else list(collections)
        )

    # -- repository ----------------------------------------------------------

    @staticmethod
    def create(
        repo: str | os.PathLike[str],
        *,
        universe: DimensionUniverse | None = None,
        registry_url: str | None = None,
        overwrite: bool = False,
        datastore_root: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        checksums: bool = False,
    ) -> RepoConfig:
        """Create a new, empty repository (``butler create``).

        Parameters
        ----------
        repo : `str` or `os.PathLike`
            Folder (or fsspec URL, e.g. ``s3://bucket/repo``) to create it in.
        universe : `DimensionUniverse`, optional
            Dimension universe; the shipped default if `None`.
        registry_url : `str`, optional
            SQLAlchemy URL of the registry database (default: SQLite inside the repo;
            required for a repository on an object store). A password in it is used
            to create the registry but never stored.
        overwrite : `bool`
            Allow creating where a ``butler.yaml`` already exists.
        datastore_root : `str`, optional
            Where the files go (a path or fsspec URL); the repository root by default.
        storage_options : `~collections.abc.Mapping`, optional
            fsspec options of the datastore's filesystem (``endpoint_url``,
            ``profile``, ``anon``...); never credentials.
        checksums : `bool`
            Record a checksum of every artifact when it is stored, verified when
            it is read (`butler.datastore.integrity`); sizes are always recorded.

        Returns
        -------
        config : `RepoConfig`
            The written configuration.

        Raises
        ------
        FileExistsError
            If a repository already exists there and ``overwrite`` is False.
        RepoConfigError
            If the configuration would be invalid or hold a credential.

        Notes
        -----
        A failed creation leaves nothing behind: the folder (if it made it) and the
        SQLite file are removed, and ``butler.yaml`` is written last.
        """
        if RepoConfig.exists(repo) and not overwrite:
            raise FileExistsError(f"a butler repository already exists at {str(repo)!r}")
        config = RepoConfig.default(
            repo,
            registry_url=registry_url,
            datastore_root=datastore_root,
            storage_options=storage_options,
            checksums=checksums,
        )
        made: list[Path] = []
        if not config.is_remote:
            root = Path(config.root)
            made = [p for p in [root, *root.parents] if not p.exists()]
            root.mkdir(parents=True, exist_ok=True)
        sqlite_file = _sqlite_file(config.registry_url)
        fresh_file = sqlite_file is not None and not sqlite_file.exists()
        try:
            SqlRegistry.create(config.registry_url, universe or DimensionUniverse.default()).close()
            config.write()
        except BaseException:
            if fresh_file and sqlite_file is not None:
                for leftover in sqlite_file.parent.glob(sqlite_file.name + "*"):
                    leftover.unlink(missing_ok=True)
            for folder in made:  # innermost first; only if still empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        return config

    @property
    def universe(self) -> DimensionUniverse:
        """The repository's dimension universe."""
        return self.registry.universe

    def limited(self) -> LimitedButler:
        """Return a limited butler on the same datastore (for workers)."""
        return LimitedButler(self.limited_spec())

    def limited_spec(self) -> LimitedButlerSpec:
        """Return the picklable description from which workers build a limited butler."""
        return LimitedButlerSpec(
            datastore_root=self.config.datastore_root,
            storage_options=dict(self.config.storage_options),
            checksums=self.config.checksums,
            templates=dict(self.config.templates),
            formatters=dict(self.config.formatters),
            universe_config=self.universe.to_config(),
        )

    # -- helpers ---------------------------------------------------------------

    def _dataset_type(self, dataset_type: str | DatasetType) -> DatasetType:
        if isinstance(dataset_type, DatasetType):
            return dataset_type
        return self.registry.get_dataset_type(dataset_type)

    def _collections(self, collections: str | Sequence[str] | None) -> list[str]:
        if collections is None:
            collections = self.collections
        if isinstance(collections, str):
            collections = [collections]
        if not collections:
            raise MissingCollectionError(
                "no collections to search: pass collections=... "
                "(or --collections on the command line)"
            )
        return list(collections)

    def _data_id(
        self, dataset_type: DatasetType, data_id: Any, kwargs: Mapping[str, Any]
    ) -> DataCoordinate:
        merged = dict(data_id.full if isinstance(data_id, DataCoordinate) else (data_id or {}))
        merged.update(kwargs)
        # Drop implied keys the caller added for convenience but that are not dimensions here.
        return DataCoordinate.standardize(merged, dataset_type.dimensions)

    # -- put / get --------------------------------------------------------------

    def put(
        self,
        obj: Any,
        dataset_type: str | DatasetType | DatasetRef,
        data_id: Mapping[str, Any] | None = None,
        *,
        run: str | None = None,
        **kwargs: Any,
    ) -> DatasetRef:
        """Store an object as a dataset and register it.

        Parameters
        ----------
        obj : `object`
            The in-memory dataset, an instance of the storage class's type.
        dataset_type : `str`, `DatasetType` or `DatasetRef`
            Registered dataset type (or a fully resolved ref).
        data_id : `~collections.abc.Mapping`, optional
            Data ID; keyword arguments are merged in.
        run : `str`, optional
            RUN collection; the Butler's default run if `None`.

        Returns
        -------
        ref : `DatasetRef`
            The stored dataset, with its deterministic ID.

        Raises
        ------
        DuplicateDatasetError
            If the run already holds a dataset of that type and data ID.
        """
        if isinstance(dataset_type, DatasetRef):
            ref = dataset_type
        else:
            run = run or self.run
            if run is None:
                raise MissingCollectionError(
                    "put needs a run: Butler(..., run=...) or put(..., run=...)"
                )
            dtype = self._dataset_type(dataset_type)
            ref = DatasetRef.make(dtype, self._data_id(dtype, data_id, kwargs), run)
        # Checked before writing: the file of a dataset already in the run has the
        # same path, and must not be replaced.
        run_exists, existing = self.registry.find_in_run(ref)
        if existing is not None:
            raise DuplicateDatasetError(
                f"run {ref.run!r} already has a {ref.dataset_type.name!r} dataset with data ID "
                f"{ref.data_id} (id {existing}); remove it or put into another run"
            )
        if not run_exists:
            self.registry.register_run(ref.run)
        info = self.datastore.put(obj, ref, replace=False)  # never over another's file
        try:
            self.registry.insert_datasets([ref], [info])
        except BaseException:
            self.datastore.remove(info)
            raise
        return ref

    def find_dataset(
        self,
        dataset_type: str | DatasetType,
        data_id: Mapping[str, Any] | None = None,
        *,
        collections: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> DatasetRef | None:
        """Return the first matching dataset in the collections' search order, or `None`."""
        dtype = self._dataset_type(dataset_type)
        return self.registry.find_dataset(
            dtype, self._data_id(dtype, data_id, kwargs), collections=self._collections(collections)
        )

    def get(
        self,
        dataset_type: str | DatasetType | DatasetRef,
        data_id: Mapping[str, Any] | None = None,
        *,
        collections: str | Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Read a dataset.

        Parameters
        ----------
        dataset_type : `str`, `DatasetType` or `DatasetRef`
            What to read.
        data_id : `~collections.abc.Mapping`, optional
            Data ID; keyword arguments are merged in.
        collections : `str` or sequence of `str`, optional
            Where to search, in order; the Butler's defaults if `None`.
        parameters : `~collections.abc.Mapping`, optional
            Read parameters of the storage class (e.g. ``{"bbox": (x0, y0, w, h)}``).

        Raises
        ------
        DatasetNotFoundError
            If no collection holds such a dataset.
        """
        if isinstance(dataset_type, DatasetRef):
            ref = dataset_type
        else:
            dtype = self._dataset_type(dataset_type)
            searched = self._collections(collections)
            found = self.registry.find_dataset(
                dtype, self._data_id(dtype, data_id, kwargs), collections=searched
            )
            if found is None:
                raise DatasetNotFoundError(
                    f"no {dtype.name!r} dataset with data ID "
                    f"{self._data_id(dtype, data_id, kwargs)} "
                    f"in collections {searched}"
                )
            ref = found
        info = self.registry.get_stored_info([ref]).get(ref.id)
        if info is None:
            raise DatasetNotFoundError(f"dataset {ref} is registered but has no stored artifact")
        return self.datastore.get(info, parameters=parameters, ref=ref)

    def get_uri(self, ref: DatasetRef) -> str:
        """Return the URI of a registered dataset's artifact."""
        info = self.registry.get_stored_info([ref]).get(ref.id)
        if info is None:
            raise DatasetNotFoundError(f"dataset {ref} has no stored artifact")
        return self.datastore.uri(info)

    # -- queries ------------------------------------------------------------------

    def query_datasets(
        self,
        dataset_type: str | DatasetType,
        *,
        collections: str | Sequence[str] | None = None,
        where: str = "",
        bind: Mapping[str, Any] | None = None,
        data_id: Mapping[str, Any] | None = None,
        find_first: bool = True,
    ) -> list[DatasetRef]:
        """Return the datasets of one type matching ``where`` in the collections."""
        return self.registry.query_datasets(
            dataset_type,
            collections=self._collections(collections),
            where=where,
            bind=bind,
            data_id=data_id,
            find_first=find_first,
        )

    def query_data_ids(
        self,
        dimensions: Iterable[str],
        *,
        where: str = "",
        bind: Mapping[str, Any] | None = None,
        data_id: Mapping[str, Any] | None = None,
        datasets: Iterable[str] = (),
        collections: str | Sequence[str] | None = None,
    ) -> list[DataCoordinate]:
        """Return the data IDs of ``dimensions`` matching ``where``."""
        datasets = list(datasets)
        return self.registry.query_data_ids(
            dimensions,
            where=where,
            bind=bind,
            data_id=data_id,
            datasets=datasets,
            collections=self._collections(collections) if datasets else None,
        )

    def query_dimension_records(
        self,
        element: str,
        *,
        where: str = "",
        bind: Mapping[str, Any] | None = None,
        data_id: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return the records of a dimension element matching ``where``."""
        return self.registry.query_dimension_records(
            element, where=where, bind=bind, data_id=data_id
        )

    # -- bulk operations ------------------------------------------------------------

    def ingest(
        self,
        items: Iterable[tuple[DatasetRef, str]],
        *,
        transfer: str | None = "copy",
        formatter: str | None = None,
        check_stop: Callable[[], None] | None = None,
    ) -> list[DatasetRef]:
        """Register existing files as datasets, all or nothing.

        Parameters
        ----------
        items : iterable of (`DatasetRef`, `str`)
            The ref each file becomes, and the file's path.
        transfer : `str` or `None`
            ``copy``, ``move``, ``symlink``, ``hardlink``, ``direct`` or `None`
            (already inside the datastore root). Only ``copy`` and `None` take
            sources from inside the datastore root.
        formatter : `str`, optional
            Dotted formatter name, if not the storage class default.
        check_stop : callable, optional
            Called before each file is transferred and before the registration; what it
            raises (`~butler.interrupts.StopRequest.check`: `~butler.interrupts.Interrupted`
            after Ctrl-C or SIGTERM) undoes the batch like any failure.

        Returns
        -------
        refs : `list` [`DatasetRef`]
            The refs ingested now. A file already stored as its dataset (the
            same bytes) is skipped: not transferred, not returned, its source
            left where it is.

        Raises
        ------
        DuplicateDatasetError
            If a dataset is already stored with other bytes than its file
            (nothing of the batch is ingested).
        ArtifactExistsError
            If a file no dataset owns is where a new dataset's file must go.

        Notes
        -----
        Files are transferred first, then all are registered in one
        transaction. If anything fails, the files this call transferred are
        removed (with ``transfer="move"`` moved back) and nothing is
        registered; a file already in the repository is never replaced or
        removed (transfers never write over an existing file).
        """
        items = list(items)
        stored = self.registry.get_stored_info([ref for ref, _ in items])
        new: list[tuple[DatasetRef, str]] = []
        for ref, path in items:
            info = stored.get(ref.id)
            if info is None:
                new.append((ref, path))
            elif not self.datastore.same_content(path, info):
                uri = self.datastore.uri(info)
                why = (
                    f"{path!r} differs from it" if self.datastore.exists(info) else "it is missing"
                )
                raise DuplicateDatasetError(
                    f"run {ref.run!r} already has {ref.dataset_type.name} {ref.data_id} stored "
                    f"as {uri!r}, and {why}; nothing was ingested (remove the run's dataset "
                    "first, or ingest into another run)"
                )
        if len(new) < len(items):
            _LOG.info(
                "skipped %d file(s) already stored with the same bytes", len(items) - len(new)
            )
        done: list[tuple[StoredFileInfo, str]] = []
        try:
            for ref, path in new:
                if check_stop is not None:
                    check_stop()
                info = self.datastore.ingest(path, ref, transfer=transfer, formatter=formatter)
                done.append((info, path))
            if check_stop is not None:
                check_stop()
            if new:
                for run in {ref.run for ref, _ in new}:
                    self.registry.register_run(run)
                self.registry.insert_datasets([ref for ref, _ in new], [i for i, _ in done])
        except BaseException:
            for info, source in done:
                if transfer == "move":
                    shutil.move(self.datastore.uri(info), source)
                elif transfer not in ("direct", None):
                    self.datastore.remove(info)
            raise
        return [ref for ref, _ in new]

    def remove_runs(self, names: Iterable[str], *, unstore: bool = True) -> int:
        """Remove RUN collections, their dataset records and (if ``unstore``) their files.

        With ``unstore``, files in a run's directory that no dataset owns (outputs written
        but never registered by an interrupted execution, temporaries) go too, when the
        file templates put every dataset of a run under ``<run>/``; the directories of other
        runs nested in it are kept. A run that a live process is executing into (it holds
        the run's lease) is not removed.

        Returns
        -------
        n : `int`
            Number of datasets removed.

        Raises
        ------
        RunLeaseError
            If a live process is executing into one of the runs.
        """
        from .registry.run_leases import lease_holder_alive

        names = list(names)
        infos: list[StoredFileInfo] = []
        with self.registry.transaction():
            for name in names:
                if self.registry.get_collection_type(name) is not CollectionType.RUN:
                    raise MissingCollectionError(f"{name!r} is not a RUN collection")
                lease = self.registry.run_lease(name)
                ours = lease is not None and lease.get("pid") == os.getpid()
                if lease is not None and not ours and lease_holder_alive(lease, 300.0):
                    raise RunLeaseError(
                        f"run {name!r} is being executed by process {lease.get('pid')} on "
                        f"{lease.get('host')}: not removed"
                    )
                infos.extend(self.registry.remove_run(name))
        if unstore:
            for info in infos:
                if not os.path.isabs(info.path) and "://" not in info.path:
                    self.datastore.remove(info)
            runs = [n for n, _ in self.registry.query_collections(types=[CollectionType.RUN])]
            for name in names:
                self._remove_run_leftovers(name, [r for r in runs if r.startswith(f"{name}/")])
        for name in names:  # a removed run has no writer: its stale workers write nothing
            self.datastore.forget_run(name)
        return len(infos)

    def _remove_run_leftovers(self, run: str, nested_runs: Sequence[str]) -> None:
        """Delete what is left in a removed run's directory (not the nested runs' ones)."""
        import posixpath

        templates = self.datastore.templates
        every = [templates.default, *templates.overrides.values()]
        if not all(t.template.startswith("{run}/") for t in every):
            return  # the run's files are not all under one directory of its own
        fs, root = self.datastore.fs, self.datastore.root.rstrip("/")
        top = posixpath.join(root, run)
        keep = {posixpath.join(root, r) for r in nested_runs}
        if not fs.exists(top):
            return

        def kept(path: str) -> bool:  # a nested run's directory, or inside one
            return any(path == k or path.startswith(k + "/") for k in keep)

        directories = []
        for dirpath, dirnames, filenames in fs.walk(top, topdown=True):
            here = dirpath.rstrip("/")
            dirnames[:] = [d for d in dirnames if not kept(posixpath.join(here, d))]
            directories.append(here)
            for name in filenames:
                fs.rm_file(posixpath.join(here, name))
        for here in sorted(directories, key=len, reverse=True):  # then the empty directories
            if not any(k.startswith(here + "/") for k in keep):
                with contextlib.suppress(OSError):
                    if not fs.ls(here):
                        fs.rmdir(here)

    def retrieve_artifacts(
        self,
        refs: Iterable[DatasetRef],
        destination: str | os.PathLike[str],
        *,
        preserve_path: bool = True,
    ) -> list[str]:
        """Copy the files of ``refs`` into ``destination``; return the new paths."""
        refs = list(refs)
        infos = self.registry.get_stored_info(refs)
        out = []
        for ref in refs:
            info = infos.get(ref.id)
            if info is None:
                raise DatasetNotFoundError(f"dataset {ref} has no stored artifact")
            out.append(self.datastore.retrieve(info, str(destination), preserve_path=preserve_path))
        return out


def _sqlite_file(url: str) -> Path | None:
    """Return the database file of an SQLite URL (`None` for other databases or memory)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix:
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def _templates(config: RepoConfig) -> FileTemplates | None:
    if not config.templates:
        return None
    overrides = {k: v for k, v in config.templates.items() if k != "default"}
    if "default" in config.templates:
        return FileTemplates(default=config.templates["default"], overrides=overrides)
    return FileTemplates(overrides=overrides)
