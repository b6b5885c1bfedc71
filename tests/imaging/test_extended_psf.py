"""ExtendedPsf: the data model, LSST's __call__ rules, FITS (science.md §4.1) and zarr storage."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from butler.testing.formatter_tests import FormatterTests
from imaging.exposure import Exposure
from imaging.extended_psf import ExtendedPsf, ExtendedPsfError, RegionalExtendedPsf
from imaging.extended_psf_io import (
    ExtendedPsfFormatError,
    read_extended_psf_fits,
    write_extended_psf_fits,
)
from imaging.extended_psf_profile import ProfileFit
from imaging.formatters import ExtendedPsfFitsFormatter, ExtendedPsfZarrFormatter
from imaging.mask import Mask
from imaging.storage_classes import STORAGE_CLASSES


def _model(seed, size=21):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(size, size)).astype(np.float32)
    image[0, :3] = np.nan
    mask = Mask((size, size))
    mask.set("NO_DATA", np.isnan(image))
    return Exposure(image, mask=mask)


def _profile(seed):
    rng = np.random.default_rng(seed)
    return ProfileFit(*(float(v) for v in rng.uniform(0.1, 5, 9)))


def _objects():
    only_default = ExtendedPsf(_model(1), metadata={"normalization": "ANNULUS", "n": 3})
    regional = ExtendedPsf(metadata={"STATISTIC": "MEANCLIP", "SCALE": 0.1 + 0.2})
    regional.add_regional_extended_psf(
        RegionalExtendedPsf(_model(2), [0, 1], n_stamps=40, profile=_profile(2)), "center"
    )
    regional.add_regional_extended_psf(_model(3), "Edge_2", [5, 6, 7])
    both = ExtendedPsf(RegionalExtendedPsf(_model(4), n_stamps=9, profile=_profile(4)))
    both.add_regional_extended_psf(_model(5), "R", [])
    return [only_default, regional, both]


class _Tests(FormatterTests):
    def make_objects(self):
        return _objects()

    def assert_same(self, read, written):
        assert type(read) is ExtendedPsf
        assert read.equals(written)
        for name, model in written.regions.items():
            assert read.regions[name].image.mask.planes == model.image.mask.planes


class TestExtendedPsfFitsFormatter(_Tests):
    formatter_class = ExtendedPsfFitsFormatter
    storage_class = next(sc for sc in STORAGE_CLASSES if sc.name == "ExtendedPsf")


class TestExtendedPsfZarrFormatter(_Tests):
    formatter_class = ExtendedPsfZarrFormatter
    storage_class = next(sc for sc in STORAGE_CLASSES if sc.name == "ExtendedPsfZarr")


def test_call_follows_lsst():
    default, regional, both = _objects()
    assert default() is default.default.image
    assert default(detector=42) is default.default.image  # no regions: the default
    assert regional(detector=6) is regional.focal_plane_regions["EDGE_2"].image
    assert regional.detectors_focal_plane_regions == {0: "CENTER", 1: "CENTER", 5: "EDGE_2",
                                                      6: "EDGE_2", 7: "EDGE_2"}  # fmt: skip
    assert regional.get_regional_extended_psf(region_name="center") is regional(0)
    assert len(regional) == 2 and len(default) == 0
    with pytest.raises(ExtendedPsfError, match="no default model"):
        regional()
    with pytest.raises(ExtendedPsfError, match="detector 3 is in no"):
        regional(detector=3)
    assert both() is both.default.image
    with pytest.raises(ValueError, match="already"):
        regional.add_regional_extended_psf(_model(9), "CENTER", [9])
    with pytest.raises(ValueError, match="detector 0 is in region 'CENTER'"):
        regional.add_regional_extended_psf(_model(9), "other", [0])
    with pytest.raises(ValueError, match="reserved"):
        regional.add_regional_extended_psf(_model(9), "default", [9])


def test_fits_layout_is_lsst_like(tmp_path):
    _, regional, both = _objects()
    path = tmp_path / "e.fits"
    write_extended_psf_fits(regional, path)
    with fits.open(path) as hdul:
        primary = hdul[0].header
        assert primary["HAS_DEFAULT"] is False and primary["HAS_REGIONS"] is True
        assert [c.value for c in primary.cards if c.keyword == "REGION_NAMES"] == [
            "CENTER",
            "EDGE_2",
        ]
        assert [c.value for c in primary.cards if c.keyword == "EDGE_2"] == [5, 6, 7]
        assert [(h.name, h.header["REGION"]) for h in hdul[1:]] == [
            ("IMAGE", "CENTER"), ("MASK", "CENTER"), ("IMAGE", "EDGE_2"), ("MASK", "EDGE_2")
        ]  # fmt: skip
        assert hdul[1].header["N_STAMPS"] == 40
        assert primary["SCALE"] == 0.1 + 0.2  # exact float
    write_extended_psf_fits(both, path)
    with fits.open(path) as hdul:
        assert [h.header["REGION"] for h in hdul[1::2]] == ["DEFAULT", "R"]
    assert read_extended_psf_fits(path).equals(both)


def test_unstorable_and_malformed(tmp_path):
    bad = ExtendedPsf()
    with pytest.raises(ExtendedPsfFormatError, match="without any model"):
        write_extended_psf_fits(bad, tmp_path / "x.fits")
    bad.add_regional_extended_psf(_model(1), "has space", [1])
    with pytest.raises(ExtendedPsfFormatError, match="'HAS SPACE' cannot be stored"):
        write_extended_psf_fits(bad, tmp_path / "x.fits")
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU().writeto(plain)
    with pytest.raises(ExtendedPsfFormatError, match="HAS_DEFAULT"):
        read_extended_psf_fits(plain)
    with pytest.raises(FileNotFoundError):
        read_extended_psf_fits(tmp_path / "missing.fits")
