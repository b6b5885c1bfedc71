"""The line of a cosmic ray's track near given pixels, for the CR finder's track pass."""

from __future__ import annotations

import numpy as np

__all__ = ["track_distance"]


def track_distance(flagged, light, py, px, *, half=2):
    """Distance of each pixel's centre from the line of the CR pixels around it.

    The line is the principal axis of the CR pixels of the ``(2·half + 1)²`` box centred on
    the pixel (the pixel itself left out), each weighted by its light (negative light
    counts 0): where a track runs near a pixel edge its charge is shared across the edge
    and the weighted line follows the track, not the pixel centres.

    Parameters
    ----------
    flagged : ndarray
        (H, W) bool, the CR pixels.
    light : callable
        ``light(y, x)``: the image less background (and model) at index arrays, float.
    py, px : ndarray
        Pixels to measure.
    half : int
        Half size of the box.

    Returns
    -------
    distance : ndarray
        Distance of each pixel's centre from the line, pixels.
    count : ndarray
        CR pixels of positive light in each box.
    width : ndarray
        Ratio of the minor to the major variance of those pixels about the line (0: on
        one line; 1: no direction).
    """
    h, w = flagged.shape
    d = np.arange(-half, half + 1)
    oy, ox = (a.ravel() for a in np.meshgrid(d, d, indexing="ij"))
    centre = (oy == 0) & (ox == 0)
    oy, ox = oy[~centre].astype(np.float64), ox[~centre].astype(np.float64)
    qy = py[:, None] + oy[None, :].astype(np.int64)
    qx = px[:, None] + ox[None, :].astype(np.int64)
    inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
    qy, qx = np.clip(qy, 0, h - 1), np.clip(qx, 0, w - 1)
    cr = flagged[qy, qx] & inside
    wgt = np.where(cr, np.maximum(light(qy, qx), 0.0), 0.0)
    count = (wgt > 0).sum(axis=1)
    total = np.maximum(wgt.sum(axis=1), 1e-30)
    cy, cx = (wgt @ oy) / total, (wgt @ ox) / total
    dy, dx = oy[None, :] - cy[:, None], ox[None, :] - cx[:, None]
    syy = (wgt * dy * dy).sum(axis=1) / total
    sxx = (wgt * dx * dx).sum(axis=1) / total
    sxy = (wgt * dx * dy).sum(axis=1) / total
    mean = 0.5 * (sxx + syy)
    spread = np.hypot(0.5 * (sxx - syy), sxy)
    major, minor = mean + spread, mean - spread
    theta = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    # the pixel sits at the box centre, (0, 0): its distance from the line through (cx, cy)
    distance = np.abs(cx * np.sin(theta) - cy * np.cos(theta))
    width = np.where(major > 0, minor / np.maximum(major, 1e-30), 1.0)
    return distance, count, width
