"""The separable Gaussian smoothing against scipy's direct correlation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imaging._convolve import gaussian_kernel_1d, smooth_gaussian


def _reference(image, sigma, size, zero=None):
    k = gaussian_kernel_1d(sigma, size)
    data = np.asarray(image, dtype=np.float64).copy()
    if zero is not None:
        data[zero] = 0.0
    out = ndimage.correlate1d(data, k, axis=1, mode="constant")
    return ndimage.correlate1d(out, k, axis=0, mode="constant")


@pytest.mark.parametrize(("shape", "sigma", "size"), [
    ((300, 257), 1.3, 9), ((150, 140), 2.0, 15), ((70, 90), 0.8, 5), ((5, 7), 1.3, 9),
])
def test_smoothing_equals_the_direct_correlation(shape, sigma, size):
    rng = np.random.default_rng(3)
    image = rng.normal(100.0, 10.0, shape).astype(np.float32)
    image[shape[0] // 2, shape[1] // 3] = 5e4  # a spike: the kernel's shape shows
    mask = np.zeros(shape, np.uint32)
    mask[rng.random(shape) < 0.01] = 1 << 3
    got = smooth_gaussian(image, sigma, size, mask=mask, zero_bits=1 << 3)
    want = _reference(image, sigma, size, zero=mask != 0)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())
    # without zero_bits the masked pixels count
    plain = smooth_gaussian(image, sigma, size, mask=mask)
    np.testing.assert_allclose(plain, _reference(image, sigma, size), atol=2e-6 * 5e4)


def _numpy_row_blocks(image, sigma, size, mask=None, zero_bits=0):
    """The numpy smoothing the numba kernel replaced (row blocks of shifted-slice sums)."""
    k = gaussian_kernel_1d(sigma, size).astype(np.float32)
    half, block = size // 2, 64
    n, w = image.shape
    image = np.asarray(image, dtype=np.float32)
    out = np.empty((n, w), np.float32)
    src = np.zeros((block + 2 * half, w + 2 * half), np.float32)
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        m = r1 - r0
        lo, hi = max(r0 - half, 0), min(r1 + half, n)
        a, b = lo - (r0 - half), hi - (r0 - half)
        sp = src[:m + 2 * half]
        sp[:a] = 0
        sp[b:] = 0
        inner = sp[a:b, half:half + w]
        inner[...] = image[lo:hi]
        if zero_bits and mask is not None:
            inner[(mask[lo:hi] & np.uint32(zero_bits)) != 0] = 0
        pad = sp[:, half:half + w] * k[half]
        for j in range(1, half + 1):
            t = sp[:, half + j:half + j + w] + sp[:, half - j:half - j + w]
            t *= k[half + j]
            pad += t
        o = pad[half:half + m] * k[half]
        for j in range(1, half + 1):
            t = pad[half + j:half + j + m] + pad[half - j:half - j + m]
            t *= k[half + j]
            o += t
        out[r0:r1] = o
    return out


@pytest.mark.parametrize(("shape", "sigma", "size"), [
    ((300, 257), 1.5, 11), ((131, 70), 1.68, 13), ((4, 6), 1.3, 9), ((1, 40), 1.0, 7),
])
def test_smoothing_is_bit_identical_to_the_numpy_row_blocks(shape, sigma, size):
    rng = np.random.default_rng(5)
    image = rng.normal(10.0, 30.0, shape).astype(np.float32)
    image[rng.random(shape) < 0.002] = 3e4
    mask = np.zeros(shape, np.uint32)
    mask[rng.random(shape) < 0.02] = 1 << 3
    mask[rng.random(shape) < 0.02] |= 1 << 1
    for kwargs in ({}, {"mask": mask, "zero_bits": 1 << 3}, {"mask": mask, "zero_bits": 0}):
        got = smooth_gaussian(image, sigma, size, **kwargs)
        want = _numpy_row_blocks(image, sigma, size, **kwargs)
        assert got.dtype == np.float32
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    # float64 input is rounded to float32 first, as before
    wide = image.astype(np.float64) + 1e-3
    assert np.array_equal(smooth_gaussian(wide, sigma, size), _numpy_row_blocks(wide, sigma, size))


def test_smoothing_takes_big_endian_and_other_integer_masks():
    rng = np.random.default_rng(9)
    image = rng.normal(0.0, 1.0, (40, 50)).astype(np.float32)
    mask = np.where(rng.random(image.shape) < 0.1, 1 << 3, 0).astype(np.uint32)
    want = smooth_gaussian(image, 1.5, 11, mask=mask, zero_bits=1 << 3)
    for m in (mask.astype(">u4"), mask.astype(np.int64), mask.astype(np.uint16)):
        got = smooth_gaussian(image.astype(">f4"), 1.5, 11, mask=m, zero_bits=1 << 3)
        assert np.array_equal(got, want)
