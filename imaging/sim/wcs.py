"""Distorted TAN-SIP WCS of a simulated detector.

The sky is projected on the focal plane gnomonically about the boresight, then distorted
radially: ``r' = r (1 + k r²)`` with ``k`` in mm⁻². In detector pixels about the boresight
pixel ``(u, v) = p - CRPIX`` that is a cubic SIP polynomial with ``A_3_0 = A_1_2 = B_0_3 =
B_2_1 = k_pix = k * pixel_size²`` and the reference pixel on the boresight; because the
distortion is radial, only ``CRPIX`` and the CD matrix depend on the detector position and
rotation. The inverse polynomials AP/BP (order 5) are fitted over the detector so that any FITS
reader gets a good first guess; astropy and GalSim iterate to convergence.

CD matrix: focal-plane (mm) to intermediate world coordinates (east, north in deg) is
``s * [[-cos ρ, sin ρ], [sin ρ, cos ρ]]`` with ``s`` the plate scale and ``ρ`` the visit's sky
rotation angle (focal-plane +y at position angle ρ east of north, +x west at ρ = 0, the usual
sky parity); pixel offsets reach the focal plane through the detector rotation ``R(θ)``.
"""

from __future__ import annotations

import math

import galsim
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, Sip

from ..exposure import DetectorInfo
from ..fits_io import wcs_to_header

__all__ = ["make_detector_wcs", "to_galsim_wcs"]

_INVERSE_ORDER = 5


def _fit_inverse(k_pix: float, crpix0: np.ndarray, det: DetectorInfo) -> tuple[np.ndarray, ...]:
    """Fit AP/BP: polynomials of the distorted offsets giving the undistorted ones."""
    b = det.bbox
    xs, ys = np.meshgrid(
        np.linspace(b.x0 - 10, b.x1 + 10, 25), np.linspace(b.y0 - 10, b.y1 + 10, 25)
    )
    u = xs.ravel() - crpix0[0]
    v = ys.ravel() - crpix0[1]
    # Points in intermediate pixel space U = u (1 + k r²); we need u - U as a function of U, V.
    r2 = u * u + v * v
    big_u, big_v = u * (1 + k_pix * r2), v * (1 + k_pix * r2)
    terms = [(i, j) for i in range(_INVERSE_ORDER + 1) for j in range(_INVERSE_ORDER + 1 - i)]
    norm = max(float(np.abs(big_u).max()), float(np.abs(big_v).max()), 1.0)
    design = np.stack([(big_u / norm) ** i * (big_v / norm) ** j for i, j in terms], axis=1)
    coefs, *_ = np.linalg.lstsq(design, np.column_stack([u - big_u, v - big_v]), rcond=None)
    coef_u, coef_v = coefs[:, 0], coefs[:, 1]
    ap = np.zeros((_INVERSE_ORDER + 1, _INVERSE_ORDER + 1))
    bp = np.zeros_like(ap)
    for (i, j), cu, cv in zip(terms, coef_u, coef_v, strict=True):
        ap[i, j] = cu / norm ** (i + j)
        bp[i, j] = cv / norm ** (i + j)
    return ap, bp


def make_detector_wcs(
    *,
    detector: DetectorInfo,
    boresight: tuple[float, float],
    rotation_angle: float,
    pixel_scale: float,
    distortion_k: float,
) -> WCS:
    """Build the TAN-SIP WCS of one detector for one pointing.

    Parameters
    ----------
    detector : `~imaging.exposure.DetectorInfo`
        Detector geometry (focal-plane position and orientation).
    boresight : `tuple` [`float`, `float`]
        Pointing ``(ra, dec)`` (deg).
    rotation_angle : `float`
        Sky rotation angle (deg, position angle of focal-plane +y, east of north).
    pixel_scale : `float`
        Arcsec per pixel at the boresight.
    distortion_k : `float`
        Radial distortion (mm⁻²); 0 gives a pure TAN WCS (still with ``-SIP`` ctypes).

    Returns
    -------
    wcs : `astropy.wcs.WCS`
        WCS in the detector's pixel frame (0-based parent coordinates).
    """
    pix = detector.pixel_size
    scale_deg = pixel_scale / 3600.0 / pix  # deg per mm
    rho = math.radians(rotation_angle)
    fp_to_sky = scale_deg * np.array(
        [[-math.cos(rho), math.sin(rho)], [math.sin(rho), math.cos(rho)]]
    )
    theta = math.radians(detector.orientation)
    c, s = round(math.cos(theta), 12), round(math.sin(theta), 12)
    pix_to_fp = pix * np.array([[c, -s], [s, c]])
    cd = fp_to_sky @ pix_to_fp
    bx, by = detector.focal_plane_to_pixel(0.0, 0.0)
    crpix0 = np.array([float(bx), float(by)])  # 0-based boresight pixel
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [boresight[0] % 360.0, boresight[1]]
    wcs.wcs.crpix = crpix0 + 1.0
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    k_pix = distortion_k * pix * pix
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = k_pix
    b[0, 3] = b[2, 1] = k_pix
    ap, bp = _fit_inverse(k_pix, crpix0, detector)
    wcs.sip = Sip(a, b, ap, bp, wcs.wcs.crpix)
    wcs.pixel_shape = (detector.bbox.width, detector.bbox.height)
    wcs.wcs.set()
    return wcs


def to_galsim_wcs(wcs: WCS) -> galsim.GSFitsWCS:
    """Convert an astropy (TAN-SIP) WCS to a GalSim WCS.

    GalSim image positions are 1-based: parent pixel ``(x, y)`` is ``galsim.PositionD(x + 1,
    y + 1)``.
    """
    header: fits.Header = wcs_to_header(wcs)
    return galsim.GSFitsWCS(header=galsim.FitsHeader(header=header))
