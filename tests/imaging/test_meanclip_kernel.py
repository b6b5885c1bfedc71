"""The MEANCLIP kernel against its references: the 1-D `clipped_stats`, astropy's
``sigma_clip`` configured as afw's MEANCLIP, and itself on a transposed (strided) cube."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clip

from imaging._convolve import clipped_stats
from imaging._meanclip_kernel import meanclip_rows


class _AfwStart:
    """astropy ``cenfunc``/``stdfunc`` pair that starts as afw's MEANCLIP does.

    First call: the median and 0.741 × IQR (the standard deviation where that is 0); every
    later call (the following iterations): the mean and standard deviation of what is left.
    """

    def __init__(self) -> None:
        self.centre_calls = 0
        self.width_calls = 0

    def centre(self, data, axis=None):
        self.centre_calls += 1
        if self.centre_calls == 1:
            return np.nanmedian(data, axis=axis)
        return np.nanmean(data, axis=axis)

    def width(self, data, axis=None):
        self.width_calls += 1
        if self.width_calls == 1:
            q25, q75 = np.nanpercentile(data, [25, 75], axis=axis)
            iqr_width = 0.741 * (q75 - q25)
            return np.where(iqr_width > 0, iqr_width, np.nanstd(data, axis=axis))
        return np.nanstd(data, axis=axis)


def _cube(rng, n_pix, n, *, nan=0.05, outliers=0.03):
    cube = rng.normal(10.0, 0.5, size=(n_pix, n)).astype(np.float32)
    cube[rng.random(cube.shape) < outliers] += rng.choice([-30.0, 40.0, 1e4])
    cube[rng.random(cube.shape) < nan] = np.nan
    return cube


# astropy never gives back a value it clipped; afw (and we) test every value against each new
# window, so a clipped value can come back. With one iteration, or LSST's 4 sigma x 3 on this
# data, none does and the results must agree (counts exactly); at 3 sigma x 5 some do.
@pytest.mark.parametrize(("num_sigma", "num_iter"), [(4.0, 3), (2.5, 1), (3.0, 1)])
def test_matches_astropy_sigma_clip_configured_as_afw(num_sigma, num_iter):
    rng = np.random.default_rng(7)
    cube = _cube(rng, 300, 500)
    value, count = meanclip_rows(cube, num_sigma, num_iter)
    start = _AfwStart()
    clipped = sigma_clip(
        cube.astype(np.float64),
        sigma=num_sigma,
        maxiters=num_iter,
        cenfunc=start.centre,
        stdfunc=start.width,
        axis=1,
        masked=False,
    )
    assert start.centre_calls >= 1  # the configured functions were used
    np.testing.assert_allclose(value, np.nanmean(clipped, axis=1), rtol=2e-7 * 4, atol=0)
    np.testing.assert_array_equal(count, np.count_nonzero(np.isfinite(clipped), axis=1))


def test_matches_the_one_dimensional_reference_on_hard_rows():
    rng = np.random.default_rng(11)
    cube = _cube(rng, 240, 40, nan=0.2)
    cube[:20] = np.round(cube[:20])  # many ties
    cube[20:40] = rng.standard_cauchy((20, 40))  # heavy tails
    cube[40] = 3.0  # zero width
    cube[41, :39] = np.nan  # one value
    cube[42] = np.nan  # none
    cube[43, :5] = np.inf  # infinities are left out like NaN
    cube[44, :5] = -np.inf
    value, count = meanclip_rows(cube, 3.0, 4)
    for row, v, c in zip(cube, value, count, strict=True):
        ref_v, _, ref_c = clipped_stats(row, n_sigma=3.0, n_iter=4)
        np.testing.assert_allclose(v, ref_v, rtol=1e-6, equal_nan=True)
        assert c == ref_c


def test_strided_stack_axis_and_block_sizes_give_the_same_result():
    rng = np.random.default_rng(5)
    stack = _cube(rng, 700, 333).T.copy()  # (stamps, pixels): the stack axis is strided below
    contiguous = meanclip_rows(np.ascontiguousarray(stack.T), 4.0, 3)
    for block in (1, 7, 128):
        strided = meanclip_rows(stack.T, 4.0, 3, block=block)
        np.testing.assert_array_equal(strided[0], contiguous[0])
        np.testing.assert_array_equal(strided[1], contiguous[1])
    as_float64 = meanclip_rows(stack.T.astype(np.float64), 4.0, 3)
    np.testing.assert_array_equal(as_float64[0], contiguous[0])


def test_empty_shapes():
    value, count = meanclip_rows(np.empty((3, 0), np.float32), 4.0, 3)
    assert np.isnan(value).all() and (count == 0).all()
    value, count = meanclip_rows(np.empty((0, 5), np.float32), 4.0, 3)
    assert value.shape == count.shape == (0,)
