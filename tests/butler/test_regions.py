"""Tests of sky regions and their sky-pixel overlaps."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
from astropy_healpix import HEALPix
from hypothesis import given, settings
from hypothesis import strategies as st

from butler.dimensions import DimensionUniverse
from butler.registry import Region

UNIVERSE = DimensionUniverse.default()
HP = HEALPix(nside=UNIVERSE.skypix.nside, order="nested")


def square(ra: float, dec: float, size: float) -> Region:
    return Region.polygon([(ra, dec), (ra + size, dec), (ra + size, dec + size), (ra, dec + size)])


def test_round_trip_and_contains():
    region = square(10.0, -1.0, 0.2)
    again = Region.from_dict(json.loads(json.dumps(region.to_dict())))
    assert again == region
    assert region.contains(10.1, -0.9) is True
    assert region.contains(10.3, -0.9) is False
    inside = region.contains(np.array([10.1, 10.5]), np.array([-0.9, -0.9]))
    assert inside.tolist() == [True, False]
    # Orientation does not matter.
    reverse = Region.polygon(list(reversed(region.vertices)))
    assert reverse.contains(10.1, -0.9) and not reverse.contains(10.3, -0.9)


def test_wraps_ra_zero():
    region = Region.polygon([(359.9, -0.1), (0.1, -0.1), (0.1, 0.1), (359.9, 0.1)])
    assert region.contains(0.0, 0.0) and region.contains(359.95, 0.05)
    assert not region.contains(180.0, 0.0)
    assert not region.contains(0.5, 0.0)


@pytest.mark.parametrize(
    "vertices, match",
    [
        ([(0, 0), (1, 0)], "at least 3"),
        ([(0, 0), (1, 0), (1, 1), (0.9, 0.1)], "not a convex"),
        ([(0, 0), (1, 0), (2, 0)], "not a convex"),
        ([(0, 0), (0, 0), (1, 1)], "repeated"),
        ([(0, 0), (1, 95), (1, 1)], "invalid region vertex"),
        ([(0, 0), (float("nan"), 0), (1, 1)], "invalid region vertex"),
    ],
)
def test_invalid_polygons(vertices, match):
    with pytest.raises(ValueError, match=match):
        Region.polygon(vertices)


def test_from_dict_rejects_other_things():
    with pytest.raises(ValueError, match="not a serialized region"):
        Region.from_dict({"type": "circle", "radius": 1})


def test_skypix_overlaps_small_region_is_tight():
    region = square(45.0, 20.0, 0.05)
    pixels = region.skypix_overlaps(UNIVERSE)
    centre_pixel = int(HP.lonlat_to_healpix(45.025 * u.deg, 20.025 * u.deg))
    assert centre_pixel in pixels
    assert 1 <= len(pixels) <= 6  # a 0.05 deg square touches few 0.46 deg pixels


def test_skypix_overlaps_near_pole():
    region = Region.polygon([(0, 88), (90, 88), (180, 88), (270, 88)])
    assert region.contains(0.0, 90.0)
    pixels = region.skypix_overlaps(UNIVERSE)
    pole = int(HP.lonlat_to_healpix(0 * u.deg, 89.99 * u.deg))
    assert pole in pixels
    ra = np.random.default_rng(1).uniform(0, 360, 2000)
    dec = np.full_like(ra, 88.7)  # great-circle edges bulge poleward to dec ~88.6
    assert region.contains(ra, dec).all()
    assert set(HP.lonlat_to_healpix(ra * u.deg, dec * u.deg).tolist()) <= pixels


@settings(max_examples=40, deadline=None)
@given(
    ra=st.floats(0, 360, allow_nan=False),
    dec=st.floats(-85, 85, allow_nan=False),
    size=st.floats(0.01, 3.0),
    seed=st.integers(0, 2**31),
)
def test_every_point_inside_is_in_an_overlapping_pixel(ra, dec, size, seed):
    region = square(ra, dec, size)
    pixels = region.skypix_overlaps(UNIVERSE)
    rng = np.random.default_rng(seed)
    # Sample the bounding box; keep the points inside the polygon (edges included).
    sample_ra = rng.uniform(ra, ra + size, 3000) % 360
    sample_dec = rng.uniform(dec, dec + size, 3000)
    inside = region.contains(sample_ra, sample_dec)
    vertices = np.array(region.vertices)
    sample_ra = np.concatenate([sample_ra[inside], vertices[:, 0]])
    sample_dec = np.concatenate([sample_dec[inside], vertices[:, 1]])
    hit = set(HP.lonlat_to_healpix(sample_ra * u.deg, sample_dec * u.deg).tolist())
    assert hit <= pixels
    # Conservative but not wildly so: at most the pixels of the bounding circle plus a ring.
    cra, cdec, radius = region.bounding_circle()
    resolution = HP.pixel_resolution.to_value(u.deg)
    generous = set(
        HP.cone_search_lonlat(cra * u.deg, cdec * u.deg, (radius + 2 * resolution) * u.deg).tolist()
    )
    assert pixels <= generous
