"""A user's reference catalog, made complete: the minimal table ``ingest-refcat`` accepts.

A user brings a table with ``id``, ``ra``, ``dec`` (degrees, ICRS) and one brightness column;
`complete_reference_catalog` returns it in the full `~imaging.refcat.REFCAT_SCHEMA`, filling
what is missing with the defaults in `REFCAT_DEFAULTS`:

==========================  =========================================================
column                      when missing
==========================  =========================================================
``phot_g_mean_mag``         from ``mag``, or from ``flux`` (nJy, AB: 31.4 - 2.5 log10)
``phot_g_mean_mag_err``     from ``mag_err``, or from ``flux_err``; else NaN (unknown)
``ra_err``, ``dec_err``     NaN mas (unknown)
``pm_ra``, ``pm_dec``       0 mas/yr (no proper motion)
``pm_ra_err``, ``pm_dec_err`` NaN mas/yr (unknown)
``epoch``                   the ``epoch`` argument (default 2016.0, Gaia DR3's)
==========================  =========================================================

Column names are matched without regard to case (``RA``, ``Dec``, ``ID`` work). Any other
column is kept as it is. A table that already has every schema column passes unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.table import Table

from ._errors import CatalogSchemaError
from .refcat import REFCAT_SCHEMA

__all__ = [
    "DEFAULT_REFCAT_EPOCH",
    "REFCAT_DEFAULTS",
    "complete_reference_catalog",
    "read_user_reference_catalog",
]

#: Julian epoch given to positions of a table without an ``epoch`` column (Gaia DR3's).
DEFAULT_REFCAT_EPOCH = 2016.0

#: AB magnitude of a flux of 1 nJy.
_AB_NJY_ZERO_POINT = 31.4

#: Value given to each optional schema column a table lacks (``epoch``: `DEFAULT_REFCAT_EPOCH`).
REFCAT_DEFAULTS: dict[str, float] = {
    "ra_err": float("nan"),
    "dec_err": float("nan"),
    "pm_ra": 0.0,
    "pm_dec": 0.0,
    "pm_ra_err": float("nan"),
    "pm_dec_err": float("nan"),
    "phot_g_mean_mag_err": float("nan"),
}

_REQUIRED = ("id", "ra", "dec")


def _rename_case_insensitively(table: Table, names: list[str]) -> None:
    lower = {c.lower(): c for c in table.colnames}
    for name in names:
        if name not in table.colnames and name in lower:
            table.rename_column(lower[name], name)


def _magnitudes(table: Table, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return ``(mag, mag_err or None)`` from a magnitude or an nJy flux column."""
    for mag_name in ("phot_g_mean_mag", "mag"):
        if mag_name in table.colnames:
            err_name = f"{mag_name}_err"
            err = np.asarray(table[err_name], float) if err_name in table.colnames else None
            return np.asarray(table[mag_name], float), err
    if "flux" in table.colnames:
        flux = np.asarray(table["flux"], float)
        if np.any(~(flux > 0)):
            bad = int(np.argmax(~(flux > 0)))
            raise CatalogSchemaError(
                f"{source}: column 'flux' (nJy) must be positive, row {bad} has {flux[bad]}"
            )
        mag = _AB_NJY_ZERO_POINT - 2.5 * np.log10(flux)
        err = None
        if "flux_err" in table.colnames:
            err = 2.5 / np.log(10) * np.asarray(table["flux_err"], float) / flux
        return mag, err
    raise CatalogSchemaError(
        f"{source}: no brightness column: give 'phot_g_mean_mag' or 'mag' (mag), or 'flux' (nJy)"
    )


def complete_reference_catalog(
    table: Table, *, source: str = "table", epoch: float = DEFAULT_REFCAT_EPOCH
) -> Table:
    """Return ``table`` with every `REFCAT_SCHEMA` column, missing ones filled with defaults.

    Parameters
    ----------
    table : `astropy.table.Table`
        At least ``id``, ``ra``, ``dec`` (deg) and ``phot_g_mean_mag``, ``mag`` or ``flux``
        (nJy); names in any case.
    source : `str`
        Name of the table in error messages (its file).
    epoch : `float`
        Julian epoch of the positions when the table has no ``epoch`` column.

    Returns
    -------
    table : `astropy.table.Table`
        A new table in the schema's column order, followed by the table's other columns.

    Raises
    ------
    CatalogSchemaError
        If ``id``, ``ra``, ``dec`` or a brightness column is missing, or a column has the wrong
        type or unit (the message names ``source`` and the column).
    """
    out = Table(table, copy=True)
    _rename_case_insensitively(out, [*REFCAT_SCHEMA.names, "mag", "mag_err", "flux", "flux_err"])
    for name in _REQUIRED:
        if name not in out.colnames:
            raise CatalogSchemaError(
                f"{source}: missing column {name!r} (a reference catalog needs id, ra, dec "
                "and a magnitude or flux)"
            )
    n = len(out)
    if "phot_g_mean_mag" not in out.colnames or "phot_g_mean_mag_err" not in out.colnames:
        mag, mag_err = _magnitudes(out, source)
        if "phot_g_mean_mag" not in out.colnames:
            out["phot_g_mean_mag"] = mag.astype(np.float32)
        if "phot_g_mean_mag_err" not in out.colnames and mag_err is not None:
            out["phot_g_mean_mag_err"] = mag_err.astype(np.float32)
    for name, value in REFCAT_DEFAULTS.items():
        if name not in out.colnames:
            out[name] = np.full(n, value, dtype=REFCAT_SCHEMA[name].dtype)
    if "epoch" not in out.colnames:
        out["epoch"] = np.full(n, float(epoch))
    for column in REFCAT_SCHEMA.columns:
        if out[column.name].unit is None and column.unit:
            out[column.name].unit = column.unit
    REFCAT_SCHEMA.validate(out, source=source, allow_missing_units=True)
    order = REFCAT_SCHEMA.names + [c for c in out.colnames if c not in REFCAT_SCHEMA.names]
    return out[order]


def read_user_reference_catalog(
    path: str | os.PathLike[str], *, epoch: float = DEFAULT_REFCAT_EPOCH
) -> Table:
    """Read a user's reference catalog (FITS, or any table format astropy knows by extension).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CatalogSchemaError
        If the file is not a readable table or lacks a required column (names the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Reference catalog {path} does not exist")
    suffix = path.suffix.lower()
    fmt = {".fits": "fits", ".fit": "fits", ".fz": "fits", ".csv": "ascii.csv"}.get(suffix)
    try:
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as err:  # astropy raises many kinds for an unreadable table
        raise CatalogSchemaError(f"{path}: not a readable table ({err})") from err
    return complete_reference_catalog(table, source=str(path), epoch=epoch)
