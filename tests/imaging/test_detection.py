import numpy as np
import pytest
from _synthetic import PLANES, add_gaussian, make_image

from imaging._convolve import kernel_size_for_sigma
from imaging.background import subtract_background
from imaging.detection import DetectionConfig, detect_sources


@pytest.fixture(scope="module")
def field():
    s = make_image((768, 768), n_stars=120, flux_range=(3e3, 3e5), seed=21)
    img = s.image.copy()
    subtract_background(img, s.mask, planes=PLANES)
    return s, img


def test_kernel_size_rule():
    assert kernel_size_for_sigma(1.5) == 11
    assert kernel_size_for_sigma(2.0) == 15
    assert all(kernel_size_for_sigma(s) % 2 == 1 for s in np.linspace(0.5, 5, 37))


def test_bright_stars_all_detected(field):
    s, img = field
    mask = s.mask.copy()
    res = detect_sources(img.copy(), mask, s.variance, 1.8, planes=PLANES)
    peak_snr = s.flux / (2 * np.pi * s.sigma**2) / s.noise_sigma
    bright = peak_snr > 50
    assert bright.sum() > 30
    # S/N of the peak of the PSF-smoothed image (matched filter), the detection statistic
    smoothed_snr = s.flux / (s.noise_sigma * np.sqrt(4 * np.pi) * s.sigma)
    found = np.zeros(len(s.x), bool)
    for fp in res.footprints:
        for px, py in zip(fp.peaks.x, fp.peaks.y, strict=True):
            d = np.hypot(s.x - px, s.y - py)
            found[np.argmin(d)] |= d.min() < 2
    assert found[bright].all()
    assert found[smoothed_snr > 55].all()
    # faint ones (smoothed peak < 50 sigma) are dropped by the include multiplier
    assert not found[smoothed_snr < 45].any()
    assert (smoothed_snr < 45).sum() > 5
    # each footprint's peaks are sorted and significant
    for fp in res.footprints:
        assert np.all(np.diff(fp.peaks.value) <= 0)
        assert fp.peaks.significance[0] >= 50
    det = (mask & (1 << PLANES["DETECTED"])) != 0
    assert np.array_equal(det, res.labels > 0)
    assert not ((mask & (1 << PLANES["DETECTED_NEGATIVE"])) != 0).any()
    edge = (mask & (1 << PLANES["EDGE"])) != 0
    half = res.kernel_width // 2
    assert edge[:half].all() and edge[:, -half:].all() and not edge[half:-half, half:-half].any()
    assert res.n_grow == int(2.4 * 1.8 + 0.5)
    assert res.background is not None


def test_pure_noise_gives_no_detections():
    rng = np.random.default_rng(3)
    for seed in range(3):
        img = rng.normal(0, 7.0, (512, 512)).astype(np.float32)
        mask = np.zeros(img.shape, np.uint32)
        res = detect_sources(img, mask, None, 1.5, planes=PLANES)
        assert res.footprints == []
        res = detect_sources(
            img,
            mask,
            None,
            1.5,
            planes=PLANES,
            config=DetectionConfig(include_threshold_multiplier=1.0),
        )
        assert len(res.footprints) == 0, seed
        assert res.stdev == pytest.approx(7.0 / (2 * np.sqrt(np.pi) * 1.5), rel=0.05)


def test_touching_footprints_merge_and_keep_both_peaks():
    img = np.random.default_rng(1).normal(0, 5, (256, 256)).astype(np.float32)
    truth = np.zeros(img.shape)
    add_gaussian(truth, 100.0, 120.0, 2e5, 1.5)
    add_gaussian(truth, 109.0, 120.0, 1e5, 1.5)
    add_gaussian(truth, 200.0, 60.0, 1e5, 1.5)
    img += truth.astype(np.float32)
    mask = np.zeros(img.shape, np.uint32)
    res = detect_sources(
        img, mask, None, 1.5, planes=PLANES, config=DetectionConfig(re_estimate_background=False)
    )
    assert len(res.footprints) == 2
    pair = max(res.footprints, key=lambda f: len(f.peaks))
    assert len(pair.peaks) == 2
    assert (pair.peaks.x[0], pair.peaks.y[0]) == (100, 120)
    assert pair.area == int(pair.pixel_mask(res.labels).sum())
    yy, xx = pair.pixel_indices(res.labels)
    assert np.all(res.labels[yy, xx] == pair.id)


def test_negative_polarity_and_invalid_sigma():
    img = np.random.default_rng(2).normal(0, 5, (256, 256)).astype(np.float32)
    truth = np.zeros(img.shape)
    add_gaussian(truth, 128.0, 128.0, -1e5, 1.5)
    img += truth.astype(np.float32)
    mask = np.zeros(img.shape, np.uint32)
    res = detect_sources(
        img,
        mask,
        None,
        1.5,
        planes=PLANES,
        config=DetectionConfig(polarity="both", re_estimate_background=False),
    )
    assert len(res.footprints) == 0 and len(res.negative_footprints) == 1
    assert ((mask & (1 << PLANES["DETECTED_NEGATIVE"])) != 0).any()
    # the planes are the label images' footprints, pixel for pixel
    assert np.array_equal((mask & (1 << PLANES["DETECTED_NEGATIVE"])) != 0, res.negative_labels > 0)
    assert not ((mask & (1 << PLANES["DETECTED"])) != 0).any()
    with pytest.raises(RuntimeError):
        detect_sources(img, mask, None, float("nan"))


def test_sparse_components_match_ndimage_label():
    from scipy import ndimage

    from imaging._convolve import connected_components_8

    rng = np.random.default_rng(4)
    binary = rng.random((200, 300)) > 0.7
    lab, n = ndimage.label(binary, structure=np.ones((3, 3), bool))
    yy, xx = np.nonzero(binary)
    m, comp = connected_components_8(yy, xx, binary.shape[1])
    assert m == n
    np.testing.assert_array_equal(comp + 1, lab[yy, xx])  # same raster numbering
    assert connected_components_8(np.zeros(0), np.zeros(0), 10)[0] == 0
