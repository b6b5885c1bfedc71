"""Synthetic bright-star stamps whose stars share a known extended profile (core + halo).

The profile is the simulator's (`imaging.sim.psf_field.PsfField`): a Moffat core (beta 3.5)
carrying 98% of the flux plus a Moffat halo (beta 1.5, 10x the core FWHM) carrying 2%, on the
stamp grid with the star on the centre pixel. Each stamp gets its own flux, a sky pedestal and
gradient (``background``), Gaussian noise, a few neighbours (marked BAD, or left unmasked as
outliers), NO_DATA/NaN edges, a saturated core (SAT) for the brightest, and is normalized by
its annular flux as ProcessBrightStarsTask does.
"""

from __future__ import annotations

import math

import numpy as np

from imaging.exposure import Exposure
from imaging.mask import Mask
from imaging.stamps import BrightStarStamp, BrightStarStamps

HALO_FRACTION = 0.02
CORE_BETA = 3.5
HALO_BETA = 1.5
HALO_SCALE = 10.0


def moffat(r, fwhm, beta):
    """Unit-flux Moffat surface brightness at radius ``r`` (pixels)."""
    alpha = fwhm / (2.0 * math.sqrt(2 ** (1 / beta) - 1))
    return (beta - 1) / (math.pi * alpha**2) * (1 + (r / alpha) ** 2) ** (-beta)


def truth_image(size, fwhm, *, halo_fraction=HALO_FRACTION, oversample=5):
    """Unit-flux core + halo on a ``size``² grid centred on the centre pixel (pixel-integrated)."""
    c = size // 2
    offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
    ys, xs = np.mgrid[0:size, 0:size].astype(float)
    total = np.zeros((size, size))
    for dy in offsets:
        for dx in offsets:
            r = np.hypot(xs + dx - c, ys + dy - c)
            total += (1 - halo_fraction) * moffat(r, fwhm, CORE_BETA) + halo_fraction * moffat(
                r, fwhm * HALO_SCALE, HALO_BETA
            )
    return total / oversample**2


def annulus_mean(image, inner, outer):
    size = image.shape[0]
    c = size // 2
    ys, xs = np.ogrid[:size, :size]
    r2 = (xs - c) ** 2 + (ys - c) ** 2
    ring = (r2 > inner**2) & (r2 <= outer**2)
    return float(np.mean(image[ring]))


def make_star_stamps(
    rng,
    n,
    *,
    size=75,
    fwhm=3.0,
    radii=(12, 16),
    noise=0.02,
    background=0.0,
    neighbours=2,
    unmasked_outliers=0.0,
    nb90Rots=0,
    mag_range=(10.0, 17.5),
    first_id=1,
    sky_level=None,
    sky_sigma=None,
    record=None,
):
    """``n`` normalized stamps of stars with the truth profile (see the module docstring).

    ``noise`` is the per-pixel noise relative to the annulus mean of the star; ``background``
    the pedestal relative to it (a gradient of half its size is added too). With ``sky_level``
    and ``sky_sigma`` (e-) the pedestal and the noise are absolute instead, as a sky residual
    is, and DETECTED marks where the noise-free star exceeds 5 sky sigma. A ``record`` list
    receives each stamp's ``flux`` and ``pedestal`` (image, before normalization and turns).
    """
    truth = truth_image(size, fwhm)
    ring = annulus_mean(truth, *radii)
    ys, xs = np.mgrid[0:size, 0:size].astype(float)
    stamps = []
    for i in range(n):
        flux = 10 ** rng.uniform(5, 7)
        scale = flux * ring  # annulus level of this star
        image = flux * truth
        mask = Mask((size, size))
        pedestal = np.zeros_like(image)
        if sky_level is not None:
            mask.set("DETECTED", image > 5 * sky_sigma)
            gx, gy = rng.uniform(-0.5, 0.5, 2) * sky_level / size
            pedestal = sky_level + gx * (xs - size / 2) + gy * (ys - size / 2)
            image = image + pedestal
            image = image + rng.normal(0.0, sky_sigma, image.shape)
        else:
            if background:
                gx, gy = rng.uniform(-0.5, 0.5, 2) * background / size
                image = image + scale * (background + gx * (xs - size / 2) + gy * (ys - size / 2))
            image = image + rng.normal(0.0, noise * scale, image.shape)
        for _ in range(neighbours):
            nx, ny = rng.uniform(0, size, 2)
            if math.hypot(nx - size // 2, ny - size // 2) < 8:
                continue
            r = np.hypot(xs - nx, ys - ny)
            image += 50 * scale * np.exp(-0.5 * (r / 1.5) ** 2)
            mask.set("BAD", r < 6)
        if unmasked_outliers and rng.random() < unmasked_outliers:
            nx, ny = rng.uniform(0, size, 2)
            r = np.hypot(xs - nx, ys - ny)
            image += 30 * scale * np.exp(-0.5 * (r / 2.0) ** 2)
        if rng.random() < 0.2:  # off the detector edge
            cut = int(rng.integers(1, size // 4))
            image[:, :cut] = np.nan
            mask.set("NO_DATA", np.isnan(image))
        if i % 5 == 0:  # saturated core
            core = np.hypot(xs - size // 2, ys - size // 2) < 2.5
            image[core] = 0.7 * image[core]
            mask.set("SAT", core)
        if record is not None:
            record.append({"flux": flux, "pedestal": pedestal})
        image = np.rot90(image, k=-nb90Rots)
        mask = Mask(np.rot90(mask.array, k=-nb90Rots), mask.planes)
        stamp = BrightStarStamp(
            Exposure(image.astype(np.float32), mask=mask),
            gaiaGMag=float(rng.uniform(*mag_range)),
            gaiaId=first_id + i,
            position=(int(rng.integers(0, 4000)), int(rng.integers(0, 4000))),
        )
        stamps.append(stamp)
    return BrightStarStamps.initAndNormalize(
        stamps, innerRadius=radii[0], outerRadius=radii[1], nb90Rots=nb90Rots
    )
