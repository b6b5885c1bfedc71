import numpy as np
import pytest
import zarr
from _exposure_factory import assert_exposures_equal, assert_wcs_close, make_exposure

from imaging._errors import ExposureFormatError
from imaging.geometry import Box
from imaging.zarr_io import read_exposure_zarr, write_exposure_zarr


def test_round_trip_exact(tmp_path):
    exp = make_exposure(shape=(600, 530), xy0=(10, 20))
    path = tmp_path / "exp.zarr"
    write_exposure_zarr(exp, path, chunks=(256, 256))
    back = read_exposure_zarr(path)
    assert_exposures_equal(exp, back, exact_wcs=True)
    group = zarr.open_group(str(path), mode="r")
    assert group["image"].chunks == (256, 256)
    assert group["mask"].dtype == np.uint32


def test_bbox_read_touches_only_needed_chunks(tmp_path):
    exp = make_exposure(shape=(600, 530), xy0=(10, 20))
    path = tmp_path / "exp.zarr"
    write_exposure_zarr(exp, path, chunks=(256, 256))
    # Remove a chunk far from the box: the bbox read must not need it.
    chunk = path / "image" / "c" / "2" / "2"
    assert chunk.exists()
    chunk.unlink()
    box = Box(20, 30, 100, 50)
    part = read_exposure_zarr(path, bbox=box)
    ref = exp[box]
    assert part.xy0 == box.origin
    assert np.array_equal(part.image, ref.image)
    assert np.array_equal(part.mask.array, ref.mask.array)
    assert_wcs_close(part.wcs, exp.wcs, box)
    assert part.psf == exp.psf
    with pytest.raises(ExposureFormatError, match="bbox"):
        read_exposure_zarr(path, bbox=Box(0, 0, 5, 5))


def test_missing_pieces(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_exposure_zarr(tmp_path / "nothing.zarr")
    exp = make_exposure(shape=(40, 30))
    exp.wcs = None
    exp.psf = None
    path = tmp_path / "e.zarr"
    write_exposure_zarr(exp, path)
    back = read_exposure_zarr(path)
    assert back.wcs is None and back.psf is None
    group = zarr.open_group(str(path), mode="r+")
    del group["variance"]
    with pytest.raises(ExposureFormatError, match="variance"):
        read_exposure_zarr(path)


def test_overwrite_and_memory_store(tmp_path):
    exp = make_exposure(shape=(40, 30))
    path = tmp_path / "e.zarr"
    write_exposure_zarr(exp, path)
    exp.image += 1
    write_exposure_zarr(exp, path)  # replaces atomically
    assert np.array_equal(read_exposure_zarr(path).image, exp.image)
    assert [p.name for p in tmp_path.iterdir()] == ["e.zarr"]
    with pytest.raises(FileExistsError):
        write_exposure_zarr(exp, path, overwrite=False)
    store = zarr.storage.MemoryStore()
    write_exposure_zarr(exp, store)
    assert_exposures_equal(exp, read_exposure_zarr(store), exact_wcs=True)


class _WriteCountingStore(zarr.storage.MemoryStore):
    """A memory store that counts the writes of each key (in the class: zarr copies stores)."""

    writes: dict[str, int] = {}

    async def set(self, key, value, byte_range=None):
        type(self).writes[key] = type(self).writes.get(key, 0) + 1
        await super().set(key, value)


def test_the_group_metadata_is_written_once():
    # A rewritten zarr.json replaces a file: on a filesystem mounted with ``discard`` the
    # freed block is discarded synchronously (seen as workers blocked in blkdev_issue_discard).
    exposure = make_exposure(shape=(40, 30))
    _WriteCountingStore.writes = {}
    store = _WriteCountingStore()
    write_exposure_zarr(exposure, store, atomic=True)  # as the datastore's formatter does
    assert store.writes["zarr.json"] == 1
    assert_exposures_equal(exposure, read_exposure_zarr(store), exact_wcs=True)
    # in place, not published atomically: the attributes last, so a torn write is incomplete
    _WriteCountingStore.writes = {}
    store = _WriteCountingStore()
    write_exposure_zarr(exposure, store)
    assert store.writes["zarr.json"] == 2
    assert_exposures_equal(exposure, read_exposure_zarr(store), exact_wcs=True)
