"""Saturated stars: grown SAT groups, wing centroids and one detection per star."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic import PLANES

from imaging.detection import detect_sources
from imaging.saturation import saturated_regions, wing_centroid

SAT_BIT = 1 << PLANES["SAT"]
LEVEL = 50_000.0


def _saturated_star(x0, y0, *, shape=(160, 140), flux=4e7, trail=(30, 45), seed=1):
    """A Moffat star clipped at LEVEL with a bleed trail up and down its column (sky 0)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    alpha, beta = 2.2, 3.0
    r2 = (x - x0) ** 2 + (y - y0) ** 2
    image = flux * (beta - 1) / (np.pi * alpha**2) * (1 + r2 / alpha**2) ** -beta
    variance = np.maximum(image, 0) + 100.0
    image = image + rng.normal(0.0, 1.0, shape) * np.sqrt(variance)
    col, row = int(round(x0)), int(round(y0))
    image[row - trail[0] : row + trail[1], col - 1 : col + 2] = LEVEL + 1
    image = np.minimum(image, LEVEL)
    mask = np.where(image >= LEVEL, SAT_BIT, 0).astype(np.uint32)
    return image.astype(np.float32), mask, variance.astype(np.float32)


@pytest.mark.parametrize("x0, y0", [(70.0, 80.0), (70.31, 79.77), (69.5, 80.45), (71.8, 78.1)])
def test_wing_centroid_ignores_plateau_and_trail(x0, y0):
    image, mask, variance = _saturated_star(x0, y0)
    assert (mask != 0).sum() > 200  # plateau plus a 3-column trail
    regions = saturated_regions(mask, PLANES, grow=2)
    assert regions.n == 1
    sx, sy, width = regions.core(1)
    x, y = wing_centroid(
        image, mask, sx, sy, 0.75 * width + 12, bad_bits=0, sat_bits=SAT_BIT, variance=variance
    )
    assert abs(x - x0) < 0.03 and abs(y - y0) < 0.03, (x - x0, y - y0)


def test_first_moment_of_the_wings_would_be_biased():
    # Why the symmetric fit: the plain flux-weighted centre of the unsaturated pixels is pulled
    # along the trail's asymmetric mask by far more than the wing centroid's error.
    x0, y0 = 70.3, 79.8
    image, mask, _ = _saturated_star(x0, y0, trail=(2, 60))
    y, x = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    ok = (mask == 0) & (np.hypot(x - 70, y - 80) < 25)
    wy = (image * ok * y).sum() / (image * ok).sum()
    assert abs(wy - y0) > 0.3


def test_detection_gives_one_peak_per_saturated_star():
    image, mask, variance = _saturated_star(70.3, 79.8, trail=(60, 70), shape=(220, 140))
    result = detect_sources(image, mask, variance, 1.8, planes=PLANES)
    assert len(result.footprints) == 1
    footprint = result.footprints[0]
    assert len(footprint.peaks) == 1
    (key, (x, y)), = result.saturated_centres.items()
    assert key == (int(footprint.peaks.x[0]), int(footprint.peaks.y[0]))
    assert abs(x - 70.3) < 0.05 and abs(y - 79.8) < 0.05
    # the same image without the merging has a peak every few pixels along the trail
    from imaging.detection import DetectionConfig

    plain = detect_sources(
        image, mask.copy(), variance, 1.8, planes=PLANES,
        config=DetectionConfig(saturated_planes=()),
    )
    assert sum(len(f.peaks) for f in plain.footprints) > 5
