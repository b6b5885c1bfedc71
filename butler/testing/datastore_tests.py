"""Conformance tests every datastore backend passes.

Subclass `DatastoreTests` in a test module, name the subclass ``Test...``,
and implement `DatastoreTests.make_datastore`::

    class TestLocalDatastore(DatastoreTests):
        supports_links = True

        def make_datastore(self, tmp_path):
            return FileDatastore(str(tmp_path / "repo"), storage_classes=StorageClassRegistry())

The failure tests use `ExplodingFormatter` and `ExplodingDirectoryFormatter`,
real formatters that write some bytes and then raise, registered under the
storage classes ``Exploding`` and ``ExplodingDir``.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import numpy as np
import pytest

from .._errors import (
    ArtifactExistsError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    DatasetNotFoundError,
    ExecutionSupersededError,
    FormatterError,
    InvalidNameError,
    StorageClassError,
)
from ..dataset_ref import DatasetRef
from ..dataset_type import DatasetType
from ..datastore._atomic import temporary_sibling
from ..datastore.file_datastore import FileDatastore
from ..datastore.formatter import Formatter
from ..datastore.formatters import JsonFormatter, NpyFormatter, YamlFormatter
from ..datastore.stored_file_info import StoredFileInfo
from ..dimensions import DimensionUniverse
from ..storage_class import StorageClass

__all__ = ["DatastoreTests", "ExplodingDirectoryFormatter", "ExplodingFormatter"]


class ExplodingFormatter(Formatter):
    """Write a few bytes, then fail: the datastore must leave nothing behind."""

    extension: ClassVar[str] = ".json"

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write half a file and raise `RuntimeError`."""
        with fs.open(path, "wb") as stream:
            stream.write(b'{"half": ')
            stream.flush()
            raise RuntimeError("exploded half-way through writing")

    def read(self, fs: fsspec.AbstractFileSystem, path: str, *, parameters: Any = None) -> Any:
        """Read the file as JSON (never reached in the tests)."""
        with fs.open(path, "r") as stream:
            return json.load(stream)


class ExplodingDirectoryFormatter(ExplodingFormatter):
    """A directory artifact that fails after writing one of its files."""

    extension: ClassVar[str] = ".zarr"
    is_directory: ClassVar[bool] = True

    def write(self, obj: Any, fs: fsspec.AbstractFileSystem, path: str) -> None:
        """Write one file of the directory and raise `RuntimeError`."""
        fs.makedirs(path, exist_ok=True)
        fs.pipe_file(posixpath.join(path, "zarr.json"), b"{}")
        raise RuntimeError("exploded half-way through writing a directory")


_EXPLODING = StorageClass("Exploding", "builtins.dict", ExplodingFormatter.dotted_name())
_EXPLODING_DIR = StorageClass(
    "ExplodingDir", "builtins.dict", ExplodingDirectoryFormatter.dotted_name()
)


class DatastoreTests:
    """Tests of the datastore contract; subclasses provide `make_datastore`."""

    #: Whether the backend supports symlink/hardlink ingest (local disks).
    supports_links: ClassVar[bool] = False

    def make_datastore(self, tmp_path: Path) -> FileDatastore:
        """Return a new, empty datastore (``tmp_path`` is a fresh local directory)."""
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------

    @pytest.fixture
    def datastore(self, tmp_path: Path) -> FileDatastore:
        """Datastore under test, with the exploding storage classes registered."""
        store = self.make_datastore(tmp_path)
        store.storage_classes.register(_EXPLODING)
        store.storage_classes.register(_EXPLODING_DIR)
        return store

    @pytest.fixture
    def universe(self) -> DimensionUniverse:
        """Return the default dimension universe."""
        return DimensionUniverse.default()

    def ref(
        self,
        universe: DimensionUniverse,
        name: str = "calexp",
        storage_class: str = "StructuredDataDict",
        *,
        run: str = "u/test/run1",
        dimensions: tuple[str, ...] = ("instrument", "visit", "detector"),
        **data_id: Any,
    ) -> DatasetRef:
        """Make a ref (default data ID: instrument Cam, visit 42, detector 3)."""
        data_id = data_id or {"instrument": "Cam", "visit": 42, "detector": 3}
        dataset_type = DatasetType.make(name, dimensions, storage_class, universe)
        return DatasetRef.make(dataset_type, data_id, run)

    @staticmethod
    def all_files(store: FileDatastore) -> list[str]:
        """Every file under the datastore root (absolute paths, sorted)."""
        if not store.fs.exists(store.root):
            return []
        return sorted(store.fs.find(store.root, withdirs=False))

    # -- locations -----------------------------------------------------------------

    def test_predict_is_pure_and_unique(self, datastore, universe):
        """`predict` is deterministic, distinct per dataset and does no I/O."""
        a = self.ref(universe)
        b = self.ref(universe, detector=4, instrument="Cam", visit=42)
        info_a, info_b = datastore.predict(a), datastore.predict(b)
        assert info_a.path.endswith(".yaml")
        assert info_a.path.startswith("u/test/run1/calexp/")
        assert a.id.hex in info_a.path
        assert info_a.path != info_b.path
        assert info_a == datastore.predict(a)
        assert info_a.file_size == -1
        assert self.all_files(datastore) == []

    def test_run_with_dotdot_is_refused(self, datastore, universe):
        """A run that would escape the root is refused."""
        with pytest.raises(InvalidNameError, match=r"\.\."):
            datastore.predict(self.ref(universe, run="u/../../etc"))
        dotdot_value = self.ref(universe, instrument="..", visit=1, detector=1)
        info = datastore.predict(dotdot_value)  # in the file name, ".." is harmless text
        assert ".." not in info.path.split("/")

    def test_formatter_overrides(self, tmp_path, universe):
        """Overrides by dataset type name win over storage class name and default."""
        store = self.make_datastore(tmp_path)
        store.formatter_overrides["calexp"] = JsonFormatter.dotted_name()
        store.formatter_overrides["NumpyArray"] = NpyFormatter.dotted_name()
        assert store.predict(self.ref(universe)).path.endswith(".json")
        info = store.predict(self.ref(universe, "other", "NumpyArray"))
        assert info.path.endswith(".npy") and info.formatter == NpyFormatter.dotted_name()
        assert store.predict(self.ref(universe, "x")).formatter == YamlFormatter.dotted_name()

    # -- put / get -------------------------------------------------------------------

    def test_put_get_dict(self, datastore, universe):
        """A dict round-trips; the info has a size, exists and has a URI."""
        ref = self.ref(universe)
        obj = {"a": 1, "b": [1.5, "x"], "c": {"d": None}}
        info = datastore.put(obj, ref)
        assert info.file_size > 0
        assert datastore.exists(info)
        assert datastore.get(info) == obj
        assert datastore.get(ref) == obj
        assert datastore.uri(info).endswith(info.path)

    def test_put_get_array_with_bbox(self, datastore, universe):
        """An array round-trips exactly, and ``bbox`` reads a cut-out."""
        ref = self.ref(universe, "image", "NumpyArray")
        array = np.arange(60 * 50, dtype=np.float32).reshape(60, 50)
        info = datastore.put(array, ref)
        assert info.path.endswith(".zarr")
        assert info.file_size >= array.nbytes
        back = datastore.get(info)
        assert back.dtype == array.dtype and np.array_equal(back, array)
        cut = datastore.get(info, parameters={"bbox": (5, 10, 20, 7)})
        np.testing.assert_array_equal(cut, array[10:17, 5:25])

    def test_put_get_table(self, datastore, universe):
        """A table round-trips with units and meta."""
        from astropy import units as u
        from astropy.table import Table

        ref = self.ref(universe, "src", "AstropyTable")
        table = Table({"flux": np.array([1.0, 2.5]), "id": np.array([3, 4])})
        table["flux"].unit = u.nJy
        table.meta["BAND"] = "r"
        back = datastore.get(datastore.put(table, ref))
        assert back["flux"].unit == u.nJy and back.meta["BAND"] == "r"
        assert list(back["id"]) == [3, 4]

    def test_put_replaces_existing(self, datastore, universe):
        """Putting again replaces files and directories, leaving no temporaries."""
        ref = self.ref(universe)
        datastore.put({"v": 1}, ref)
        info = datastore.put({"v": 2}, ref)
        assert datastore.get(info) == {"v": 2}
        image = self.ref(universe, "image", "NumpyArray")
        datastore.put(np.zeros((4, 4)), image)
        info = datastore.put(np.ones((2, 3)), image)
        assert np.array_equal(datastore.get(info), np.ones((2, 3)))
        assert not [f for f in self.all_files(datastore) if ".tmp-" in f]

    def test_put_wrong_type(self, datastore, universe):
        """An object of the wrong type is refused before anything is written."""
        with pytest.raises(StorageClassError, match="calexp.*StructuredDataDict"):
            datastore.put([1, 2], self.ref(universe))
        assert self.all_files(datastore) == []

    def test_get_missing(self, datastore, universe):
        """A missing artifact raises an error that is both not-found kinds."""
        info = datastore.predict(self.ref(universe))
        with pytest.raises(ArtifactNotFoundError, match=info.path) as excinfo:
            datastore.get(info)
        assert isinstance(excinfo.value, FileNotFoundError)
        assert isinstance(excinfo.value, DatasetNotFoundError)
        assert not datastore.exists(info)

    def test_unsupported_parameter(self, datastore, universe):
        """An unsupported read parameter is a FormatterError naming it."""
        info = datastore.put({"a": 1}, self.ref(universe))
        with pytest.raises(FormatterError, match="bbox"):
            datastore.get(info, parameters={"bbox": (0, 0, 1, 1)})

    def test_corrupt_file_is_a_formatter_error(self, datastore, universe):
        """A corrupt artifact is an error naming the path: of its size, or of the formatter."""
        info = datastore.put(np.zeros(3), self.ref(universe, "image", "NumpyArray"))
        datastore.fs.pipe_file(posixpath.join(datastore.root, info.path, "zarr.json"), b"{")
        with pytest.raises(ArtifactIntegrityError, match=info.path):
            datastore.get(info)
        with pytest.raises(FormatterError, match=info.path):
            datastore.get(dataclasses.replace(info, file_size=-1))  # size not recorded

    def test_remove(self, datastore, universe):
        """Artifacts are removed; removing a missing one is fine."""
        info = datastore.put({"a": 1}, self.ref(universe))
        image = datastore.put(np.zeros((3, 3)), self.ref(universe, "image", "NumpyArray"))
        datastore.remove(info)
        datastore.remove(image)
        assert not datastore.exists(info) and not datastore.exists(image)
        datastore.remove(info)  # missing is fine
        assert self.all_files(datastore) == []

    def test_existing_agrees_with_exists(self, datastore, universe):
        """`existing` finds exactly what `exists` finds, with file sizes, in bulk."""

        def at(detector, name="calexp"):
            return self.ref(universe, name, instrument="Cam", visit=42, detector=detector)

        written = [datastore.put({"d": d}, at(d)) for d in range(3)]
        image = datastore.put(np.zeros((3, 3)), self.ref(universe, "image", "NumpyArray"))
        missing = [datastore.predict(at(d)) for d in (7, 8)]
        elsewhere = datastore.predict(at(1, "nothing_here"))
        found = datastore.existing([*written, image, *missing, elsewhere])
        assert set(found) == {info.path for info in [*written, image]}
        assert all(found[info.path] == info.file_size for info in written)
        for info in [*written, image, *missing, elsewhere]:
            assert (info.path in found) == datastore.exists(info)
        datastore.remove(written[0])  # a listing made before is not reused
        assert written[0].path not in datastore.existing(written)

    def test_same_artifact_compares_bytes(self, datastore, universe):
        """`same_artifact`: true only for what `put` would write for this object."""
        info = datastore.put({"a": [1, 2]}, self.ref(universe))
        assert datastore.same_artifact({"a": [1, 2]}, info)
        assert not datastore.same_artifact({"a": [1, 3]}, info)
        assert not datastore.same_artifact({"a": [1, 2]}, datastore.predict(
            self.ref(universe, instrument="Cam", visit=42, detector=9)))
        image = datastore.put(np.arange(6.0).reshape(2, 3), self.ref(universe, "i", "NumpyArray"))
        assert datastore.same_artifact(np.arange(6.0).reshape(2, 3), image)
        assert not datastore.same_artifact(np.zeros((2, 3)), image)

    # -- failures ------------------------------------------------------------------

    @pytest.mark.parametrize("storage_class", ["Exploding", "ExplodingDir"])
    def test_failed_put_leaves_nothing(self, datastore, universe, storage_class):
        """A formatter failing half-way leaves neither file nor temporary."""
        ref = self.ref(universe, "broken", storage_class)
        with pytest.raises(FormatterError) as excinfo:
            datastore.put({"a": 1}, ref)
        message = str(excinfo.value)
        for part in ("broken", "visit: 42", "u/test/run1", datastore.predict(ref).path):
            assert part in message
        assert isinstance(excinfo.value.__cause__, RuntimeError)
        assert self.all_files(datastore) == []
        assert not datastore.exists(datastore.predict(ref))

    @pytest.mark.parametrize("storage_class", ["Exploding", "ExplodingDir"])
    def test_failed_put_keeps_previous(self, datastore, universe, storage_class):
        """A failed replacement leaves the previous artifact intact."""
        ref = self.ref(universe, "broken", storage_class)
        info = datastore.predict(ref)
        if storage_class == "ExplodingDir":  # a zarr array under the same path first
            zarr_name = "butler.datastore.formatters.ZarrArrayFormatter"
            old_info = StoredFileInfo(ref.id, info.path, zarr_name, "NumpyArray")
            old = datastore.put(np.arange(4), ref, info=old_info)
            expected: Any = np.arange(4)
        else:
            old_info = StoredFileInfo(ref.id, info.path, JsonFormatter.dotted_name(), "JsonDict")
            old = datastore.put({"v": "old"}, ref, info=old_info)
            expected = {"v": "old"}
        before = self.all_files(datastore)
        with pytest.raises(FormatterError):
            datastore.put({"a": 1}, ref)
        assert self.all_files(datastore) == before
        back = datastore.get(old)
        assert back == expected if isinstance(expected, dict) else np.array_equal(back, expected)

    # -- which execution writes into a run ---------------------------------------------

    @pytest.mark.parametrize("storage_class", ["StructuredDataDict", "NumpyArray"])
    def test_a_superseded_execution_renames_and_removes_nothing(
        self, datastore, universe, storage_class
    ):
        """A put of an execution whose run another one claimed is refused before its rename.

        The new execution's artifact stays, no temporary is left; a cleanup deletion is
        refused too. The marker is never an orphan.
        """
        ref = self.ref(universe, "out", storage_class)
        obj_new: Any = {"v": "new"} if storage_class == "StructuredDataDict" else np.arange(3)
        obj_old: Any = {"v": "old!"} if storage_class == "StructuredDataDict" else np.arange(5)

        def checker(execution: str):
            return lambda: datastore.check_run_writer(ref.run, execution, "write out")

        datastore.claim_run(ref.run, "old")
        datastore.put(obj_old, ref, before_commit=checker("old"))  # it holds the run
        datastore.claim_run(ref.run, "new")
        stored = datastore.put(obj_new, ref, before_commit=checker("new"))
        before = self.all_files(datastore)
        with pytest.raises(ExecutionSupersededError, match="superseded by execution new"):
            datastore.put(obj_old, ref, before_commit=checker("old"))
        assert self.all_files(datastore) == before
        back = datastore.get(stored)
        assert back == obj_new if isinstance(obj_new, dict) else np.array_equal(back, obj_new)
        with pytest.raises(ExecutionSupersededError, match="was superseded by execution new"):
            datastore.check_run_writer(ref.run, "old", f"remove {stored.path}")
        assert datastore.find_orphans({stored.path}) == []
        datastore.forget_run(ref.run)  # the run was removed: nobody writes there any more
        with pytest.raises(ExecutionSupersededError, match="marker .* is gone"):
            datastore.put(obj_new, ref, before_commit=checker("new"))

    # -- ingest / retrieve -------------------------------------------------------------

    def _source(self, tmp_path: Path, name: str = "src.json") -> Path:
        source = tmp_path / "outside" / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(json.dumps({"ingested": True}))
        return source

    @pytest.mark.parametrize("transfer", ["copy", "move"])
    def test_ingest_copy_move(self, datastore, universe, tmp_path, transfer):
        """``copy`` keeps the source, ``move`` removes it; both land at the predicted path."""
        source = self._source(tmp_path)
        ref = self.ref(universe, "raw", "JsonDict")
        info = datastore.ingest(str(source), ref, transfer=transfer)
        assert info.path == datastore.predict(ref).path
        assert info.file_size == len(json.dumps({"ingested": True}))
        assert datastore.get(info) == {"ingested": True}
        assert source.exists() == (transfer == "copy")
        assert not [f for f in self.all_files(datastore) if ".tmp-" in f]

    def test_ingest_direct_is_never_deleted(self, datastore, universe, tmp_path):
        """A ``direct`` ingest records the source and `remove` never deletes it."""
        source = self._source(tmp_path)
        info = datastore.ingest(
            str(source), self.ref(universe, "raw", "JsonDict"), transfer="direct"
        )
        assert str(source) in info.path
        assert datastore.get(info) == {"ingested": True}
        datastore.remove(info)
        assert source.exists()
        assert self.all_files(datastore) == []

    def test_ingest_in_place(self, datastore, universe):
        """``transfer=None`` records a file already inside the root where it is."""
        ref = self.ref(universe, "raw", "JsonDict")
        inside = posixpath.join(datastore.root, "external", "f.json")
        datastore.fs.makedirs(posixpath.dirname(inside), exist_ok=True)
        datastore.fs.pipe_file(inside, b'{"x": 1}')
        info = datastore.ingest(datastore.uri_root + "/external/f.json", ref, transfer=None)
        assert info.path == "external/f.json"
        assert datastore.get(info) == {"x": 1}

    def test_ingest_errors(self, datastore, universe, tmp_path):
        """Missing sources, unknown modes and impossible links are refused clearly."""
        ref = self.ref(universe, "raw", "JsonDict")
        with pytest.raises(ArtifactNotFoundError, match="nope.json"):
            datastore.ingest(str(tmp_path / "nope.json"), ref)
        source = self._source(tmp_path)
        with pytest.raises(FormatterError, match="transfer"):
            datastore.ingest(str(source), ref, transfer="teleport")
        if not self.supports_links:
            with pytest.raises(FormatterError, match="symlink"):
                datastore.ingest(str(source), ref, transfer="symlink")

    @pytest.mark.parametrize("transfer", ["copy", "move", "symlink", "hardlink"])
    def test_ingest_never_replaces_an_artifact(self, datastore, universe, tmp_path, transfer):
        """An ingest onto an existing artifact fails and leaves it and the source as they were."""
        if transfer in ("symlink", "hardlink") and not self.supports_links:
            pytest.skip("backend has no links")
        ref = self.ref(universe, "raw", "JsonDict")
        info = datastore.put({"stored": 1}, ref)
        source = self._source(tmp_path)
        with pytest.raises(ArtifactExistsError, match="already exists"):
            datastore.ingest(str(source), ref, transfer=transfer)
        assert datastore.get(info) == {"stored": 1}
        assert json.loads(source.read_text()) == {"ingested": True}
        assert not [f for f in self.all_files(datastore) if ".tmp-" in f]
        assert datastore.same_content(datastore.uri(info), info)
        assert not datastore.same_content(str(source), info)

    @pytest.mark.parametrize("transfer", ["move", "symlink", "hardlink", "direct"])
    def test_ingest_from_inside_the_root_only_copies(self, datastore, universe, transfer):
        """A source inside the root (another dataset's file) is never taken or aliased."""
        stored = datastore.put({"stored": 1}, self.ref(universe))
        other = self.ref(universe, run="u/test/run2")
        with pytest.raises(FormatterError, match="inside the datastore root"):
            datastore.ingest(datastore.uri(stored), other, transfer=transfer)
        assert datastore.get(stored) == {"stored": 1}
        copied = datastore.ingest(datastore.uri(stored), other, transfer="copy")
        assert datastore.get(copied) == {"stored": 1} and datastore.get(stored) == {"stored": 1}

    @pytest.mark.parametrize("transfer", ["symlink", "hardlink"])
    def test_ingest_links(self, datastore, universe, tmp_path, transfer):
        """Symlink and hardlink ingests read back; removing keeps the source."""
        if not self.supports_links:
            pytest.skip("backend has no links")
        source = self._source(tmp_path)
        info = datastore.ingest(
            str(source), self.ref(universe, "raw", "JsonDict"), transfer=transfer
        )
        assert datastore.get(info) == {"ingested": True}
        datastore.remove(info)
        assert source.exists() and not datastore.exists(info)

    def test_ingest_with_formatter(self, datastore, universe, tmp_path):
        """An explicit formatter sets the extension and the reader."""
        source = tmp_path / "a.npy"
        np.save(source, np.arange(5))
        ref = self.ref(universe, "image", "NumpyArray")
        info = datastore.ingest(str(source), ref, formatter=NpyFormatter.dotted_name())
        assert info.path.endswith(".npy")
        np.testing.assert_array_equal(datastore.get(info), np.arange(5))

    @pytest.mark.parametrize("preserve_path", [True, False])
    def test_retrieve(self, datastore, universe, tmp_path, preserve_path):
        """Artifacts are copied out, with or without their relative path."""
        info = datastore.put({"a": 1}, self.ref(universe))
        image = datastore.put(np.ones((3, 2)), self.ref(universe, "image", "NumpyArray"))
        out = tmp_path / "retrieved"
        for item in (info, image):
            where = datastore.retrieve(item, str(out), preserve_path=preserve_path)
            expected = item.path if preserve_path else posixpath.basename(item.path)
            assert where == str(out / expected)
            assert Path(where).exists()
        assert (out / posixpath.basename(image.path) / "zarr.json").exists() != preserve_path

    # -- crash recovery ------------------------------------------------------------------

    def test_find_orphans_and_cleanup(self, datastore, universe):
        """Unknown artifacts are listed (directories once); temporaries are cleaned."""
        kept = datastore.put({"a": 1}, self.ref(universe))
        lost = datastore.put({"a": 2}, self.ref(universe, detector=9, instrument="Cam", visit=42))
        lost_dir = datastore.put(np.zeros((2, 2)), self.ref(universe, "image", "NumpyArray"))
        leftover = temporary_sibling(posixpath.join(datastore.root, kept.path))
        datastore.fs.pipe_file(leftover, b"partial")
        assert datastore.find_orphans({kept.path}) == sorted([lost.path, lost_dir.path])
        assert datastore.find_orphans({kept.path, lost.path, lost_dir.path}) == []
        removed = datastore.cleanup_temporaries()
        assert removed == [posixpath.relpath(leftover, datastore.root)]
        assert not datastore.fs.exists(leftover)
        assert datastore.exists(kept) and datastore.exists(lost_dir)
        assert datastore.cleanup_temporaries() == []

    def test_empty_datastore(self, tmp_path):
        """Recovery helpers work on a datastore never written to."""
        store = self.make_datastore(tmp_path)
        assert store.find_orphans(set()) == []
        assert store.cleanup_temporaries() == []
