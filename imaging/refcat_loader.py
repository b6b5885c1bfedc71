"""Load the reference stars around a detector from the shards of a sharded reference catalog.

`ReferenceObjectLoader` is LSST's loader in miniature: it is built from the shards a quantum
received (the refcat is a spatial prerequisite, one ``SimpleCatalog`` per HEALPix pixel) and
`ReferenceObjectLoader.loadPixelBox` returns the stars that fall inside a pixel box grown by
``pixelMargin``:

1. no shard at all is an error naming the detector (LSST: "No reference tables could be found
   for input region");
2. the shards are concatenated (deferred handles are read here) and the magnitude column is
   found: ``<filterName>_flux`` in nJy, or ``<filterName>_mag`` (AB) converted to nJy with
   ``flux = 10^(-0.4 (mag - 31.4))``; neither is an error naming the column and the catalog;
3. positions are moved by proper motion to the exposure epoch (when the catalog has them),
   projected with the exposure's WCS (SIP included) and cut to the padded box.

The returned table has ``id``, ``coord_ra``, ``coord_dec`` (deg), ``centroid_x``,
``centroid_y`` (parent pixels), ``<filterName>_flux`` (nJy) and ``<filterName>_mag``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from astropy.table import Table, vstack

from ._errors import CatalogSchemaError
from .geometry import Box
from .refcat import propagate_positions

__all__ = [
    "ReferenceCatalogError",
    "ReferenceObjectLoader",
    "julian_epoch",
    "mag_to_njy",
    "njy_to_mag",
]

_AB_NJY_ZERO_POINT = 31.4  # AB magnitude of 1 nJy


class ReferenceCatalogError(RuntimeError):
    """No reference catalog shard covers the region asked for (the message names it)."""


def mag_to_njy(mag: Any) -> np.ndarray:
    """AB magnitude to flux in nJy."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - _AB_NJY_ZERO_POINT))


def njy_to_mag(flux: Any) -> np.ndarray:
    """Flux in nJy to AB magnitude."""
    return _AB_NJY_ZERO_POINT - 2.5 * np.log10(np.asarray(flux, dtype=float))


class ReferenceObjectLoader:
    """Reference stars from the shards of a sharded catalog.

    Parameters
    ----------
    dataIds : sequence
        Data IDs of the shards (for messages).
    refCats : sequence
        The shards: `astropy.table.Table` or deferred handles with a ``get()`` method.
    name : `str`
        Catalog (dataset type) name, for messages.
    pixelMargin : `int`
        Extra padding (pixels) of every box asked for (LSST's default 250).
    """

    def __init__(
        self,
        dataIds: Sequence[Any],
        refCats: Sequence[Any],
        *,
        name: str = "reference catalog",
        pixelMargin: int = 250,
    ) -> None:
        if len(dataIds) != len(refCats):
            raise ValueError(f"{len(dataIds)} data IDs for {len(refCats)} reference shards")
        self.dataIds = list(dataIds)
        self._shards = list(refCats)
        self.name = name
        self.pixelMargin = int(pixelMargin)

    def _tables(self) -> Iterable[Table]:
        for shard in self._shards:
            yield shard.get() if hasattr(shard, "get") and not isinstance(shard, Table) else shard

    def loadPixelBox(
        self,
        bbox: Box,
        wcs: Any,
        filterName: str = "phot_g_mean",
        *,
        epoch: float | None = None,
        region_name: str = "the requested region",
    ) -> Table:
        """Return the reference stars inside ``bbox`` grown by ``pixelMargin``.

        Parameters
        ----------
        bbox : `~imaging.geometry.Box`
            Pixel box (parent frame of ``wcs``).
        wcs : `astropy.wcs.WCS`
            The exposure's WCS.
        filterName : `str`
            Column prefix of the flux or magnitude to use.
        epoch : `float`, optional
            Julian year to move the positions to (proper motions); `None` keeps them.
        region_name : `str`
            What the box is (e.g. the detector), for the error message.

        Raises
        ------
        ReferenceCatalogError
            If there is no shard.
        CatalogSchemaError
            If the catalog has neither ``<filterName>_flux`` nor ``<filterName>_mag``.
        """
        if not self._shards:
            raise ReferenceCatalogError(
                f"No reference tables could be found for input region: no shard of {self.name} "
                f"overlaps {region_name}"
            )
        table = vstack(list(self._tables()), metadata_conflicts="silent")
        flux_col, mag_col = f"{filterName}_flux", f"{filterName}_mag"
        if flux_col in table.colnames:
            flux = np.asarray(table[flux_col], dtype=float)
        elif mag_col in table.colnames:
            flux = mag_to_njy(table[mag_col])
        else:
            raise CatalogSchemaError(
                f"{self.name}: no column {flux_col!r} (nJy) or {mag_col!r} for filterName "
                f"{filterName!r}; columns are {', '.join(table.colnames)}"
            )
        has_pm = all(c in table.colnames for c in ("pm_ra", "pm_dec", "epoch"))
        if epoch is not None and has_pm and len(table):
            ra, dec = propagate_positions(table, epoch)
        else:
            ra = np.asarray(table["ra"], dtype=float)
            dec = np.asarray(table["dec"], dtype=float)
        padded = bbox.dilated(self.pixelMargin)
        if len(table):
            x, y = wcs.all_world2pix(ra, dec, 0, quiet=True)
        else:
            x = y = np.zeros(0)
        inside = (
            np.isfinite(x)
            & np.isfinite(y)
            & (x >= padded.x0 - 0.5)
            & (x < padded.x1 - 0.5)
            & (y >= padded.y0 - 0.5)
            & (y < padded.y1 - 0.5)
        )
        out = Table()
        out["id"] = np.asarray(table["id"], dtype=np.int64)[inside]
        out["coord_ra"] = ra[inside]
        out["coord_dec"] = dec[inside]
        out["centroid_x"] = np.asarray(x)[inside]
        out["centroid_y"] = np.asarray(y)[inside]
        out[flux_col] = flux[inside]
        if mag_col in table.colnames:
            out[mag_col] = np.asarray(table[mag_col], dtype=float)[inside]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[mag_col] = njy_to_mag(flux[inside])
        return out


def julian_epoch(mjd: float | None) -> float | None:
    """Julian year of an MJD (`None` stays `None`)."""
    if mjd is None or not math.isfinite(mjd):
        return None
    return 2000.0 + (float(mjd) - 51544.5) / 365.25
