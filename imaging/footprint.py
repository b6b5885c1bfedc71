"""Detections: a footprint (a connected region of a label image) and its peaks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Footprint", "Peaks"]


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
