"""Numba kernel of the separable Gaussian smoothing (`imaging._convolve.smooth_gaussian`).

One sweep down the image with a ring of ``size`` rows already smoothed along x, so every
pixel is read once and written once and the working set (``size`` + 2 rows) stays in cache;
the numpy version it replaces went through each row block about ``2 size`` times.

The arithmetic is that of the numpy version, operation for operation, in float32: along x
``k[h]·x[c] + Σ_j k[h+j]·(x[c+j] + x[c−j])`` on a row padded with ``h`` zeros each side
(the taps accumulated in order j = 1..h, each as ``(a + b)·k`` then added), then the same
along y with zero rows beyond the image.  numba does not fuse the multiply and the add
without ``fastmath``, so the results are bit for bit those of the numpy version.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["smooth_rows"]


@numba.njit(cache=True, nogil=True)
def _scaled(out, a, kc):
    """``out = a·kc`` on equal-length rows."""
    for c in range(out.size):
        out[c] = a[c] * kc


@numba.njit(cache=True, nogil=True)
def _add_pair(out, a, b, kj):
    """``out += (a + b)·kj`` on equal-length rows (one tap pair)."""
    for c in range(out.size):
        out[c] += (a[c] + b[c]) * kj


@numba.njit(cache=True, nogil=True)
def _row_along_x(image, mask, zero_bits, use_mask, y, k, padded, out):
    """Smooth image row ``y`` along x into ``out`` (``padded`` holds the zero margins)."""
    half = k.size // 2
    w = image.shape[1]
    row = padded[half:half + w]
    src = image[y]
    if use_mask:
        bits = mask[y]
        for c in range(w):
            row[c] = src[c] if (bits[c] & zero_bits) == 0 else np.float32(0.0)
    else:
        row[:] = src
    _scaled(out, row, k[half])
    for j in range(1, half + 1):
        _add_pair(out, padded[half + j:half + j + w], padded[half - j:half - j + w], k[half + j])


@numba.njit(cache=True, nogil=True)
def smooth_rows(image, mask, zero_bits, use_mask, k, out):
    """Smooth float32 ``image`` by the odd float32 kernel ``k`` along x and y into ``out``.

    ``mask`` pixels with any of ``zero_bits`` enter as zeros when ``use_mask``; the image
    is zero-padded by ``k.size // 2`` on every side.  ``out`` (float32, the image's shape)
    comes from the caller: numpy asks the kernel for huge pages for large arrays, numba's
    allocator does not, and the first touch of a 4k² image's 16,000 small pages costs
    more than the smoothing (0.04 s).
    """
    n, w = image.shape
    half = k.size // 2
    size = 2 * half + 1
    ring = np.zeros((size, w), np.float32)  # row q along x in slot q % size; zeros outside
    padded = np.zeros(w + 2 * half, np.float32)
    for q in range(min(half, n)):  # the window of output row 0, but for its last row
        _row_along_x(image, mask, zero_bits, use_mask, q, k, padded, ring[q % size])
    for r in range(n):
        q = r + half
        slot = q % size
        if q < n:
            _row_along_x(image, mask, zero_bits, use_mask, q, k, padded, ring[slot])
        else:
            ring[slot, :] = 0.0
        # rows r - half .. r - 1 outside the image are zero rows (never written: still 0)
        acc = out[r]
        _scaled(acc, ring[r % size], k[half])
        for j in range(1, half + 1):
            _add_pair(acc, ring[(r + j) % size], ring[(r - j + size) % size], k[half + j])
