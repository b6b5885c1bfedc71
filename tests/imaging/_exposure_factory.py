"""A small, fully populated exposure shared by the I/O tests."""

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, Sip

from imaging.exposure import DetectorInfo, Exposure, VisitInfo
from imaging.geometry import Box
from imaging.mask import Mask
from imaging.psf import GaussianPsf


def make_wcs(crpix=(-1500.25, 2100.5)):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [150.1234567890123, 2.345678901234567]
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.cd = np.array([[-5.555555555555556e-05, 1.2e-07], [1.1e-07, 5.555555555555556e-05]])
    k = 6.6e-11
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = b[0, 3] = b[2, 1] = k
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def make_exposure(shape=(300, 260), xy0=(0, 0), seed=1):
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 5.0, shape).astype(np.float32)
    mask = Mask(shape)
    mask.add_plane("STREAK")
    mask.set("SAT", rng.uniform(size=shape) < 0.01)
    mask.set("STREAK", rng.uniform(size=shape) < 0.01)
    variance = rng.uniform(20, 30, shape).astype(np.float32)
    metadata = fits.Header()
    metadata["OBSERVER"] = ("sim", "who")
    metadata["AIRMASS"] = 1.2345678
    detector = DetectorInfo(
        id=3,
        name="S01",
        bbox=Box(0, 0, 4096, 4096),
        orientation=90.0,
        focal_plane_position=(41.0, -20.5),
        pixel_size=0.01,
        gain=1.52,
        read_noise=5.9,
        saturation=65000.0,
    )
    visit = VisitInfo(
        id=1234,
        band="r",
        physical_filter="r_sim",
        exposure_time=30.0,
        mjd=60310.123456789,
        boresight_ra=150.0,
        boresight_dec=2.0,
        rotation_angle=12.5,
        instrument="SimCam",
    )
    return Exposure(
        image,
        mask=mask,
        variance=variance,
        wcs=make_wcs(),
        psf=GaussianPsf(2.1, ellipticity=(0.05, -0.02)),
        detector=detector,
        visit=visit,
        zero_point=31.4159,
        metadata=metadata,
        xy0=xy0,
    )


def assert_wcs_close(w1, w2, box):
    xs = np.linspace(box.x0, box.x1 - 1, 7)
    ys = np.linspace(box.y0, box.y1 - 1, 7)
    x, y = np.meshgrid(xs, ys)
    r1, d1 = w1.all_pix2world(x, y, 0)
    r2, d2 = w2.all_pix2world(x, y, 0)
    assert np.allclose(r1, r2, rtol=0, atol=1e-12)  # deg: < 4 nano-arcsec
    assert np.allclose(d1, d2, rtol=0, atol=1e-12)


def assert_exposures_equal(a, b, *, exact_wcs=False):
    assert a.xy0 == b.xy0
    assert np.array_equal(a.image, b.image) and a.image.dtype == b.image.dtype == np.float32
    assert np.array_equal(a.variance, b.variance)
    assert a.mask == b.mask and a.mask.array.dtype == np.uint32
    assert a.psf == b.psf
    assert a.detector == b.detector
    assert a.visit == b.visit
    assert a.zero_point == b.zero_point
    for key in ("OBSERVER", "AIRMASS"):
        assert a.metadata[key] == b.metadata[key]
    if exact_wcs:
        assert np.array_equal(a.wcs.wcs.crpix, b.wcs.wcs.crpix)
        assert np.array_equal(a.wcs.wcs.cd, b.wcs.wcs.cd)
        assert np.array_equal(a.wcs.wcs.crval, b.wcs.wcs.crval)
        assert np.array_equal(a.wcs.sip.a, b.wcs.sip.a)
    assert_wcs_close(a.wcs, b.wcs, a.bbox)
