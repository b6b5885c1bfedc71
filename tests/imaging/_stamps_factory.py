"""Small BrightStarStamps for data-model and I/O tests."""

from __future__ import annotations

import numpy as np

from imaging.exposure import Exposure
from imaging.mask import Mask
from imaging.stamps import BrightStarStamp, BrightStarStamps
from imaging.warping import StampTransform


def make_stamp(rng, size=25, *, mag=None, gaia_id=None, flux=None, transform=True, mask_bits=True):
    image = rng.uniform(0, 1, (size, size)).astype(np.float32)
    image[0, 0] = np.nan  # NaN survives round trips
    mask = Mask((size, size))
    if mask_bits:
        mask.array[:] = rng.integers(0, 2**11, (size, size), dtype=np.uint32)
    variance = rng.uniform(1, 2, (size, size)).astype(np.float32)
    archive = None
    if transform:
        a = np.zeros((4, 4))
        b = np.zeros((4, 4))
        a[3, 0] = a[1, 2] = rng.uniform(1e-11, 1e-10)
        b[0, 3] = b[2, 1] = a[3, 0]
        archive = StampTransform(
            crpix=tuple(rng.uniform(-3000, 3000, 2)),
            sip_a=a,
            sip_b=b,
            shift=tuple(rng.uniform(-500, 500, 2)),
        )
    return BrightStarStamp(
        stamp_im=Exposure(image, mask=mask, variance=variance),
        gaiaGMag=float(rng.uniform(0, 1)) if mag is None else mag,
        gaiaId=int(rng.integers(1, 2**62)) if gaia_id is None else gaia_id,
        position=tuple(int(v) for v in rng.integers(-5000, 5000, 2)),
        archive_element=archive,
        annularFlux=flux,
    )


def make_stamps(seed=12, n=3, size=25, *, normalized=True, variance=False, archive=True):
    rng = np.random.default_rng(seed)
    stamps = []
    for i in range(n):
        flux = float(rng.uniform(1, 1000)) / 7.0 if normalized else None
        if normalized and i == 1:
            flux = float("nan")  # a star whose annulus could not be measured
        stamps.append(
            make_stamp(rng, size, mag=18.0 if i == 1 else None, flux=flux, transform=archive)
        )
    radii = (5, 10) if normalized else (None, None)
    return BrightStarStamps(
        stamps,
        innerRadius=radii[0],
        outerRadius=radii[1],
        nb90Rots=2,
        metadata={"VISIT": 100, "detector": 3, "NOTE": "test"},
        use_variance=variance,
        use_archive=archive,
    )
