"""The flood fill of one 8-connected region against a full labelling."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from imaging.footprint import connected_region


def test_connected_region_is_the_label_of_its_seed():
    rng = np.random.default_rng(1)
    pixels = ndimage.binary_dilation(rng.random((90, 70)) < 0.08)  # blobs that touch diagonally
    labels, count = ndimage.label(pixels, structure=np.ones((3, 3)))
    assert count > 5
    checked = 0
    for y, x in zip(*np.nonzero(pixels), strict=True):
        if checked == 40:
            break
        if rng.random() < 0.9:
            continue
        np.testing.assert_array_equal(connected_region(pixels, x, y), labels == labels[y, x])
        checked += 1
    assert checked == 40
    whole = np.ones((50, 60), bool)  # a region larger than the fill's first stack
    assert connected_region(whole, 59, 49).all()


def test_an_unset_or_outside_seed_has_no_region():
    pixels = np.zeros((10, 10), bool)
    pixels[2:4, 2:4] = True
    assert connected_region(pixels, 7, 7) is None
    assert connected_region(pixels, 10, 3) is None
    assert connected_region(pixels, -1, 3) is None
    assert connected_region(pixels, 3, 3).sum() == 4
