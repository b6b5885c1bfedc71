"""Detections: a footprint (a connected region of a label image) and its peaks.

`connected_region` finds the one 8-connected region through a pixel by a flood fill (numba,
imported and compiled on first use only), at a cost that grows with that region's size instead
of the image's (a full labelling of a bright-star stamp's DETECTED plane costs ten times more
than the star's own footprint).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["Footprint", "Peaks", "connected_region"]


@dataclass(frozen=True, slots=True, eq=False)
class Peaks:
    """Peaks of one footprint, brightest first (pixel coordinates, smoothed-image values)."""

    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    significance: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)


@dataclass(frozen=True, slots=True, eq=False)
class Footprint:
    """One detection: a connected region of the label image, with its peaks.

    Attributes
    ----------
    id : int
        Label of the footprint in `DetectionResult.labels` (1-based).
    slices : tuple of slice
        (y, x) bounding box in the label image.
    area : int
        Number of pixels.
    peaks : Peaks
        Peaks inside the footprint, brightest first (at least one).
    negative : bool
        True for a negative-polarity footprint.
    """

    id: int
    slices: tuple[slice, slice]
    area: int
    peaks: Peaks
    negative: bool = False

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max), inclusive, pixels."""
        ys, xs = self.slices
        return xs.start, ys.start, xs.stop - 1, ys.stop - 1

    def pixel_mask(self, labels: np.ndarray) -> np.ndarray:
        """Boolean mask of the footprint's pixels within its bounding box."""
        return labels[self.slices] == self.id

    def pixel_indices(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, x) index arrays of the footprint's pixels in the full image."""
        yy, xx = np.nonzero(self.pixel_mask(labels))
        return yy + self.slices[0].start, xx + self.slices[1].start


def connected_region(pixels: np.ndarray, x: int, y: int) -> np.ndarray | None:
    """Return the 8-connected region of set ``pixels`` through ``pixels[y, x]``.

    Parameters
    ----------
    pixels : `numpy.ndarray` [`bool`]
        2-D array of set pixels (e.g. a DETECTED plane).
    x, y : `int`
        Column and row of the seed pixel.

    Returns
    -------
    region : `numpy.ndarray` [`bool`] or `None`
        The region (``pixels``' shape), or `None` if the seed is outside the array or unset;
        equal to ``labels == labels[y, x]`` of ``scipy.ndimage.label`` with a 3x3 structure.
    """
    height, width = pixels.shape
    if not (0 <= x < width and 0 <= y < height) or not pixels[y, x]:
        return None
    return _flood_fill()(np.ascontiguousarray(pixels, dtype=np.bool_), int(x), int(y))


@functools.cache
def _flood_fill():
    """Compile the fill on first use (numba is imported here, not by detection)."""
    from numba import njit

    return njit(cache=True, nogil=True)(_fill)


def _fill(pixels, x, y):
    height, width = pixels.shape
    region = np.zeros((height, width), np.bool_)
    stack = np.empty(64, np.int64)
    region[y, x] = True
    stack[0] = y * width + x
    size = 1
    while size:
        size -= 1
        cy, cx = divmod(stack[size], width)
        for ny in range(max(cy - 1, 0), min(cy + 2, height)):
            for nx in range(max(cx - 1, 0), min(cx + 2, width)):
                if pixels[ny, nx] and not region[ny, nx]:
                    region[ny, nx] = True
                    if size == stack.size:
                        grown = np.empty(2 * size, np.int64)
                        grown[:size] = stack
                        stack = grown
                    stack[size] = ny * width + nx
                    size += 1
    return region
