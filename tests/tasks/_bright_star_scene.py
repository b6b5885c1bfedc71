"""Bright-star stamps of stars at known positions, cut, warped and normalized by
ProcessBrightStarsTask's own steps (no reference catalog needed)."""

from __future__ import annotations

import numpy as np

from imaging.geometry import Box
from imaging.radial_alignment import geometry_metadata
from imaging.stamps import BrightStarStamp, BrightStarStamps
from tasks.process_bright_stars import ProcessBrightStarsConfig, ProcessBrightStarsTask, _cutout


def cut_stamps(exposure, centers, *, stamp_size=150, radii=(40, 50), first_id=0):
    """Stamps of the stars at ``centers`` (``(x, y)`` detector pixels) of ``exposure``.

    As ProcessBrightStarsTask.run: a ``stamp_size`` cut-out around the nearest pixel, warped
    to the model grid with the detector's quarter turns, normalized by the annulus ``radii``,
    the transforms kept, the detector geometry in the metadata.
    """
    config = ProcessBrightStarsConfig()
    config.stampSize = [stamp_size, stamp_size]
    config.annularFluxRadii = list(radii)
    task = ProcessBrightStarsTask(config=config)
    half = stamp_size // 2
    cutouts = []
    for x, y in centers:
        nx, ny = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        cutouts.append(_cutout(exposure, Box(nx - half, ny - half, stamp_size, stamp_size)))
    warped = task.warpStamps(cutouts, list(centers))
    return BrightStarStamps.initAndNormalize(
        [
            BrightStarStamp(im, 10.0, first_id + i, xy0, transform)
            for i, (im, xy0, transform) in enumerate(
                zip(warped.warpedStars, warped.xy0s, warped.warpTransforms, strict=True)
            )
        ],
        innerRadius=radii[0],
        outerRadius=radii[1],
        nb90Rots=warped.nb90Rots,
        use_archive=True,
        imCenter=task.modelCenter,
        metadata=geometry_metadata(exposure.detector) if exposure.detector else None,
    )
