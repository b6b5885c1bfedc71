import io

import numpy as np
import pytest
from _exposure_factory import assert_exposures_equal, assert_wcs_close, make_exposure
from astropy.io import fits

from imaging._errors import ExposureFormatError, ImagingError
from imaging.fits_io import read_exposure_fits, write_exposure_fits
from imaging.geometry import Box


def test_round_trip_exact(tmp_path):
    exp = make_exposure(xy0=(1000, 2000))
    path = tmp_path / "exp.fits"
    write_exposure_fits(exp, path)
    back = read_exposure_fits(path)
    assert_exposures_equal(exp, back)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE", "PSF"]
        primary = hdul[0].header
        for key in (
            "INSTRUME",
            "DETECTOR",
            "DETNAME",
            "VISIT",
            "FILTER",
            "BAND",
            "EXPTIME",
            "DATE-OBS",
            "MJD-OBS",
            "BORE-RA",
            "BORE-DEC",
            "ROTANG",
            "ZEROPT",
        ):
            assert key in primary, key
        assert hdul["IMAGE"].header["LTV1"] == -1000 and hdul["IMAGE"].header["CRVAL2A"] == 2000
        assert hdul["MASK"].header["MP_STREAK"] == 11
        assert hdul["IMAGE"].header["CTYPE1"] == "RA---TAN-SIP"
        # A plain FITS reader sees the right sky for the array: CRPIX shifted by -xy0.
        assert hdul["IMAGE"].header["CRPIX1"] == pytest.approx(exp.wcs.wcs.crpix[0] - 1000)


def test_round_trip_file_object():
    exp = make_exposure()
    buffer = io.BytesIO()
    write_exposure_fits(exp, buffer)
    buffer.seek(0)
    assert_exposures_equal(exp, read_exposure_fits(buffer))


def test_bbox_read(tmp_path):
    exp = make_exposure(xy0=(100, 200))
    path = tmp_path / "exp.fits"
    write_exposure_fits(exp, path)
    box = Box(130, 250, 64, 40)
    part = read_exposure_fits(path, bbox=box)
    ref = exp[box]
    assert part.xy0 == (130, 250) and part.bbox == box
    assert np.array_equal(part.image, ref.image)
    assert np.array_equal(part.mask.array, ref.mask.array)
    assert np.array_equal(part.variance, ref.variance)
    assert_wcs_close(part.wcs, exp.wcs, box)
    with pytest.raises(ExposureFormatError, match="bbox"):
        read_exposure_fits(path, bbox=Box(0, 0, 10, 10))


def test_plain_single_hdu(tmp_path):
    data = np.full((20, 30), 400.0, dtype=np.float32)
    hdu = fits.PrimaryHDU(data)
    hdu.header["GAIN"] = 2.0
    hdu.header["RDNOISE"] = 4.0
    path = tmp_path / "plain.fits"
    hdu.writeto(path)
    exp = read_exposure_fits(path)
    assert not exp.mask.array.any() and exp.wcs is None and exp.psf is None
    assert np.allclose(exp.variance, 400 / 2 + (4 / 2) ** 2)
    exp2 = read_exposure_fits(path, gain=4.0, read_noise=0.0)
    assert np.allclose(exp2.variance, 100.0)
    del hdu.header["GAIN"]
    hdu.writeto(tmp_path / "nogain.fits")
    with pytest.raises(ExposureFormatError, match=r"nogain\.fits.*GAIN"):
        read_exposure_fits(tmp_path / "nogain.fits")


def test_bad_headers_name_file_and_keyword(tmp_path):
    exp = make_exposure()
    path = tmp_path / "exp.fits"
    write_exposure_fits(exp, path)
    with fits.open(path) as hdul:
        del hdul[0].header["BAND"]
        hdul.writeto(tmp_path / "noband.fits")
    with pytest.raises(ExposureFormatError, match=r"noband\.fits.*BAND"):
        read_exposure_fits(tmp_path / "noband.fits")
    with fits.open(path) as hdul:
        hdul[0].header["EXPTIME"] = "long"
        hdul.writeto(tmp_path / "badexp.fits")
    with pytest.raises(ValueError, match="EXPTIME"):
        read_exposure_fits(tmp_path / "badexp.fits")
    with fits.open(path) as hdul:
        hdul["VARIANCE"].data = hdul["VARIANCE"].data[:-1]
        hdul.writeto(tmp_path / "shape.fits")
    with pytest.raises(ImagingError, match="VARIANCE"):
        read_exposure_fits(tmp_path / "shape.fits")
    with fits.open(path) as hdul:
        hdul["MASK"].header["MP_CR"] = 0
        hdul.writeto(tmp_path / "maskbit.fits")
    with pytest.raises(ExposureFormatError, match="MP_CR"):
        read_exposure_fits(tmp_path / "maskbit.fits")
    with pytest.raises(FileNotFoundError):
        read_exposure_fits(tmp_path / "missing.fits")


def test_bare_exposure_round_trip(tmp_path):
    from imaging.exposure import Exposure

    exp = Exposure(np.arange(12, dtype=np.float32).reshape(3, 4), xy0=(-5, 7))
    write_exposure_fits(exp, tmp_path / "bare.fits")
    back = read_exposure_fits(tmp_path / "bare.fits")
    assert back.xy0 == (-5, 7) and np.array_equal(back.image, exp.image)
    assert back.wcs is None and back.psf is None and back.visit is None and back.detector is None
    assert back.zero_point is None and back.mask == exp.mask


def test_mask_is_stored_losslessly_compressed(tmp_path):
    from imaging.exposure import Exposure
    from imaging.mask import Mask

    rng = np.random.default_rng(3)
    mask = Mask((1024, 1024))
    mask.array[rng.integers(0, 1024, 500), rng.integers(0, 1024, 500)] = 0xFFFFFFFF  # all bits
    mask.array[100:140, 200:260] = 1 << 31
    image = rng.normal(size=(1024, 1024)).astype(np.float32)
    path = tmp_path / "masked.fits"
    write_exposure_fits(Exposure(image, mask=mask, variance=image**2), path)
    with fits.open(path) as hdul:
        assert isinstance(hdul["MASK"], fits.CompImageHDU)
        assert hdul["MASK"].compression_type == "RICE_1"
    # two float planes of 4 MiB and a mask of ~4 MiB stored in a few KiB
    assert path.stat().st_size < 2 * image.nbytes + 200_000
    back = read_exposure_fits(path)
    assert back.mask.array.dtype == np.uint32
    np.testing.assert_array_equal(back.mask.array, mask.array)
    part = read_exposure_fits(path, bbox=Box(190, 90, 80, 60))
    np.testing.assert_array_equal(part.mask.array, mask.array[90:150, 190:270])
