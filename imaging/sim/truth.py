"""Truth that comes with a simulated detector-visit, and its FITS form.

`DetectorTruth` holds what the simulator put in the image: the sources (table), the cosmic-ray
pixel mask (pixels where deposited charge exceeds ``cr_threshold`` times the local noise; *not*
set in the exposure's mask), the noise-free sky background (ADU), the bad columns, and the true
PSF (`~imaging.sim.psf_field.TruthPsf`) from which ``psf_at(x, y)`` draws a pixel image.

FITS layout of `DetectorTruth.write_fits`: primary header (ZEROPT, background parameters as
``BG_*`` keywords, BADCOLS), ``SOURCES`` binary table, ``CR_MASK`` (uint8), ``BACKGROUND``
(float32) and ``PSF`` (one-row table, column ``PSF_JSON``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..catalog import CatalogSchema, ColumnSpec
from ..psf import Psf
from .psf_field import TruthPsf

__all__ = ["TRUTH_SCHEMA", "DetectorTruth"]

TRUTH_SCHEMA = CatalogSchema(
    (
        ColumnSpec("id", "int64", "", "Source id (stars: refcat id; galaxies: negative)"),
        ColumnSpec("x", "float64", "pix", "True centroid column (parent frame)"),
        ColumnSpec("y", "float64", "pix", "True centroid row (parent frame)"),
        ColumnSpec("ra", "float64", "deg", "Right ascension at the visit epoch"),
        ColumnSpec("dec", "float64", "deg", "Declination at the visit epoch"),
        ColumnSpec("mag", "float64", "mag", "Magnitude in the visit band"),
        ColumnSpec("flux", "float64", "adu", "Total flux (ADU, whole exposure)"),
        ColumnSpec("peak", "float64", "adu", "Noise-free peak above sky (ADU)"),
        ColumnSpec("is_galaxy", "bool", "", "Extended source"),
        ColumnSpec("is_saturated", "bool", "", "Has SAT pixels within 2 px of its centre"),
        ColumnSpec("is_bright", "bool", "", "Drawn with the power-law halo"),
        ColumnSpec("psf_sigma", "float64", "pix", "True PSF determinant radius here"),
        ColumnSpec("psf_fwhm", "float64", "pix", "2.3548 * psf_sigma"),
        ColumnSpec("psf_e1", "float64", "", "True PSF distortion e1 in pixel axes"),
        ColumnSpec("psf_e2", "float64", "", "True PSF distortion e2 in pixel axes"),
        ColumnSpec("hlr", "float64", "arcsec", "Galaxy half-light radius (0 for stars)"),
        ColumnSpec("sersic_n", "float64", "", "Galaxy Sersic index (0 for stars)"),
    )
)
"""Columns of `DetectorTruth.sources`."""


@dataclass(frozen=True)
class DetectorTruth:
    """What the simulator put into one detector-visit image.

    Parameters
    ----------
    sources : `astropy.table.Table`
        Sources with centres inside the detector, columns of `TRUTH_SCHEMA`.
    cr_mask : `numpy.ndarray`
        Boolean image of cosmic-ray pixels.
    background : `numpy.ndarray`
        Noise-free sky background (ADU, float32).
    psf : `~imaging.sim.psf_field.TruthPsf`
        The true core PSF.
    zero_point : `float`
        Magnitude of a source of 1 ADU in this exposure.
    bad_columns : `list` [`int`]
        Columns filled with garbage (BAD in the mask).
    background_params : `dict` [`str`, `float`]
        Sky level (e-/pixel) and gradient coefficients over the focal plane.
    """

    sources: Table
    cr_mask: np.ndarray
    background: np.ndarray
    psf: TruthPsf
    zero_point: float
    bad_columns: list[int] = field(default_factory=list)
    background_params: dict[str, float] = field(default_factory=dict)

    @property
    def stars(self) -> Table:
        """The point sources."""
        return self.sources[~self.sources["is_galaxy"]]

    def psf_at(self, x: float, y: float) -> np.ndarray:
        """Return the true PSF at parent pixel ``(x, y)`` as a unit-sum, centred image."""
        return self.psf.kernel_image((x, y))

    def to_table(self) -> Table:
        """Return the sources with the scalar truth in ``meta``."""
        table = Table(self.sources, copy=True)
        table.meta["ZEROPT"] = self.zero_point
        table.meta["BADCOLS"] = ",".join(str(c) for c in self.bad_columns)
        for key, value in self.background_params.items():
            table.meta[f"BG_{key.upper()}"] = value
        return table

    def write_fits(self, path: str | os.PathLike[str]) -> Path:
        """Write the truth as FITS (layout in the module docstring), atomically."""
        path = Path(path)
        primary = fits.PrimaryHDU()
        primary.header["ZEROPT"] = (self.zero_point, "[mag] Zero point (1 ADU)")
        primary.header["BADCOLS"] = ",".join(str(c) for c in self.bad_columns)
        for key, value in self.background_params.items():
            primary.header[f"BG_{key.upper()}"[:8]] = value
        text = json.dumps(self.psf.to_dict())
        psf_hdu = fits.BinTableHDU.from_columns(
            [fits.Column(name="PSF_JSON", format=f"{len(text)}A", array=[text])], name="PSF"
        )
        hdul = fits.HDUList(
            [
                primary,
                fits.BinTableHDU(Table(self.sources), name="SOURCES"),
                fits.ImageHDU(self.cr_mask.astype(np.uint8), name="CR_MASK"),
                fits.ImageHDU(self.background.astype(np.float32), name="BACKGROUND"),
                psf_hdu,
            ]
        )
        tmp = path.with_name(f".{path.name}.tmp")
        hdul.writeto(tmp, overwrite=True)
        os.replace(tmp, path)
        return path

    @classmethod
    def read_fits(cls, path: str | os.PathLike[str]) -> DetectorTruth:
        """Read a file written by `write_fits`."""
        with fits.open(path) as hdul:
            header = hdul[0].header
            sources = Table.read(hdul["SOURCES"])
            psf = Psf.from_dict(json.loads(hdul["PSF"].data["PSF_JSON"][0]))
            bad = [int(c) for c in str(header.get("BADCOLS", "")).split(",") if c]
            params: dict[str, Any] = {
                k[3:].lower(): header[k] for k in header if k.startswith("BG_")
            }
            return cls(
                sources=sources,
                cr_mask=hdul["CR_MASK"].data.astype(bool),
                background=np.asarray(hdul["BACKGROUND"].data, dtype=np.float32),
                psf=psf,  # type: ignore[arg-type]
                zero_point=float(header["ZEROPT"]),
                bad_columns=bad,
                background_params=params,
            )
