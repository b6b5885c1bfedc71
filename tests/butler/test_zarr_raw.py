"""butler.datastore.zarr_raw: uncompressed zarr v3 arrays without zarr-python, against it."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile

import fsspec
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BytesCodec

from butler import FormatterError
from butler.datastore.formatters import ZarrArrayFormatter
from butler.datastore.zarr_raw import (
    METADATA_KEY,
    RawLayout,
    read_metadata,
    read_raw_array,
    write_raw_array,
)
from butler.storage_class import StorageClass

DTYPES = ["bool", "int8", "uint16", "int64", "float32", "float64"]
# (shape, chunk shape): exact fits, padded edges, chunks larger than the array, 1-3 axes.
GEOMETRIES = [
    ((10,), (3,)),
    ((10,), (10,)),
    ((10,), (16,)),
    ((7, 9), (2, 4)),
    ((7, 9), (7, 9)),
    ((7, 9), (1, 9)),
    ((6, 8), (3, 4)),
    ((3, 5, 4), (2, 2, 3)),
]
# Every geometry and dtype with ".", every geometry with "/" for a 1- and an 8-byte type.
INTEROP_CASES = [(*g, d, ".") for g in GEOMETRIES for d in DTYPES] + [
    (*g, d, "/") for g in GEOMETRIES for d in ["bool", "float64"]
]
STORAGE_CLASS = StorageClass(
    "NumpyArray", "numpy.ndarray", ZarrArrayFormatter.dotted_name(), ("bbox",)
)


def _array(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _chunk_files(root):
    """Map each chunk index to its file, parsed from the file names (c.i.j or c/i/j)."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(directory, name), root)
            if rel == METADATA_KEY:
                continue
            parts = re.split(r"[./]", rel.replace(os.sep, "/"))
            assert parts[0] == "c", rel
            found[tuple(int(p) for p in parts[1:])] = os.path.join(directory, name)
    return found


def _zarr_create(path, array, chunks, separator=".", **kwargs):
    kwargs.setdefault("compressors", None)
    kwargs.setdefault("fill_value", 0)
    zarray = zarr.create_array(
        path,
        shape=array.shape,
        dtype=array.dtype,
        chunks=chunks,
        chunk_key_encoding={"name": "default", "separator": separator},
        **kwargs,
    )
    zarray[...] = array
    return zarray


# -- write_raw_array, read by zarr-python ---------------------------------------------------


@pytest.mark.parametrize(("shape", "chunks", "dtype", "separator"), INTEROP_CASES, ids=str)
def test_zarr_reads_what_we_write(tmp_path, shape, chunks, dtype, separator):
    array = _array(dtype, shape, seed=len(shape))
    path = str(tmp_path / "a.zarr")
    layout = RawLayout(shape, np.dtype(dtype), chunks, separator)
    write_raw_array(array, path, layout)
    zarray = zarr.open_array(path, mode="r")
    assert zarray.shape == shape and zarray.chunks == chunks and zarray.dtype == array.dtype
    back = zarray[...]
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    # One file per chunk, every one the full chunk size (edges padded), named with the
    # separator.
    files = _chunk_files(path)
    grid = tuple(math.ceil(n / c) for n, c in zip(shape, chunks, strict=True))
    assert sorted(files) == sorted(np.ndindex(*grid))
    chunk_bytes = math.prod(chunks) * array.dtype.itemsize
    for index, file in files.items():
        assert os.path.getsize(file) == chunk_bytes
        key = separator.join(["c", *map(str, index)])
        assert os.path.relpath(file, path).replace(os.sep, "/") == key
    # And we read it back ourselves.
    own = read_raw_array(path, RawLayout.from_metadata(read_metadata(path)))
    assert own.dtype == array.dtype
    np.testing.assert_array_equal(own, array)


def test_edge_chunks_are_padded_with_fill_value(tmp_path):
    array = np.arange(7 * 9, dtype=np.int32).reshape(7, 9)
    path = str(tmp_path / "a.zarr")
    write_raw_array(array, path, RawLayout(array.shape, array.dtype, (4, 4), fill_value=-5))
    corner = np.fromfile(os.path.join(path, "c.1.2"), dtype="<i4").reshape(4, 4)
    expected = np.full((4, 4), -5, dtype=np.int32)
    expected[:3, :1] = array[4:, 8:]
    np.testing.assert_array_equal(corner, expected)
    first = np.fromfile(os.path.join(path, "c.0.0"), dtype="<i4").reshape(4, 4)
    np.testing.assert_array_equal(first, array[:4, :4])
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], array)


def test_non_contiguous_input(tmp_path):
    base = _array("float64", (12, 10), seed=4)
    for n, view in enumerate([base.T, base[::2, 1::3], base[:, ::-1]]):
        path = str(tmp_path / f"v{n}.zarr")
        write_raw_array(view, path, RawLayout(view.shape, view.dtype, (3, 4)))
        np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], view)
        np.testing.assert_array_equal(
            read_raw_array(path, RawLayout.from_metadata(read_metadata(path))), view
        )


def test_zero_length_axis(tmp_path):
    array = np.zeros((0, 4), dtype=np.float32)
    path = str(tmp_path / "e.zarr")
    write_raw_array(array, path, RawLayout(array.shape, array.dtype, (1, 4)))
    assert zarr.open_array(path, mode="r")[...].shape == (0, 4)
    layout = RawLayout.from_metadata(read_metadata(path))
    assert read_raw_array(path, layout).shape == (0, 4)


# -- zarr-python's files, read by us ---------------------------------------------------------


@pytest.mark.parametrize(("shape", "chunks", "dtype", "separator"), INTEROP_CASES, ids=str)
def test_we_read_what_zarr_writes(tmp_path, shape, chunks, dtype, separator):
    array = _array(dtype, shape, seed=7)
    path = str(tmp_path / "z.zarr")
    _zarr_create(path, array, chunks, separator, config={"write_empty_chunks": True})
    doc = read_metadata(path)
    layout = RawLayout.from_metadata(doc)
    assert layout is not None
    assert layout.shape == shape and layout.chunk_shape == chunks
    assert layout.dtype == array.dtype and layout.separator == separator
    back = read_raw_array(path, layout)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    # The document we would write is the one zarr-python wrote.
    ours = layout.to_metadata()
    assert set(doc) <= set(ours)
    for key in doc:
        if key == "codecs" and array.dtype.itemsize == 1:
            # zarr-python leaves out the (meaningless) endian of 1-byte types.
            assert [c["name"] for c in ours[key]] == [c["name"] for c in doc[key]] == ["bytes"]
            continue
        assert ours[key] == doc[key], key
    assert json.loads(json.dumps(ours, allow_nan=False)) == ours


def test_default_zarr_separator_is_slash(tmp_path):
    array = _array("int64", (5, 6), seed=9)
    path = str(tmp_path / "z.zarr")
    zarray = zarr.create_array(
        path, shape=array.shape, dtype=array.dtype, chunks=(2, 2), compressors=None, fill_value=0
    )
    zarray[...] = array
    layout = RawLayout.from_metadata(read_metadata(path))
    assert layout.separator == "/"
    np.testing.assert_array_equal(read_raw_array(path, layout), array)


# -- layouts that are left to zarr-python ----------------------------------------------------


def _zarr_doc(tmp_path, name="z.zarr", dtype="float32", **kwargs):
    path = str(tmp_path / name)
    _zarr_create(path, np.zeros((8, 8), dtype=dtype), (2, 2), **kwargs)
    return read_metadata(path)


def test_compressed_array_is_not_raw(tmp_path):
    path = str(tmp_path / "c.zarr")
    zarr.create_array(path, shape=(8, 8), dtype="float32", chunks=(2, 2))  # default codecs
    doc = read_metadata(path)
    assert len(doc["codecs"]) > 1
    assert RawLayout.from_metadata(doc) is None


def test_big_endian_array_is_not_raw(tmp_path):
    doc = _zarr_doc(tmp_path, serializer=BytesCodec(endian="big"))
    assert doc["codecs"] == [{"name": "bytes", "configuration": {"endian": "big"}}]
    assert RawLayout.from_metadata(doc) is None
    # Endianness means nothing for one-byte types: those stay raw.
    doc = _zarr_doc(tmp_path, "b.zarr", dtype="int8", serializer=BytesCodec(endian="big"))
    assert RawLayout.from_metadata(doc) is not None


def test_group_is_not_raw(tmp_path):
    zarr.create_group(str(tmp_path / "g.zarr"))
    doc = read_metadata(str(tmp_path / "g.zarr"))
    assert doc["node_type"] == "group"
    assert RawLayout.from_metadata(doc) is None


def test_sharded_array_is_not_raw(tmp_path):
    doc = _zarr_doc(tmp_path, shards=(4, 4))
    assert doc["codecs"][0]["name"] == "sharding_indexed"
    assert RawLayout.from_metadata(doc) is None


def test_zarr_v2_array_is_not_raw(tmp_path):
    path = str(tmp_path / "v2.zarr")
    zarr.create_array(path, shape=(4,), dtype="int32", chunks=(2,), zarr_format=2, compressors=None)
    assert not os.path.exists(os.path.join(path, METADATA_KEY))
    with pytest.raises(FileNotFoundError):
        read_metadata(path)


def _good_doc():
    return RawLayout((5, 7), np.dtype("float32"), (2, 3)).to_metadata()


def _set(path, value):
    def change(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _drop(*path):
    def change(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        del target[last]

    return change


GARBLED = {
    "no shape": _drop("shape"),
    "no data_type": _drop("data_type"),
    "no chunk_grid": _drop("chunk_grid"),
    "no chunk_shape": _drop("chunk_grid", "configuration", "chunk_shape"),
    "no chunk_key_encoding": _drop("chunk_key_encoding"),
    "no codecs": _drop("codecs"),
    "no fill_value": _drop("fill_value"),
    "no zarr_format": _drop("zarr_format"),
    "no node_type": _drop("node_type"),
    "zarr_format 2": _set(["zarr_format"], 2),
    "shape null": _set(["shape"], None),
    "shape of wrong rank": _set(["shape"], [5]),
    "shape empty": _set(["shape"], []),
    "shape text": _set(["shape"], ["five", 7]),
    "shape dict": _set(["shape"], {"a": 1}),
    "chunk_shape of wrong rank": _set(["chunk_grid", "configuration", "chunk_shape"], [2]),
    "chunk_shape zero": _set(["chunk_grid", "configuration", "chunk_shape"], [0, 3]),
    "chunk_shape null": _set(["chunk_grid", "configuration", "chunk_shape"], None),
    "chunk_grid text": _set(["chunk_grid"], "regular"),
    "chunk_grid irregular": _set(["chunk_grid", "name"], "rectilinear"),
    "chunk_key_encoding v2": _set(["chunk_key_encoding", "name"], "v2"),
    "chunk_key_encoding null": _set(["chunk_key_encoding"], None),
    "separator pipe": _set(["chunk_key_encoding", "configuration", "separator"], "|"),
    "data_type complex": _set(["data_type"], "complex64"),
    "data_type big-endian numpy": _set(["data_type"], ">f4"),
    "data_type list": _set(["data_type"], ["float32"]),
    "data_type null": _set(["data_type"], None),
    "codecs empty": _set(["codecs"], []),
    "codecs text": _set(["codecs"], "bytes"),
    "codecs dict": _set(["codecs"], {"name": "bytes"}),
    "codec without name": _set(["codecs"], [{"configuration": {"endian": "little"}}]),
    "codec text": _set(["codecs"], ["bytes"]),
    "codec config null": _set(["codecs"], [{"name": "bytes", "configuration": None}]),
    "transpose then bytes": _set(
        ["codecs"],
        [{"name": "transpose", "configuration": {"order": [1, 0]}}, {"name": "bytes"}],
    ),
    "crc32c after bytes": _set(["codecs"], [{"name": "bytes"}, {"name": "crc32c"}]),
    "fill_value text": _set(["fill_value"], "zero"),
    "fill_value list": _set(["fill_value"], [0, 0]),
    "fill_value null": _set(["fill_value"], None),
    "storage transformers": _set(["storage_transformers"], [{"name": "x"}]),
}

# Garbled documents that from_metadata wrongly accepts or crashes on (see the report):
GARBLED |= {  # cases that once slipped through (wrong separators and shapes)
    "separator number": _set(["chunk_key_encoding", "configuration", "separator"], 1),
    "separator null": _set(["chunk_key_encoding", "configuration", "separator"], None),
    "separator empty": _set(["chunk_key_encoding", "configuration", "separator"], ""),
    "separator both": _set(["chunk_key_encoding", "configuration", "separator"], "./"),
    "shape string": _set(["shape"], "57"),
    "shape negative": _set(["shape"], [-5, 7]),
    "shape fractional": _set(["shape"], [5.5, 7]),
}


def test_good_doc_is_raw():
    # The control for the garbled cases below.
    layout = RawLayout.from_metadata(_good_doc())
    assert layout == RawLayout((5, 7), np.dtype("float32"), (2, 3), ".", 0.0)


@pytest.mark.parametrize("change", GARBLED.values(), ids=GARBLED.keys())
def test_garbled_doc_is_not_raw(change):
    doc = _good_doc()
    change(doc)
    assert RawLayout.from_metadata(doc) is None


@pytest.mark.parametrize("doc", [None, [], "zarr", 3, {}, {"zarr_format": 3}], ids=repr)
def test_non_documents_are_not_raw(doc):
    assert RawLayout.from_metadata(doc) is None


def test_read_metadata_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_metadata(str(tmp_path))
    (tmp_path / METADATA_KEY).write_text('{"zarr_format": 3, ')
    with pytest.raises(FormatterError, match="not valid JSON"):
        read_metadata(str(tmp_path))


# -- fill values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf)]
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_fill_values(tmp_path, text, value, dtype):
    doc = RawLayout((5, 7), np.dtype(dtype), (2, 3)).to_metadata()
    doc["fill_value"] = text
    layout = RawLayout.from_metadata(doc)
    assert isinstance(layout.fill_value, float)
    assert layout.fill_value == value or (math.isnan(value) and math.isnan(layout.fill_value))
    again = layout.to_metadata()
    assert again["fill_value"] == text
    json.dumps(again, allow_nan=False)  # strict JSON: no bare NaN / Infinity tokens
    # zarr-python writes the same strings and reads ours.
    zpath = str(tmp_path / "z.zarr")
    zarr.create_array(
        zpath,
        shape=(5, 7),
        dtype=dtype,
        chunks=(2, 3),
        compressors=None,
        fill_value=value,
        chunk_key_encoding={"name": "default", "separator": "."},
    )
    assert read_metadata(zpath)["fill_value"] == text
    path = str(tmp_path / "a.zarr")
    array = _array(dtype, (5, 7))
    write_raw_array(array, path, layout)
    os.remove(os.path.join(path, "c.1.1"))
    expected = array.copy()
    expected[2:4, 3:6] = value
    zarray = zarr.open_array(path, mode="r")
    np.testing.assert_array_equal(zarray[...], expected)
    assert zarray.fill_value == value or math.isnan(zarray.fill_value)
    np.testing.assert_array_equal(read_raw_array(path, RawLayout.from_metadata(doc)), expected)
    # Edge chunks are padded with the fill value.
    corner = np.fromfile(os.path.join(path, "c.2.2"), dtype=dtype).reshape(2, 3)
    np.testing.assert_array_equal(corner[1:, :], np.full((1, 3), value, dtype=dtype))


@pytest.mark.parametrize(
    ("dtype", "fill", "expected"),
    [("float32", 1, 1.0), ("int64", -3, -3), ("uint16", 7, 7), ("bool", 1, True)],
)
def test_plain_fill_values(dtype, fill, expected):
    doc = RawLayout((4,), np.dtype(dtype), (2,), fill_value=fill).to_metadata()
    assert doc["fill_value"] == expected and type(doc["fill_value"]) is type(expected)
    assert RawLayout.from_metadata(doc).fill_value == expected


def test_numpy_nan_fill_value_is_strict_json():
    layout = RawLayout((4,), np.dtype("float32"), (2,), fill_value=np.float32("nan"))
    assert layout.to_metadata()["fill_value"] == "NaN"


# -- missing chunks ----------------------------------------------------------------------


@pytest.mark.parametrize("fill", [0, -7])
def test_missing_chunks_read_as_fill_value(tmp_path, fill):
    array = _array("int64", (7, 9), seed=11)
    path = str(tmp_path / "a.zarr")
    layout = RawLayout(array.shape, array.dtype, (3, 4), fill_value=fill)
    write_raw_array(array, path, layout)
    os.remove(os.path.join(path, "c.0.1"))
    os.remove(os.path.join(path, "c.2.2"))  # the padded corner
    expected = array.copy()
    expected[0:3, 4:8] = fill
    expected[6:7, 8:9] = fill
    np.testing.assert_array_equal(read_raw_array(path, layout), expected)
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], expected)
    region = (slice(1, 7), slice(3, 9))
    np.testing.assert_array_equal(read_raw_array(path, layout, region), expected[region])
    # No chunk at all.
    for file in _chunk_files(path).values():
        os.remove(file)
    np.testing.assert_array_equal(read_raw_array(path, layout), np.full((7, 9), fill))


def test_zarr_skipped_empty_chunks_read_as_fill_value(tmp_path):
    array = np.zeros((9, 9), dtype=np.float32)
    array[7:, 7:] = 2.5
    path = str(tmp_path / "z.zarr")
    _zarr_create(path, array, (3, 3))  # zarr-python does not write all-fill chunks
    assert sorted(_chunk_files(path)) == [(2, 2)]
    layout = RawLayout.from_metadata(read_metadata(path))
    np.testing.assert_array_equal(read_raw_array(path, layout), array)


# -- region reads ------------------------------------------------------------------------


def _overlaps(index, chunks, region):
    return all(
        start < stop and i * c < stop and (i + 1) * c > start
        for i, c, (start, stop) in zip(index, chunks, region, strict=True)
    )


@st.composite
def _cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, n + 2)) for n in shape)
    dtype = draw(st.sampled_from(DTYPES))
    separator = draw(st.sampled_from([".", "/"]))
    bound = st.one_of(st.none(), st.integers(-12, 12))
    region = tuple(slice(draw(bound), draw(bound)) for _ in shape)
    return shape, chunks, dtype, separator, region


@settings(max_examples=50, deadline=None)
@given(_cases(), st.integers(0, 2**32 - 1))
def test_region_reads_touch_only_overlapping_chunks(case, seed):
    shape, chunks, dtype, separator, region = case
    array = _array(dtype, shape, seed)
    layout = RawLayout(shape, np.dtype(dtype), chunks, separator)
    expected = array[region]
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "a.zarr")
        write_raw_array(array, path, layout)
        back = read_raw_array(path, layout, region)
        assert back.dtype == array.dtype and back.shape == expected.shape
        np.testing.assert_array_equal(back, expected)
        # Empty every chunk the region does not overlap: the region still reads...
        resolved = [s.indices(n)[:2] for s, n in zip(region, shape, strict=True)]
        emptied = 0
        for index, file in _chunk_files(path).items():
            if not _overlaps(index, chunks, resolved):
                os.truncate(file, 0)
                emptied += 1
        np.testing.assert_array_equal(read_raw_array(path, layout, region), expected)
        # ... but the whole array does not, when anything was emptied.
        if emptied:
            with pytest.raises(FormatterError, match="truncated"):
                read_raw_array(path, layout)
        else:
            np.testing.assert_array_equal(read_raw_array(path, layout), array)


def test_chunks_lists_overlapping_chunks():
    layout = RawLayout((7, 9), np.dtype("int8"), (3, 4))
    assert [key for key, _ in layout.chunks()] == [f"c.{i}.{j}" for i in range(3) for j in range(3)]
    assert dict(layout.chunks())["c.2.2"] == (slice(6, 7), slice(8, 9))
    region = (slice(2, 4), slice(4, 8))
    assert dict(layout.chunks(region)) == {
        "c.0.1": (slice(0, 3), slice(4, 8)),
        "c.1.1": (slice(3, 6), slice(4, 8)),
    }
    assert list(layout.chunks((slice(3, 3), slice(0, 9)))) == []
    slash = RawLayout((7, 9), np.dtype("int8"), (3, 4), "/")
    assert next(slash.chunks())[0] == "c/0/0"


def test_truncated_chunk_is_formatter_error(tmp_path):
    array = _array("float32", (6, 8), seed=12)
    path = str(tmp_path / "a.zarr")
    layout = RawLayout(array.shape, array.dtype, (3, 4))
    write_raw_array(array, path, layout)
    file = os.path.join(path, "c.1.0")
    os.truncate(file, os.path.getsize(file) - 1)
    with pytest.raises(FormatterError, match="c.1.0"):
        read_raw_array(path, layout)
    with pytest.raises(FormatterError):
        read_raw_array(path, layout, (slice(4, 5), slice(0, 2)))
    np.testing.assert_array_equal(
        read_raw_array(path, layout, (slice(0, 3), slice(0, 8))), array[:3]
    )


# -- through ZarrArrayFormatter ----------------------------------------------------------


class SmallChunkZarr(ZarrArrayFormatter):
    chunk_bytes = 256  # 64 float32 per chunk: many chunks for a small image


def test_formatter_uses_raw_layout(tmp_path):
    fs = fsspec.filesystem("file")
    path = str(tmp_path / "img.zarr")
    image = _array("float32", (37, 53), seed=13)
    formatter = SmallChunkZarr(STORAGE_CLASS)
    formatter.write(image, fs, path)
    with open(os.path.join(path, METADATA_KEY)) as stream:
        doc = json.load(stream)
    assert doc["codecs"] == [{"name": "bytes", "configuration": {"endian": "little"}}]
    assert doc["chunk_key_encoding"]["configuration"]["separator"] == "."
    layout = RawLayout.from_metadata(doc)
    assert layout is not None and layout.chunk_shape == (1, 53)  # one row per 256-byte chunk
    np.testing.assert_array_equal(formatter.read(fs, path), image)
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], image)


def test_formatter_bbox_reads_only_overlapping_chunks(tmp_path):
    fs = fsspec.filesystem("file")
    path = str(tmp_path / "img.zarr")
    image = _array("float32", (37, 53), seed=14)
    formatter = SmallChunkZarr(STORAGE_CLASS)
    formatter.write(image, fs, path)
    layout = RawLayout.from_metadata(read_metadata(path))
    x0, y0, w, h = 10, 5, 7, 3
    np.testing.assert_array_equal(
        formatter.read(fs, path, parameters={"bbox": (x0, y0, w, h)}),
        image[y0 : y0 + h, x0 : x0 + w],
    )
    wanted = [(y0, y0 + h), (x0, x0 + w)]
    for index, file in _chunk_files(path).items():
        if not _overlaps(index, layout.chunk_shape, wanted):
            os.truncate(file, 0)
    cut = formatter.read(fs, path, parameters={"bbox": (x0, y0, w, h)})
    np.testing.assert_array_equal(cut, image[y0 : y0 + h, x0 : x0 + w])
    # The whole read goes through the raw reader too: it reports the emptied chunks.
    with pytest.raises(FormatterError, match="truncated"):
        formatter.read(fs, path)


# -- page-aligned output ---------------------------------------------------------------


@pytest.mark.parametrize(("shape", "dtype"), [((3, 5), "float32"), ((0,), "int64"), ((7,), "bool")])
def test_page_aligned_empty(shape, dtype):
    from butler.datastore.zarr_raw import page_aligned_empty

    array = page_aligned_empty(shape, np.dtype(dtype))
    assert array.shape == shape and array.dtype == np.dtype(dtype)
    assert array.flags.c_contiguous and array.flags.writeable
    if array.size:
        assert array.ctypes.data % 4096 == 0


def test_whole_reads_are_page_aligned_and_mix_direct_and_padded_chunks(tmp_path):
    # 10 x 6 in 4 x 6 chunks: two whole chunks read straight in, one padded edge chunk
    array = np.arange(60, dtype=np.float64).reshape(10, 6)
    layout = RawLayout(array.shape, array.dtype, (4, 6))
    write_raw_array(array, str(tmp_path / "a.zarr"), layout)
    back = read_raw_array(str(tmp_path / "a.zarr"), layout)
    np.testing.assert_array_equal(back, array)
    assert back.ctypes.data % 4096 == 0
