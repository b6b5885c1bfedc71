"""FITS primary-HDU image I/O that moves the data unit without whole-array copies.

FITS stores numbers big-endian. astropy writes a little-endian array by
swapping it in place, writing, and swapping it back, and reads into a
big-endian array that a caller must copy to native order: three or four passes
over the pixels besides the file I/O (measured 13-20x the time of `numpy.save`
+ `numpy.load` for a 64 MiB image). Here the data unit goes through a buffer
of `CHUNK_BYTES` that stays in the CPU cache: each block is swapped as it is
copied into the buffer and written, or read into the buffer and swapped as it
is copied out, so a put or get costs one more pass over cached memory than
numpy's. Measured for 64 MiB (medians of 11): write 16.2 ms, read 16.0 ms,
against `numpy.save` 12.3 ms and `numpy.load` 14.2 ms; with 256 KiB / 1 MiB /
16 MiB buffers 24.9 / 18.8 / 18.2 ms to write and 19.9 / 16.7 / 20.2 ms to read.

Headers are still made and parsed by astropy, and anything outside the plain
case (scaled integers with ``BZERO``/``BSCALE``, random groups, types FITS
has no ``BITPIX`` for) is left to astropy by the callers: `bitpix_for`
returns `None` and `plain_image_layout` returns `None` for those.
"""

from __future__ import annotations

import math
from typing import BinaryIO

import numpy as np
from astropy.io import fits

from .preallocate import preallocate

__all__ = [
    "BLOCK_BYTES",
    "CHUNK_BYTES",
    "PlainImageLayout",
    "bitpix_for",
    "plain_image_layout",
    "read_data_unit",
    "write_primary_image",
]

#: FITS files are made of 2880-byte blocks.
BLOCK_BYTES = 2880
#: Size of the swap buffer: a few MiB, small enough to stay in the (L3) cache.
CHUNK_BYTES = 4 << 20

_BITPIX: dict[tuple[str, int], int] = {
    ("u", 1): 8,
    ("i", 2): 16,
    ("i", 4): 32,
    ("i", 8): 64,
    ("f", 4): -32,
    ("f", 8): -64,
}
_DTYPE_OF_BITPIX = {bitpix: np.dtype(f"{kind}{size}") for (kind, size), bitpix in _BITPIX.items()}


def bitpix_for(dtype: np.dtype) -> int | None:
    """Return the FITS ``BITPIX`` that stores ``dtype`` unscaled, or `None` if there is none."""
    return _BITPIX.get((dtype.kind, dtype.itemsize))


class PlainImageLayout:
    """Where and how an unscaled image data unit sits in a FITS file.

    Parameters
    ----------
    shape : `tuple` [`int`, ...]
        Array shape, slowest axis first (``NAXISn`` ... ``NAXIS1``).
    dtype : `numpy.dtype`
        Native-order dtype of the pixels.
    """

    __slots__ = ("dtype", "shape")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape = shape
        self.dtype = dtype

    @property
    def nbytes(self) -> int:
        """Size of the data unit without its padding."""
        return math.prod(self.shape) * self.dtype.itemsize


def plain_image_layout(header: fits.Header) -> PlainImageLayout | None:
    """Return the layout of a primary image HDU whose data unit can be read raw.

    Parameters
    ----------
    header : `astropy.io.fits.Header`
        The primary header.

    Returns
    -------
    layout : `PlainImageLayout` or `None`
        `None` when the HDU needs astropy: no data, random groups, or scaled
        integers (``BZERO``/``BSCALE`` other than 0/1, ``BLANK``).
    """
    if header.get("SIMPLE") is not True or header.get("GROUPS", False):
        return None
    dtype = _DTYPE_OF_BITPIX.get(header.get("BITPIX"))  # type: ignore[arg-type]
    naxis = header.get("NAXIS", 0)
    if dtype is None or not isinstance(naxis, int) or naxis < 1:
        return None
    if header.get("BZERO", 0) != 0 or header.get("BSCALE", 1) != 1 or "BLANK" in header:
        return None
    try:
        shape = tuple(int(header[f"NAXIS{n}"]) for n in range(naxis, 0, -1))
    except KeyError:
        return None
    return PlainImageLayout(shape, dtype)


def write_primary_image(stream: BinaryIO, array: np.ndarray) -> None:
    """Write ``array`` as the primary HDU of a new FITS file.

    Parameters
    ----------
    stream : `typing.BinaryIO`
        Binary stream positioned at the start of the file.
    array : `numpy.ndarray`
        Pixels of a dtype `bitpix_for` knows, in any byte order.

    Raises
    ------
    ValueError
        If FITS has no unscaled ``BITPIX`` for the dtype.
    """
    bitpix = bitpix_for(array.dtype)
    if bitpix is None:
        raise ValueError(f"FITS has no unscaled BITPIX for dtype {array.dtype}")
    header = fits.Header()
    header["SIMPLE"] = (True, "conforms to FITS standard")
    header["BITPIX"] = (bitpix, "array data type")
    header["NAXIS"] = (array.ndim, "number of array dimensions")
    for n, length in enumerate(reversed(array.shape), start=1):
        header[f"NAXIS{n}"] = length
    header["EXTEND"] = True
    text = header.tostring().encode("ascii")
    preallocate(stream, len(text) + array.nbytes + (-array.nbytes % BLOCK_BYTES))
    stream.write(text)
    _write_big_endian(stream, array)


def _write_big_endian(stream: BinaryIO, array: np.ndarray) -> None:
    """Write the pixels big-endian through a cached buffer, then the block padding."""
    flat = np.ascontiguousarray(array).reshape(-1)
    big = array.dtype.newbyteorder(">")
    if flat.dtype == big or flat.dtype.itemsize == 1:
        stream.write(memoryview(flat).cast("B"))
    else:
        step = max(CHUNK_BYTES // flat.dtype.itemsize, 1)
        buffer = np.empty(min(step, flat.size), dtype=big)
        for start in range(0, flat.size, step):
            block = buffer[: min(step, flat.size - start)]
            block[...] = flat[start : start + block.size]  # swaps while copying
            stream.write(memoryview(block.view(np.uint8)))
    stream.write(bytes(-flat.nbytes % BLOCK_BYTES))


def read_data_unit(
    stream: BinaryIO, layout: PlainImageLayout, rows: slice | None = None
) -> np.ndarray:
    """Read the data unit that starts at the stream's position, as a native-order array.

    Parameters
    ----------
    stream : `typing.BinaryIO`
        Binary stream positioned at the first byte of the data unit (just after
        the header); must be seekable when ``rows`` skips leading rows.
    layout : `PlainImageLayout`
        The HDU's layout from `plain_image_layout`.
    rows : `slice`, optional
        Range of the slowest axis to read (step 1); all of it by default.

    Returns
    -------
    array : `numpy.ndarray`
        A new, writeable, native-order array.

    Raises
    ------
    EOFError
        If the file ends before the data unit does.
    """
    shape = layout.shape
    start, stop = 0, shape[0]
    if rows is not None:
        start, stop, _ = rows.indices(shape[0])
        stop = max(start, stop)
    row_bytes = math.prod(shape[1:]) * layout.dtype.itemsize
    if start:
        stream.seek(start * row_bytes, 1)
    out = np.empty((stop - start, *shape[1:]), dtype=layout.dtype)
    flat = out.reshape(-1)
    step = max(CHUNK_BYTES // layout.dtype.itemsize, 1)
    scratch = np.empty(min(step, flat.size), dtype=layout.dtype.newbyteorder(">"))
    for offset in range(0, flat.size, step):
        block = scratch[: min(step, flat.size - offset)]
        _read_exactly(stream, memoryview(block.view(np.uint8)))
        # Read into a reused buffer, then swapped while copied out: reading straight
        # into the output and swapping there measured 23 ms instead of 16.5 for 64 MiB.
        flat[offset : offset + block.size] = block
    return out


def _read_exactly(stream: BinaryIO, buffer: memoryview) -> None:
    """Fill ``buffer`` from ``stream`` or raise `EOFError`."""
    filled = 0
    while filled < buffer.nbytes:
        n = stream.readinto(buffer[filled:])
        if not n:
            raise EOFError("the FITS file ends inside its data unit")
        filled += n
