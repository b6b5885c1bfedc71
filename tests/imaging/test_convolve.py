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
