import numpy as np
import pytest
from astropy.io import fits

from imaging.fits_io import read_exposure_fits
from imaging.refcat import read_reference_catalog
from imaging.sim import (
    Camera,
    DetectorTruth,
    SimOptions,
    SkyModel,
    Visit,
    make_camera,
    make_reference_catalog,
    render_detector_png,
    write_simulated_observations,
)

INGEST_KEYS = (
    "INSTRUME", "DETECTOR", "VISIT", "BAND", "FILTER", "EXPTIME", "DATE-OBS", "MJD-OBS",
    "BORE-RA", "BORE-DEC", "GAIN", "RDNOISE", "SATURATE",
)  # fmt: skip


def test_reference_catalog_holds_the_simulated_stars(sims, sky, visit):
    sim = sims[0]
    cat = make_reference_catalog(
        (visit.ra, visit.dec),
        0.1,
        seed=11,
        density=sky.star_density,
        mag_range=sky.star_mag_range,
    )
    again = make_reference_catalog(
        (visit.ra, visit.dec),
        0.1,
        seed=11,
        density=sky.star_density,
        mag_range=sky.star_mag_range,
    )
    assert np.array_equal(cat["id"], again["id"]) and np.array_equal(cat["ra"], again["ra"])
    stars = sim.truth.stars
    assert len(stars) > 20
    assert set(stars["id"]) <= set(cat["id"])
    assert str(cat["ra"].unit) == "deg"


def test_truth_fits_round_trip(sims, tmp_path):
    truth = sims[1].truth
    path = truth.write_fits(tmp_path / "truth.fits")
    back = DetectorTruth.read_fits(path)
    assert np.array_equal(back.cr_mask, truth.cr_mask)
    assert np.array_equal(back.background, truth.background)
    assert back.bad_columns == truth.bad_columns and back.zero_point == truth.zero_point
    assert np.array_equal(back.sources["x"], truth.sources["x"])
    assert back.background_params == pytest.approx(truth.background_params)
    x, y = truth.sources["x"][0], truth.sources["y"][0]
    assert np.array_equal(back.psf_at(x, y), truth.psf_at(x, y))


def test_write_simulated_observations(tmp_path):
    cam = make_camera(2, detector_size=256)
    visits = [Visit(1, "g", 30.0, -10.0), Visit(2, "r", 30.01, -10.0, rotation_angle=45.0)]
    paths = write_simulated_observations(
        tmp_path,
        cam,
        visits,
        seed=5,
        sky=SkyModel(star_density=50_000),
        options=SimOptions(cr_rate=1.0),
    )
    assert len(paths) == 4 and all(p.exists() for p in paths)
    assert Camera.from_yaml(tmp_path / "camera.yaml") == cam
    refcat = read_reference_catalog(tmp_path / "refcat.fits")
    assert len(refcat) > 10
    header = fits.getheader(paths[3])
    for key in INGEST_KEYS:
        assert key in header, key
    assert (header["VISIT"], header["DETECTOR"], header["BAND"]) == (2, 1, "r")
    exp = read_exposure_fits(paths[3])
    assert exp.visit.id == 2 and exp.detector == cam.detector(1)
    truth_files = sorted((tmp_path / "truth").glob("*_truth.fits"))
    assert len(truth_files) == 4
    truth = DetectorTruth.read_fits(truth_files[3])
    assert set(truth.stars["id"]) <= set(refcat["id"])


def test_render_png(sims, tmp_path):
    path = render_detector_png(sims[0], tmp_path / "det.png", dpi=50)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
