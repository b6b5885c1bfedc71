"""Low-level pixel helpers shared by the characterisation algorithms.

* separable Gaussian smoothing (cache-blocked symmetric tap sums along x and y;
  float32);
* mask-plane arithmetic on plain ``uint32`` arrays and a ``{plane: bit}`` mapping;
* sigma-clipped statistics (afw ``MEANCLIP``/``STDEVCLIP``: start at the median with an
  IQR width, then iterate ``n_iter`` times at ``n_sigma``);
* batched cutouts (``(N, S, S)`` stacks) and batched Lanczos-3 sub-pixel shifts;
* 8-connected components of a *list* of pixels (union-find in numba,
  `imaging._footprint_kernels`), whose cost grows with the number of pixels rather than the
  image size.

No state is kept between calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ._footprint_kernels import label_sorted
from ._smooth_kernel import smooth_rows

#: The LSST default mask planes and their bit numbers, used when no mapping is given.
DEFAULT_MASK_PLANES: dict[str, int] = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "NO_DATA": 8,
}

LANCZOS_ORDER = 3


def plane_map(planes: Mapping[str, int] | object | None) -> Mapping[str, int]:
    """Return a ``{name: bit number}`` mapping from a mapping, a `Mask`-like object or None."""
    if planes is None:
        return DEFAULT_MASK_PLANES
    if isinstance(planes, Mapping):
        return planes
    for attr in ("planes", "plane_dict", "_planes"):
        value = getattr(planes, attr, None)
        if isinstance(value, Mapping):
            return value
    raise TypeError(f"Cannot get mask planes from {type(planes).__name__}")


def bitmask(planes: Mapping[str, int] | None, names: Iterable[str]) -> int:
    """OR of the bits of the named planes; unknown plane names are ignored."""
    planes = plane_map(planes)
    value = 0
    for name in names:
        if name in planes:
            value |= 1 << int(planes[name])
    return value


def kernel_size_for_sigma(sigma: float, n_sigma: float = 7.0) -> int:
    """LSST detection kernel size: ``(int(sigma*n_sigma + 0.5)//2)*2 + 1`` (always odd)."""
    return (int(sigma * n_sigma + 0.5) // 2) * 2 + 1


def gaussian_kernel_1d(sigma: float, size: int) -> np.ndarray:
    """Normalised 1-D Gaussian of width ``sigma`` (px) sampled on ``size`` (odd) pixels."""
    half = size // 2
    x = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_gaussian(
    image: np.ndarray, sigma: float, size: int, *, mask: np.ndarray | None = None,
    zero_bits: int = 0,
) -> np.ndarray:
    """Convolve with a separable Gaussian; the border of width size//2 is not valid.

    Returns a float32 array of the same shape; pixels closer than ``size//2`` to the edge
    are computed with zero padding and should be treated as EDGE.  Pixels of ``mask``
    carrying any of ``zero_bits`` enter the convolution as zeros (the image is not
    changed).
    """
    k = gaussian_kernel_1d(sigma, size).astype(np.float32)
    image = np.asarray(image, dtype=np.float32)
    # one sweep with a ring of rows smoothed along x (`imaging._smooth_kernel`): symmetric
    # tap sums k[0]·x + Σ k[j]·(x[+j] + x[−j]) in float32, zero padding, no full-size
    # temporary
    use_mask = bool(zero_bits) and mask is not None
    # native uint32 for the kernel (numba refuses big-endian arrays, e.g. from FITS)
    mask = np.asarray(mask, np.uint32) if use_mask else np.zeros((1, 1), np.uint32)
    out = np.empty(image.shape, np.float32)
    smooth_rows(image, mask, np.uint32(zero_bits), use_mask, k, out)
    return out


def clipped_stats(
    values: np.ndarray, *, n_sigma: float = 3.0, n_iter: int = 3
) -> tuple[float, float, int]:
    """Sigma-clipped mean, standard deviation and count of a 1-D sample.

    Starts from the median and 0.741×IQR, then ``n_iter`` times keeps values within
    ``n_sigma`` of the current centre and recomputes mean and std.  Returns NaNs and 0
    for an empty sample.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), 0
    q25, med, q75 = np.percentile(v, [25.0, 50.0, 75.0])
    centre, width = med, 0.741 * (q75 - q25)
    if width <= 0:
        width = float(np.std(v))
    keep = v
    for _ in range(n_iter):
        if width <= 0:
            break
        keep = v[np.abs(v - centre) < n_sigma * width]
        if keep.size < 2:
            break
        centre, width = float(keep.mean()), float(keep.std())
    return float(centre), float(width), int(keep.size)


def lanczos_weights(frac: np.ndarray, order: int = LANCZOS_ORDER) -> np.ndarray:
    """Lanczos interpolation weights for shifting by ``frac`` pixels.

    Returns an ``(N, 2*order+1)`` array ``w`` such that
    ``shifted[i] = sum_k w[k] * original[i - (k - order)]`` shifts a signal by ``+frac``
    (content moves towards larger index).  Rows are normalised to sum to one.
    """
    frac = np.atleast_1d(np.asarray(frac, dtype=np.float64))
    k = np.arange(-order, order + 1, dtype=np.float64)
    t = k[None, :] - frac[:, None]
    w = np.sinc(t) * np.sinc(t / order)
    w[np.abs(t) >= order] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def shift_stack(stack: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Shift each image of an ``(N, H, W)`` stack by (dx, dy) px with separable Lanczos-3.

    ``|dx|, |dy|`` should be ≤ 1; values are zero-padded at the border.
    """
    stack = np.asarray(stack, dtype=np.float64)
    n, h, w = stack.shape
    o = LANCZOS_ORDER
    wx = lanczos_weights(dx)
    wy = lanczos_weights(dy)
    pad = np.zeros((n, h + 2 * o, w + 2 * o))
    pad[:, o:o + h, o:o + w] = stack
    tmp = np.zeros((n, h + 2 * o, w))
    for j in range(2 * o + 1):
        # output[x] += w[j] * input[x - (j - o)]  ->  padded index x + o - (j - o)
        start = 2 * o - j
        tmp += wx[:, j, None, None] * pad[:, :, start:start + w]
    out = np.zeros((n, h, w))
    for j in range(2 * o + 1):
        start = 2 * o - j
        out += wy[:, j, None, None] * tmp[:, start:start + h, :]
    return out


def clip_index(index: np.ndarray, top: int) -> np.ndarray:
    """``index`` clipped to [0, top]: np.clip's result without its per-call overhead."""
    return np.minimum(np.maximum(index, 0), top)


def cutout_indices(
    shape: tuple[int, int], xc: np.ndarray, yc: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays for ``(N, 2*half+1, 2*half+1)`` cutouts centred on integer pixels.

    Returns ``(iy, ix, inside)``: clipped row and column indices for fancy indexing and a
    boolean stack telling which cutout pixels fall inside the image.
    """
    d = np.arange(-half, half + 1)
    iy = np.asarray(yc, dtype=np.int64)[:, None, None] + d[None, :, None]
    ix = np.asarray(xc, dtype=np.int64)[:, None, None] + d[None, None, :]
    inside = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    return np.clip(iy, 0, shape[0] - 1), np.clip(ix, 0, shape[1] - 1), inside


def connected_components_8(y: np.ndarray, x: np.ndarray, width: int) -> tuple[int, np.ndarray]:
    """8-connected components of a list of distinct pixels.

    Cost grows with the number of pixels, not the image size.  Components are numbered
    0.. in raster order of their first pixel (as ``scipy.ndimage.label`` numbers 1..).

    Returns
    -------
    n : int
        Number of components.
    labels : ndarray
        Component index of each input pixel.
    """
    y = np.asarray(y, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    if y.size == 0:
        return 0, np.zeros(0, np.int64)
    flat = y * width + x
    if flat.size == 1 or (flat[1:] > flat[:-1]).all():  # raster order already (the usual case)
        n, labels = label_sorted(flat, width)
        return int(n), labels
    order = np.argsort(flat, kind="stable")
    n, lab_sorted = label_sorted(flat[order], width)
    labels = np.empty_like(lab_sorted)
    labels[order] = lab_sorted
    return int(n), labels
