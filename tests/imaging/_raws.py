"""Plain single-HDU raw files for the ingest and characterization tests.

`write_plain_raw` writes an image with the primary keywords the README requires of a plain raw
(``INSTRUME DETECTOR VISIT FILTER BAND EXPTIME MJD-OBS BORE-RA BORE-DEC GAIN RDNOISE SATURATE``)
and a TAN WCS. `saturated_star_image` makes a small frame with one saturated star and a
one-column bleed trail, clipped at the saturation level as an ADC does.

`write_dss_m13_raw` wraps a real image that ships with astropy (its FITS test data): a 300²
Digitized Sky Survey frame of the globular cluster M13 with a TAN WCS (1"/pixel), as a plain
raw with the keywords of `M13_KEYWORDS`.

`write_emmi_raw` wraps the sep source distribution's 256² ESO/EMMI frame (SExtractor's
background, RMS map and catalog beside it) as a plain raw with `EMMI_KEYWORDS`. The sep wheel
does not ship it: ``scripts/fetch_test_data.py`` (run by ``make .venv/.installed``) unpacks it
from the sep sdist into `sep_data_dir` at install time; nothing is downloaded at test time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

__all__ = [
    "EMMI_KEYWORDS",
    "EMMI_SATURATE",
    "M13_KEYWORDS",
    "RAW_KEYWORDS",
    "m13_path",
    "read_sep_image",
    "saturated_star_image",
    "sep_data_dir",
    "write_dss_m13_raw",
    "write_emmi_raw",
    "write_plain_raw",
]

#: Header values of the plain raws written here (SimCam detector 0, visit 7).
RAW_KEYWORDS: dict[str, object] = {
    "INSTRUME": "SimCam",
    "DETECTOR": 0,
    "VISIT": 7,
    "FILTER": "r",
    "BAND": "r",
    "EXPTIME": 30.0,
    "MJD-OBS": 60000.2,
    "BORE-RA": 150.0,
    "BORE-DEC": 2.0,
    "GAIN": 1.5,
    "RDNOISE": 5.0,
}


def write_plain_raw(
    path: str | Path,
    image: np.ndarray,
    *,
    saturation: float | None,
    keywords: dict[str, object] | None = None,
    pixel_scale: float = 0.2,
) -> Path:
    """Write ``image`` as a plain single-HDU FITS raw with a TAN WCS at the boresight.

    ``saturation`` becomes ``SATURATE`` (no keyword when `None`); ``keywords`` override
    `RAW_KEYWORDS`.
    """
    header = fits.Header()
    cards = dict(RAW_KEYWORDS, **(keywords or {}))
    for key, value in cards.items():
        header[key] = value
    if saturation is not None:
        header["SATURATE"] = float(saturation)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(cards["BORE-RA"]), float(cards["BORE-DEC"])]
    wcs.wcs.crpix = [image.shape[1] / 2.0, image.shape[0] / 2.0]
    wcs.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    header.update(wcs.to_header())
    path = Path(path)
    fits.PrimaryHDU(np.asarray(image, np.float32), header=header).writeto(path)
    return path


def saturated_star_image(
    shape: tuple[int, int] = (200, 200),
    *,
    saturation: float = 60000.0,
    sky: float = 1000.0,
    noise: float = 25.0,
    star_flux: float = 3.0e6,
    sigma: float = 2.0,
    trail: int = 40,
    seed: int = 3,
) -> tuple[np.ndarray, tuple[float, float]]:
    """An image with one saturated Gaussian star and a bleed trail along its column.

    Returns the image (clipped at ``saturation``) and the star's ``(x, y)``; the trail runs
    ``trail`` pixels up and down from the star's row.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    x0, y0 = nx / 2 + 0.3, ny / 2 - 0.4
    y, x = np.mgrid[0:ny, 0:nx]
    image = sky + rng.normal(0.0, noise, shape)
    image += star_flux / (2 * np.pi * sigma**2) * np.exp(
        -((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)
    )
    column = int(round(x0))
    row = int(round(y0))
    image[row - trail : row + trail + 1, column] = saturation + 100.0
    return np.minimum(image, saturation), (x0, y0)


#: Header values added to astropy's DSS M13 image to make it a raw. The sky noise of the frame
#: (clipped rms 11.1 at a level of 123) is Poisson-like with gain 1; the brightest stars of the
#: cluster core reach 3618, so saturation is set just below at 3500.
M13_KEYWORDS: dict[str, object] = {
    "INSTRUME": "DSS",
    "DETECTOR": 0,
    "VISIT": 1,
    "FILTER": "r",
    "BAND": "r",
    "EXPTIME": 3600.0,
    "MJD-OBS": 50000.0,
    "BORE-RA": 250.4226,
    "BORE-DEC": 36.4602,
    "GAIN": 1.0,
    "RDNOISE": 1.0,
    "SATURATE": 3500.0,
}


def m13_path() -> Path:
    """Path of astropy's DSS image of M13 (astropy's FITS test data)."""
    import astropy

    return Path(astropy.__file__).parent / "io/fits/hdu/compressed/tests/data/m13.fits"


def write_dss_m13_raw(path: str | Path) -> Path:
    """Write astropy's DSS M13 frame as a plain float32 raw with `M13_KEYWORDS` added."""
    with fits.open(m13_path()) as hdul:
        header = hdul[0].header.copy()
        image = np.asarray(hdul[0].data, dtype=np.float32)
    for key in ("BITPIX", "CHECKSUM", "DATASUM"):
        header.remove(key, ignore_missing=True)
    for key, value in M13_KEYWORDS.items():
        header[key] = value
    path = Path(path)
    fits.PrimaryHDU(image, header=header).writeto(path)
    return path


#: Header values that make the EMMI frame a raw. The frame is a sum of three exposures (1200 s
#: in all, ESO NTT, 1992-10-26); SATURATE is SExtractor's SATUR_LEVEL of sep's ``default.sex``
#: (50000: its catalog flags the brightest star, peak 98215, as saturated); GAIN is the sky's
#: Poisson gain (level 6850 ADU, rms 65 ADU: 6850 / 65² = 1.6 e-/ADU); RDNOISE is not in the
#: header and is small against the sky noise (5 ADU assumed).
EMMI_KEYWORDS: dict[str, object] = {
    "INSTRUME": "EMMI",
    "DETECTOR": 0,
    "VISIT": 1,
    "FILTER": "R",
    "BAND": "r",
    "EXPTIME": 1200.0,
    "MJD-OBS": 48921.62787,
    "BORE-RA": 0.0,
    "BORE-DEC": 0.0,
    "GAIN": 1.6,
    "RDNOISE": 5.0,
}
#: SATURATE of the EMMI raw (SExtractor's SATUR_LEVEL for this frame).
EMMI_SATURATE = 50000.0


def sep_data_dir() -> Path:
    """Where ``scripts/fetch_test_data.py`` put sep's ``data/`` files (may not exist)."""
    import sys

    return Path(sys.prefix) / "share" / "skyquanta-test-data" / "sep"


def read_sep_image(name: str) -> np.ndarray:
    """One image of `sep_data_dir` (``image.fits``, ``back.fits``, ``rms.fits``) as float64."""
    import warnings

    from astropy.utils.exceptions import AstropyUserWarning

    with warnings.catch_warnings():  # their ESO-LOG cards are not standard FITS: not used here
        warnings.simplefilter("ignore", AstropyUserWarning)
        return fits.getdata(sep_data_dir() / name).astype(np.float64)


def write_emmi_raw(path: str | Path) -> Path:
    """Write sep's EMMI frame as a plain raw (`EMMI_KEYWORDS`, TAN WCS at 0.27"/pixel)."""
    image = read_sep_image("image.fits").astype(np.float32)
    return write_plain_raw(
        path, image, saturation=EMMI_SATURATE, keywords=EMMI_KEYWORDS, pixel_scale=0.27
    )
