"""The simulated sky: Gaia-like stars and galaxies, deterministic from a seed.

The sphere is cut into tiles: declination bands ``tile_size`` deg high, each cut into
``floor(360 cos(dec_mid) / tile_size)`` equal right-ascension tiles. Each tile's sources are
drawn from a random generator seeded by ``(seed, kind, band, tile)``, so any detector of any visit
sees the same sky without passing a catalog around, and the reference catalog written for a
field (`make_reference_catalog`) holds exactly the stars the simulator draws.

Stars: counts uniform on the sphere, magnitudes ``p(G) ∝ 10^(slope G)`` over ``mag_range``,
proper motions ~ N(0, 5 mas/yr) at epoch 2016.0, and a colour giving the band magnitude
``m_band = G + COLOUR_TERMS[band] * (colour - 0.8)``. Galaxies: exponential disks or
de Vaucouleurs bulges, half-light radius shrinking with magnitude, random ellipticity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from astropy.table import Table, vstack

from ..refcat import REFCAT_SCHEMA, angular_separation

__all__ = ["COLOUR_TERMS", "SkyModel", "make_reference_catalog", "sources_in_cone"]

COLOUR_TERMS: dict[str, float] = {
    "u": 1.6,
    "g": 0.6,
    "r": 0.0,
    "i": -0.3,
    "z": -0.5,
    "y": -0.6,
}
"""Band magnitude minus G per unit of colour excess (mag/mag)."""

REFCAT_EPOCH = 2016.0
_STAR, _GALAXY, _BRIGHT_STAR = 1, 2, 3
_MAX_PER_TILE = 1_000_000


@dataclass(frozen=True, slots=True)
class SkyModel:
    """Densities and magnitude ranges of the simulated sky.

    Parameters
    ----------
    star_density : `float`
        Stars per deg² within ``star_mag_range``.
    star_mag_range : `tuple` [`float`, `float`]
        Bright and faint G limits (mag).
    star_count_slope : `float`
        Slope of ``log10 dN/dm`` (per mag).
    galaxy_density : `float`
        Galaxies per deg² within ``galaxy_mag_range``.
    galaxy_mag_range : `tuple` [`float`, `float`]
        Magnitude limits of galaxies (band magnitude).
    tile_size : `float`
        Tile height (deg).
    bright_star_density : `float`
        Extra stars per deg² within ``bright_star_mag_range`` (drawn from their own random
        stream, so the other sources do not change): enough bright stars for bright-star
        stamps on small detectors.
    bright_star_mag_range : `tuple` [`float`, `float`]
        G limits of the extra bright stars (mag).
    """

    star_density: float = 3000.0
    star_mag_range: tuple[float, float] = (13.0, 22.0)
    star_count_slope: float = 0.3
    galaxy_density: float = 5000.0
    galaxy_mag_range: tuple[float, float] = (19.0, 24.0)
    tile_size: float = 0.1
    bright_star_density: float = 0.0
    bright_star_mag_range: tuple[float, float] = (13.0, 17.5)


def _band_tiles(iband: int, tile: float) -> tuple[float, float, int]:
    dec_lo = -90.0 + iband * tile
    dec_hi = min(dec_lo + tile, 90.0)
    n_ra = max(1, int(360.0 * math.cos(math.radians((dec_lo + dec_hi) / 2)) / tile))
    return dec_lo, dec_hi, n_ra


def _tiles_in_cone(
    ra: float, dec: float, radius: float, tile: float
) -> Iterator[tuple[int, int, float, float, float, float]]:
    n_bands = math.ceil(180.0 / tile)
    lo = max(0, int((dec - radius + 90.0) // tile))
    hi = min(n_bands - 1, int((dec + radius + 90.0) // tile))
    for iband in range(lo, hi + 1):
        dec_lo, dec_hi, n_ra = _band_tiles(iband, tile)
        width = 360.0 / n_ra
        max_abs = min(89.999, max(abs(dec_lo), abs(dec_hi), abs(dec) + radius))
        half = radius / math.cos(math.radians(max_abs)) + width
        if half >= 180.0 or abs(dec) + radius >= 89.0:
            indices = range(n_ra)
        else:
            first = math.floor(((ra - half) % 360.0) / width)
            count = math.ceil(2 * half / width) + 1
            indices = sorted({(first + k) % n_ra for k in range(count)})
        for ira in indices:
            yield iband, ira, dec_lo, dec_hi, ira * width, (ira + 1) * width


def _tile_positions(
    rng: np.random.Generator,
    density: float,
    dec_lo: float,
    dec_hi: float,
    ra_lo: float,
    ra_hi: float,
) -> tuple[np.ndarray, np.ndarray]:
    area = math.degrees(math.radians(ra_hi - ra_lo)) * math.degrees(
        math.sin(math.radians(dec_hi)) - math.sin(math.radians(dec_lo))
    )
    n = min(int(rng.poisson(density * area)), _MAX_PER_TILE - 1)
    ra = rng.uniform(ra_lo, ra_hi, n)
    sin_dec = rng.uniform(math.sin(math.radians(dec_lo)), math.sin(math.radians(dec_hi)), n)
    return ra, np.degrees(np.arcsin(sin_dec))


def _power_law_mags(
    rng: np.random.Generator, n: int, mag_range: tuple[float, float], slope: float
) -> np.ndarray:
    m1, m2 = mag_range
    u = rng.uniform(0.0, 1.0, n)
    return m1 + np.log10(1.0 + u * (10 ** (slope * (m2 - m1)) - 1.0)) / slope


def _star_tile(
    seed: int, sky: SkyModel, tile: tuple[int, int, float, float, float, float]
) -> Table:
    iband, ira = tile[0], tile[1]
    rng = np.random.default_rng([seed, _STAR, iband, ira])
    table = _stars(rng, sky.star_density, sky.star_mag_range, sky.star_count_slope, tile, 0)
    if sky.bright_star_density > 0:
        bright_rng = np.random.default_rng([seed, _BRIGHT_STAR, iband, ira])
        extra = _stars(
            bright_rng,
            sky.bright_star_density,
            sky.bright_star_mag_range,
            sky.star_count_slope,
            tile,
            len(table),
        )
        table = vstack([table, extra])
    return table


def _stars(
    rng: np.random.Generator,
    density: float,
    mag_range: tuple[float, float],
    slope: float,
    tile: tuple[int, int, float, float, float, float],
    first_index: int,
) -> Table:
    iband, ira, dec_lo, dec_hi, ra_lo, ra_hi = tile
    ra, dec = _tile_positions(rng, density, dec_lo, dec_hi, ra_lo, ra_hi)
    n = min(ra.size, _MAX_PER_TILE - 1 - first_index)
    ra, dec = ra[:n], dec[:n]
    gmag = _power_law_mags(rng, n, mag_range, slope)
    pos_err = 0.02 * 10 ** (0.2 * (gmag - 15.0))  # mas, Gaia-like
    table = Table()
    table["id"] = (np.int64(iband) * 100_000 + ira) * _MAX_PER_TILE + np.arange(
        first_index, first_index + n, dtype=np.int64
    )
    table["ra"] = ra
    table["dec"] = dec
    table["ra_err"] = pos_err.astype(np.float32)
    table["dec_err"] = pos_err.astype(np.float32)
    table["pm_ra"] = rng.normal(0.0, 5.0, n).astype(np.float32)
    table["pm_dec"] = rng.normal(0.0, 5.0, n).astype(np.float32)
    table["pm_ra_err"] = (pos_err * 1.2).astype(np.float32)
    table["pm_dec_err"] = (pos_err * 1.2).astype(np.float32)
    table["epoch"] = np.full(n, REFCAT_EPOCH)
    table["phot_g_mean_mag"] = gmag.astype(np.float32)
    table["phot_g_mean_mag_err"] = (0.0003 * 10 ** (0.2 * (gmag - 15.0))).astype(np.float32)
    table["colour"] = rng.normal(0.8, 0.3, n).astype(np.float32)
    return table


def _galaxy_tile(
    seed: int, sky: SkyModel, tile: tuple[int, int, float, float, float, float]
) -> Table:
    iband, ira, dec_lo, dec_hi, ra_lo, ra_hi = tile
    rng = np.random.default_rng([seed, _GALAXY, iband, ira])
    ra, dec = _tile_positions(rng, sky.galaxy_density, dec_lo, dec_hi, ra_lo, ra_hi)
    n = ra.size
    mag = _power_law_mags(rng, n, sky.galaxy_mag_range, 0.35)
    table = Table()
    table["id"] = -((np.int64(iband) * 100_000 + ira) * _MAX_PER_TILE + np.arange(n) + 1)
    table["ra"] = ra
    table["dec"] = dec
    table["mag"] = mag
    table["hlr"] = np.clip(
        0.8 * 10 ** (-0.15 * (mag - 20.0)) * rng.lognormal(0.0, 0.3, n), 0.15, 4.0
    )  # arcsec
    table["sersic_n"] = np.where(rng.uniform(size=n) < 0.3, 4.0, 1.0)
    e = np.clip(np.abs(rng.normal(0.0, 0.3, n)), 0.0, 0.7)
    angle = rng.uniform(0.0, np.pi, n)
    table["e1"] = e * np.cos(2 * angle)
    table["e2"] = e * np.sin(2 * angle)
    return table


def sources_in_cone(
    center: tuple[float, float], radius: float, *, seed: int, sky: SkyModel, kind: str = "star"
) -> Table:
    """Return the simulated stars (``kind="star"``) or galaxies within ``radius`` deg of ``center``.

    Star tables have the `~imaging.refcat.REFCAT_SCHEMA` columns plus ``colour``; galaxy tables
    have ``id`` (negative), ``ra``, ``dec``, ``mag``, ``hlr`` (arcsec), ``sersic_n``, ``e1``,
    ``e2``.
    """
    make = {"star": _star_tile, "galaxy": _galaxy_tile}[kind]
    parts = [make(seed, sky, tile) for tile in _tiles_in_cone(*center, radius, sky.tile_size)]
    table = vstack(parts) if parts else make(seed, sky, (0, 0, 0.0, 0.0, 0.0, 0.0))[:0]
    if len(table):
        sep = angular_separation(table["ra"], table["dec"], center[0], center[1])
        table = table[sep <= radius]
    return table


def make_reference_catalog(
    center: tuple[float, float],
    radius: float,
    *,
    seed: int,
    density: float | None = None,
    mag_range: tuple[float, float] | None = None,
    sky: SkyModel | None = None,
) -> Table:
    """Return the Gaia-like reference catalog of the simulated sky within a cone.

    Parameters
    ----------
    center : `tuple` [`float`, `float`]
        Cone centre ``(ra, dec)`` (deg).
    radius : `float`
        Cone radius (deg).
    seed : `int`
        Sky seed (the one given to the simulator).
    density, mag_range : optional
        Override ``sky.star_density`` (per deg²) and ``sky.star_mag_range`` (G mag).
    sky : `SkyModel`, optional
        Sky model; `None` means the defaults.

    Returns
    -------
    table : `astropy.table.Table`
        Columns of `~imaging.refcat.REFCAT_SCHEMA`, with units.
    """
    sky = SkyModel() if sky is None else sky
    if density is not None or mag_range is not None:
        sky = dataclasses.replace(
            sky,
            star_density=sky.star_density if density is None else density,
            star_mag_range=sky.star_mag_range if mag_range is None else tuple(mag_range),
        )
    stars = sources_in_cone(center, radius, seed=seed, sky=sky, kind="star")
    out = REFCAT_SCHEMA.make_table(len(stars))
    for name in REFCAT_SCHEMA.names:
        out[name] = stars[name].astype(REFCAT_SCHEMA[name].dtype)
        if REFCAT_SCHEMA[name].unit:
            out[name].unit = REFCAT_SCHEMA[name].unit
    out.meta["SEED"] = seed
    return out
