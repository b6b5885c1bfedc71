"""The numba grow and labelling kernels give exactly what the scipy versions they replaced gave."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from imaging import detection
from imaging._convolve import connected_components_8


def _reference_components(y, x, width):
    """The sparse-graph (scipy) connected_components_8 of before the numba kernel."""
    y = np.asarray(y, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    if y.size == 0:
        return 0, np.zeros(0, np.int64)
    flat = y * width + x
    order = np.argsort(flat, kind="stable")
    sflat = flat[order]
    sx = x[order]
    rows, cols = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        target = sflat + dy * width + dx
        pos = np.clip(np.searchsorted(sflat, target), 0, sflat.size - 1)
        hit = (sflat[pos] == target) & (sx + dx >= 0) & (sx + dx < width)
        rows.append(np.nonzero(hit)[0])
        cols.append(pos[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(sflat.size, sflat.size))
    n, lab_sorted = connected_components(graph, directed=False)
    labels = np.empty_like(lab_sorted)
    labels[order] = lab_sorted
    return int(n), labels


def _reference_grow(ay, ax, shape, n_grow):
    """The per-object binary_dilation grow of before the numba kernel (one object per
    8-connected component; the union does not depend on how pixels are grouped)."""
    if n_grow <= 0 or ay.size == 0:
        return ay, ax
    h, w = shape
    n, lab = _reference_components(ay, ax, w)
    d = np.abs(np.arange(-n_grow, n_grow + 1))
    struct = (d[:, None] + d[None, :]) <= n_grow
    gys, gxs = [], []
    for i in range(n):
        sel = lab == i
        y0, y1 = max(ay[sel].min() - n_grow, 0), min(ay[sel].max() + 1 + n_grow, h)
        x0, x1 = max(ax[sel].min() - n_grow, 0), min(ax[sel].max() + 1 + n_grow, w)
        patch = np.zeros((y1 - y0, x1 - x0), bool)
        patch[ay[sel] - y0, ax[sel] - x0] = True
        py, px = np.nonzero(ndimage.binary_dilation(patch, structure=struct))
        gys.append(py + y0)
        gxs.append(px + x0)
    flat = np.unique(np.concatenate(gys) * w + np.concatenate(gxs))
    return flat // w, flat % w


def _reference_above(smoothed, half, level, sign, low=-np.inf, block=256):
    """Row-block numpy thresholding, and the numpy test of the middle's minimum against
    ``low`` that detect_sources made before the kernel found both in one pass."""
    h, w = smoothed.shape
    if h <= 2 * half or w <= 2 * half:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), False
    any_low = not float(smoothed[half:h - half, half:w - half].min()) > low
    ys, xs = [], []
    lev = np.float32(level)
    for r0 in range(half, h - half, block):
        r1 = min(r0 + block, h - half)
        part = smoothed[r0:r1, half:w - half]
        y, x = np.nonzero(part >= lev if sign > 0 else part <= -lev)
        ys.append(y + r0)
        xs.append(x + half)
    return (np.concatenate(ys).astype(np.int64), np.concatenate(xs).astype(np.int64),
            any_low)


def _reference_boxes(y, x, lab, n):
    box = np.empty((n, 4), np.int64)
    box[:, 0] = box[:, 2] = np.iinfo(np.int64).max
    box[:, 1] = box[:, 3] = -1
    np.minimum.at(box[:, 0], lab, y)
    np.maximum.at(box[:, 1], lab, y)
    np.minimum.at(box[:, 2], lab, x)
    np.maximum.at(box[:, 3], lab, x)
    return box


def _reference_max(lab, value, n):
    maxima = np.full(n, -np.inf)
    np.maximum.at(maxima, lab, value)
    return maxima


def _random_pixels(rng, shape, fill):
    binary = rng.random(shape) < fill
    return np.nonzero(binary)


@pytest.mark.parametrize("seed", range(6))
def test_components_match_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 120)), int(rng.integers(1, 150)))
    y, x = _random_pixels(rng, shape, float(rng.uniform(0.05, 0.8)))
    perm = rng.permutation(y.size) if seed % 2 else np.arange(y.size)  # unsorted input too
    y, x = y[perm], x[perm]
    n, lab = connected_components_8(y, x, shape[1])
    n_ref, lab_ref = _reference_components(y, x, shape[1])
    assert n == n_ref
    np.testing.assert_array_equal(lab, lab_ref)


@pytest.mark.parametrize("seed", range(8))
def test_grow_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(1, 90)), int(rng.integers(1, 110)))
    y, x = _random_pixels(rng, shape, float(rng.uniform(0.002, 0.3)))
    for n_grow in (0, 1, 2, 4, 7):
        gy, gx = detection._grow(y.astype(np.int64), x.astype(np.int64), shape, n_grow)
        ry, rx = _reference_grow(y.astype(np.int64), x.astype(np.int64), shape, n_grow)
        np.testing.assert_array_equal(gy, ry)
        np.testing.assert_array_equal(gx, rx)


def test_grow_of_nothing_and_edges():
    e = np.zeros(0, np.int64)
    gy, gx = detection._grow(e, e, (10, 10), 3)
    assert gy.size == gx.size == 0
    # the corner pixels of a 1-wide image: clipped diamonds
    y, x = np.array([0, 4], np.int64), np.array([0, 0], np.int64)
    gy, gx = detection._grow(y, x, (5, 1), 2)
    np.testing.assert_array_equal(gy, np.arange(5))
    np.testing.assert_array_equal(gx, np.zeros(5))


def _detect(sim_image, polarity):
    image, mask, var, planes = sim_image
    img, msk = image.copy(), mask.copy()
    config = detection.DetectionConfig(polarity=polarity)
    res = detection.detect_sources(img, msk, var, 1.6, planes=planes, config=config)
    return res, img, msk


@pytest.fixture(scope="module")
def sim_image():
    from bench.characterize_bench import simulate
    from imaging.background import subtract_background

    e = simulate(1024, 3).exposure
    image = np.array(e.image, dtype=np.float32)
    mask = e.mask.array.copy()
    var = np.array(e.variance)
    subtract_background(image, mask, var, planes=e.mask.planes)
    return image, mask, var, e.mask.planes


@pytest.mark.parametrize("polarity", ["positive", "both"])
def test_detection_identical_to_reference(sim_image, monkeypatch, polarity):
    new, img_new, mask_new = _detect(sim_image, polarity)
    with monkeypatch.context() as m:
        m.setattr(detection, "connected_components_8", _reference_components)
        m.setattr(detection, "_grow", _reference_grow)
        m.setattr(detection, "_above", _reference_above)
        m.setattr(detection, "_boxes", _reference_boxes)
        m.setattr(detection, "label_max", _reference_max)
        m.setattr("imaging.saturation.connected_components_8", _reference_components)
        old, img_old, mask_old = _detect(sim_image, polarity)
    assert len(new.footprints) == len(old.footprints) > 30
    np.testing.assert_array_equal(new.labels, old.labels)
    np.testing.assert_array_equal(mask_new, mask_old)
    np.testing.assert_array_equal(img_new, img_old)
    for a, b in zip(new.footprints, old.footprints, strict=True):
        assert (a.id, a.slices, a.area) == (b.id, b.slices, b.area)
        for name in ("x", "y", "value", "significance"):
            np.testing.assert_array_equal(getattr(a.peaks, name), getattr(b.peaks, name))
    assert new.saturated_centres == old.saturated_centres
    assert len(new.negative_footprints) == len(old.negative_footprints)
    if polarity == "both":
        np.testing.assert_array_equal(new.negative_labels, old.negative_labels)
        for a, b in zip(new.negative_footprints, old.negative_footprints, strict=True):
            assert (a.slices, a.area, len(a.peaks.x)) == (b.slices, b.area, len(b.peaks.x))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_above_matches_numpy(sign):
    rng = np.random.default_rng(7)
    img = rng.normal(size=(70, 600)).astype(np.float32)  # rows of several 128 chunks
    img[5, 7] = np.nan
    half, level = 3, 1.2
    ry, rx, _ = _reference_above(img, half, level, sign, block=16)
    y, x, _ = detection._above(img, half, level, sign)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(x, rx)
    assert detection._above(img[:6], 3, level, sign)[0].size == 0
    # whether the middle holds a NaN or a value at or below `low`, as min() > low says
    clean = img.copy()
    clean[5, 7] = 0.0
    lowest = float(clean[half:-half, half:-half].min())
    for low in (lowest, np.nextafter(lowest, -1.0), np.nextafter(lowest, 0.0), -9.0,
                lowest - 1e-9, lowest + 1e-9, -np.inf, -1e40, 1e40):
        for data in (clean, img):
            want = _reference_above(data, half, level, sign, low)[2]
            assert detection._above(data, half, level, sign, low)[2] == want


def test_boxes_and_maxima_match_ufunc_at():
    from imaging._footprint_kernels import label_max

    rng = np.random.default_rng(8)
    n = 40
    lab = rng.integers(0, n - 3, 5000)  # the last labels stay empty
    y, x = rng.integers(0, 500, 5000), rng.integers(0, 700, 5000)
    v = rng.normal(size=5000).astype(np.float32)
    np.testing.assert_array_equal(detection._boxes(y, x, lab, n), _reference_boxes(y, x, lab, n))
    np.testing.assert_array_equal(label_max(lab, v, n), _reference_max(lab, v, n))
