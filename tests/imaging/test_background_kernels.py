"""The compiled cell statistics against the numpy code they replaced, bit for bit."""

import numpy as np
import pytest

from imaging.background import BackgroundConfig, _binned_stats, _cell_edges


def _bin2(strip, bad):
    h, w = (strip.shape[0] // 2) * 2, (strip.shape[1] // 2) * 2
    s = np.asarray(strip[:h, :w], dtype=np.float32)
    out = s[0::2, 0::2] + s[1::2, 0::2]
    out += s[0::2, 1::2]
    out += s[1::2, 1::2]
    out *= np.float32(0.25)
    b = bad[:h, :w]
    return out, b[0::2, 0::2] | b[1::2, 0::2] | b[0::2, 1::2] | b[1::2, 1::2]


def _clipped_rows(flat, config):
    sub = np.sort(flat[:, ::4], axis=1)
    nsub = np.isfinite(sub).sum(axis=1)
    rows = np.arange(flat.shape[0])

    def quantile(q):
        idx = np.clip((q * (nsub - 1)).astype(int), 0, sub.shape[1] - 1)
        return sub[rows, idx].astype(np.float64)

    centre = quantile(0.5)
    width = 0.741 * (quantile(0.75) - quantile(0.25))
    count = np.count_nonzero(np.isfinite(flat), axis=1).astype(np.float64)
    if config.statistic == "MEDIAN":
        mean = centre
        var = (width**2) / np.maximum(count, 1) * (np.pi / 2)
    else:
        mean = centre
        with np.errstate(invalid="ignore", divide="ignore"):
            for it in range(config.n_iter_clip):
                data_it = flat if it == config.n_iter_clip - 1 else sub
                d = data_it - mean[:, None].astype(np.float32)
                sel = np.abs(d) < (config.n_sigma_clip * width)[:, None].astype(np.float32)
                count = np.count_nonzero(sel, axis=1).astype(np.float64)
                d = np.where(sel, d, np.float32(0))
                s1 = d.sum(axis=1, dtype=np.float32).astype(np.float64)
                np.square(d, out=d)
                s2 = d.sum(axis=1, dtype=np.float32).astype(np.float64)
                shift = s1 / count
                new_var = np.maximum(s2 / count - shift**2, 0.0)
                ok = count >= 2
                mean = np.where(ok, mean + shift, mean)
                width = np.where(ok, np.sqrt(new_var), width)
            var = width**2 / count
    empty = nsub == 0
    return np.where(empty, np.nan, mean), np.where(empty, np.nan, var)


def _numpy_binned_stats(image, mask, bits, x_edges, y_edges, config):
    """The numpy `_binned_stats` before the kernels (commit e9ad993)."""
    binning = int(config.pixel_binning)
    ny, nx = y_edges.size - 1, x_edges.size - 1
    ye = (y_edges // binning).astype(int)
    xe = (x_edges // binning).astype(int)
    by = int(np.max(np.diff(ye)))
    bx = int(np.max(np.diff(xe)))
    values = np.full((ny, nx), np.nan)
    variances = np.full((ny, nx), np.nan)
    stack = np.empty((nx, by, bx), dtype=np.float32)
    for j in range(ny):
        rows = slice(ye[j] * binning, ye[j + 1] * binning)
        strip = image[rows]
        bad = ~np.isfinite(strip)
        if mask is not None and bits:
            bad |= (mask[rows] & np.uint32(bits)) != 0
        if binning == 2:
            strip, bad = _bin2(strip, bad)
        if bad.any():
            strip = np.where(bad, np.float32(np.nan), strip)
        stack.fill(np.nan)
        for i in range(nx):
            stack[i, :ye[j + 1] - ye[j], :xe[i + 1] - xe[i]] = strip[:, xe[i]:xe[i + 1]]
        values[j], variances[j] = _clipped_rows(stack.reshape(nx, by * bx), config)
    return values, variances


@pytest.mark.parametrize("shape", [(200, 300), (97, 131), (16, 9)])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"pixel_binning": 1},
        {"statistic": "MEDIAN"},
        {"n_iter_clip": 1, "n_sigma_clip": 2.5},
        {"n_iter_clip": 0},
        {"bin_size": 32, "pixel_binning": 1, "n_iter_clip": 5},
    ],
)
def test_cell_statistics_are_those_of_the_numpy_code(shape, options):
    rng = np.random.default_rng(sum(shape) + len(options))
    config = BackgroundConfig(bin_size=options.pop("bin_size", 64), **options)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    image = (100.0 + 0.05 * xx - 0.03 * yy + rng.normal(0.0, 7.0, shape)).astype(np.float32)
    image[rng.random(shape) < 0.003] = 5e4  # outliers to clip
    image[rng.random(shape) < 0.002] = np.nan
    image[rng.random(shape) < 0.001] = np.inf
    mask = np.zeros(shape, np.uint32)
    mask[rng.random(shape) < 0.05] = 1 << 5
    mask[: h // 3, : w // 4] |= 1 << 0  # a fully masked corner: empty cells
    x_edges, y_edges = _cell_edges(w, config.bin_size), _cell_edges(h, config.bin_size)
    for m, bits in ((mask, (1 << 0) | (1 << 5)), (None, 0), (mask, 0)):
        got = _binned_stats(image, m, bits, x_edges, y_edges, config)
        want = _numpy_binned_stats(image, m, bits, x_edges, y_edges, config)
        for g, e in zip(got, want, strict=True):
            assert g.dtype == e.dtype and g.shape == e.shape
            assert np.array_equal(g.view(np.uint64), e.view(np.uint64))


def test_pairwise_sum_is_numpys():
    from imaging._background_kernels import _row_sum

    rng = np.random.default_rng(7)
    for n in [*range(0, 300, 7), 1000, 3844, 4097, 20000]:
        a = (rng.normal(0.0, 1.0, n) * 10.0 ** rng.uniform(-3, 4, n)).astype(np.float32)
        assert _row_sum(a) == np.float64(a.sum(dtype=np.float32))


@pytest.mark.parametrize("use_approx", [True, False])
def test_subtraction_by_blocks_is_image_minus_evaluate(use_approx):
    from imaging.background import subtract_background

    rng = np.random.default_rng(11)
    shape = (600, 200)  # blocks of 256, 256 and 88 rows
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    image = (50.0 + 0.02 * xx + 1e-4 * (yy - 300.0) ** 2
             + rng.normal(0.0, 5.0, shape)).astype(np.float32)
    got = image.copy()
    model, stats = subtract_background(
        got, None, config=BackgroundConfig(bin_size=64, use_approx=use_approx), xy0=(7, 9)
    )
    sample = []
    want = image.copy()
    for r0 in range(0, shape[0], 256):  # the loop over `evaluate` this replaced
        r1 = min(r0 + 256, shape[0])
        bg = model.evaluate((r1 - r0, shape[1]), (model.xy0[0], model.xy0[1] + r0))
        want[r0:r1] -= bg
        sample.append(bg[(-r0) % 4::4, ::4])
    smooth = np.concatenate(sample)
    assert np.array_equal(got, want)
    assert stats == {"BGMEAN": float(smooth.mean(dtype=np.float64)),
                     "BGVAR": float(smooth.var(dtype=np.float64))}
    assert np.array_equal(want, image - model.evaluate())
    # without the statistics: the same subtraction
    quiet = image.copy()
    assert subtract_background(quiet, None, config=BackgroundConfig(bin_size=64,
                               use_approx=use_approx), xy0=(7, 9), stats=False)[1] == {}
    assert np.array_equal(quiet, got)


def test_big_endian_inputs_give_the_same_cells():
    rng = np.random.default_rng(4)
    image = rng.normal(10.0, 2.0, (130, 140)).astype(np.float32)
    mask = np.where(rng.random(image.shape) < 0.05, 1 << 5, 0).astype(np.uint32)
    config = BackgroundConfig(bin_size=64)
    edges = _cell_edges(140, 64), _cell_edges(130, 64)
    want = _binned_stats(image, mask, 1 << 5, *edges, config)
    got = _binned_stats(image.astype(">f4"), mask.astype(">u4"), 1 << 5, *edges, config)
    for g, e in zip(got, want, strict=True):
        assert np.array_equal(g, e, equal_nan=True)
