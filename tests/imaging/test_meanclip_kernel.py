"""The MEANCLIP kernel against its references: the 1-D `clipped_stats`, astropy's
``sigma_clip`` configured as afw's MEANCLIP, and itself on a transposed (strided) cube."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clip

from imaging import _meanclip_kernel as kernel
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


# --- the quartiles without sorting (`_quartiles`) against sorting ---


def _sorted_quartiles(row):
    """The kernel's quartile definition, by sorting: numpy's linear-interpolation positions,
    ``a + (b - a) * frac`` in float64 between the two neighbouring sorted finite values."""
    values = np.sort(row[np.isfinite(row)]).astype(np.float64)
    k = values.size
    out = []
    for q in (0.25, 0.5, 0.75):
        pos = (k - 1) * q
        i = int(np.floor(pos))
        a, b = values[i], values[min(i + 1, k - 1)]
        out.append(a + (b - a) * (pos - i))
    return np.array(out), k


def _histogram_quartiles(row):
    """`_quartiles` on one row with its scratch arrays: (quartiles, finite count or -1)."""
    n = row.shape[0]
    hist = np.empty(max(kernel.MIN_BINS, n // kernel.VALUES_PER_BIN) + 2, np.int64)
    out = np.full(3, np.nan)
    k = kernel._quartiles(
        row,
        np.empty(n, np.int32),
        hist,
        np.zeros(hist.shape[0], np.int64),
        np.empty(kernel.SAMPLE, np.float32),
        np.empty(6, np.int64),
        np.empty(12, np.int64),
        np.empty((6, kernel.GATHER), np.float32),
        np.empty(6, np.int64),
        out,
    )
    return out, k


def _varied_rows(rng, n):
    """Rows of ``n`` values: many distributions, scales and signs, with NaN, infinities and
    outliers (some inside the sample that places the bins)."""
    rows = []
    for _ in range(30):
        rows.append(rng.normal(0.0, 1.0, n))  # crosses zero
        rows.append(rng.normal(1e4, 3.0, n))
        rows.append(rng.uniform(0.8, 1.2, n) * 1e-30)  # tiny values
        rows.append(rng.lognormal(0.0, 2.0, n))  # skewed, long tail
        rows.append(rng.standard_cauchy(n))  # very heavy tails
        rows.append(np.concatenate([rng.normal(-5, 1, n // 2), rng.normal(5, 1, n - n // 2)]))
        rows.append(rng.normal(0.002, 0.001, n) + (rng.random(n) < 0.05) * 1e4)  # cosmic rays
    cube = np.array(rows, dtype=np.float32)
    cube[rng.random(cube.shape) < 0.1] = np.nan
    cube[rng.random(cube.shape) < 0.01] = np.inf
    cube[rng.random(cube.shape) < 0.01] = -np.inf
    return cube


@pytest.mark.parametrize("n", [40, 333, 1000, 4000])
def test_quartiles_without_sorting_equal_the_sorted_ones(n):
    rng = np.random.default_rng(n)
    cube = _varied_rows(rng, n)
    histogram_route = 0
    for row in cube:
        expected, k = _sorted_quartiles(row)
        got, got_k = _histogram_quartiles(row)
        if got_k < 0:
            continue  # declined: the caller sorts the row (tested below)
        histogram_route += 1
        assert got_k == k
        np.testing.assert_array_equal(got, expected)  # exact, not close
        finite = row[np.isfinite(row)].astype(np.float64)
        np.testing.assert_allclose(got, np.percentile(finite, [25, 50, 75]), rtol=1e-12)
    assert histogram_route >= 0.9 * len(cube)  # the comparison is not all declines


def test_quartiles_decline_rows_they_cannot_do_exactly():
    rng = np.random.default_rng(3)
    n = 200
    ties = np.round(rng.normal(0, 1, n)).astype(np.float32)  # a handful of distinct values
    constant = np.full(n, 2.5, np.float32)
    masked = np.full(n, np.nan, np.float32)
    few = np.full(n, np.nan, np.float32)
    few[::20] = rng.normal(0, 1, 10)  # 10 values: under MIN_VALUES
    for row in (ties, constant, masked, few):
        assert _histogram_quartiles(row)[1] == -1


def _sort_route(cube, num_sigma, num_iter):
    """MEANCLIP through the sorted-row kernel only (what declined rows get)."""
    value = np.empty(len(cube))
    count = np.empty(len(cube), np.int64)
    kernel._clip_sorted_rows(np.sort(cube, axis=1), num_sigma, num_iter, value, count)
    return value.astype(np.float32), count


@pytest.mark.parametrize(("num_sigma", "num_iter"), [(4.0, 3), (3.0, 5), (2.0, 1)])
def test_meanclip_matches_the_plain_references_on_varied_rows(num_sigma, num_iter):
    rng = np.random.default_rng(int(num_sigma * 10 + num_iter))
    cube = _varied_rows(rng, 300)
    edge = np.full((6, 300), np.nan, np.float32)
    edge[1, 7] = 4.0  # one value
    edge[2, [3, 9]] = [1.0, 2.0]  # two
    edge[3] = np.round(rng.normal(0, 1, 300))  # ties
    edge[4] = 7.0  # constant: width 0
    edge[5, :] = rng.normal(0, 1, 300)
    edge[5, ::2] = np.inf  # half infinite
    cube = np.concatenate([cube, edge.astype(np.float32)])
    value, count = meanclip_rows(cube, num_sigma, num_iter)
    sorted_value, sorted_count = _sort_route(cube, num_sigma, num_iter)
    np.testing.assert_array_equal(count, sorted_count)
    np.testing.assert_allclose(value, sorted_value, rtol=4e-7, atol=0, equal_nan=True)
    for row, v, c in zip(cube, value, count, strict=True):
        ref_v, _, ref_c = clipped_stats(row, n_sigma=num_sigma, n_iter=num_iter)
        np.testing.assert_allclose(v, ref_v, rtol=1e-6, atol=1e-37, equal_nan=True)
        assert c == ref_c
    assert np.isnan(value[-6]) and count[-6] == 0  # all masked
    assert value[-5] == 4.0 and count[-5] == 1


def test_one_stamp():
    stack = np.array([[3.0], [np.nan], [np.inf], [-2.0]], np.float32)
    value, count = meanclip_rows(stack, 4.0, 3)
    np.testing.assert_array_equal(value, [3.0, np.nan, np.nan, -2.0])
    np.testing.assert_array_equal(count, [1, 0, 0, 1])


def test_ten_thousand_stamps_take_the_histogram_route():
    # the bins grow with the stamps: a pixel of 10,000 noisy stamps is not declined (sorted)
    rng = np.random.default_rng(9)
    row = (rng.normal(0.002, 0.001, 10_000) * rng.uniform(0.8, 1.2, 10_000)).astype(np.float32)
    row[rng.random(row.size) < 0.03] = np.nan
    got, k = _histogram_quartiles(row)
    assert k == np.count_nonzero(np.isfinite(row))
    np.testing.assert_array_equal(got, _sorted_quartiles(row)[0])
