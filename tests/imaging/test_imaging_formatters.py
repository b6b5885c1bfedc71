"""Imaging storage classes through a real butler: every formatter round-trips exactly."""

from __future__ import annotations

import numpy as np
import pytest
from _exposure_factory import assert_exposures_equal, make_exposure
from astropy.table import Table

from butler import Butler, DatasetType, StorageClass
from butler.testing.formatter_tests import FormatterTests
from imaging.background import BackgroundConfig, BackgroundList, estimate_background
from imaging.formatters import BackgroundFitsFormatter
from imaging.geometry import Box
from imaging.psf_determiner import PixelPsf
from imaging.storage_classes import STORAGE_CLASSES


def _background() -> BackgroundList:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:300, :260]
    image = (100 + 0.05 * xx + 0.02 * yy + rng.normal(0, 3, (300, 260))).astype(np.float32)
    pieces = [
        estimate_background(image, config=BackgroundConfig(bin_size=64)),
        estimate_background(image * 0.1, config=BackgroundConfig(bin_size=32, use_approx=False)),
    ]
    return BackgroundList(pieces)


class TestBackgroundFitsFormatter(FormatterTests):
    formatter_class = BackgroundFitsFormatter
    storage_class = next(sc for sc in STORAGE_CLASSES if sc.name == "Background")

    def make_objects(self):
        return [_background(), BackgroundList()]

    def assert_same(self, read, written):
        assert type(read) is type(written)
        assert read.to_dict() == written.to_dict()


@pytest.fixture
def butler(tmp_path):
    Butler.create(tmp_path / "repo")
    b = Butler(tmp_path / "repo", run="r")
    b.registry.insert_dimension_records("instrument", [{"name": "Cam"}])
    b.registry.insert_dimension_records("detector", [{"instrument": "Cam", "id": 1}])
    for name, sc in (
        ("calexp", "Exposure"),
        ("src", "SourceCatalog"),
        ("bkg", "Background"),
        ("calexpZarr", "ExposureZarr"),
    ):
        if sc == "ExposureZarr":
            b.storage_classes.register(
                StorageClass(
                    "ExposureZarr",
                    "imaging.exposure.Exposure",
                    "imaging.formatters.ExposureZarrFormatter",
                    ("bbox",),
                )
            )
        b.registry.register_dataset_type(DatasetType.make(name, ["detector"], sc, b.universe))
    return b


@pytest.mark.parametrize("dataset_type", ["calexp", "calexpZarr"])
def test_exposure_roundtrip_and_bbox(butler, dataset_type):
    exposure = make_exposure(shape=(300, 260), xy0=(40, 70))
    ref = butler.put(exposure, dataset_type, instrument="Cam", detector=1)
    assert_exposures_equal(butler.get(ref), exposure)
    box = Box(100, 150, 50, 60)
    cut = butler.get(ref, parameters={"bbox": box})
    assert cut.xy0 == (100, 150) and cut.image.shape == (60, 50)
    np.testing.assert_array_equal(cut.image, exposure.subset(box).image)
    np.testing.assert_array_equal(cut.mask.array, exposure.subset(box).mask.array)
    # the WCS still maps the same pixels to the same sky positions
    sky_full = exposure.wcs.pixel_to_world_values(120.0, 170.0)
    sky_cut = cut.wcs.pixel_to_world_values(120.0, 170.0)
    np.testing.assert_allclose(sky_full, sky_cut, atol=1e-9)


def test_exposure_with_pixel_psf_roundtrip(butler):
    exposure = make_exposure(shape=(120, 100))
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[-7:8, -7:8]
    base = np.exp(-(xx**2 + yy**2) / (2 * 1.7**2))
    coefficients = np.stack(
        [base / base.sum()] + [rng.normal(0, 1e-4, base.shape) for _ in range(5)]
    )
    exposure.psf = PixelPsf(
        coefficients,
        spatial_order=2,
        x_range=(0.0, 99.0),
        y_range=(0.0, 119.0),
        average_position=(50.0, 60.0),
    )
    ref = butler.put(exposure, "calexp", instrument="Cam", detector=1)
    back = butler.get(ref)
    assert isinstance(back.psf, PixelPsf) and back.psf == exposure.psf
    np.testing.assert_array_equal(
        back.psf.kernel_image((10.0, 20.0)), exposure.psf.kernel_image((10.0, 20.0))
    )


def test_source_catalog_roundtrip(butler):
    table = Table()
    table["id"] = np.arange(5, dtype=np.int64)
    table["base_SdssCentroid_x"] = np.linspace(0, 1, 5)
    table["base_SdssCentroid_x"].unit = "pix"
    table["calib_psf_used"] = np.array([True, False, True, False, False])
    table.meta["EXPID"] = 42
    ref = butler.put(table, "src", instrument="Cam", detector=1)
    back = butler.get(ref)
    assert back.colnames == table.colnames
    for name in table.colnames:
        np.testing.assert_array_equal(back[name], table[name])
        assert back[name].dtype == table[name].dtype
    assert str(back["base_SdssCentroid_x"].unit) == "pix" and back.meta["EXPID"] == 42


def test_background_through_butler(butler):
    background = _background()
    ref = butler.put(background, "bkg", instrument="Cam", detector=1)
    back = butler.get(ref)
    np.testing.assert_array_equal(back.evaluate((300, 260)), background.evaluate((300, 260)))


def test_wrong_type_is_refused(butler):
    with pytest.raises(Exception, match="Exposure"):
        butler.put(np.zeros((3, 3)), "calexp", instrument="Cam", detector=1)
