"""Sky regions: convex spherical polygons, and the sky pixels they touch.

Design
------
A `Region` is a convex polygon on the unit sphere given by its (ra, dec)
vertices in degrees; edges are great-circle arcs. It is the only astronomy the
butler knows, used for spatial joins: a region's `skypix_overlaps` are stored
in the registry, so "which reference-catalog shards overlap this detector"
becomes an SQL join.

The overlap computation is conservative (it may include a pixel that only
comes close to the polygon, never omits one that overlaps it):

1. cone search with astropy_healpix over the polygon's bounding circle,
   widened by the pixel size, gives candidate pixels;
2. each candidate pixel is bounded by a circle around its centre through its
   farthest corner (plus a margin for the curvature of HEALPix edges); the
   pixel is kept when the angular distance from its centre to the polygon is
   at most that radius.

There is no mutable state; a `Region` is an immutable value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..dimensions import DimensionUniverse

__all__ = ["Region"]

# HEALPix pixel edges are not great circles; widen the bounding radius by this factor.
_PIXEL_RADIUS_MARGIN = 1.1


def _unit_vectors(ra: Any, dec: Any) -> np.ndarray:
    """Return unit vectors (..., 3) for (ra, dec) in degrees."""
    ra_r = np.radians(np.asarray(ra, dtype=float))
    dec_r = np.radians(np.asarray(dec, dtype=float))
    cos_dec = np.cos(dec_r)
    return np.stack([cos_dec * np.cos(ra_r), cos_dec * np.sin(ra_r), np.sin(dec_r)], axis=-1)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians between unit vectors (broadcasting over leading axes)."""
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    return np.arctan2(cross, dot)


@dataclasses.dataclass(frozen=True, slots=True)
class Region:
    """A convex polygon on the sky.

    Parameters
    ----------
    vertices : `tuple` [`tuple` [`float`, `float`], ...]
        (ra, dec) of at least three vertices in degrees, in order around the
        polygon (either sense). Use `Region.polygon` to build one from any
        iterable of pairs.

    Raises
    ------
    ValueError
        If there are fewer than three vertices, a coordinate is not finite or
        out of range, or the polygon is degenerate or not convex.
    """

    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.vertices) < 3:
            raise ValueError(f"a region needs at least 3 vertices, got {len(self.vertices)}")
        for ra, dec in self.vertices:
            if not (math.isfinite(ra) and math.isfinite(dec)) or not -90.0 <= dec <= 90.0:
                raise ValueError(f"invalid region vertex (ra={ra!r}, dec={dec!r})")
        vectors = self._vectors()
        edges = np.cross(vectors, np.roll(vectors, -1, axis=0))
        if np.any(np.linalg.norm(edges, axis=-1) < 1e-15):
            raise ValueError(
                f"region has repeated or antipodal consecutive vertices: {self.vertices}"
            )
        # Convexity: every vertex is on the same side of every edge's great circle.
        sides = vectors @ edges.T  # [vertex, edge]
        positive = np.all(sides >= -1e-12)
        negative = np.all(sides <= 1e-12)
        if not (positive or negative) or np.all(np.abs(sides) <= 1e-12):
            raise ValueError(f"region is not a convex polygon: {self.vertices}")

    @classmethod
    def polygon(cls, vertices: Iterable[Iterable[float]]) -> Region:
        """Build a region from (ra, dec) pairs in degrees."""
        pairs = []
        for vertex in vertices:
            ra, dec = (float(v) for v in vertex)
            pairs.append((ra % 360.0, dec))
        return cls(tuple(pairs))

    def _vectors(self) -> np.ndarray:
        array = np.asarray(self.vertices, dtype=float)
        return _unit_vectors(array[:, 0], array[:, 1])

    def _edge_normals(self) -> np.ndarray:
        """Return unit normals of the edges, oriented so the interior is on the positive side."""
        vectors = self._vectors()
        normals = np.cross(vectors, np.roll(vectors, -1, axis=0))
        normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
        centre = vectors.sum(axis=0)
        if np.sum(normals @ centre) < 0:
            normals = -normals
        return normals

    # -- serialization ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible form."""
        return {"type": "polygon", "vertices": [[ra, dec] for ra, dec in self.vertices]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Region:
        """Rebuild from `to_dict` output.

        Raises
        ------
        ValueError
            If ``data`` is not a serialized polygon.
        """
        if data.get("type") != "polygon" or "vertices" not in data:
            raise ValueError(f"not a serialized region: {dict(data)!r}")
        return cls.polygon(data["vertices"])

    # -- geometry -----------------------------------------------------------

    def bounding_circle(self) -> tuple[float, float, float]:
        """Return (ra, dec, radius) in degrees of a circle containing the region."""
        vectors = self._vectors()
        centre = vectors.sum(axis=0)
        centre /= np.linalg.norm(centre)
        radius = float(np.max(_angle(vectors, centre[np.newaxis, :])))
        ra = math.degrees(math.atan2(centre[1], centre[0])) % 360.0
        dec = math.degrees(math.asin(max(-1.0, min(1.0, centre[2]))))
        return ra, dec, math.degrees(radius)

    def contains(self, ra: Any, dec: Any) -> Any:
        """Whether points (degrees) lie inside the region (boundary included).

        Parameters
        ----------
        ra, dec : `float` or array-like
            Coordinates in degrees; arrays broadcast.

        Returns
        -------
        inside : `bool` or `numpy.ndarray` [`bool`]
            A `bool` for scalar input, an array otherwise.
        """
        points = _unit_vectors(ra, dec)
        inside = np.all(points @ self._edge_normals().T >= -1e-12, axis=-1)
        return bool(inside) if np.ndim(inside) == 0 else inside

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Angular distance in radians from unit vectors ``points`` (N, 3) to the region.

        Zero for points inside.
        """
        vectors = self._vectors()
        normals = self._edge_normals()
        side = points @ normals.T  # [point, edge]
        inside = np.all(side >= -1e-12, axis=-1)
        # Distance to each edge arc: perpendicular if the foot lies on the arc, else to an end.
        starts = vectors
        ends = np.roll(vectors, -1, axis=0)
        foot = points[:, np.newaxis, :] - side[..., np.newaxis] * normals[np.newaxis, :, :]
        on_arc = (np.sum(np.cross(starts, foot) * normals, axis=-1) >= 0) & (
            np.sum(np.cross(foot, ends) * normals, axis=-1) >= 0
        )
        perpendicular = np.arcsin(np.clip(np.abs(side), 0.0, 1.0))
        to_start = _angle(points[:, np.newaxis, :], starts[np.newaxis, :, :])
        to_end = _angle(points[:, np.newaxis, :], ends[np.newaxis, :, :])
        per_edge = np.where(on_arc, perpendicular, np.minimum(to_start, to_end))
        return np.where(inside, 0.0, per_edge.min(axis=-1))

    def skypix_overlaps(self, universe: DimensionUniverse) -> set[int]:
        """Return the universe's sky pixels (HEALPix, nested) that overlap the region.

        Conservative: every pixel that overlaps is returned; a pixel that only
        comes within a small fraction of a pixel of the region may be too.
        """
        import astropy.units as u
        from astropy_healpix import HEALPix

        healpix = HEALPix(nside=universe.skypix.nside, order="nested")
        ra, dec, radius = self.bounding_circle()
        resolution = healpix.pixel_resolution.to_value(u.deg)
        candidates = np.asarray(
            healpix.cone_search_lonlat(
                ra * u.deg, dec * u.deg, radius=min(180.0, radius + 1.5 * resolution) * u.deg
            ),
            dtype=np.int64,
        )
        if candidates.size == 0:
            return set()
        lon, lat = healpix.healpix_to_lonlat(candidates)
        centres = _unit_vectors(lon.to_value(u.deg), lat.to_value(u.deg))
        corner_lon, corner_lat = healpix.boundaries_lonlat(candidates, step=1)
        corners = _unit_vectors(corner_lon.to_value(u.deg), corner_lat.to_value(u.deg))
        pixel_radius = _angle(corners, centres[:, np.newaxis, :]).max(axis=-1)
        keep = self.distance(centres) <= pixel_radius * _PIXEL_RADIUS_MARGIN
        return {int(p) for p in candidates[keep]}
