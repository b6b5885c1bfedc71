"""Direct shard reads of stamp cubes: bit for bit zarr's, only the chunks touched."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import zarr
from _stamps_factory import make_stamps

from imaging import _shard_reader
from imaging._shard_reader import ShardedPlane
from imaging.geometry import Box
from imaging.stamps_io import ZarrStampsReader, write_stamps_zarr

BOXES = [
    Box(100, 100, 100, 100),  # one chunk
    Box(50, 150, 130, 80),  # across four chunks
    Box(200, 230, 75, 45),  # the edge chunks (stored padded to 100 x 100)
    Box(0, 0, 275, 275),  # everything
]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    stamps = make_stamps(seed=5, n=4, size=275, variance=True)
    stamps[2].stamp_im.mask.array[:] = 0  # its mask chunks equal the fill value: not stored
    path = tmp_path_factory.mktemp("shards") / "s.zarr"
    write_stamps_zarr(stamps, str(path))
    return path


@pytest.mark.parametrize("name", ["image", "mask", "variance"])
def test_direct_reads_equal_zarr_reads(group, name):
    reference = zarr.open_group(str(group), mode="r")[name][...]
    plane = ShardedPlane.open(group, name)
    assert plane is not None
    try:
        for box in BOXES:
            for chosen in ([0, 1, 2, 3], [3, 1], [2]):
                got = plane.read(chosen, box)
                want = reference[chosen][:, box.y0 : box.y1, box.x0 : box.x1]
                assert got.dtype == want.dtype
                assert got.tobytes() == want.tobytes()  # bit for bit, NaN included
    finally:
        plane.close()


def test_chunks_not_stored_read_as_the_fill_value(group):
    plane = ShardedPlane.open(group, "mask")
    empty = np.all(plane._index == np.uint64(2**64 - 1), axis=-1)
    assert empty[2].all() and not empty[0].any()
    assert not plane.read([2], Box(0, 0, 275, 275)).any()
    plane.close()


def test_a_box_reads_only_its_chunks(group, monkeypatch):
    read = []
    pread = _shard_reader.os.pread

    def counting(fd, n, offset):
        data = pread(fd, n, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(_shard_reader.os, "pread", counting)
    plane = ShardedPlane.open(group, "image")
    plane.read([0, 1, 2, 3], Box(0, 0, 275, 275))
    whole = sum(read)
    read.clear()
    plane.read([0, 1, 2, 3], Box(100, 100, 100, 100))
    assert len(read) == 4 and sum(read) < whole / 6  # one chunk of 9 per stamp
    plane.close()


def test_threads_read_at_once(group):
    plane = ShardedPlane.open(group, "image")
    boxes = BOXES * 4
    serial = [plane.read([0, 1, 2, 3], b).tobytes() for b in boxes]
    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(lambda b: plane.read([0, 1, 2, 3], b).tobytes(), boxes))
    assert parallel == serial
    plane.close()


def test_other_layouts_are_read_by_zarr(tmp_path, group):
    # no shards: not the layout, the stamps reader falls back to zarr's API
    stamps = make_stamps(seed=6, n=3, size=120)
    path = tmp_path / "plain.zarr"
    write_stamps_zarr(stamps, str(path))
    root = zarr.open_group(str(path), mode="a")
    pixels = root["image"][...]
    del root["image"]
    root.create_array("image", data=pixels, chunks=(1, 50, 50))
    assert ShardedPlane.open(path, "image") is None
    with ZarrStampsReader(str(path)) as reader:
        assert "image" not in reader._direct and "mask" in reader._direct
        part = reader.read(bbox=Box(10, 20, 60, 70), indices=[2, 0])
    np.testing.assert_array_equal(part[0].stamp_im.image, pixels[2, 20:90, 10:70])
    # a damaged shard index: left to zarr, which reports it
    shard = group / "variance" / "c" / "0" / "0" / "0"
    copy = tmp_path / "damaged.zarr"
    shutil.copytree(group, copy)
    data = bytearray((copy / "variance" / "c" / "0" / "0" / "0").read_bytes())
    data[-10] ^= 0xFF
    (copy / "variance" / "c" / "0" / "0" / "0").write_bytes(bytes(data))
    assert shard.exists() and ShardedPlane.open(copy, "variance") is None


def _columns_and_attrs(reader):
    return {k: v.copy() for k, v in reader._columns.items()}, dict(reader._attrs)


def test_a_local_group_opens_without_zarr_and_as_zarr_reads_it(group, monkeypatch):
    """The attributes and the table read directly equal zarr's; zarr is not called."""
    reference = ZarrStampsReader.__new__(ZarrStampsReader)  # zarr's reading of it all
    reference.source, reference._direct, reference._planes = "ref", {}, {}
    reference._open_zarr(str(group), None)
    calls = []
    monkeypatch.setattr(zarr, "open_group", lambda *a, **k: calls.append(a))
    with ZarrStampsReader(str(group)) as direct:
        assert calls == [] and set(direct._direct) == {"image", "mask", "variance"}
        columns, attrs = _columns_and_attrs(direct)
        want_columns, want_attrs = _columns_and_attrs(reference)
        assert attrs == want_attrs and columns.keys() == want_columns.keys()
        for name, values in want_columns.items():
            assert columns[name].dtype == values.dtype
            np.testing.assert_array_equal(columns[name], values)
        assert direct.read(indices=[3, 0]).equals(reference.read(indices=[3, 0]))
    with pytest.raises(ValueError, match="closed"):
        direct.read()


def test_a_table_not_in_one_chunk_is_read_through_zarr(group, tmp_path):
    """Any other layout of a column (here several chunks) falls back to zarr, same result."""
    copy = tmp_path / "other.zarr"
    shutil.copytree(group, copy)
    values = zarr.open_group(str(group), mode="r")["g_mag"][...]
    shutil.rmtree(copy / "g_mag")
    root = zarr.open_group(str(copy), mode="a")
    column = root.create_array("g_mag", shape=values.shape, dtype=values.dtype, chunks=(1,))
    column[...] = values
    assert _shard_reader.read_single_chunk_array(copy, "g_mag") is None
    assert _shard_reader.read_single_chunk_array(group, "g_mag") is not None
    with ZarrStampsReader(str(copy)) as fallback, ZarrStampsReader(str(group)) as direct:
        np.testing.assert_array_equal(fallback._columns["g_mag"], values)
        assert fallback.read().equals(direct.read())
