"""Numba kernels of the background's cell statistics (`imaging.background._binned_stats`).

For one row of cells, `cell_stack` fills the NaN-padded ``(nx, by, bx)`` stack of the cells'
values (2×2 block means or single pixels, NaN for an ignored or non-finite one) and
`clip_cells` takes each cell's clipped mean and the variance of that mean from the stack and
its sorted every-4th subsample (numpy's sort does that part: it is the fastest).

Both repeat the numpy code they replace operation for operation, so the results are bit for
bit the same: the block mean is ``((a + b) + c + d)·0.25`` in float32, the clipping works on
float32 differences from the float32-rounded centre, and the float32 sums are numpy's
pairwise summation (`_pairwise_sum`: blocks of up to 128 values summed in 8 interleaved
partial sums, larger spans halved at a multiple of 8), with which ``ndarray.sum`` adds a
contiguous row.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["cell_stack", "clip_cells"]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _finite(v):
    return abs(v) < np.inf  # NaN compares False; a branch-free isfinite


@_jit
def _binned_line(image, mask, bits, use_mask, binning, y, line):
    """Row ``y`` of the binned image into ``line``: NaN where unusable."""
    nan = np.float32(np.nan)
    if binning == 2:
        quarter = np.float32(0.25)
        ra, rb = image[2 * y], image[2 * y + 1]
        ma, mb = mask[2 * y * use_mask], mask[(2 * y + 1) * use_mask]
        for x in range(line.size):
            a, b, c, d = ra[2 * x], rb[2 * x], ra[2 * x + 1], rb[2 * x + 1]
            v = a + b
            v = v + c
            v = v + d
            v = v * quarter
            ok = _finite(a) & _finite(b) & _finite(c) & _finite(d)
            if use_mask:
                m = ma[2 * x] | mb[2 * x] | ma[2 * x + 1] | mb[2 * x + 1]
                ok = ok & ((m & bits) == 0)
            line[x] = v if ok else nan
    else:
        row = image[y]
        mrow = mask[y * use_mask]
        for x in range(line.size):
            v = row[x]
            ok = _finite(v)
            if use_mask:
                ok = ok & ((mrow[x] & bits) == 0)
            line[x] = v if ok else nan


@_jit
def cell_stack(image, mask, bits, use_mask, binning, y0, y1, xe, stack):
    """Fill ``stack`` (nx, by, bx) with the values of the cells of binned rows y0..y1-1.

    ``xe``: binned cell edges along x.  Values are NaN where a pixel (any pixel of the
    2×2 block) is non-finite or carries ``bits`` (when ``use_mask``), and in the padding.
    ``mask`` is not read unless ``use_mask`` (then any (1, 1) array will do).
    """
    stack[...] = np.float32(np.nan)
    line = np.empty(xe[-1], np.float32)
    for r in range(y1 - y0):
        _binned_line(image, mask, bits, use_mask, binning, y0 + r, line)
        for i in range(xe.size - 1):
            stack[i, r, :xe[i + 1] - xe[i]] = line[xe[i]:xe[i + 1]]


@_jit
def _block_sum(a, lo, n):
    """Sum at most 128 values ``a[lo:lo + n]`` as numpy does (8 partial sums), float32."""
    if n < 8:
        res = np.float32(0.0)
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    end = n - n % 8
    while i < end:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@_jit
def _pairwise_sum(a):
    """Sum a contiguous float32 row pairwise, as numpy does (``FLOAT_pairwise_sum``).

    Spans of more than 128 values are halved at a multiple of 8 and the halves' sums
    added; the recursion is unrolled onto a small stack (numba's cache cannot hold a
    recursive function: it crashes on load).
    """
    span_lo = np.empty(128, np.int64)
    span_n = np.empty(128, np.int64)
    span_split = np.zeros(128, np.bool_)
    sums = np.empty(128, np.float32)
    m = 0
    span_lo[0], span_n[0], span_split[0] = 0, a.size, False
    top = 1
    while top > 0:
        top -= 1
        lo, n, split = span_lo[top], span_n[top], span_split[top]
        if n <= 128:
            sums[m] = _block_sum(a, lo, n)
            m += 1
        elif split:  # both halves summed: add them
            m -= 1
            sums[m - 1] = sums[m - 1] + sums[m]
        else:
            n2 = n // 2
            n2 -= n2 % 8
            span_lo[top], span_n[top], span_split[top] = lo, n, True
            span_lo[top + 1], span_n[top + 1], span_split[top + 1] = lo + n2, n - n2, False
            span_lo[top + 2], span_n[top + 2], span_split[top + 2] = lo, n2, False
            top += 3
    return sums[0]


@_jit
def _row_sum(a):
    """``a.sum(dtype=np.float32)`` of a contiguous float32 row (0 + the pairwise sum)."""
    return np.float64(np.float32(0.0) + _pairwise_sum(a))


@_jit
def _quantile(sub, nsub, q):
    idx = int(q * (nsub - 1))
    idx = min(max(idx, 0), sub.size - 1)
    return np.float64(sub[idx])


@_jit
def clip_cells(flat, sub, n_sigma, n_iter, median, values, variances):
    """Clipped mean (``median``: the median) and its variance of each row of ``flat``.

    ``flat``: (n, npix) NaN-padded float32 cell values; ``sub``: (n, ·) its every-4th
    columns, each row sorted (NaN last).  Starts at the subsample's median and 0.741×IQR;
    every iteration but the last clips on the subsample, the last on every value.
    """
    buf = np.empty(flat.shape[1], np.float32)
    for i in range(flat.shape[0]):
        s = sub[i]
        nsub = 0
        for v in s:
            nsub += _finite(v)
        n_finite = 0
        for v in flat[i]:
            n_finite += _finite(v)
        count = np.float64(n_finite)
        if nsub == 0:
            values[i] = np.nan
            variances[i] = np.nan
            continue
        mean = _quantile(s, nsub, 0.5)
        width = 0.741 * (_quantile(s, nsub, 0.75) - _quantile(s, nsub, 0.25))
        if median:
            values[i] = mean
            variances[i] = (width * width) / max(count, 1.0) * (np.pi / 2)
            continue
        for it in range(n_iter):
            data = flat[i] if it == n_iter - 1 else s
            d = buf[:data.size]
            m32 = np.float32(mean)
            lim = np.float32(n_sigma * width)
            kept = 0
            for p in range(data.size):
                dv = data[p] - m32
                sel = abs(dv) < lim
                d[p] = dv if sel else np.float32(0.0)
                kept += sel
            count = np.float64(kept)
            s1 = _row_sum(d)
            for p in range(d.size):
                d[p] = d[p] * d[p]
            s2 = _row_sum(d)
            shift = s1 / count
            new_var = s2 / count - shift * shift
            if new_var < 0.0:  # np.maximum(new_var, 0): a NaN stays NaN
                new_var = 0.0
            if count >= 2:
                mean = mean + shift
                width = math.sqrt(new_var)
        values[i] = mean
        variances[i] = (width * width) / count
