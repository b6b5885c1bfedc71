"""butler.datastore.fits_image: raw FITS primary-image I/O, against astropy."""

from __future__ import annotations

import io
import os
import uuid

import fsspec
import numpy as np
import pytest
from astropy.io import fits

from butler._errors import FormatterError
from butler.datastore import fits_image
from butler.datastore.fits_image import (
    BLOCK_BYTES,
    bitpix_for,
    plain_image_layout,
    read_data_unit,
    write_primary_image,
)
from butler.datastore.formatters import FitsArrayFormatter
from butler.storage_class import StorageClass

UNSCALED = ["uint8", "int16", "int32", "int64", "float32", "float64"]
# Element counts chosen so that no data unit is a multiple of the 64-byte test chunk.
SHAPES = [(1,), (37,), (13, 11), (3, 7, 5)]
STORAGE_CLASS = StorageClass(
    "FitsImage", "numpy.ndarray", FitsArrayFormatter.dotted_name(), ("bbox",)
)


@pytest.fixture
def small_chunks(monkeypatch):
    """A 64-byte swap buffer: many chunks, and a partial last one."""
    monkeypatch.setattr(fits_image, "CHUNK_BYTES", 64)


def _random(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 1e3).astype(dtype)
    info = np.iinfo(dtype)
    # Extremes included so a sign or byte-order slip cannot hide.
    flat = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True).reshape(-1)
    flat[:2] = [info.min, info.max][: flat.size]
    return flat.reshape(shape)


def _write(path, array):
    with open(path, "wb") as stream:
        write_primary_image(stream, array)


def _read(path, rows=None):
    with open(path, "rb") as stream:
        layout = plain_image_layout(fits.Header.fromfile(stream))
        assert layout is not None
        return read_data_unit(stream, layout, rows)


def _header_length(path):
    with open(path, "rb") as stream:
        fits.Header.fromfile(stream)
        return stream.tell()


def _assert_bit_exact(read, expected):
    native = expected.dtype.newbyteorder("=")
    assert read.dtype == native and read.dtype.isnative
    assert read.shape == expected.shape
    assert read.flags.c_contiguous and read.flags.writeable
    assert read.tobytes() == np.ascontiguousarray(expected, dtype=native).tobytes()


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", UNSCALED)
def test_round_trip_in_small_chunks(tmp_path, small_chunks, dtype, shape):
    array = _random(dtype, shape)
    path = tmp_path / "a.fits"
    _write(path, array)
    _assert_bit_exact(_read(path), array)
    # The data unit on disk is exactly the big-endian pixels, then zero padding.
    raw = path.read_bytes()
    start = _header_length(path)
    big = array.astype(array.dtype.newbyteorder(">")).tobytes()
    assert raw[start : start + len(big)] == big
    assert set(raw[start + len(big) :]) <= {0}
    assert len(raw) % BLOCK_BYTES == 0 and len(raw) - start - len(big) < BLOCK_BYTES


@pytest.mark.parametrize("chunk_bytes", [1, 3, 8, fits_image.CHUNK_BYTES])
def test_round_trip_any_chunk_size(tmp_path, monkeypatch, chunk_bytes):
    # Buffers smaller than an item, not a multiple of it, exactly one item, and the default.
    monkeypatch.setattr(fits_image, "CHUNK_BYTES", chunk_bytes)
    for dtype in ["int16", "float64"]:
        array = _random(dtype, (9, 31), seed=chunk_bytes)
        _write(tmp_path / "a.fits", array)
        _assert_bit_exact(_read(tmp_path / "a.fits"), array)


def test_round_trip_larger_than_default_chunk(tmp_path):
    # just over one default chunk, and not a whole number of chunks
    n = fits_image.CHUNK_BYTES // 4 + 1001
    array = _random("float32", (n // 7, 7))
    assert array.nbytes > fits_image.CHUNK_BYTES and array.nbytes % fits_image.CHUNK_BYTES
    _write(tmp_path / "a.fits", array)
    _assert_bit_exact(_read(tmp_path / "a.fits"), array)


@pytest.mark.parametrize("dtype", UNSCALED)
def test_big_endian_input(tmp_path, small_chunks, dtype):
    array = _random(dtype, (13, 11)).astype(np.dtype(dtype).newbyteorder(">"))
    _write(tmp_path / "a.fits", array)
    back = _read(tmp_path / "a.fits")
    _assert_bit_exact(back, array)
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("byteorder", ["=", ">"])
@pytest.mark.parametrize("dtype", UNSCALED)
def test_non_contiguous_input(tmp_path, small_chunks, dtype, byteorder):
    base = _random(dtype, (14, 19), seed=3).astype(np.dtype(dtype).newbyteorder(byteorder))
    views = [base.T, base[::2, 1::3], base[3:11, ::-1], base[:, 5]]
    for view in views:
        assert not view.flags.c_contiguous or view.ndim == 1
        _write(tmp_path / "a.fits", view)
        back = _read(tmp_path / "a.fits")
        _assert_bit_exact(back, view)
        np.testing.assert_array_equal(back, view)


@pytest.mark.parametrize("byteorder", ["=", ">"])
@pytest.mark.parametrize(("dtype", "utype"), [("float32", "uint32"), ("float64", "uint64")])
def test_special_floats_are_bit_exact(tmp_path, small_chunks, dtype, utype, byteorder):
    info = np.finfo(dtype)
    values = np.array(
        [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, info.tiny / 4, info.max, info.min],
        dtype=dtype,
    )
    bits = 8 * np.dtype(dtype).itemsize
    payloads = np.array(
        [
            (0x7FF << (bits - 12)) | 1 if bits == 64 else 0x7F800001,  # signalling NaN
            (0xFFF << (bits - 12)) | 0x12345 if bits == 64 else 0xFFC12345,  # payload NaN
        ],
        dtype=utype,
    ).view(dtype)
    array = np.concatenate([values, payloads] * 5).astype(np.dtype(dtype).newbyteorder(byteorder))
    _write(tmp_path / "a.fits", array)
    back = _read(tmp_path / "a.fits")
    expected_bits = array.astype(np.dtype(dtype)).view(utype)
    np.testing.assert_array_equal(back.view(utype), expected_bits)
    assert np.isnan(back).sum() == 4 * 5


def test_empty_rows_and_zero_length_axis(tmp_path, small_chunks):
    array = np.zeros((0, 4), dtype=np.float32)
    _write(tmp_path / "a.fits", array)
    assert (tmp_path / "a.fits").stat().st_size == BLOCK_BYTES  # header only
    back = _read(tmp_path / "a.fits")
    assert back.shape == (0, 4) and back.dtype == np.float32


def test_write_to_in_memory_stream(small_chunks):
    array = _random("int32", (5, 6))
    buffer = io.BytesIO()
    write_primary_image(buffer, array)  # no file descriptor: preallocation is skipped
    buffer.seek(0)
    layout = plain_image_layout(fits.Header.fromfile(buffer))
    _assert_bit_exact(read_data_unit(buffer, layout), array)


# -- astropy interoperability -----------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", UNSCALED)
def test_astropy_reads_our_files(tmp_path, small_chunks, dtype, shape):
    array = _random(dtype, shape, seed=1)
    path = tmp_path / "a.fits"
    _write(path, array)
    assert path.stat().st_size % BLOCK_BYTES == 0
    with fits.open(path, memmap=False) as hdul:
        hdul.verify("exception")
        assert len(hdul) == 1
        data = hdul[0].data
        assert hdul[0].header["BITPIX"] == bitpix_for(array.dtype)
        assert "BZERO" not in hdul[0].header and "BSCALE" not in hdul[0].header
        assert data.shape == array.shape
        assert data.dtype.kind == array.dtype.kind
        assert data.dtype.itemsize == array.dtype.itemsize
        np.testing.assert_array_equal(data, array)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", UNSCALED)
def test_we_read_astropy_files(tmp_path, small_chunks, dtype, shape):
    array = _random(dtype, shape, seed=2)
    path = tmp_path / "a.fits"
    fits.PrimaryHDU(array).writeto(path)
    _assert_bit_exact(_read(path), array)


def test_we_read_astropy_files_with_extra_header_cards(tmp_path, small_chunks):
    # Enough cards that the header spans several 2880-byte blocks.
    array = _random("float32", (20, 9), seed=4)
    header = fits.Header()
    for n in range(100):
        header[f"KEY{n}"] = (n * 1.5, "a comment to take up room")
    fits.PrimaryHDU(array, header=header).writeto(tmp_path / "a.fits")
    assert _header_length(tmp_path / "a.fits") > 2 * BLOCK_BYTES
    _assert_bit_exact(_read(tmp_path / "a.fits"), array)


# -- plain_image_layout -----------------------------------------------------------------


def _header(**cards):
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = 16
    header["NAXIS"] = 2
    header["NAXIS1"] = 7
    header["NAXIS2"] = 5
    for key, value in cards.items():
        header[key] = value
    return header


def test_plain_layout_of_plain_header():
    layout = plain_image_layout(_header())
    assert layout is not None
    assert layout.shape == (5, 7)  # NAXIS2 (slow) first
    assert layout.dtype == np.dtype("int16") and layout.dtype.isnative
    assert layout.nbytes == 70
    # Explicit identity scaling is still plain.
    assert plain_image_layout(_header(BZERO=0, BSCALE=1)) is not None
    assert plain_image_layout(_header(BZERO=0.0, BSCALE=1.0)) is not None
    for bitpix, dtype in [(8, "u1"), (32, "i4"), (64, "i8"), (-32, "f4"), (-64, "f8")]:
        assert plain_image_layout(_header(BITPIX=bitpix)).dtype == np.dtype(dtype)


def test_plain_layout_of_3d_header():
    layout = plain_image_layout(_header(NAXIS=3, NAXIS3=4))
    assert layout.shape == (4, 5, 7)


def test_no_plain_layout_for_uint16_written_by_astropy(tmp_path):
    array = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    fits.PrimaryHDU(array).writeto(tmp_path / "u.fits")
    with open(tmp_path / "u.fits", "rb") as stream:
        header = fits.Header.fromfile(stream)
    assert header["BZERO"] == 32768
    assert plain_image_layout(header) is None


@pytest.mark.parametrize(
    "cards",
    [
        {"BSCALE": 2.0},
        {"BSCALE": 0.5, "BZERO": 0},
        {"BZERO": 32768},
        {"BZERO": -1.5},
        {"BLANK": -32768},
        {"BLANK": 0},
        {"NAXIS": 0},
        {"SIMPLE": False},
        {"GROUPS": True},
        {"BITPIX": 24},
        {"NAXIS": 3},  # NAXIS3 missing
    ],
    ids=str,
)
def test_no_plain_layout(cards):
    assert plain_image_layout(_header(**cards)) is None


def test_no_plain_layout_for_header_without_data(tmp_path):
    fits.PrimaryHDU().writeto(tmp_path / "empty.fits")
    with open(tmp_path / "empty.fits", "rb") as stream:
        header = fits.Header.fromfile(stream)
    assert header["NAXIS"] == 0
    assert plain_image_layout(header) is None


def test_no_plain_layout_for_scaled_float_data(tmp_path):
    hdu = fits.PrimaryHDU(np.linspace(0, 100, 12).reshape(3, 4))
    hdu.scale("int16", bscale=0.1)
    hdu.writeto(tmp_path / "scaled.fits")
    with open(tmp_path / "scaled.fits", "rb") as stream:
        header = fits.Header.fromfile(stream)
    assert header["BSCALE"] == pytest.approx(0.1)
    assert plain_image_layout(header) is None


# -- row ranges and truncation ----------------------------------------------------------


class CountingFile(io.FileIO):
    """A real unbuffered file that counts the bytes it reads, by any method."""

    bytes_read = 0

    def readinto(self, buffer):
        n = super().readinto(buffer)
        self.bytes_read += n or 0
        return n

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data or b"")
        return data

    def readall(self):
        data = super().readall()
        self.bytes_read += len(data)
        return data


@pytest.mark.parametrize(
    "rows",
    [
        slice(0, 40),
        slice(0, 1),
        slice(39, 40),
        slice(7, 23),
        slice(12, 13),
        slice(5, 5),
        slice(30, 10),
        slice(None, 9),
        slice(33, None),
        slice(-4, None),
        slice(35, 100),
    ],
    ids=str,
)
@pytest.mark.parametrize("dtype", ["uint8", "int16", "float64"])
def test_read_rows(tmp_path, small_chunks, dtype, rows):
    array = _random(dtype, (40, 7, 3), seed=6)
    path = tmp_path / "a.fits"
    _write(path, array)
    with CountingFile(path, "rb") as stream:
        layout = plain_image_layout(fits.Header.fromfile(stream))
        start = stream.tell()
        stream.bytes_read = 0
        back = read_data_unit(stream, layout, rows)
        expected = array[rows]
        _assert_bit_exact(back, expected)
        # Earlier rows are skipped by seeking: only the requested rows are read.
        assert stream.bytes_read == expected.nbytes
        row_bytes = 7 * 3 * array.dtype.itemsize
        if len(back):
            assert stream.tell() == start + (rows.indices(40)[0] + len(back)) * row_bytes


@pytest.mark.timeout(20)
def test_read_rows_after_truncation_point_raise_but_earlier_rows_read(tmp_path, small_chunks):
    array = _random("int32", (20, 9), seed=7)
    path = tmp_path / "a.fits"
    _write(path, array)
    start = _header_length(path)
    with open(path, "r+b") as stream:
        stream.truncate(start + 10 * 9 * 4 + 5)  # ten whole rows and a bit of the next
    _assert_bit_exact(_read(path, slice(0, 10)), array[:10])
    _assert_bit_exact(_read(path, slice(4, 9)), array[4:9])
    with pytest.raises(EOFError):
        _read(path, slice(0, 11))
    with pytest.raises(EOFError):
        _read(path, slice(15, 20))
    with pytest.raises(EOFError):
        _read(path)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("missing", [1, 37, "all", "padding"])
def test_truncated_file_raises_eof(tmp_path, small_chunks, missing):
    array = _random("float64", (13, 11), seed=8)
    path = tmp_path / "a.fits"
    _write(path, array)
    start = _header_length(path)
    if missing == "padding":  # the padding is not needed to read the data
        size = start + array.nbytes
    elif missing == "all":
        size = start
    else:
        size = start + array.nbytes - missing
    with open(path, "r+b") as stream:
        stream.truncate(size)
    if missing == "padding":
        _assert_bit_exact(_read(path), array)
    else:
        with pytest.raises(EOFError):
            _read(path)


# -- unsupported types -------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", ["uint16", "uint32", "uint64", "int8", "bool", "float16", "complex64", "complex128"]
)
def test_write_rejects_dtype_without_unscaled_bitpix(dtype):
    assert bitpix_for(np.dtype(dtype)) is None
    buffer = io.BytesIO()
    with pytest.raises(ValueError, match="BITPIX"):
        write_primary_image(buffer, np.zeros((3, 4), dtype=dtype))
    assert buffer.getvalue() == b""


def test_bitpix_for_known_types():
    expected = {"uint8": 8, "int16": 16, "int32": 32, "int64": 64, "float32": -32, "float64": -64}
    for name, bitpix in expected.items():
        assert bitpix_for(np.dtype(name)) == bitpix
        assert bitpix_for(np.dtype(name).newbyteorder(">")) == bitpix


# -- through FitsArrayFormatter ----------------------------------------------------------


@pytest.fixture(params=["file", "memory"])
def location(request, tmp_path):
    fs = fsspec.filesystem(request.param)
    if request.param == "file":
        yield fs, str(tmp_path / "x.fits")
        return
    root = f"/t-{tmp_path.name}-{uuid.uuid4().hex[:8]}"
    fs.makedirs(root, exist_ok=True)
    try:
        yield fs, f"{root}/x.fits"
    finally:
        if fs.exists(root):
            fs.rm(root, recursive=True)


def _formatter_arrays():
    return [
        _random("float32", (37, 53), seed=10),
        _random("float64", (3, 20, 30), seed=11),
        _random("int16", (16, 17), seed=12),
        _random("int64", (5, 6), seed=13),
        _random("uint8", (41,), seed=14),
        _random("uint16", (16, 17), seed=15),  # astropy's path (BZERO)
        _random("int8", (6, 7), seed=16),  # astropy's path (BZERO)
        _random("int32", (14, 9), seed=17).astype(">i4"),
    ]


def test_formatter_round_trip(location, small_chunks):
    fs, path = location
    formatter = FitsArrayFormatter(STORAGE_CLASS)
    for array in _formatter_arrays():
        formatter.write(array, fs, path)
        back = formatter.read(fs, path)
        _assert_bit_exact(back, array)
        with fs.open(path, "rb") as stream:
            raw = stream.read()
        assert len(raw) % BLOCK_BYTES == 0
        with fits.open(io.BytesIO(raw)) as hdul:
            np.testing.assert_array_equal(hdul[0].data, array)
        # Only the types with an unscaled BITPIX skip astropy (the others need BZERO).
        header = fits.Header.fromfile(io.BytesIO(raw))
        assert ("BZERO" in header) == (bitpix_for(array.dtype) is None)
        assert (plain_image_layout(header) is None) == (bitpix_for(array.dtype) is None)


def test_formatter_bbox(location, small_chunks):
    fs, path = location
    formatter = FitsArrayFormatter(STORAGE_CLASS)
    image = _random("float32", (37, 53), seed=20)
    cube = _random("int16", (3, 37, 53), seed=21)
    for array in [image, cube, image.astype(np.uint16)]:
        formatter.write(array, fs, path)
        for x0, y0, w, h in [(0, 0, 53, 37), (10, 5, 7, 3), (52, 36, 1, 1), (0, 20, 53, 0)]:
            cut = formatter.read(fs, path, parameters={"bbox": (x0, y0, w, h)})
            expected = array[..., y0 : y0 + h, x0 : x0 + w]
            _assert_bit_exact(cut, expected)
        rows = formatter.read(fs, path, parameters={"bbox": (slice(1, 3),)})
        _assert_bit_exact(rows, array[1:3])


def test_formatter_bbox_outside_is_formatter_error(location):
    fs, path = location
    formatter = FitsArrayFormatter(STORAGE_CLASS)
    formatter.write(_random("float32", (10, 10)), fs, path)
    with pytest.raises(FormatterError):
        formatter.read(fs, path, parameters={"bbox": (5, 5, 6, 1)})


@pytest.mark.timeout(20)
def test_formatter_bbox_reads_only_needed_rows_of_local_file(tmp_path, small_chunks):
    # Truncating the file after the wanted rows does not stop a bbox read: later rows
    # are never read.
    fs = fsspec.filesystem("file")
    path = str(tmp_path / "x.fits")
    image = _random("float64", (50, 20), seed=22)
    FitsArrayFormatter(STORAGE_CLASS).write(image, fs, path)
    start = _header_length(path)
    os.truncate(path, start + 12 * 20 * 8)
    cut = FitsArrayFormatter(STORAGE_CLASS).read(fs, path, parameters={"bbox": (3, 4, 5, 8)})
    _assert_bit_exact(cut, image[4:12, 3:8])
    with pytest.raises(EOFError):
        FitsArrayFormatter(STORAGE_CLASS).read(fs, path)
