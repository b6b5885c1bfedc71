"""Compiled inner loops of `imaging.warping` (numba, plain arrays, no Python objects).

Coordinates: every resampling loop works in *padded source* coordinates. `pad_source` copies
the source into a larger zero array so that every kernel tap of every destination pixel is
inside it, and no loop needs a bounds test. Positions are float64; pixel values float32,
accumulated in float32 (as afw warps a ``MaskedImageF``). Kernel weights come from a table
``table[k, t]`` of `TABLE_STEPS` rows: the normalized weights of taps ``t = 0 .. 2n - 1``
(source pixels ``floor(p) - n + 1 + t``) for the fractional position ``k / TABLE_STEPS``. A
position ``p >= 0`` is rounded once to ``q = round(p * TABLE_STEPS)``; then ``floor`` is
``q >> 12`` and the row ``q & 4095`` (rounding up to the next pixel is the same as row
``TABLE_STEPS`` of the pixel before, so the padding has one more row and column). Pixel
indices are unsigned, so numba emits no negative-index wrap-around test in the inner loops.

Mask: pixels without data (non-finite image, or outside the source) carry one more bit,
``invalid``: a bit no mask plane uses (or bit 32 of a uint64 copy of the mask when all 32 are
taken). A destination pixel's mask is the OR over its kernel footprint (`box_or`, then one
lookup); ``invalid`` in it makes the pixel no data, and the resampling skips it.

The loops over kernel taps are compiled once per half width ``n`` (`line_resampler`,
`direct_resampler`) so that the tap count is a constant LLVM can unroll and vectorize.
State: none of ours; numba caches the compiled code next to this file (``cache=True``); the
functions the warp calls get fixed identities (`_stable_identity`) so that the cache also
serves the warp in a new process.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import njit

TABLE_STEPS = 4096
"""Kernel table rows per pixel: positions are exact to 1.2e-4 px."""
_SHIFT = np.uint64(12)  # log2(TABLE_STEPS)
_FRACTION = np.uint64(TABLE_STEPS - 1)

# Reassociation lets LLVM vectorize the tap sums; no "nnan"/"ninf": NaN tests must survive.
# A dict, not a set: the options are part of the pickle numba keys a closure's cache by
# (`separable_warper`), and a set of strings pickles in an order that changes with the
# process's hash seed, so half the new processes missed the cache and compiled again.
_FAST = {"reassoc": True, "contract": True}
_N_TERMS = 10  # terms u^p v^q (p + q <= 3) of a bivariate cubic, ordered p = 0..3, q = 0..3-p


# -- the transform and the fit of its inverse ------------------------------------------------


@njit(cache=True, nogil=True)
def sip_apply(x, y, crpix, sip_a, sip_b, shift):
    """``StampTransform.apply`` for one point: ``(x + A(u, v) + dx, y + B(u, v) + dy)``."""
    u = x - crpix[0]
    v = y - crpix[1]
    big_x = x + shift[0]
    big_y = y + shift[1]
    order = sip_a.shape[0]
    up = 1.0
    for p in range(order):
        term = up
        for q in range(order - p):
            big_x += sip_a[p, q] * term
            big_y += sip_b[p, q] * term
            term *= v
        up *= u
    return big_x, big_y


@njit(cache=True, nogil=True)
def _cubic_row(u, v, out):
    k = 0
    up = 1.0
    for p in range(4):
        term = up
        for _q in range(4 - p):
            out[k] = term
            term *= v
            k += 1
        up *= u


@njit(cache=True, nogil=True)
def _cubic_value(coefs, u, v):
    value = 0.0
    k = 0
    up = 1.0
    for p in range(4):
        term = up
        for _q in range(4 - p):
            value += coefs[k] * term
            term *= v
            k += 1
        up *= u
    return value


def fit_inverse(crpix, sip_a, sip_b, shift, box, margin):
    """Fit the inverse of a transform over a destination box with bivariate cubics.

    ``box`` is ``(x0, y0, width, height)``. The pre-image of the box (from its corners and
    centre by three fixed-point steps, grown by 3 px in x and ``margin + 2`` rows in y) is
    sampled on a 9x9 grid and mapped forward; source x and y are fitted as functions of the
    destination ``(u, v) = ((X, Y) - centre) / scale``, and source x as a function of
    ``(u, (source y - ref_y) / scale)`` for the row pass. A staggered 8x8 grid checks them.

    Returns ``(coefs, params)``: ``coefs[0..2]`` (x, y, row-x; 10 terms each) and ``params =
    (centre x, centre y, scale, ref_y, residual)``, the residual the largest error in pixels.

    Notes
    -----
    The sampling and the check are compiled; the least-squares solves are numpy's (LAPACK
    ``gelsd``, as numba's ``lstsq`` calls it, with its cutoff ``rcond=-1``): numba compiled
    its ``lstsq`` in ~9 s, in every process that warped first on a fresh clone.
    """
    design, design_row, target, target_row, grid = _inverse_samples(
        crpix, sip_a, sip_b, shift, box, margin
    )
    coefs = np.empty((3, _N_TERMS))
    solution = np.linalg.lstsq(design, target, rcond=-1)[0]
    coefs[0] = solution[:, 0]
    coefs[1] = solution[:, 1]
    coefs[2] = np.linalg.lstsq(design_row, target_row, rcond=-1)[0][:, 0]
    residual = _inverse_residual(coefs, crpix, sip_a, sip_b, shift, grid)
    cx, cy, scale, ref_y = grid[0], grid[1], grid[2], grid[3]
    return coefs, np.array([cx, cy, scale, ref_y, residual])


@njit(cache=True, nogil=True)
def _inverse_samples(crpix, sip_a, sip_b, shift, box, margin):
    """Return the design matrices and targets of `fit_inverse`, and its grid.

    The grid is ``(centre x, centre y, scale, ref_y, lo_x, lo_y, step_x, step_y)``.
    """
    x0, y0, width, height = box[0], box[1], box[2], box[3]
    cx = x0 + (width - 1) / 2.0
    cy = y0 + (height - 1) / 2.0
    scale = max(width, height, 2.0) / 2.0
    corners_x = np.array([x0, x0 + width - 1, x0, x0 + width - 1, cx])
    corners_y = np.array([y0, y0, y0 + height - 1, y0 + height - 1, cy])
    lo_x = hi_x = lo_y = hi_y = 0.0
    for i in range(5):
        # approximate inverse: x = X - dx - A(x - cx, y - cy), three steps from X - dx
        bx = corners_x[i] - shift[0]
        by = corners_y[i] - shift[1]
        x, y = bx, by
        for _ in range(3):
            fx, fy = sip_apply(x, y, crpix, sip_a, sip_b, shift)
            x, y = x - (fx - corners_x[i]), y - (fy - corners_y[i])
        if i == 0 or x < lo_x:
            lo_x = x
        if i == 0 or x > hi_x:
            hi_x = x
        if i == 0 or y < lo_y:
            lo_y = y
        if i == 0 or y > hi_y:
            hi_y = y
    lo_x -= 3.0
    hi_x += 3.0
    lo_y -= margin + 2.0
    hi_y += margin + 2.0
    ref_y = (lo_y + hi_y) / 2.0
    step_x = (hi_x - lo_x) / 8.0
    step_y = (hi_y - lo_y) / 8.0
    design = np.empty((81, _N_TERMS))
    design_row = np.empty((81, _N_TERMS))
    target = np.empty((81, 2))
    target_row = np.empty((81, 1))
    for i in range(9):
        for j in range(9):
            gx = lo_x + j * step_x
            gy = lo_y + i * step_y
            fx, fy = sip_apply(gx, gy, crpix, sip_a, sip_b, shift)
            k = 9 * i + j
            _cubic_row((fx - cx) / scale, (fy - cy) / scale, design[k])
            _cubic_row((fx - cx) / scale, (gy - ref_y) / scale, design_row[k])
            target[k, 0] = gx
            target[k, 1] = gy
            target_row[k, 0] = gx
    grid = np.array([cx, cy, scale, ref_y, lo_x, lo_y, step_x, step_y])
    return design, design_row, target, target_row, grid


@njit(cache=True, nogil=True)
def _inverse_residual(coefs, crpix, sip_a, sip_b, shift, grid):
    """Return the largest error (pixels) of `fit_inverse`'s cubics on both grids."""
    cx, cy, scale, ref_y = grid[0], grid[1], grid[2], grid[3]
    lo_x, lo_y, step_x, step_y = grid[4], grid[5], grid[6], grid[7]
    residual = 0.0
    for i in range(17):  # the fit grid (even i, j) and the staggered one (odd i, j)
        for j in range(17):
            if i % 2 != j % 2:
                continue
            gx = lo_x + 0.5 * j * step_x
            gy = lo_y + 0.5 * i * step_y
            fx, fy = sip_apply(gx, gy, crpix, sip_a, sip_b, shift)
            u = (fx - cx) / scale
            v = (fy - cy) / scale
            residual = max(residual, abs(_cubic_value(coefs[0], u, v) - gx))
            residual = max(residual, abs(_cubic_value(coefs[1], u, v) - gy))
            residual = max(residual, abs(_cubic_value(coefs[2], u, (gy - ref_y) / scale) - gx))
    return residual


@njit(cache=True, nogil=True)
def _coefs_in_u(coefs, v, out):
    """``out[p] = sum_q coefs[p, q] v^q``: the cubic along a line of constant ``v``."""
    k = 0
    for p in range(4):
        value = 0.0
        vq = 1.0
        for _q in range(4 - p):
            value += coefs[k] * vq
            vq *= v
            k += 1
        out[p] = value


@njit(cache=True, nogil=True)
def _coefs_in_v(coefs, u, out):
    """``out[q] = sum_p coefs[p, q] u^p``: the cubic along a line of constant ``u``."""
    out[:] = 0.0
    k = 0
    up = 1.0
    for p in range(4):
        for q in range(4 - p):
            out[q] += coefs[k] * up
            k += 1
        up *= u


# -- source padding and mask footprints ------------------------------------------------------


@njit(cache=True, nogil=True)
def pad_source(image, mask, variance, pad_y, pad_x, shape, edge_bits, invalid):
    """Copy a source into zero-padded arrays.

    Returns ``(image, variance, mask)``: float32 image and variance with 0 where the image is
    not finite, and a mask (of ``mask``'s dtype) with the bit ``invalid`` there; the padding
    is 0 / 0 / ``edge_bits | invalid``. ``variance`` of shape ``(0, 0)`` means none (a
    ``(1, 1)`` zero array comes back).
    """
    height, width = image.shape
    has_var = variance.shape[0] > 0
    out = np.zeros(shape, np.float32)
    out_var = np.zeros(shape if has_var else (1, 1), np.float32)
    out_mask = np.empty(shape, mask.dtype)
    out_mask[:, :] = edge_bits | invalid
    for y in range(height):
        row = out[y + pad_y]
        row_mask = out_mask[y + pad_y]
        for x in range(width):
            value = image[y, x]
            bits = mask[y, x]
            if np.isfinite(value):
                row[x + pad_x] = value
                if has_var:
                    out_var[y + pad_y, x + pad_x] = variance[y, x]
            else:
                bits |= invalid
            row_mask[x + pad_x] = bits
    return out, out_var, out_mask


def _stable_identity(dispatcher: Any, name: str) -> Any:
    """Give a compiled function a fixed identity, so functions that call it hit numba's cache.

    numba keys the on-disk cache of a closure by a pickle of the values it closes over; a
    compiled function pickles with an identity drawn at random in each process, so a closure
    over one (`separable_warper`'s ``warp``) missed the cache and was compiled again in every
    process that warped (~20 s: each pipetask, pool or dask worker of processBrightStars and
    subtractBrightStars). ``name`` must be unique to the function and its constants. If numba
    no longer offers the hook, the code is only compiled per process, as before.
    """
    set_uuid = getattr(dispatcher, "_set_uuid", None)
    if set_uuid is not None:
        set_uuid(f"skyquanta.imaging._warp_kernels.{name}")
    return dispatcher


@functools.cache
def box_or(width: int):
    """Return ``f(mask)``: in place, ``mask[r, c] = OR(mask[r : r + width, c : c + width])``.

    Valid for ``r, c`` up to the shape minus ``width``. Windows double (1, 2, 4, ... then the
    rest), about log2(width) passes per axis; the steps are compile-time constants, so LLVM
    vectorizes each pass.
    """
    steps = []
    span = 1
    while span < width:
        steps.append(min(span, width - span))
        span += steps[-1]
    steps = tuple(steps)

    @njit(cache=True, nogil=True)
    def box(mask):
        height, full = mask.shape
        for step in steps:
            for r in range(height):
                row = mask[r]
                for c in range(full - step):
                    row[c] |= row[c + step]
        for step in steps:
            for r in range(height - step):
                row = mask[r]
                below = mask[r + step]
                for c in range(full):
                    row[c] |= below[c]
        return mask

    return _stable_identity(box, f"box_or[{width}]")


@njit(cache=True, nogil=True)
def apply_footprints(
    boxed, xs, ys, off_x, off_y, n, no_data_bits, invalid, image, variance, out_mask
):
    """Destination mask from the box-ORed source mask at each pixel's footprint.

    The footprint of pixel ``[i, j]`` starts at ``floor(xs[i, j] + off_x) - n + 1`` (and
    likewise in y), the first tap of its kernel. Pixels whose footprint holds ``invalid`` get
    image NaN, variance infinity (when ``variance`` has the image's shape) and
    ``no_data_bits``; the others image 0. ``out_mask`` (uint32) receives the bits.
    """
    height, width = image.shape
    has_var = variance.shape[0] == height and variance.shape[1] == width
    first_tap = np.uint64(n - 1)
    for i in range(height):
        for j in range(width):
            row = np.uint64(ys[i, j] + off_y) - first_tap  # >= 0: the padding holds every tap
            col = np.uint64(xs[i, j] + off_x) - first_tap
            bits = boxed[row, col]
            if bits & invalid:
                bits |= no_data_bits
                image[i, j] = np.nan
                if has_var:
                    variance[i, j] = np.inf
            else:
                image[i, j] = 0.0
            out_mask[i, j] = np.uint32(bits & ~invalid)


# -- resampling, compiled per kernel half width ----------------------------------------------


@functools.cache
def separable_warper(n: int, with_variance: bool):
    """Return the separable warp for half width ``n`` (``2n`` taps), compiled on first use.

    ``f(image, mask, variance, coefs, us, vs, row_v0, row_dv, x0, y0, no_data_bits, invalid,
    table, out_image, out_mask, out_var)`` fills the destination arrays (indexed ``[Y, X]``;
    they may be strided views, e.g. of a quarter-turned array). ``coefs`` are the three cubics of
    `fit_inverse`, evaluated at ``us`` (destination columns) and ``vs`` (rows), normalized as
    there; source row ``r`` (array index) has ``v = row_v0 + r * row_dv`` in the row cubic;
    ``(x0, y0)`` is the parent pixel of ``image[0, 0]``. Steps:

    1. extents of the source positions (cubics evaluated on the fly, never stored);
    2. `pad_source` and `box_or` (mask footprints), then every destination pixel's mask and
       its no-data state (image NaN, variance infinity);
    3. row pass: on each source row the kernel at the source x where the forward map reaches
       each destination column that has data, into ``inter[X, row]``;
    4. column pass: along ``inter[X]`` at each destination pixel's source y, skipping no-data
       pixels.

    ``with_variance``: the variance is resampled with the squared weights (a separate
    compilation, so that the plain warp carries no test for it).
    """
    taps = 2 * n
    box = box_or(2 * n)
    first_tap = np.uint64(n - 1)

    @njit(cache=True, nogil=True, fastmath=_FAST, inline="always")
    def resample_line(line, var_line, where, use, table, out, out_var, column):
        """``out[k, column]`` = the kernel on ``line`` at ``where[k]`` for each ``use[k]``."""
        for k in range(use.size):
            if not use[k]:
                continue
            q = where[k]
            start = (q >> _SHIFT) - first_tap
            weights = table[q & _FRACTION]
            acc = np.float32(0.0)
            for t in range(taps):
                acc += weights[t] * line[start + np.uint64(t)]
            out[k, column] = acc
            if with_variance:
                acc_var = np.float32(0.0)
                for t in range(taps):
                    acc_var += weights[t] * weights[t] * var_line[start + np.uint64(t)]
                out_var[k, column] = acc_var

    _stable_identity(resample_line, f"resample_line[{n},{with_variance}]")

    @njit(cache=True, nogil=True, fastmath=_FAST)
    def warp(
        image, mask, variance, coefs, us, vs, row_v0, row_dv, x0, y0, no_data_bits, invalid,
        table, out_image, out_mask, out_var,
    ):  # fmt: skip
        height, width = image.shape
        dest_h = vs.size
        dest_w = us.size
        # 1. per destination row, the x and y cubics as polynomials in u; extents of the
        # positions from the border and every 8th line, grown by 2 px (the fit is checked to
        # be smooth, so nothing in between strays by more than a tiny fraction of that).
        in_u = np.empty((dest_h, 2, 4))
        for i in range(dest_h):
            _coefs_in_u(coefs[0], vs[i], in_u[i, 0])
            _coefs_in_u(coefs[1], vs[i], in_u[i, 1])
            in_u[i, 0, 0] -= x0
            in_u[i, 1, 0] -= y0
        lo_x = lo_y = np.inf
        hi_x = hi_y = -np.inf
        for i in range(dest_h):
            a0, a1, a2, a3 = in_u[i, 0, 0], in_u[i, 0, 1], in_u[i, 0, 2], in_u[i, 0, 3]
            b0, b1, b2, b3 = in_u[i, 1, 0], in_u[i, 1, 1], in_u[i, 1, 2], in_u[i, 1, 3]
            step = 1 if i % 8 == 0 or i == dest_h - 1 else 8
            for j in range(0, dest_w + step - 1, step):
                u = us[min(j, dest_w - 1)]
                sx = a0 + u * (a1 + u * (a2 + u * a3))
                sy = b0 + u * (b1 + u * (b2 + u * b3))
                lo_x = min(lo_x, sx)
                hi_x = max(hi_x, sx)
                lo_y = min(lo_y, sy)
                hi_y = max(hi_y, sy)
        lo_x -= 2.0
        lo_y -= 2.0
        hi_x += 2.0
        hi_y += 2.0
        row_lo = int(np.floor(lo_y)) - n + 1
        row_hi = int(np.floor(hi_y)) + n
        n_rows = row_hi - row_lo + 1
        in_u_rows = np.empty((n_rows, 4))
        for r in range(n_rows):
            _coefs_in_u(coefs[2], row_v0 + (row_lo + r) * row_dv, in_u_rows[r])
            in_u_rows[r, 0] -= x0
            c0, c1, c2, c3 = in_u_rows[r, 0], in_u_rows[r, 1], in_u_rows[r, 2], in_u_rows[r, 3]
            step = 1 if r % 8 == 0 or r == n_rows - 1 else 8
            for j in range(0, dest_w + step - 1, step):
                u = us[min(j, dest_w - 1)]
                sx = c0 + u * (c1 + u * (c2 + u * c3))
                lo_x = min(lo_x, sx - 2.0)
                hi_x = max(hi_x, sx + 2.0)

        # 2. padding, mask footprints, no-data pixels (valid[X, Y] for the column pass).
        pad_x = max(0, n - 1 - int(np.floor(lo_x)))
        pad_y = max(0, -row_lo)
        # (+1: a position rounded up to the next pixel has a last tap one further, weight ~0)
        shape = (
            pad_y + max(height, row_hi + 1) + 1,
            pad_x + max(width, int(np.floor(hi_x)) + n + 1) + 1,
        )
        src, src_var, src_mask = pad_source(
            image, mask, variance, pad_y, pad_x, shape, no_data_bits, invalid
        )
        boxed = box(src_mask)
        valid = np.empty((dest_w, dest_h), np.bool_)
        column_used = np.zeros(dest_w, np.bool_)  # a destination column with data
        for i in range(dest_h):
            a0, a1, a2, a3 = in_u[i, 0, 0], in_u[i, 0, 1], in_u[i, 0, 2], in_u[i, 0, 3]
            b0, b1, b2, b3 = in_u[i, 1, 0], in_u[i, 1, 1], in_u[i, 1, 2], in_u[i, 1, 3]
            for j in range(dest_w):
                u = us[j]
                sx = a0 + u * (a1 + u * (a2 + u * a3)) + pad_x
                sy = b0 + u * (b1 + u * (b2 + u * b3)) + pad_y
                bits = boxed[np.uint64(sy) - first_tap, np.uint64(sx) - first_tap]
                ok = not (bits & invalid)
                valid[j, i] = ok
                if ok:
                    column_used[j] = True
                else:
                    bits |= no_data_bits
                    out_image[i, j] = np.nan
                    if with_variance:
                        out_var[i, j] = np.inf
                out_mask[i, j] = np.uint32(bits & ~invalid)

        # 3. row pass into inter[X, row - row_lo] (rows outside the source are zero padding).
        inter = np.zeros((dest_w, n_rows + 1), np.float32)
        inter_var = np.zeros((dest_w, n_rows + 1) if with_variance else (1, 1), np.float32)
        where = np.empty(max(dest_w, dest_h), np.uint64)
        shift_x = pad_x * TABLE_STEPS + 0.5
        for r in range(n_rows):
            source_row = row_lo + r
            if source_row < 0 or source_row >= height:
                continue
            line = src[source_row + pad_y]
            var_line = src_var[source_row + pad_y] if with_variance else line
            c0, c1, c2, c3 = in_u_rows[r, 0], in_u_rows[r, 1], in_u_rows[r, 2], in_u_rows[r, 3]
            for j in range(dest_w):  # positions first: a loop LLVM vectorizes
                u = us[j]
                where[j] = np.uint64((c0 + u * (c1 + u * (c2 + u * c3))) * TABLE_STEPS + shift_x)
            resample_line(line, var_line, where, column_used, table, inter, inter_var, r)

        # 4. column pass: destination column X reads inter[X] at source y - row_lo.
        in_v = np.empty(4)
        shift_y = -row_lo * TABLE_STEPS + 0.5
        for j in range(dest_w):
            _coefs_in_v(coefs[1], us[j], in_v)
            d0, d1, d2, d3 = in_v[0] - y0, in_v[1], in_v[2], in_v[3]
            line = inter[j]
            var_line = inter_var[j] if with_variance else line
            for i in range(dest_h):
                v = vs[i]
                where[i] = np.uint64((d0 + v * (d1 + v * (d2 + v * d3))) * TABLE_STEPS + shift_y)
            resample_line(line, var_line, where, valid[j], table, out_image, out_var, j)

    return warp


@functools.cache
def direct_resampler(n: int, with_variance: bool):
    """Return the 2-D kernel for half width ``n``, compiled on first use.

    ``f(image, variance, xs, ys, off_x, off_y, table, out, out_var)`` resamples at ``(xs[i, j]
    + off_x, ys[i, j] + off_y)`` with ``(2n)²`` taps, the outer product of the tabulated 1-D
    weights, every output pixel not already NaN (no data); the reference the separable passes
    are checked against.
    """
    taps = 2 * n

    @njit(cache=True, nogil=True, fastmath=_FAST)
    def resample(image, variance, xs, ys, off_x, off_y, table, out, out_var):
        first_tap = np.uint64(n - 1)
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                if np.isnan(out[i, j]):
                    continue
                qx = np.uint64((xs[i, j] + off_x) * TABLE_STEPS + 0.5)
                qy = np.uint64((ys[i, j] + off_y) * TABLE_STEPS + 0.5)
                wx = table[qx & _FRACTION]
                wy = table[qy & _FRACTION]
                x0 = (qx >> _SHIFT) - first_tap
                y0 = (qy >> _SHIFT) - first_tap
                acc = np.float32(0.0)
                acc_var = np.float32(0.0)
                for s in range(taps):
                    line = image[y0 + np.uint64(s)]
                    row = np.float32(0.0)
                    for t in range(taps):
                        row += wx[t] * line[x0 + np.uint64(t)]
                    acc += wy[s] * row
                    if with_variance:
                        var_line = variance[y0 + np.uint64(s)]
                        row_var = np.float32(0.0)
                        for t in range(taps):
                            row_var += wx[t] * wx[t] * var_line[x0 + np.uint64(t)]
                        acc_var += wy[s] * wy[s] * row_var
                out[i, j] = acc
                if with_variance:
                    out_var[i, j] = acc_var

    return resample
