"""Read and write exposures as multi-extension FITS, in LSST's Exposure layout.

Layout written by `write_exposure_fits`::

    HDU 0  PRIMARY   no data; metadata + INSTRUME DETECTOR DETNAME VISIT FILTER BAND EXPTIME
                     DATE-OBS MJD-OBS BORE-RA BORE-DEC ROTANG GAIN RDNOISE SATURATE ZEROPT
                     and the detector geometry (DETORIEN DETFPX DETFPY DETPIXSZ DETX0 DETY0
                     DETNX DETNY)
    HDU 1  IMAGE     float32; the WCS (TAN or TAN-SIP) with CRPIX shifted to the array frame;
                     LTV1/LTV2 = -xy0 and the PHYSICAL 'A' WCS (CRVAL1A = x0) as LSST writes
    HDU 2  MASK      uint32 (stored int32 + BZERO); MP_<NAME> = bit for each plane; written as a
                     lossless RICE_1 tile-compressed HDU (mostly zeros: 16 MiB of a 2048² mask
                     become ~0.1-0.3 MiB for ~0.05 s of CPU; readers see a normal image HDU)
    HDU 3  VARIANCE  float32
    HDU 4  PSF       binary table, one row, column PSF_JSON = UTF-8 bytes of
                     json.dumps(psf.to_dict())
                     (absent when the exposure has no PSF)

Pixel arrays round-trip bit-identically. WCS parameters go through FITS cards (about 14
significant digits), so a WCS read back agrees to ~1e-13 relative, i.e. far below a micro-arcsec.
The metadata header round-trips except for the reserved keywords above, which always reflect the
data model.

`read_exposure_fits` also reads a plain single-HDU image (a user's raw or calibrated frame): the
mask is empty and the variance is ``max(image, 0) / gain + (read_noise / gain)²`` with gain and
read noise (electrons) passed in or taken from the GAIN/RDNOISE keywords. A ``bbox`` reads only
that section of each HDU.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning, Sip

from ._errors import ExposureFormatError, MaskPlaneError, PsfError
from .exposure import DetectorInfo, Exposure, VisitInfo
from .geometry import Box
from .mask import Mask
from .psf import Psf

__all__ = [
    "RESERVED_KEYWORDS",
    "exposure_to_fits_bytes",
    "read_exposure_fits",
    "wcs_from_header",
    "wcs_to_header",
    "write_exposure_fits",
]

_VISIT_KEYS = ("VISIT", "FILTER", "BAND", "EXPTIME", "DATE-OBS", "MJD-OBS", "BORE-RA", "BORE-DEC")
_DETECTOR_KEYS = (
    "DETECTOR", "DETNAME", "GAIN", "RDNOISE", "SATURATE", "DETORIEN", "DETFPX", "DETFPY",
    "DETPIXSZ", "DETX0", "DETY0", "DETNX", "DETNY",
)  # fmt: skip
RESERVED_KEYWORDS: frozenset[str] = frozenset(
    _VISIT_KEYS + _DETECTOR_KEYS + ("INSTRUME", "ROTANG", "ZEROPT")
)
"""Primary-header keywords owned by the data model (not part of ``Exposure.metadata``)."""

_STRUCTURAL = frozenset({"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "EXTNAME"})

PathOrFile = str | os.PathLike[str] | IO[bytes]


# -- WCS --


def wcs_to_header(wcs: WCS, *, xy0: tuple[int, int] = (0, 0)) -> fits.Header:
    """Return FITS cards for a parent-frame WCS, with CRPIX shifted to an array starting at ``xy0``.

    SIP distortion (``-SIP`` ctypes and A/B/AP/BP coefficients) is written when present.
    """
    shifted = wcs.deepcopy()
    shifted.wcs.crpix = wcs.wcs.crpix - np.asarray(xy0, dtype=float)
    if wcs.sip is not None:
        shifted.sip = Sip(wcs.sip.a, wcs.sip.b, wcs.sip.ap, wcs.sip.bp, shifted.wcs.crpix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        header = shifted.to_header(relax=True)
    # wcslib prints 14 significant digits; rewrite the main numbers at full precision (astropy
    # prints Python's shortest round-trip repr when it fits the card).
    for i in range(shifted.wcs.naxis):
        header[f"CRPIX{i + 1}"] = float(shifted.wcs.crpix[i])
        header[f"CRVAL{i + 1}"] = float(shifted.wcs.crval[i])
    if shifted.wcs.naxis == 2:
        # Write the full CD matrix (wcslib writes PC/CDELT and drops zero terms, which some
        # readers, GalSim's among them, do not accept).
        cd = shifted.pixel_scale_matrix
        for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
            header.remove(key, ignore_missing=True)
        for i in range(2):
            for j in range(2):
                header.insert(
                    "CUNIT1" if "CUNIT1" in header else len(header),
                    (f"CD{i + 1}_{j + 1}", float(cd[i, j]), "Linear transformation matrix"),
                )
    return header


def wcs_from_header(
    header: fits.Header, *, xy0: tuple[int, int] = (0, 0), source: str = "header"
) -> WCS | None:
    """Read a celestial WCS from ``header`` into the parent frame (CRPIX + ``xy0``).

    Returns `None` when the header has no ``CTYPE1``.

    Raises
    ------
    ExposureFormatError
        If the WCS keywords cannot be parsed (names ``source``).
    """
    if "CTYPE1" not in header:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, relax=True)
    except Exception as err:  # astropy raises many types for bad WCS cards
        raise ExposureFormatError(f"{source}: invalid WCS keywords (CTYPE1...): {err}") from err
    wcs.wcs.crpix = wcs.wcs.crpix + np.asarray(xy0, dtype=float)
    if wcs.sip is not None:
        wcs.sip = Sip(wcs.sip.a, wcs.sip.b, wcs.sip.ap, wcs.sip.bp, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


# -- writing --


def _primary_header(exposure: Exposure) -> fits.Header:
    header = fits.Header()
    for card in exposure.metadata.cards:
        if card.keyword not in RESERVED_KEYWORDS and card.keyword not in _STRUCTURAL:
            header.append(card)
    visit = exposure.visit
    if visit is not None:
        header["INSTRUME"] = (visit.instrument, "Instrument")
        header["VISIT"] = (visit.id, "Visit number")
        header["FILTER"] = (visit.physical_filter, "Physical filter")
        header["BAND"] = (visit.band, "Abstract band")
        header["EXPTIME"] = (visit.exposure_time, "[s] Exposure time")
        header["DATE-OBS"] = (visit.date_obs, "Start of exposure (TAI)")
        header["MJD-OBS"] = (visit.mjd, "[d] Start of exposure (MJD, TAI)")
        header["BORE-RA"] = (visit.boresight_ra, "[deg] Boresight right ascension")
        header["BORE-DEC"] = (visit.boresight_dec, "[deg] Boresight declination")
        header["ROTANG"] = (visit.rotation_angle, "[deg] Sky rotation angle")
    det = exposure.detector
    if det is not None:
        header["DETECTOR"] = (det.id, "Detector number")
        header["DETNAME"] = (det.name, "Detector name")
        header["GAIN"] = (det.gain, "[e-/ADU] Gain")
        header["RDNOISE"] = (det.read_noise, "[e-] Read noise")
        header["SATURATE"] = (det.saturation, "[ADU] Saturation level")
        header["DETORIEN"] = (det.orientation, "[deg] Pixel axes vs focal plane, CCW")
        header["DETFPX"] = (det.focal_plane_position[0], "[mm] Focal-plane x of centre")
        header["DETFPY"] = (det.focal_plane_position[1], "[mm] Focal-plane y of centre")
        header["DETPIXSZ"] = (det.pixel_size, "[mm] Pixel size")
        for key, value in zip(
            ("DETX0", "DETY0", "DETNX", "DETNY"), det.bbox.to_list(), strict=True
        ):
            header[key] = (value, "Detector bounding box")
    if exposure.zero_point is not None:
        header["ZEROPT"] = (exposure.zero_point, "[mag] Zero point (1 count)")
    return header


def _xy0_cards(header: fits.Header, xy0: tuple[int, int]) -> None:
    header["LTV1"] = -xy0[0]
    header["LTV2"] = -xy0[1]
    header["CRPIX1A"] = 1.0
    header["CRPIX2A"] = 1.0
    header["CRVAL1A"] = float(xy0[0])
    header["CRVAL2A"] = float(xy0[1])
    header["CTYPE1A"] = "LINEAR"
    header["CTYPE2A"] = "LINEAR"
    header["CUNIT1A"] = "PIXEL"
    header["CUNIT2A"] = "PIXEL"
    header["WCSNAMEA"] = "PHYSICAL"


def _mask_hdu(array: np.ndarray, header: fits.Header) -> fits.CompImageHDU:
    """Return the MASK HDU, tile-compressed losslessly (RICE_1 on integers is exact)."""
    return fits.CompImageHDU(
        np.asarray(array, dtype=np.uint32), header=header, name="MASK", compression_type="RICE_1"
    )


def write_exposure_fits(exposure: Exposure, path_or_fileobj: PathOrFile) -> None:
    """Write ``exposure`` as multi-extension FITS (layout in the module docstring).

    Parameters
    ----------
    exposure : `~imaging.exposure.Exposure`
        What to write.
    path_or_fileobj : `str`, `os.PathLike` or binary file object
        Destination. A path is written atomically (temporary name, then rename).
    """
    image_header = fits.Header()
    if exposure.wcs is not None:
        image_header.extend(wcs_to_header(exposure.wcs, xy0=exposure.xy0))
    _xy0_cards(image_header, exposure.xy0)
    mask_header = fits.Header()
    for key, bit in exposure.mask.to_header().items():
        mask_header[key if len(key) <= 8 else f"HIERARCH {key}"] = bit
    _xy0_cards(mask_header, exposure.xy0)
    var_header = fits.Header()
    _xy0_cards(var_header, exposure.xy0)
    hdus = [
        fits.PrimaryHDU(header=_primary_header(exposure)),
        fits.ImageHDU(exposure.image, header=image_header, name="IMAGE"),
        _mask_hdu(exposure.mask.array, mask_header),
        fits.ImageHDU(exposure.variance, header=var_header, name="VARIANCE"),
    ]
    if exposure.psf is not None:
        # UTF-8 JSON as a byte vector: a string column of this length makes astropy strip
        # trailing blanks byte by byte (about 0.5 s for a pixel PSF model).
        raw = np.frombuffer(json.dumps(exposure.psf.to_dict()).encode(), dtype=np.uint8)
        column = fits.Column(name="PSF_JSON", format=f"{max(raw.size, 1)}B", array=raw[None, :])
        psf_hdu = fits.BinTableHDU.from_columns([column], name="PSF")
        psf_hdu.header["PSFKIND"] = exposure.psf.kind
        hdus.append(psf_hdu)
    hdul = fits.HDUList(hdus)
    if isinstance(path_or_fileobj, str | os.PathLike):
        path = Path(path_or_fileobj)
        tmp = path.with_name(f".{path.name}.tmp")
        hdul.writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    else:
        hdul.writeto(path_or_fileobj)


# -- reading --


def _get(header: fits.Header, key: str, kind: type, source: str) -> Any:
    if key not in header:
        raise ExposureFormatError(f"{source}: missing keyword {key}")
    value = header[key]
    try:
        if kind is int and (isinstance(value, bool) or int(value) != value):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ExposureFormatError(
            f"{source}: keyword {key} = {value!r} is not a valid {kind.__name__}"
        ) from None


def _visit_from_header(header: fits.Header, source: str) -> VisitInfo | None:
    if "VISIT" not in header:
        return None
    if "MJD-OBS" in header:
        mjd = _get(header, "MJD-OBS", float, source)
    elif "DATE-OBS" in header:
        try:
            mjd = Time(header["DATE-OBS"], format="isot", scale="tai").mjd
        except ValueError as err:
            raise ExposureFormatError(f"{source}: keyword DATE-OBS is not ISO-8601") from err
    else:
        raise ExposureFormatError(f"{source}: missing keyword MJD-OBS (or DATE-OBS)")
    band = _get(header, "BAND", str, source)
    return VisitInfo(
        id=_get(header, "VISIT", int, source),
        band=band,
        physical_filter=str(header.get("FILTER", band)),
        exposure_time=_get(header, "EXPTIME", float, source),
        mjd=mjd,
        boresight_ra=_get(header, "BORE-RA", float, source),
        boresight_dec=_get(header, "BORE-DEC", float, source),
        rotation_angle=float(header.get("ROTANG", 0.0)),
        instrument=str(header.get("INSTRUME", "")),
    )


def _detector_from_header(
    header: fits.Header, shape: tuple[int, int], source: str
) -> DetectorInfo | None:
    if "DETECTOR" not in header:
        return None
    det_id = _get(header, "DETECTOR", int, source)
    if "DETNX" in header:
        bbox = Box(*(_get(header, k, int, source) for k in ("DETX0", "DETY0", "DETNX", "DETNY")))
    else:  # a user's raw frame: the detector is the image
        bbox = Box.from_shape(shape)
    try:
        return DetectorInfo(
            id=det_id,
            name=str(header.get("DETNAME", det_id)),
            bbox=bbox,
            orientation=float(header.get("DETORIEN", 0.0)),
            focal_plane_position=(
                float(header.get("DETFPX", 0.0)),
                float(header.get("DETFPY", 0.0)),
            ),
            pixel_size=float(header.get("DETPIXSZ", 0.01)),
            gain=_get(header, "GAIN", float, source),
            read_noise=_get(header, "RDNOISE", float, source),
            saturation=float(header.get("SATURATE", np.inf)),
        )
    except ValueError as err:
        if isinstance(err, ExposureFormatError):
            raise
        raise ExposureFormatError(f"{source}: keyword DETORIEN/GAIN: {err}") from err


def _metadata(header: fits.Header) -> fits.Header:
    return fits.Header(
        [
            c
            for c in header.cards
            if c.keyword not in RESERVED_KEYWORDS and c.keyword not in _STRUCTURAL and c.keyword
        ]
    )


def _section(
    hdu: fits.ImageHDU | fits.PrimaryHDU, slices: tuple[slice, slice] | None
) -> np.ndarray:
    if slices is None:
        return np.asarray(hdu.data)
    return np.asarray(hdu.section[slices])


def _xy0_from_header(header: fits.Header, source: str) -> tuple[int, int]:
    if "LTV1" in header or "LTV2" in header:
        return (-_get(header, "LTV1", int, source), -_get(header, "LTV2", int, source))
    if "CRVAL1A" in header:
        return (_get(header, "CRVAL1A", int, source), _get(header, "CRVAL2A", int, source))
    return (0, 0)


def _resolve_bbox(
    bbox: Box | None, full: Box, source: str
) -> tuple[Box, tuple[slice, slice] | None]:
    if bbox is None:
        return full, None
    if bbox.is_empty() or not full.contains(bbox):
        raise ExposureFormatError(f"{source}: requested bbox {bbox} is not inside {full}")
    return bbox, bbox.slices(full.origin)


def read_exposure_fits(
    path: PathOrFile,
    *,
    bbox: Box | None = None,
    gain: float | None = None,
    read_noise: float | None = None,
) -> Exposure:
    """Read an exposure written by `write_exposure_fits`, or a plain single-HDU image.

    Parameters
    ----------
    path : `str`, `os.PathLike` or binary file object
        File to read.
    bbox : `~imaging.geometry.Box`, optional
        Part to read, in the parent frame; only that section of each HDU is read. `None` reads
        everything.
    gain, read_noise : `float`, optional
        For a plain image only: gain (e-/ADU) and read noise (e-) used to build the variance;
        `None` takes them from the GAIN/RDNOISE keywords.

    Returns
    -------
    exposure : `~imaging.exposure.Exposure`

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ExposureFormatError
        If a keyword or HDU is missing or inconsistent; the message names the file and keyword.
    """
    source = str(path) if isinstance(path, str | os.PathLike) else getattr(path, "name", "<file>")
    if isinstance(path, str | os.PathLike) and not Path(path).exists():
        raise FileNotFoundError(f"Exposure file {path} does not exist")
    try:
        hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except OSError as err:
        raise ExposureFormatError(f"{source}: not a FITS file: {err}") from err
    with hdul:
        names = [hdu.name for hdu in hdul]
        if "IMAGE" in names:
            return _read_layout(hdul, names, source, bbox)
        return _read_plain(hdul, source, bbox, gain, read_noise)


def _read_layout(hdul: fits.HDUList, names: list[str], source: str, bbox: Box | None) -> Exposure:
    for name in ("MASK", "VARIANCE"):
        if name not in names:
            raise ExposureFormatError(f"{source}: missing HDU {name} (EXTNAME)")
    primary = hdul[0].header
    image_hdu, mask_hdu, var_hdu = hdul["IMAGE"], hdul["MASK"], hdul["VARIANCE"]
    shape = (image_hdu.header.get("NAXIS2", 0), image_hdu.header.get("NAXIS1", 0))
    for hdu in (mask_hdu, var_hdu):
        other = (hdu.header.get("NAXIS2", 0), hdu.header.get("NAXIS1", 0))
        if other != shape:
            raise ExposureFormatError(
                f"{source}: HDU {hdu.name} NAXIS1/NAXIS2 {other[::-1]} != IMAGE {shape[::-1]}"
            )
    xy0 = _xy0_from_header(image_hdu.header, f"{source}[IMAGE]")
    for hdu in (mask_hdu, var_hdu):
        if ("LTV1" in hdu.header or "CRVAL1A" in hdu.header) and _xy0_from_header(
            hdu.header, f"{source}[{hdu.name}]"
        ) != xy0:
            raise ExposureFormatError(f"{source}: HDU {hdu.name} keyword LTV1/LTV2 != IMAGE's")
    full = Box.from_shape(shape, origin=xy0)
    box, slices = _resolve_bbox(bbox, full, source)
    try:
        planes = Mask.planes_from_header(mask_hdu.header, source=f"{source}[MASK]")
    except MaskPlaneError as err:
        raise ExposureFormatError(str(err)) from err
    mask = Mask(_section(mask_hdu, slices).astype(np.uint32, copy=False), planes or None)
    psf = None
    if "PSF" in names:
        try:
            value = hdul["PSF"].data["PSF_JSON"][0]
            if not isinstance(value, str):
                value = np.asarray(value, np.uint8).tobytes().decode()
            text = value
            psf = Psf.from_dict(json.loads(text))
        except (KeyError, ValueError, PsfError) as err:
            raise ExposureFormatError(
                f"{source}: HDU PSF column PSF_JSON unreadable: {err}"
            ) from err
    zero_point = _get(primary, "ZEROPT", float, source) if "ZEROPT" in primary else None
    return Exposure(
        _section(image_hdu, slices),
        mask=mask,
        variance=_section(var_hdu, slices),
        wcs=wcs_from_header(image_hdu.header, xy0=xy0, source=f"{source}[IMAGE]"),
        psf=psf,
        detector=_detector_from_header(primary, shape, source),
        visit=_visit_from_header(primary, source),
        zero_point=zero_point,
        metadata=_metadata(primary),
        xy0=box.origin,
    )


def _read_plain(
    hdul: fits.HDUList,
    source: str,
    bbox: Box | None,
    gain: float | None,
    read_noise: float | None,
) -> Exposure:
    hdu = hdul[0]
    if hdu.header.get("NAXIS", 0) != 2:
        raise ExposureFormatError(
            f"{source}: keyword NAXIS = {hdu.header.get('NAXIS')}: no IMAGE HDU and the primary "
            "HDU is not a 2-D image"
        )
    header = hdu.header
    shape = (header["NAXIS2"], header["NAXIS1"])
    xy0 = _xy0_from_header(header, source)
    box, slices = _resolve_bbox(bbox, Box.from_shape(shape, origin=xy0), source)
    image = _section(hdu, slices).astype(np.float32)
    gain = _get(header, "GAIN", float, source) if gain is None else float(gain)
    read_noise = _get(header, "RDNOISE", float, source) if read_noise is None else float(read_noise)
    if not gain > 0:
        raise ExposureFormatError(f"{source}: keyword GAIN = {gain} must be positive")
    variance = (np.maximum(image, 0.0) / gain + (read_noise / gain) ** 2).astype(np.float32)
    zero_point = _get(header, "ZEROPT", float, source) if "ZEROPT" in header else None
    wcs_header = fits.Header([c for c in header.cards if c.keyword not in _STRUCTURAL])
    return Exposure(
        image,
        variance=variance,
        wcs=wcs_from_header(wcs_header, xy0=xy0, source=source),
        detector=_detector_from_header(header, shape, source),
        visit=_visit_from_header(header, source),
        zero_point=zero_point,
        metadata=_metadata(header),
        xy0=box.origin,
    )


def exposure_to_fits_bytes(exposure: Exposure) -> bytes:
    """Return the FITS file of `write_exposure_fits` as bytes (for object stores)."""
    buffer = io.BytesIO()
    write_exposure_fits(exposure, buffer)
    return buffer.getvalue()
