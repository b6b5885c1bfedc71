"""Subtracting the extended PSF model from the bright stars of one detector.

For every stamp of the detector (`~imaging.stamps.BrightStarStamps`), the model (on the stamp
grid, after the detector's quarter turns, scaled to an annulus mean of 1) is:

1. **Scaled** to the star: ``annularFlux`` × model (``ANNULAR_FLUX``: the stamp was divided
   by its annular flux, so this is the star in detector units), or by the least-squares factor
   between the stamp and the model over the stamp's usable pixels (``LEAST_SQUARES``), times
   the annular flux (a stamp kept unnormalized, annular flux NaN, is in counts already).
   The annular flux is only as good as the annulus' signal to noise: for a star whose halo
   at the annulus is below the sky noise (the demo's G 15-18 stars at r = 40-50 px) it is
   noise, and ``ANNULAR_FLUX`` over- or under-subtracts the core by factors of several;
   ``LEAST_SQUARES`` is set by the core.
2. **Warped back**: the quarter turns are undone, and each detector pixel of the star's box is
   mapped through the stored transform (detector pixels → stamp grid, before the turns) to
   the model grid, where the model is interpolated (cubic spline; pixels that map outside the
   model, or onto a NaN of it, get nothing).
3. **Subtracted** from the exposure's image, and added to a model image of the detector.

A radially aligned model (``alignment="RADIAL"``) is turned back star by star instead: each
detector pixel's stamp coordinates are rotated by the star's angle into the model's radial
frame. Stamps without a finite annular flux are skipped by ``ANNULAR_FLUX``. Overlapping stars add
up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .exposure import Exposure
from .geometry import Box
from .radial_alignment import (
    ALIGNMENTS,
    align_radially,
    radial_frame_coordinates,
    radial_rotation,
)
from .stamps import DEFAULT_BAD_MASK_PLANES, BrightStarStamp, BrightStarStamps
from .warping import StampTransform, rotate_quarter_turns

__all__ = ["SCALINGS", "SubtractionResult", "model_scale", "subtract_bright_stars"]

SCALINGS = ("ANNULAR_FLUX", "LEAST_SQUARES")


@dataclass
class SubtractionResult:
    """The model image removed, and per-star scales (NaN: star skipped)."""

    model_image: np.ndarray
    scales: list[float]
    n_subtracted: int


def model_scale(
    stamp: BrightStarStamp,
    model: np.ndarray,
    scaling: str,
    *,
    bad_mask_planes: tuple[str, ...] = DEFAULT_BAD_MASK_PLANES,
) -> float:
    """Scale of ``model`` for one star, in detector units (NaN: cannot be scaled).

    Raises
    ------
    ValueError
        On an unknown scaling.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling {scaling!r} not in {SCALINGS}")
    flux = stamp.annularFlux
    normalized = flux is not None and math.isfinite(flux)
    if scaling == "ANNULAR_FLUX":
        return float(flux) if normalized else math.nan
    image = stamp.stamp_im.image
    mask = stamp.stamp_im.mask
    good = np.isfinite(image) & np.isfinite(model)
    planes = [p for p in bad_mask_planes if p in mask.planes]
    if planes:
        good &= ~mask.is_set(planes)
    denominator = float(np.sum(model[good].astype(float) ** 2))
    if not good.any() or denominator <= 0:
        return math.nan
    factor = float(np.sum(model[good].astype(float) * image[good])) / denominator
    if not factor > 0:
        return math.nan
    return factor * float(flux) if normalized else factor  # unnormalized: already in counts


def _star_box(
    transform: StampTransform, position: tuple[int, int], shape: tuple[int, int], bbox: Box
) -> Box:
    """Detector pixels covered by the stamp grid (its corners mapped back), inside ``bbox``."""
    ny, nx = shape
    xs = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2], dtype=float) + position[0]
    ys = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2], dtype=float) + position[1]
    sx, sy = transform.apply_inverse(xs, ys)
    box = Box.from_corners(
        int(math.floor(sx.min())), int(math.floor(sy.min())),
        int(math.ceil(sx.max())) + 1, int(math.ceil(sy.max())) + 1,
    )  # fmt: skip
    return bbox.intersection(box)


def subtract_bright_stars(
    exposure: Exposure,
    stamps: BrightStarStamps,
    model: np.ndarray,
    *,
    scaling: str = "ANNULAR_FLUX",
    bad_mask_planes: tuple[str, ...] = DEFAULT_BAD_MASK_PLANES,
    alignment: str = "QUARTER_TURNS",
) -> SubtractionResult:
    """Subtract the scaled, warped-back model of every star from ``exposure`` (in place).

    Parameters
    ----------
    exposure : `~imaging.exposure.Exposure`
        The detector's exposure the stamps were cut from.
    stamps : `~imaging.stamps.BrightStarStamps`
        Its stamps, with their transforms (``use_archive``) and quarter turns.
    model : `numpy.ndarray`
        The extended PSF model on the stamp grid (annulus mean 1).
    scaling : `str`
        ``ANNULAR_FLUX`` or ``LEAST_SQUARES``.
    bad_mask_planes : `tuple` [`str`, ...]
        Planes left out of the least-squares scaling.
    alignment : `str`
        How the model is oriented: ``QUARTER_TURNS`` (the stamps' frame) or ``RADIAL`` (radial
        direction along +x, `~imaging.radial_alignment`; the model is rotated back by each
        star's angle, and the least-squares scale is fitted in the radial frame).

    Returns
    -------
    result : `SubtractionResult`
        ``model_image`` has the exposure's shape.

    Raises
    ------
    ValueError
        If a stamp has no transform or its shape differs from the model's.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment {alignment!r} not in {ALIGNMENTS}")
    radial = alignment == "RADIAL"
    nb90 = int(stamps.nb90Rots or 0)
    # back to the frame the transform reaches (a radial model turns star by star below)
    unrotated = model if radial else rotate_quarter_turns(model, -nb90)
    # the least-squares scale compares the stamp with the model: in the model's frame
    radial_stamps = align_radially(stamps) if radial and scaling == "LEAST_SQUARES" else None
    filled = np.nan_to_num(unrotated, nan=0.0).astype(np.float64)
    coefficients = ndimage.spline_filter(filled, order=3)
    valid = np.isfinite(unrotated).astype(np.float64)
    model_image = np.zeros(exposure.image.shape, dtype=np.float64)
    scales: list[float] = []
    for stamp in stamps:
        if stamp.stamp_im.image.shape != model.shape:
            raise ValueError(
                f"star {stamp.gaiaId}: stamp shape {stamp.stamp_im.image.shape} differs from "
                f"the model's {model.shape}"
            )
        if stamp.archive_element is None:
            raise ValueError(f"star {stamp.gaiaId}: no stored transform to warp the model back")
        fitted = radial_stamps[len(scales)] if radial_stamps is not None else stamp
        scale = model_scale(fitted, model, scaling, bad_mask_planes=bad_mask_planes)
        scales.append(scale)
        if not math.isfinite(scale):
            continue
        box = _star_box(stamp.archive_element, stamp.position, model.shape, exposure.bbox)
        if box.is_empty():
            continue
        ys, xs = np.mgrid[box.y0 : box.y1, box.x0 : box.x1].astype(float)
        gx, gy = stamp.archive_element.apply(xs, ys)
        u = gx - stamp.position[0]
        v = gy - stamp.position[1]
        if radial:
            theta = radial_rotation(stamp, stamps.metadata)
            center = (model.shape[1] // 2, model.shape[0] // 2)
            u, v = radial_frame_coordinates(u, v, theta, center)
        coords = np.stack([v.ravel(), u.ravel()])
        values = ndimage.map_coordinates(
            coefficients, coords, order=3, mode="constant", cval=0.0, prefilter=False
        )
        inside = ndimage.map_coordinates(valid, coords, order=0, mode="constant", cval=0.0)
        values = np.where(inside > 0, values, 0.0).reshape(box.shape)
        model_image[box.slices(exposure.xy0)] += scale * values
    exposure.image -= model_image.astype(np.float32)
    n_done = sum(1 for s in scales if math.isfinite(s))
    return SubtractionResult(model_image.astype(np.float32), scales, n_done)
