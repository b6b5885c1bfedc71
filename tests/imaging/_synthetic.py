"""Tiny numpy image maker for the characterisation tests (no GalSim).

Stars are point-sampled elliptical Gaussians (so their adaptive moments equal the input
covariance) at known positions; the PSF sigma may vary linearly across the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PLANES = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "NO_DATA": 8,
}


def psf_sigma_at(x, y, shape, sigma0, gradient):
    """Linearly varying PSF sigma: sigma0 * (1 + gradient * (x/W + y/H - 1))."""
    h, w = shape
    return sigma0 * (1.0 + gradient * (np.asarray(x) / w + np.asarray(y) / h - 1.0))


@dataclass
class SyntheticImage:
    image: np.ndarray
    mask: np.ndarray
    variance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    sigma: np.ndarray
    is_star: np.ndarray
    sky: np.ndarray
    cr_pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    noise_sigma: float = 0.0
    truth: np.ndarray | None = None  # noiseless sky-subtracted image


def add_gaussian(img, x0, y0, flux, sigma, e1=0.0, half=None):
    sxx = sigma**2 * (1 + e1)
    syy = sigma**2 * (1 - e1)
    half = half or int(np.ceil(6 * sigma))
    ix0, iy0 = int(round(x0)), int(round(y0))
    ys = slice(max(iy0 - half, 0), min(iy0 + half + 1, img.shape[0]))
    xs = slice(max(ix0 - half, 0), min(ix0 + half + 1, img.shape[1]))
    yy, xx = np.mgrid[ys, xs]
    norm = flux / (2 * np.pi * np.sqrt(sxx * syy))
    img[ys, xs] += norm * np.exp(-0.5 * ((xx - x0) ** 2 / sxx + (yy - y0) ** 2 / syy))


def make_image(
    shape=(512, 512),
    *,
    n_stars=40,
    n_galaxies=0,
    sigma0=1.8,
    gradient=0.0,
    flux_range=(2e4, 2e5),
    sky_level=1000.0,
    sky_slope=(0.2, -0.1),
    read_noise=5.0,
    n_cr=0,
    saturate=False,
    seed=1,
    margin=20,
    min_sep=25.0,
):
    """Make a sky-gradient image with Gaussian stars (and optional galaxies, CRs)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    n = n_stars + n_galaxies
    xs, ys = [], []
    while len(xs) < n:
        x, y = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
        if all((x - a) ** 2 + (y - b) ** 2 > min_sep**2 for a, b in zip(xs, ys, strict=True)):
            xs.append(x)
            ys.append(y)
    x, y = np.array(xs), np.array(ys)
    flux = np.exp(rng.uniform(*np.log(flux_range), n))
    is_star = np.arange(n) < n_stars
    sigma = psf_sigma_at(x, y, shape, sigma0, gradient)
    sigma = np.where(is_star, sigma, sigma * 2.2)
    truth = np.zeros(shape, np.float64)
    for i in range(n):
        add_gaussian(truth, x[i], y[i], flux[i], sigma[i])
    yy, xx = np.mgrid[0:h, 0:w]
    sky = sky_level * (1 + sky_slope[0] * (xx / w - 0.5) + sky_slope[1] * (yy / h - 0.5))
    expected = truth + sky
    img = rng.poisson(expected).astype(np.float64) + rng.normal(0, read_noise, shape)
    var = expected + read_noise**2
    mask = np.zeros(shape, np.uint32)
    cr = np.zeros(shape, bool)
    if saturate:
        i = int(np.argmax(flux))
        add_gaussian(img, x[i], y[i], 5e6, sigma[i])
        sat = img > 150000
        img[sat] = 150000
        mask[sat] |= 1 << PLANES["SAT"]
    for _ in range(n_cr):
        cr |= _cr_track(shape, rng)
    if n_cr:
        near_star = np.zeros(shape, bool)
        for i in range(n):
            iy, ix = int(y[i]), int(x[i])
            near_star[max(iy - 6, 0) : iy + 7, max(ix - 6, 0) : ix + 7] = True
        cr &= ~near_star
        img[cr] += rng.uniform(300, 3000, cr.sum())
    return SyntheticImage(
        image=img.astype(np.float32),
        mask=mask,
        variance=var.astype(np.float32),
        x=x,
        y=y,
        flux=flux,
        sigma=sigma,
        is_star=is_star,
        sky=sky.astype(np.float32),
        cr_pixels=cr,
        noise_sigma=float(np.sqrt(sky_level + read_noise**2)),
        truth=truth,
    )


def _cr_track(shape, rng):
    """A straight 1-px CR track (length 1..30) or a single-pixel hit."""
    h, w = shape
    out = np.zeros(shape, bool)
    x0, y0 = rng.uniform(5, w - 5), rng.uniform(5, h - 5)
    length = rng.integers(1, 30)
    ang = rng.uniform(0, np.pi)
    t = np.linspace(0, length, 2 * length + 1)
    xx = np.clip(np.round(x0 + t * np.cos(ang)).astype(int), 0, w - 1)
    yy = np.clip(np.round(y0 + t * np.sin(ang)).astype(int), 0, h - 1)
    out[yy, xx] = True
    return out
