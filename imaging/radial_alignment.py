"""Radial alignment of bright-star stamps: rotate each by its star's focal-plane angle.

LSST 2022 turns every stamp of a detector by the detector's quarter turns, so that stamps
share the focal-plane axes. LSST 2026 rotates each stamp by −(the star's focal-plane polar
angle) instead, so that every stamp has the focal-plane radial direction along +x: a PSF
elongated radially (the usual optical pattern) then stacks into one elongated model instead of
a blur of differently oriented ones.

The angle comes from the detector geometry and the stored transform: ProcessBrightStarsTask
records the detector's orientation, focal-plane position, pixel size and centre in the stamps'
metadata (`geometry_metadata`); the star's detector pixel is the stamp centre mapped back
through the stamp's stored transform; `~imaging.exposure.DetectorInfo.pixel_to_focal_plane`
gives its focal-plane position and polar angle ``φ``. A direction at focal-plane angle ``α`` is
at ``α − orientation`` in the pixel (and TAN-pixel) frame, so the rotation that brings the
radial direction to +x is ``θ = orientation − φ`` (counter-clockwise, y up).

`align_radially` undoes a collection's quarter turns and rotates each stamp by its ``θ``
about the centre pixel (cubic spline for the image, linear for the variance, nearest pixel for
the mask; pixels whose source is off the stamp or NaN become NaN and ``NO_DATA``).
`radial_frame_coordinates` maps unturned stamp coordinates into the radial frame, which is
what a subtraction needs to sample a radially aligned model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from .exposure import DetectorInfo, Exposure
from .geometry import Box
from .mask import Mask
from .stamps import BrightStarStamp, BrightStarStamps
from .warping import rotate_quarter_turns

__all__ = [
    "ALIGNMENTS",
    "GEOMETRY_KEYS",
    "RadialAlignmentError",
    "align_radially",
    "geometry_metadata",
    "radial_frame_coordinates",
    "radial_rotation",
]

ALIGNMENTS = ("QUARTER_TURNS", "RADIAL")
GEOMETRY_KEYS = ("DETORIEN", "DETFPX", "DETFPY", "DETPIXSZ", "DETCX", "DETCY")
"""Stamps metadata keys of the detector geometry (orientation deg, focal-plane mm, mm, px)."""


class RadialAlignmentError(ValueError):
    """Stamps cannot be aligned radially (no detector geometry or no stored transform)."""


def geometry_metadata(detector: DetectorInfo) -> dict[str, float]:
    """Return the detector geometry a radial alignment needs, as stamps metadata."""
    cx, cy = detector.bbox.center
    return {
        "DETORIEN": float(detector.orientation),
        "DETFPX": float(detector.focal_plane_position[0]),
        "DETFPY": float(detector.focal_plane_position[1]),
        "DETPIXSZ": float(detector.pixel_size),
        "DETCX": float(cx),
        "DETCY": float(cy),
    }


def _detector(
    metadata: Mapping[str, Any], source: str
) -> tuple[DetectorInfo, tuple[float, float]]:
    missing = [k for k in GEOMETRY_KEYS if k not in metadata]
    if missing:
        raise RadialAlignmentError(
            f"{source}: no detector geometry for a radial alignment (metadata lacks "
            f"{', '.join(missing)}; stamps made before it was recorded?)"
        )
    # a box whose centre is (DETCX, DETCY): only the centre is used
    cx, cy = float(metadata["DETCX"]), float(metadata["DETCY"])
    return DetectorInfo(
        -1,
        "stamps",
        Box(0, 0, 1, 1),
        orientation=float(metadata["DETORIEN"]),
        focal_plane_position=(float(metadata["DETFPX"]), float(metadata["DETFPY"])),
        pixel_size=float(metadata["DETPIXSZ"]),
    ), (cx, cy)


def radial_rotation(
    stamp: BrightStarStamp, metadata: Mapping[str, Any], *, source: str = "stamps"
) -> float:
    """Return ``θ = orientation − φ`` (radians) for one stamp (see the module docstring).

    Raises
    ------
    RadialAlignmentError
        Without the detector geometry in ``metadata`` or a stored transform.
    """
    detector, (cx, cy) = _detector(metadata, source)
    if stamp.archive_element is None:
        raise RadialAlignmentError(
            f"{source}: star {stamp.gaiaId} has no stored transform (use_archive)"
        )
    ny, nx = stamp.stamp_im.image.shape
    x, y = stamp.archive_element.apply_inverse(
        stamp.position[0] + nx // 2, stamp.position[1] + ny // 2
    )
    # pixel_to_focal_plane measures from bbox.center: shift to the recorded centre
    box_cx, box_cy = detector.bbox.center
    fx, fy = detector.pixel_to_focal_plane(float(x) - cx + box_cx, float(y) - cy + box_cy)
    phi = math.atan2(float(fy), float(fx))
    return math.radians(detector.orientation) - phi


def radial_frame_coordinates(
    u: np.ndarray, v: np.ndarray, theta: float, center: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Map unturned stamp coordinates ``(u, v)`` to the radial frame (rotation by ``θ``)."""
    c, s = math.cos(theta), math.sin(theta)
    du, dv = u - center[0], v - center[1]
    return center[0] + c * du - s * dv, center[1] + s * du + c * dv


def _rotate(array: np.ndarray, theta: float, order: int, cval: float) -> np.ndarray:
    """Content of ``array[y, x]`` rotated counter-clockwise by ``θ`` about its centre pixel."""
    ny, nx = array.shape
    center = (nx // 2, ny // 2)
    ys, xs = np.mgrid[0:ny, 0:nx].astype(float)
    # output pixel p samples the input at R(-θ)(p - c) + c
    qx, qy = radial_frame_coordinates(xs, ys, -theta, center)
    return ndimage.map_coordinates(
        array, np.stack([qy.ravel(), qx.ravel()]), order=order, mode="constant", cval=cval
    ).reshape(array.shape)


def _rotate_stamp(stamp: BrightStarStamp, nb90: int, theta: float) -> BrightStarStamp:
    exposure = stamp.stamp_im
    image = rotate_quarter_turns(exposure.image, -nb90).astype(np.float64)
    mask_array = rotate_quarter_turns(exposure.mask.array, -nb90)
    variance = rotate_quarter_turns(exposure.variance, -nb90).astype(np.float64)
    finite = np.isfinite(image)
    rotated = _rotate(np.where(finite, image, 0.0), theta, 3, 0.0)
    valid = _rotate(finite.astype(np.float64), theta, 1, 0.0) > 0.999
    rotated[~valid] = np.nan
    mask = Mask(_rotate(mask_array, theta, 0, 0).astype(np.uint32), exposure.mask.planes)
    mask.set("NO_DATA", ~valid)
    out_variance = _rotate(np.nan_to_num(variance, nan=0.0), theta, 1, 0.0)
    new = Exposure(
        rotated.astype(np.float32), mask=mask, variance=out_variance.astype(np.float32)
    )
    return BrightStarStamp(
        new, stamp.gaiaGMag, stamp.gaiaId, stamp.position, stamp.archive_element,
        stamp.annularFlux,
    )  # fmt: skip


def align_radially(stamps: BrightStarStamps, *, source: str = "stamps") -> BrightStarStamps:
    """Return the stamps rotated into their radial frames (quarter turns undone first).

    The result has ``nb90Rots = 0`` and ``metadata["ALIGN"] = "RADIAL"``; annular fluxes are
    kept (a rotation about the centre keeps the annulus).

    Raises
    ------
    RadialAlignmentError
        Without the detector geometry or a stored transform.
    """
    nb90 = int(stamps.nb90Rots or 0)
    out = [
        _rotate_stamp(stamp, nb90, radial_rotation(stamp, stamps.metadata, source=source))
        for stamp in stamps
    ]
    metadata = dict(stamps.metadata)
    metadata["ALIGN"] = "RADIAL"
    return BrightStarStamps(
        out,
        innerRadius=stamps.innerRadius,
        outerRadius=stamps.outerRadius,
        nb90Rots=0,
        metadata=metadata,
        use_archive=True,
    )
