"""FileDatastore on a real S3 server (moto on 127.0.0.1): the conformance suite, zarr and
FITS formatters, and writes that never rename (a zarr directory is committed by writing its
chunks first and its ``zarr.json`` last)."""

from __future__ import annotations

import numpy as np
import pytest

from butler import ArtifactChecksumError
from butler.dataset_ref import DatasetRef
from butler.dataset_type import DatasetType
from butler.datastore.file_datastore import FileDatastore
from butler.datastore.formatters import FitsArrayFormatter, ZarrArrayFormatter
from butler.datastore.integrity import StreamDigest, digest
from butler.dimensions import DimensionUniverse
from butler.storage_class import StorageClassRegistry
from butler.testing.datastore_tests import DatastoreTests


class TestS3Datastore(DatastoreTests):
    @pytest.fixture(autouse=True)
    def _bucket(self, s3_server, s3_bucket):
        self.s3 = s3_server
        self.root = f"s3://{s3_bucket}/repo"

    def make_datastore(self, tmp_path):
        return FileDatastore(
            self.root,
            storage_classes=StorageClassRegistry(load_entry_points=False),
            storage_options=self.s3.storage_options,
        )


def _ref(name, storage_class, *, run="run", **data_id):
    universe = DimensionUniverse.default()
    dataset_type = DatasetType.make(name, data_id.keys(), storage_class, universe)
    return DatasetRef.make(dataset_type, data_id, run)


@pytest.fixture
def s3_store(s3_server, s3_bucket):
    return FileDatastore(
        f"s3://{s3_bucket}/repo",
        storage_classes=StorageClassRegistry(load_entry_points=False),
        storage_options=s3_server.storage_options,
    )


class _RecordingFS:
    """Wraps a filesystem and records the keys written, in order, and any rename."""

    def __init__(self, fs):
        self._fs, self.written, self.moves = fs, [], []

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def put(self, lpaths, rpaths, **kwargs):
        self.written.extend(rpaths if isinstance(rpaths, list) else [rpaths])
        return self._fs.put(lpaths, rpaths, **kwargs)

    def put_file(self, lpath, rpath, **kwargs):
        self.written.append(rpath)
        return self._fs.put_file(lpath, rpath, **kwargs)

    def mv(self, *args, **kwargs):
        self.moves.append(args)
        return self._fs.mv(*args, **kwargs)


@pytest.mark.parametrize("replace", [True, False])
def test_zarr_put_writes_metadata_last_and_never_renames(s3_store, replace):
    """The default zarr layout on S3 (this failed: recursive rename of a pseudo-directory)."""
    recording = _RecordingFS(s3_store.fs)
    s3_store.fs = recording
    array = np.arange(600 * 2000, dtype=np.float32).reshape(600, 2000)
    ref = _ref("image", "NumpyArray", instrument="Cam", visit=1)
    info = s3_store.put(array, ref, replace=replace)
    assert recording.moves == []
    assert recording.written[-1].endswith(f"{info.path}/zarr.json")
    assert len(recording.written) == 3  # two chunks, then the metadata
    assert (info.path == s3_store.predict(ref).path) == replace
    np.testing.assert_array_equal(s3_store.get(info), array)
    np.testing.assert_array_equal(
        s3_store.get(info, parameters={"bbox": (10, 300, 5, 7)}), array[300:307, 10:15]
    )
    assert info.file_size == sum(s3_store.fs.du(s3_store.uri(info), total=False).values())
    again = s3_store.put(array * 2, ref, replace=replace)  # a retry works too
    np.testing.assert_array_equal(s3_store.get(again), array * 2)


def test_fits_put_get_on_s3(s3_store):
    s3_store.formatter_overrides["NumpyArray"] = FitsArrayFormatter.dotted_name()
    array = np.arange(120, dtype=np.int32).reshape(10, 12)
    info = s3_store.put(array, _ref("image", "NumpyArray", instrument="Cam"))
    assert info.path.endswith(".fits")
    np.testing.assert_array_equal(s3_store.get(info), array)
    np.testing.assert_array_equal(s3_store.get(info, parameters={"bbox": (2, 3, 4, 5)}),
                                  array[3:8, 2:6])


def test_partial_zarr_is_not_an_artifact(s3_store):
    """Chunks without their zarr.json (an interrupted upload) do not count as stored."""
    ref = _ref("image", "NumpyArray", instrument="Cam")
    info = s3_store.predict(ref)
    s3_store.fs.pipe_file(f"{s3_store.root}/{info.path}/c.0.0", b"\0" * 16)
    assert not s3_store.exists(info)


@pytest.mark.parametrize("fits", [False, True], ids=["zarr", "fits"])
def test_checksums_on_s3(s3_server, s3_bucket, fits):
    """Recorded at put (hashed while staging, before the upload), verified at get (hashed
    from the bytes fetched to decode them: nothing is downloaded twice)."""
    store = FileDatastore(
        f"s3://{s3_bucket}/repo",
        storage_classes=StorageClassRegistry(load_entry_points=False),
        storage_options=s3_server.storage_options,
        checksums=True,
    )
    if fits:
        store.formatter_overrides["NumpyArray"] = FitsArrayFormatter.dotted_name()
    array = np.random.default_rng(4).normal(size=(300, 500)).astype(np.float32)
    info = store.put(array, _ref("image", "NumpyArray", instrument="Cam", visit=2))
    fs, path = store._full_path(info.path)
    assert info.checksum == digest(fs, path)  # the bytes in the bucket, fetched again
    np.testing.assert_array_equal(store.get(info), array)
    streamed = StreamDigest()  # what get verifies: the bytes fetched to decode, hashed
    formatter_class = FitsArrayFormatter if fits else ZarrArrayFormatter
    formatter_class(store.storage_classes["NumpyArray"]).read(fs, path, digest=streamed)
    assert streamed.finish(fs, path) == info.checksum
    key = path if fits else f"{path}/c.0.0"
    data = bytearray(fs.cat_file(key))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(key, bytes(data))  # same size: only the checksum can tell
    with pytest.raises(ArtifactChecksumError):
        store.get(info)
