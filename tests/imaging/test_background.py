import numpy as np
import pytest
from _synthetic import PLANES, make_image

from imaging._errors import AllPixelsMaskedError
from imaging.background import (
    BackgroundConfig,
    BackgroundList,
    BackgroundModel,
    estimate_background,
    subtract_background,
)


@pytest.fixture(scope="module")
def sky():
    return make_image((768, 1024), n_stars=60, sky_slope=(0.3, -0.2), seed=11)


def _far_from_stars(s, radius=12):
    # Away from stars and inside the bin-centre grid (half a bin from the edges, where the
    # order-6 polynomial extrapolates; there the residual is up to ~0.12 sigma).
    far = np.zeros(s.image.shape, bool)
    far[64:-64, 64:-64] = True
    for x, y in zip(s.x, s.y, strict=True):
        far[
            max(int(y) - radius, 0) : int(y) + radius, max(int(x) - radius, 0) : int(x) + radius
        ] = False
    return far


@pytest.mark.parametrize("use_approx", [True, False])
def test_gradient_sky_residual_below_tenth_of_noise(sky, use_approx):
    cfg = BackgroundConfig(use_approx=use_approx)
    model = estimate_background(sky.image, sky.mask, sky.variance, config=cfg, planes=PLANES)
    resid = model.evaluate() - sky.sky
    far = _far_from_stars(sky)
    assert np.abs(resid[far]).max() < 0.1 * sky.noise_sigma
    assert resid.std() < 0.03 * sky.noise_sigma
    assert model.values.shape == (768 // 128 + 1, 1024 // 128 + 1)
    assert model.method == ("CHEBYSHEV" if use_approx else "AKIMA_SPLINE")


def test_subtract_in_place_and_stats(sky):
    img = sky.image.copy()
    model, stats = subtract_background(img, sky.mask, planes=PLANES)
    np.testing.assert_allclose(img, sky.image - model.evaluate(), atol=1e-3)
    assert stats["BGMEAN"] == pytest.approx(float(sky.sky.mean()), rel=1e-3)
    assert stats["BGVAR"] > 0


def test_masked_pixels_are_ignored(sky):
    img = sky.image.copy()
    mask = sky.mask.copy()
    img[150:230, 300:380] += 5000.0
    mask[150:230, 300:380] |= 1 << PLANES["BAD"]
    model = estimate_background(img, mask, planes=PLANES)
    assert np.abs(model.evaluate() - sky.sky)[_far_from_stars(sky)].max() < 0.1 * sky.noise_sigma


def test_all_masked_raises(sky):
    mask = np.full(sky.image.shape, 1 << PLANES["DETECTED"], np.uint32)
    with pytest.raises(AllPixelsMaskedError, match="All pixels masked. Cannot estimate background"):
        estimate_background(sky.image, mask, planes=PLANES)
    with pytest.raises(RuntimeError):
        estimate_background(np.full((64, 64), np.nan, np.float32))


def test_order_is_reduced_for_small_grids():
    img = np.random.default_rng(0).normal(10, 1, (256, 256)).astype(np.float32)
    model = estimate_background(img)
    assert model.values.shape == (3, 3)
    assert model.order == 2
    with pytest.raises(ValueError):
        estimate_background(img, config=BackgroundConfig(undersample_style="THROW_EXCEPTION"))


def test_round_trip_and_list_sum(sky):
    a = estimate_background(sky.image, sky.mask, planes=PLANES)
    b = estimate_background(
        sky.image * 0.5, sky.mask, planes=PLANES, config=BackgroundConfig(use_approx=False)
    )
    bl = BackgroundList([a, b])
    again = BackgroundList.from_dict(bl.to_dict())
    assert len(again) == 2
    np.testing.assert_array_equal(again.evaluate(), bl.evaluate())
    np.testing.assert_array_equal(BackgroundModel.from_dict(a.to_dict()).evaluate(), a.evaluate())
    np.testing.assert_allclose(bl.evaluate(), a.evaluate() + b.evaluate(), rtol=1e-6)
    # evaluation on a sub-region with a parent offset matches the full image
    sub = a.evaluate((100, 50), xy0=(30, 40))
    np.testing.assert_allclose(sub, a.evaluate()[40:140, 30:80], rtol=1e-6)
    with pytest.raises(ValueError):
        BackgroundList().evaluate()


@pytest.mark.parametrize("use_approx", [True, False])
def test_evaluate_on_every_nth_pixel(sky, use_approx):
    config = BackgroundConfig(use_approx=use_approx)
    model = estimate_background(sky.image, sky.mask, planes=PLANES, config=config)
    full = model.evaluate()
    np.testing.assert_allclose(model.evaluate(step=8), full[::8, ::8], rtol=1e-6, atol=1e-4)
    both = BackgroundList([model, model])
    np.testing.assert_allclose(both.evaluate(step=5), (full + full)[::5, ::5], rtol=1e-6, atol=1e-3)
    assert BackgroundList().evaluate((10, 9), step=4).shape == (3, 3)


def test_two_by_two_binning_agrees_with_single_pixels(sky):
    """Cell statistics over 2x2 block means (default) against LSST's single pixels."""
    single = estimate_background(
        sky.image, sky.mask, planes=PLANES, config=BackgroundConfig(pixel_binning=1)
    )
    binned = estimate_background(sky.image, sky.mask, planes=PLANES)
    far = _far_from_stars(sky)
    assert np.abs(binned.evaluate() - sky.sky)[far].max() < 0.1 * sky.noise_sigma
    # same cells, same precision of each cell mean
    assert binned.values.shape == single.values.shape
    inner = np.zeros(far.shape, bool)
    inner[64:-64, 64:-64] = True  # inside the cell-centre grid (the fit extrapolates beyond)
    diff = np.abs(binned.evaluate() - single.evaluate())[inner]
    assert diff.max() < 0.03 * sky.noise_sigma, diff.max() / sky.noise_sigma
    # on white noise each cell mean is as precise from blocks as from pixels
    noise = np.random.default_rng(3).normal(100.0, 10.0, (512, 512)).astype(np.float32)
    ratio = (
        estimate_background(noise).variances
        / estimate_background(noise, config=BackgroundConfig(pixel_binning=1)).variances
    )
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    # a block with one ignored pixel is left out: a masked hot spot leaves no trace
    img, mask = sky.image.copy(), sky.mask.copy()
    img[201:260:2, 301:360:2] += 5000.0  # every other pixel, so every block holds one
    mask[201:260:2, 301:360:2] |= 1 << PLANES["BAD"]
    hot = estimate_background(img, mask, planes=PLANES)
    assert np.abs(hot.evaluate() - binned.evaluate())[inner].max() < 0.03 * sky.noise_sigma
    with pytest.raises(ValueError, match="pixel_binning"):
        estimate_background(sky.image, config=BackgroundConfig(pixel_binning=3))
