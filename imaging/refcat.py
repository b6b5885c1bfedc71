"""Astrometric/photometric reference catalogs (Gaia-like) as FITS tables.

The schema `REFCAT_SCHEMA` follows Gaia DR3 names where they exist (``ra``, ``dec``,
``phot_g_mean_mag``) with our snake_case for the rest. A reference catalog is one FITS binary
table, in the form a user would bring: positions in degrees (ICRS) at epoch ``epoch`` (Julian
year), proper motions in mas/yr. `write_reference_catalog` validates before writing and writes
atomically; `read_reference_catalog` validates after reading and can cut a cone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.table import Table

from ._errors import CatalogSchemaError
from .catalog import CatalogSchema, ColumnSpec

__all__ = [
    "REFCAT_SCHEMA",
    "angular_separation",
    "propagate_positions",
    "read_reference_catalog",
    "write_reference_catalog",
]

REFCAT_SCHEMA = CatalogSchema(
    (
        ColumnSpec("id", "int64", "", "Unique source identifier"),
        ColumnSpec("ra", "float64", "deg", "Right ascension (ICRS) at epoch"),
        ColumnSpec("dec", "float64", "deg", "Declination (ICRS) at epoch"),
        ColumnSpec("ra_err", "float32", "mas", "Uncertainty of ra * cos(dec)"),
        ColumnSpec("dec_err", "float32", "mas", "Uncertainty of dec"),
        ColumnSpec("pm_ra", "float32", "mas / yr", "Proper motion in ra * cos(dec)"),
        ColumnSpec("pm_dec", "float32", "mas / yr", "Proper motion in dec"),
        ColumnSpec("pm_ra_err", "float32", "mas / yr", "Uncertainty of pm_ra"),
        ColumnSpec("pm_dec_err", "float32", "mas / yr", "Uncertainty of pm_dec"),
        ColumnSpec("epoch", "float64", "yr", "Julian epoch of the positions"),
        ColumnSpec("phot_g_mean_mag", "float32", "mag", "Gaia G magnitude (Vega)"),
        ColumnSpec("phot_g_mean_mag_err", "float32", "mag", "Uncertainty of phot_g_mean_mag"),
    )
)
"""Columns of a reference catalog."""


def angular_separation(
    ra1: np.ndarray | float, dec1: np.ndarray | float, ra2: float, dec2: float
) -> np.ndarray:
    """Return great-circle separations (deg) between ``(ra1, dec1)`` and ``(ra2, dec2)`` (deg)."""
    r1, d1, r2, d2 = (np.radians(v) for v in (ra1, dec1, ra2, dec2))
    s = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(s, 0, 1))))


def propagate_positions(table: Table, epoch: float) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ra, dec)`` (deg) moved by proper motion from catalog epoch to ``epoch`` (yr)."""
    dt = epoch - np.asarray(table["epoch"], dtype=float)
    dec = np.asarray(table["dec"], dtype=float) + np.asarray(table["pm_dec"]) * dt / 3.6e6
    cosd = np.cos(np.radians(np.asarray(table["dec"], dtype=float)))
    ra = np.asarray(table["ra"], dtype=float) + np.asarray(table["pm_ra"]) * dt / 3.6e6 / cosd
    return ra % 360.0, dec


def write_reference_catalog(table: Table, path: str | os.PathLike[str]) -> Path:
    """Validate ``table`` against `REFCAT_SCHEMA` and write it as a FITS table, atomically.

    Columns without a unit get the schema's unit; a wrong unit is an error.

    Returns
    -------
    path : `pathlib.Path`
        The written file.

    Raises
    ------
    CatalogSchemaError
        If a column is missing or has the wrong type or unit.
    """
    path = Path(path)
    REFCAT_SCHEMA.validate(table, source=str(path), allow_missing_units=True)
    out = Table(table, copy=True)
    for column in REFCAT_SCHEMA.columns:
        if column.unit and out[column.name].unit is None:
            out[column.name].unit = column.unit
    out.meta["EXTNAME"] = "REFCAT"
    tmp = path.with_name(f".{path.name}.tmp")
    out.write(tmp, format="fits", overwrite=True)
    os.replace(tmp, path)
    return path


def read_reference_catalog(
    path: str | os.PathLike[str],
    *,
    center: tuple[float, float] | None = None,
    radius: float | None = None,
) -> Table:
    """Read a reference catalog FITS table, optionally the cone ``center`` (deg), ``radius`` (deg).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CatalogSchemaError
        If the table lacks a required column (the message names the file and column).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Reference catalog {path} does not exist")
    table = Table.read(path, format="fits")
    REFCAT_SCHEMA.validate(table, source=str(path), allow_missing_units=True)
    if center is not None:
        if radius is None:
            raise CatalogSchemaError(f"{path}: a cone needs both center and radius")
        sep = angular_separation(table["ra"], table["dec"], center[0], center[1])
        table = table[sep <= radius]
    return table
