"""FileDatastore on a local disk and on the fsspec memory filesystem."""

from __future__ import annotations

import uuid

import fsspec
import pytest

from butler._errors import FormatterError
from butler.dataset_ref import DatasetRef
from butler.dataset_type import DatasetType
from butler.datastore.file_datastore import FileDatastore
from butler.datastore.templates import FileTemplates
from butler.dimensions import DimensionUniverse
from butler.storage_class import StorageClassRegistry
from butler.testing.datastore_tests import DatastoreTests


class TestLocalDatastore(DatastoreTests):
    supports_links = True

    def make_datastore(self, tmp_path):
        return FileDatastore(
            str(tmp_path / "repo"), storage_classes=StorageClassRegistry(load_entry_points=False)
        )


class TestMemoryDatastore(DatastoreTests):
    @pytest.fixture(autouse=True)
    def _memory_root(self):
        self.root = f"memory://repo-{uuid.uuid4().hex}"
        yield
        fs = fsspec.filesystem("memory")
        path = self.root.removeprefix("memory://")
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def make_datastore(self, tmp_path):
        return FileDatastore(
            self.root, storage_classes=StorageClassRegistry(load_entry_points=False)
        )

    def test_uri_is_a_url(self, datastore):
        ref = _ref("cal", run="r")
        assert datastore.uri(datastore.predict(ref)).startswith("memory:///repo-")


def _ref(name, *, run="run", storage_class="StructuredDataDict", **data_id):
    universe = DimensionUniverse.default()
    dataset_type = DatasetType.make(name, data_id.keys(), storage_class, universe)
    return DatasetRef.make(dataset_type, data_id, run)


def test_root_that_is_a_file_gives_formatter_error(tmp_path):
    # Root ignores permission bits, so simulate an unwritable root: a file where the
    # directory should be makes every mkdir fail.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    store = FileDatastore(str(blocker), storage_classes=StorageClassRegistry())
    ref = _ref("calexp", instrument="Cam", visit=1, detector=2)
    with pytest.raises(FormatterError, match=r"calexp.*visit: 1.*'run'.*blocker"):
        store.put({"a": 1}, ref)
    assert blocker.read_text() == "not a directory"


def test_read_only_directory(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits (covered by the root-is-a-file test)")
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        store = FileDatastore(str(root), storage_classes=StorageClassRegistry())
        with pytest.raises(FormatterError, match="Permission"):
            store.put({"a": 1}, _ref("calexp", instrument="Cam"))
        assert list(root.iterdir()) == []
    finally:
        root.chmod(0o700)


def test_template_override_is_used(tmp_path):
    templates = FileTemplates(overrides={"calexp": "{run}/{instrument}/{visit}/{detector}/{id}"})
    store = FileDatastore(
        str(tmp_path), storage_classes=StorageClassRegistry(), templates=templates
    )
    ref = _ref("calexp", run="a/b", instrument="Cam", visit=7, detector=1)
    info = store.put({"x": 1}, ref)
    assert info.path == f"a/b/Cam/7/1/{ref.id.hex}.yaml"
    assert (tmp_path / info.path).is_file()


@pytest.mark.parametrize("how", ["put-local", "put-memory", "ingest-nested"])
def test_file_size_of_zarr_directory_is_total_of_its_files(tmp_path, how):
    import numpy as np
    import zarr

    if how == "put-memory":
        root = f"memory://repo-{uuid.uuid4().hex}"
    else:
        root = str(tmp_path / "repo")
    store = FileDatastore(root, storage_classes=StorageClassRegistry(load_entry_points=False))
    ref = _ref("image", run="r", storage_class="NumpyArray", instrument="Cam")
    try:
        if how == "ingest-nested":
            # zarr-python's default "/" chunk keys: files in subdirectories c/<i>/<j>.
            array = np.arange(30 * 40, dtype=np.int32).reshape(30, 40) + 1
            source = str(tmp_path / "src.zarr")
            zarray = zarr.create_array(
                source, shape=array.shape, dtype=array.dtype, chunks=(16, 16), compressors=None
            )
            zarray[...] = array
            info = store.ingest(source, ref, transfer="copy")
            names = {"zarr.json"} | {f"{i}/{j}" for i in range(2) for j in range(3)}
        else:
            # Two ~4 MiB row bands, the second one padded: the files hold more than nbytes.
            array = np.arange(600 * 2000, dtype=np.float32).reshape(600, 2000)
            info = store.put(array, ref)
            names = {"zarr.json", "c.0.0", "c.1.0"}
        assert info.path.endswith(".zarr")
        fs, path = fsspec.core.url_to_fs(store.uri(info))
        assert fs.isdir(path)
        sizes = fs.find(path, detail=True)
        found = {name[len(path) :].strip("/").removeprefix("c/") for name in sizes}
        assert found == names
        expected = sum(entry["size"] for entry in sizes.values())
        assert expected > array.nbytes  # padding and zarr.json are counted
        assert info.file_size == expected
        np.testing.assert_array_equal(store.get(info), array)
    finally:
        if how == "put-memory":
            fs = fsspec.filesystem("memory")
            if fs.exists(root.removeprefix("memory://")):
                fs.rm(root.removeprefix("memory://"), recursive=True)


def _resident_bytes(path) -> int:
    """Bytes of ``path`` in the page cache (util-linux ``fincore``)."""
    import subprocess

    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return int(out.stdout.split()[0])


def test_advise_will_read_brings_local_files_into_the_page_cache(tmp_path):
    import os
    import shutil
    import time

    if shutil.which("fincore") is None or not hasattr(os, "posix_fadvise"):
        pytest.skip("needs util-linux fincore and posix_fadvise")
    datastore = FileDatastore(
        str(tmp_path / "repo"), storage_classes=StorageClassRegistry(load_entry_points=False)
    )
    (tmp_path / "repo" / "run").mkdir(parents=True)
    path = tmp_path / "repo" / "run" / "raw.fits"
    size = 32 << 20  # a 2k^2 raw: larger than the kernel's read-ahead window (often 128 KiB-8 MiB)
    path.write_bytes(os.urandom(size))
    chunk = tmp_path / "repo" / "run" / "exposure.zarr" / "image" / "c" / "0"
    chunk.parent.mkdir(parents=True)  # a zarr directory: its chunk files are advised
    chunk.write_bytes(os.urandom(2 << 20))
    for name in (path, chunk):
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)  # clean pages can be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    if _resident_bytes(path) > 1 << 20 or _resident_bytes(chunk) > 1 << 20:
        pytest.skip("this filesystem keeps the pages (cannot drop them to test)")
    advised = datastore.advise_will_read(["run/raw.fits", "run/exposure.zarr", "run/missing"])
    assert advised == size + (2 << 20)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        _resident_bytes(path) < size or _resident_bytes(chunk) < 2 << 20
    ):
        time.sleep(0.05)  # read ahead by the kernel, in the background
    # all of it: one WILLNEED over the whole file reads only the read-ahead window
    assert _resident_bytes(path) == size and _resident_bytes(chunk) == 2 << 20


def test_advise_will_read_is_nothing_on_an_object_store():
    datastore = FileDatastore(
        f"memory://repo-{uuid.uuid4().hex}",
        storage_classes=StorageClassRegistry(load_entry_points=False),
    )
    assert datastore.advise_will_read(["run/raw.fits"]) == 0
